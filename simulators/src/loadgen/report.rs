//! The results of a run: throughput, latency percentiles, response codes, errors and
//! mismatches, as text for people and as JSON for scripts (`--json FILE`).
//!
//! Latencies are microseconds from an hdrhistogram with 3 significant digits (so p99 = 1234 µs
//! means 1234 ± 1 µs). Throughput is answers per second inside the measured window.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;
use switch::client::ClientError;

use super::runner::Expect;
use super::thousands;

/// Requests that got no usable answer, by cause.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ErrorCounts {
    /// No answer within the timeout.
    pub timeouts: u64,
    /// Refused, closed or broken connections.
    pub connection: u64,
    /// An answer that could not be decoded or lacked what every answer must carry.
    pub bad_response: u64,
    /// The request could not be built, or a connection task failed.
    pub other: u64,
}

impl ErrorCounts {
    pub fn count(&mut self, e: &ClientError) {
        match e {
            ClientError::Timeout { .. } => self.timeouts += 1,
            ClientError::Closed { .. } | ClientError::Connect { .. } => self.connection += 1,
            ClientError::Decode { .. } | ClientError::BadResponse { .. } => {
                self.bad_response += 1;
            }
            ClientError::Config(_) | ClientError::Request(_) => self.other += 1,
        }
    }

    pub fn add(&mut self, o: &ErrorCounts) {
        self.timeouts += o.timeouts;
        self.connection += o.connection;
        self.bad_response += o.bad_response;
        self.other += o.other;
    }

    pub fn total(&self) -> u64 {
        self.timeouts + self.connection + self.bad_response + self.other
    }
}

/// Latency percentiles of the answers received in the measured window, microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Requests in the histogram.
    pub count: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
}

/// `--requests-per-connection`: each connection closed after that many requests and a new one
/// opened (TCP connect and, with TLS, the handshake), as terminals that dial per transaction do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Reconnects {
    pub requests_per_connection: u64,
    /// New connections opened after the first ones, whole run (warmup included).
    pub count: u64,
    /// Time to open one (connect, and the TLS handshake with TLS), over the same connections.
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// Open loop: actual minus scheduled send time, over the same requests as the latency (and part
/// of it): time waiting for a free slot while the target is behind, plus the generator's own
/// lateness.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct SendDelay {
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// One point of the latency-by-percentile curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CurvePoint {
    /// 0-100.
    pub percentile: f64,
    pub latency_us: u64,
}

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub label: String,
    pub target: String,
    /// `switch` or `echo`.
    pub expect: &'static str,
    /// `closed` or `open`.
    pub mode: &'static str,
    pub connections: usize,
    pub inflight: usize,
    /// Open loop: requests per second in total.
    pub rate: Option<u64>,
    pub warmup_s: f64,
    /// The measured window: as asked, or shorter when the run was stopped early.
    pub duration_s: f64,
    /// Stopped early (Ctrl-C): the figures cover the window up to that moment.
    pub interrupted: bool,
    pub mix: String,
    /// Answers per second inside the measured window.
    pub tps: f64,
    /// Answers inside the measured window.
    pub answered_in_window: u64,
    pub latency: Latency,
    /// Open loop only.
    pub send_delay: Option<SendDelay>,
    /// With `--requests-per-connection` only. Each new connection's time is also in the latency
    /// of the requests that waited for it (from when they would have been sent).
    pub reconnects: Option<Reconnects>,
    /// Whole run, warmup included.
    pub sent: u64,
    /// Whole run, warmup included.
    pub answered: u64,
    /// Field 39 of every answer (`echo` against an echo backend), whole run.
    pub response_codes: BTreeMap<String, u64>,
    /// Whole run.
    pub errors: ErrorCounts,
    pub error_samples: Vec<String>,
    /// Answers that differ from the model, whole run.
    pub mismatches: u64,
    /// The first few, card numbers masked.
    pub mismatch_samples: Vec<String>,
    /// Open loop: scheduled sends that never went out (the target fell behind).
    pub backlog: u64,
    /// Open loop: scheduled sends that never went out because their connection had closed, or
    /// (with `--requests-per-connection`) its replacement could not be opened.
    pub unsent_no_connection: u64,
    /// Answers that matched no request (late after a timeout, unknown STAN).
    pub unmatched_responses: u64,
    /// Answers per second, sampled about every second from the start (warmup first); each
    /// sample divides by the time that really passed since the previous one.
    pub throughput_per_s: Vec<u64>,
    /// The middle of each `throughput_per_s` bucket, in seconds since the start: a late
    /// sampler makes a bucket longer than a second, and the last one is shorter.
    pub throughput_at_s: Vec<f64>,
    pub latency_curve: Vec<CurvePoint>,
    /// CPU time of the whole loadgen process (every part running in it: the load client, and in
    /// the grid also the switch, issuer host, relay and echo backend) inside the measured window,
    /// microseconds. Unlike TPS it hardly moves when other programs share the cores.
    pub cpu_us: Option<u64>,
    /// `cpu_us` per answer in the measured window, microseconds.
    pub cpu_us_per_answer: Option<f64>,
    /// The part of `cpu_us` spent on the load client's own threads, when it ran on a runtime of
    /// its own (`loadgen grid`), microseconds; `None` otherwise.
    pub client_cpu_us: Option<u64>,
    /// `client_cpu_us` per answer in the measured window, microseconds.
    pub client_cpu_us_per_answer: Option<f64>,
    /// `cpu_us` less `client_cpu_us`, per answer: what the servers in the process (switch,
    /// issuer host, relay, echo backend) spent, without the client that loads them.
    pub servers_cpu_us_per_answer: Option<f64>,
    /// `--watch-pid`: the process watched and its resident set size in KiB, sampled about every
    /// second from the start (warmup first).
    pub watched_pid: Option<u32>,
    pub watched_rss_kib: Vec<u64>,
    /// When each `watched_rss_kib` sample was read, in seconds since the start.
    pub watched_rss_at_s: Vec<f64>,
    /// `--watch-pid`: that process's CPU time inside the measured window (every thread of it,
    /// from `/proc/<pid>/stat`, in 10 ms ticks), microseconds, and per answer: the switch's own
    /// CPU when it runs as a process apart.
    pub watched_cpu_us: Option<u64>,
    pub watched_cpu_us_per_answer: Option<f64>,
}

/// What the runner hands over to build a report.
pub(crate) struct Parts {
    pub label: String,
    pub target: String,
    pub expect: Expect,
    pub connections: usize,
    pub inflight: usize,
    pub rate: Option<u64>,
    pub warmup: Duration,
    pub duration: Duration,
    pub interrupted: bool,
    pub mix: String,
    pub hist: Histogram<u64>,
    pub lag: Histogram<u64>,
    pub codes: BTreeMap<String, u64>,
    pub errors: ErrorCounts,
    pub answered: u64,
    pub answered_in_window: u64,
    pub sent: u64,
    pub mismatches: u64,
    pub mismatch_samples: Vec<String>,
    pub error_samples: Vec<String>,
    pub backlog: u64,
    pub unsent_no_connection: u64,
    pub unmatched: u64,
    pub requests_per_connection: Option<u64>,
    /// Connect (and handshake) times of the reconnections, microseconds.
    pub connect: Histogram<u64>,
    pub per_second: Vec<u64>,
    /// The middle of each `per_second` bucket, seconds since the start.
    pub per_second_at_s: Vec<f64>,
}

/// Percentiles of the curve: 0, 10, ..., 90, then 1 - 10^(-k/4) up to 99.999, then 100.
fn curve(hist: &Histogram<u64>) -> Vec<CurvePoint> {
    if hist.is_empty() {
        return Vec::new();
    }
    let mut qs: Vec<f64> = (0..10).map(|i| f64::from(i) / 10.0).collect();
    for k in 5..=20 {
        qs.push(1.0 - 10f64.powf(-f64::from(k) / 4.0));
    }
    let mut out: Vec<CurvePoint> = qs
        .into_iter()
        .map(|q| CurvePoint {
            percentile: q * 100.0,
            latency_us: hist.value_at_quantile(q),
        })
        .collect();
    out.push(CurvePoint {
        percentile: 100.0,
        latency_us: hist.max(),
    });
    out
}

impl RunReport {
    pub(crate) fn build(p: Parts) -> RunReport {
        let h = &p.hist;
        let latency = if h.is_empty() {
            Latency::default()
        } else {
            Latency {
                count: h.len(),
                p50_us: h.value_at_quantile(0.5),
                p90_us: h.value_at_quantile(0.9),
                p99_us: h.value_at_quantile(0.99),
                p999_us: h.value_at_quantile(0.999),
                max_us: h.max(),
                mean_us: h.mean(),
            }
        };
        let secs = p.duration.as_secs_f64().max(1e-9);
        let send_delay = (p.rate.is_some() && !p.lag.is_empty()).then(|| SendDelay {
            p50_us: p.lag.value_at_quantile(0.5),
            p99_us: p.lag.value_at_quantile(0.99),
            max_us: p.lag.max(),
        });
        let reconnects = p.requests_per_connection.map(|n| {
            let c = &p.connect;
            let at = |q: f64| {
                if c.is_empty() {
                    0
                } else {
                    c.value_at_quantile(q)
                }
            };
            Reconnects {
                requests_per_connection: n,
                count: c.len(),
                p50_us: at(0.5),
                p99_us: at(0.99),
                max_us: c.max(),
            }
        });
        RunReport {
            label: p.label,
            target: p.target,
            expect: match p.expect {
                Expect::Switch => "switch",
                Expect::Echo => "echo",
            },
            mode: if p.rate.is_some() { "open" } else { "closed" },
            connections: p.connections,
            inflight: p.inflight,
            rate: p.rate,
            warmup_s: p.warmup.as_secs_f64(),
            duration_s: p.duration.as_secs_f64(),
            interrupted: p.interrupted,
            mix: p.mix,
            tps: p.answered_in_window as f64 / secs,
            answered_in_window: p.answered_in_window,
            latency_curve: curve(h),
            latency,
            send_delay,
            reconnects,
            sent: p.sent,
            answered: p.answered,
            response_codes: p.codes,
            errors: p.errors,
            error_samples: p.error_samples,
            mismatches: p.mismatches,
            mismatch_samples: p.mismatch_samples,
            backlog: p.backlog,
            unsent_no_connection: p.unsent_no_connection,
            unmatched_responses: p.unmatched,
            throughput_per_s: p.per_second,
            throughput_at_s: p.per_second_at_s,
            cpu_us: None,
            cpu_us_per_answer: None,
            client_cpu_us: None,
            client_cpu_us_per_answer: None,
            servers_cpu_us_per_answer: None,
            watched_pid: None,
            watched_rss_kib: Vec::new(),
            watched_rss_at_s: Vec::new(),
            watched_cpu_us: None,
            watched_cpu_us_per_answer: None,
        }
    }

    /// Records the RSS samples of the watched process, each with when it was read (seconds
    /// since the start).
    pub fn set_watched_rss(&mut self, pid: u32, samples_kib: Vec<u64>, at_s: Vec<f64>) {
        self.watched_pid = Some(pid);
        self.watched_rss_kib = samples_kib;
        self.watched_rss_at_s = at_s;
    }

    /// Records the watched process's CPU time inside the measured window.
    pub fn set_watched_cpu(&mut self, cpu_us: Option<u64>) {
        self.watched_cpu_us = cpu_us;
        self.watched_cpu_us_per_answer = cpu_us.and_then(|us| self.per_answer(us));
    }

    /// `us` per answer in the measured window; `None` when nothing was answered in it.
    fn per_answer(&self, us: u64) -> Option<f64> {
        (self.answered_in_window > 0).then(|| us as f64 / self.answered_in_window as f64)
    }

    /// The watched process's RSS in KiB: (first sample read after the warmup, last, maximum).
    /// A run that ended before its warmup did has no such sample: its last one stands in.
    pub fn watched_rss_summary(&self) -> Option<(u64, u64, u64)> {
        let s = &self.watched_rss_kib;
        let warm = self
            .watched_rss_at_s
            .iter()
            .position(|t| *t >= self.warmup_s)
            .unwrap_or(s.len().saturating_sub(1));
        let first = *s.get(warm).or(s.last())?;
        Some((first, *s.last()?, s.iter().copied().max()?))
    }

    /// Records the CPU time spent inside the measured window: the process's, and the part of it
    /// on the load client's own threads when that is known. A client share above the process's
    /// is not a measurement: it is dropped.
    pub fn set_cpu(&mut self, cpu_us: Option<u64>, client_cpu_us: Option<u64>) {
        let client_cpu_us = client_cpu_us.filter(|c| cpu_us.is_some_and(|p| *c <= p));
        self.cpu_us = cpu_us;
        self.cpu_us_per_answer = cpu_us.and_then(|us| self.per_answer(us));
        self.client_cpu_us = client_cpu_us;
        self.client_cpu_us_per_answer = client_cpu_us.and_then(|us| self.per_answer(us));
        self.servers_cpu_us_per_answer = cpu_us
            .zip(client_cpu_us)
            .and_then(|(p, c)| self.per_answer(p - c));
    }

    /// True when every request was answered as the model says, and (open loop) none was left
    /// unsent for want of a connection. A backlog is not unclean: it says the target was slow,
    /// which the latency shows too.
    pub fn is_clean(&self) -> bool {
        self.mismatches == 0 && self.errors.total() == 0 && self.unsent_no_connection == 0
    }

    /// The report for people.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let mode = match self.rate {
            Some(r) => format!("open loop at {} req/s", thousands(r)),
            None => "closed loop".to_owned(),
        };
        let label = if self.label.is_empty() {
            String::new()
        } else {
            format!("{}: ", self.label)
        };
        let _ = writeln!(
            s,
            "{label}{mode}, {} connections x {} in flight, target {} ({}), warmup {:.1} s, measured {:.1} s",
            self.connections,
            self.inflight,
            self.target,
            self.expect,
            self.warmup_s,
            self.duration_s
        );
        if self.interrupted && self.duration_s > 0.0 {
            let _ = writeln!(
                s,
                "  interrupted  stopped early: the figures cover the first {:.1} s of the measured window",
                self.duration_s
            );
        } else if self.interrupted {
            let _ = writeln!(
                s,
                "  interrupted  stopped early, during the warmup: nothing was measured (the counts cover the warmup)"
            );
        }
        let _ = writeln!(
            s,
            "  throughput   {} TPS ({} answers in the measured window)",
            thousands(self.tps.round() as u64),
            thousands(self.answered_in_window)
        );
        match (
            self.cpu_us,
            self.cpu_us_per_answer,
            self.client_cpu_us_per_answer,
            self.servers_cpu_us_per_answer,
        ) {
            (Some(cpu), Some(per), Some(client), Some(servers)) => {
                let _ = writeln!(
                    s,
                    "  cpu          {per:.1} us per answer ({:.2} s of CPU in the window, this process): load client {client:.1}, servers in the process {servers:.1}",
                    cpu as f64 / 1e6
                );
            }
            (Some(cpu), Some(per), ..) => {
                let _ = writeln!(
                    s,
                    "  cpu          {per:.1} us per answer ({:.2} s of CPU in the window, this process only: the load generator's own, and the stack's too when it runs in-process as in `grid`)",
                    cpu as f64 / 1e6
                );
            }
            _ => {}
        }
        if let (Some(pid), Some((first, last, max))) =
            (self.watched_pid, self.watched_rss_summary())
        {
            let mib = |k: u64| k as f64 / 1024.0;
            let _ = writeln!(
                s,
                "  rss          process {pid}: {:.1} MiB after the warmup, {:.1} MiB at the end, {:.1} MiB at most ({} samples)",
                mib(first),
                mib(last),
                mib(max),
                self.watched_rss_kib.len()
            );
        }
        if let (Some(pid), Some(cpu), Some(per)) = (
            self.watched_pid,
            self.watched_cpu_us,
            self.watched_cpu_us_per_answer,
        ) {
            let _ = writeln!(
                s,
                "  cpu watched  process {pid}: {per:.1} us per answer ({:.2} s of CPU in the window, every thread of it)",
                cpu as f64 / 1e6
            );
        }
        let l = &self.latency;
        let _ = writeln!(
            s,
            "  latency us   p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (mean {}, {} requests{})",
            thousands(l.p50_us),
            thousands(l.p90_us),
            thousands(l.p99_us),
            thousands(l.p999_us),
            thousands(l.max_us),
            thousands(l.mean_us.round() as u64),
            thousands(l.count),
            if self.rate.is_some() {
                ", from the scheduled send time"
            } else {
                ""
            }
        );
        if let Some(lag) = &self.send_delay {
            let _ = writeln!(
                s,
                "  send delay   p50 {}  p99 {}  max {} us  (scheduled to sent: no free slot, or the generator late)",
                thousands(lag.p50_us),
                thousands(lag.p99_us),
                thousands(lag.max_us)
            );
        }
        if let Some(r) = &self.reconnects {
            let _ = writeln!(
                s,
                "  reconnects   {} (a new connection every {} requests), to open one: p50 {}  p99 {}  max {} us (whole run)",
                thousands(r.count),
                thousands(r.requests_per_connection),
                thousands(r.p50_us),
                thousands(r.p99_us),
                thousands(r.max_us)
            );
        }
        let _ = writeln!(
            s,
            "  sent         {}, answered {} (whole run, warmup included)",
            thousands(self.sent),
            thousands(self.answered)
        );
        let total: u64 = self.response_codes.values().sum();
        let mut codes = String::new();
        for (c, n) in &self.response_codes {
            let pct = n * 1000 / total.max(1);
            let _ = write!(
                codes,
                "  {c} {} ({}.{}%)",
                thousands(*n),
                pct / 10,
                pct % 10
            );
        }
        let _ = writeln!(s, "  responses  {codes}");
        let e = &self.errors;
        let _ = writeln!(
            s,
            "  errors       {} (timeouts {}, connection {}, bad response {}, other {})",
            thousands(e.total()),
            e.timeouts,
            e.connection,
            e.bad_response,
            e.other
        );
        for x in &self.error_samples {
            let _ = writeln!(s, "    {x}");
        }
        let _ = writeln!(s, "  mismatches   {}", thousands(self.mismatches));
        for x in &self.mismatch_samples {
            let _ = writeln!(s, "    {x}");
        }
        if self.backlog > 0 {
            let _ = writeln!(
                s,
                "  backlog      {} scheduled sends never went out: the target fell behind the rate",
                thousands(self.backlog)
            );
        }
        if self.unsent_no_connection > 0 {
            let _ = writeln!(
                s,
                "  unsent       {} scheduled sends never went out: their connection had closed, or could not be reopened",
                thousands(self.unsent_no_connection)
            );
        }
        if self.expect == "switch" && self.answered == 0 && self.errors.bad_response > 0 {
            let _ = writeln!(
                s,
                "  hint         no answer had a response code: if the target is the relay in front \
                 of an echo backend, run with --expect echo"
            );
        }
        if self.unmatched_responses > 0 {
            let _ = writeln!(
                s,
                "  unmatched    {} answers matched no request (late or unknown STAN)",
                thousands(self.unmatched_responses)
            );
        }
        s
    }

    /// Writes the report as pretty JSON.
    pub fn write_json(&self, path: &Path) -> Result<(), String> {
        write_json(path, self)
    }
}

/// Checks, before a run, that a report can be written to `path` (given with `flag`): its folder
/// exists and the path is not a folder. A soak of ten minutes should not end in "cannot write".
pub fn check_output_path(path: &Path, flag: &str) -> Result<(), String> {
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !folder.is_dir() {
        return Err(format!(
            "{flag} {}: the folder {} does not exist",
            path.display(),
            folder.display()
        ));
    }
    if path.is_dir() {
        return Err(format!(
            "{flag} {}: that is a folder, not a file",
            path.display()
        ));
    }
    Ok(())
}

/// Writes any report as pretty JSON, with a clear error.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), String> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| format!("cannot encode the report as JSON: {e}"))?;
    write_whole(path, (text + "\n").as_bytes())
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`: an
/// interrupted write never leaves half a report under the report's name.
pub fn write_whole(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("cannot write {}: {e}", path.display())
        })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn an_output_path_is_checked_before_the_run() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(check_output_path(&dir.path().join("r.json"), "--json").is_ok());
        assert!(check_output_path(Path::new("r.json"), "--json").is_ok());
        let missing = check_output_path(&dir.path().join("no/r.json"), "--json").unwrap_err();
        assert!(missing.contains("does not exist"), "{missing}");
        let folder = check_output_path(dir.path(), "--json").unwrap_err();
        assert!(folder.contains("is a folder"), "{folder}");
    }

    #[test]
    fn the_memory_after_the_warmup_is_the_first_sample_read_after_it() {
        let mut r = small_report();
        r.warmup_s = 2.0;
        // A late sampler: its second read came at 2.5 s, the first one after the warmup.
        r.set_watched_rss(7, vec![100, 200, 300, 250], vec![1.0, 2.5, 3.5, 4.5]);
        assert_eq!(r.watched_rss_summary(), Some((200, 250, 300)));
        // A run that ended before its warmup did: the last sample stands in.
        r.set_watched_rss(7, vec![100, 200, 150], vec![0.5, 1.5, 1.8]);
        assert_eq!(r.watched_rss_summary(), Some((150, 150, 200)));
    }

    /// The CPU in the window, split when the client ran on threads of its own: per answer,
    /// printed, and in the JSON; a client share above the process's is dropped, not printed.
    #[test]
    fn the_cpu_of_the_window_split_between_client_and_servers() {
        let mut r = small_report();
        r.set_cpu(Some(8_000), Some(2_000));
        assert_eq!(r.cpu_us_per_answer, Some(10.0));
        assert_eq!(r.client_cpu_us_per_answer, Some(2.5));
        assert_eq!(r.servers_cpu_us_per_answer, Some(7.5));
        let text = r.to_text();
        assert!(
            text.contains(
                "cpu          10.0 us per answer (0.01 s of CPU in the window, this process): load client 2.5, servers in the process 7.5"
            ),
            "{text}"
        );
        let json = serde_json::to_string(&r).expect("json");
        assert!(json.contains("\"servers_cpu_us_per_answer\":7.5"), "{json}");

        r.set_cpu(Some(1_000), Some(2_000));
        assert_eq!(r.cpu_us_per_answer, Some(1.25));
        assert_eq!(r.client_cpu_us, None);
        assert_eq!(r.servers_cpu_us_per_answer, None);
        assert!(r.to_text().contains("this process only"), "{}", r.to_text());

        r.set_cpu(Some(1_000), None);
        assert_eq!(r.servers_cpu_us_per_answer, None);

        // The watched process (the switch run apart): its own line.
        r.set_watched_rss(7, vec![100], vec![2.5]);
        r.set_watched_cpu(Some(16_000));
        assert_eq!(r.watched_cpu_us_per_answer, Some(20.0));
        let text = r.to_text();
        assert!(
            text.contains("  cpu watched  process 7: 20.0 us per answer (0.02 s of CPU in the window, every thread of it)"),
            "{text}"
        );
        r.set_watched_cpu(None);
        assert!(!r.to_text().contains("cpu watched"));
        r.answered_in_window = 0;
        r.set_cpu(Some(1_000), Some(500));
        assert_eq!(r.cpu_us_per_answer, None);
        assert_eq!(r.client_cpu_us, Some(500));
        assert_eq!(r.servers_cpu_us_per_answer, None);
    }

    #[test]
    fn report_of_a_small_histogram() {
        let r = small_report();
        assert_eq!(r.tps, 400.0);
        assert_eq!(r.latency.p50_us, 500);
        assert_eq!(r.latency.p99_us, 990);
        assert_eq!(r.latency.max_us, 1000);
        assert!(r.is_clean());
        assert_eq!(r.mode, "open");
        let text = r.to_text();
        assert!(text.contains("00 990 (99.0%)"), "{text}");
        assert!(text.contains("from the scheduled send time"), "{text}");
        assert!(text.contains("send delay   p50 70"), "{text}");
        assert!(
            text.contains("reconnects   4 (a new connection every 250 requests), to open one: p50 300  p99 2,000  max 2,000 us"),
            "{text}"
        );
        let json = serde_json::to_string(&r).expect("json");
        assert!(json.contains("\"p99_us\":990"), "{json}");
        assert!(
            json.contains("\"reconnects\":{\"requests_per_connection\":250,\"count\":4"),
            "{json}"
        );
        assert_eq!(r.latency_curve.last().map(|p| p.latency_us), Some(1000));
    }

    /// An open-loop report of 1,000 answers, 1 µs to 1 ms, 800 of them in a 2 s window.
    pub(crate) fn small_report() -> RunReport {
        let mut hist = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("hist");
        for v in 1..=1000u64 {
            hist.record(v).expect("record");
        }
        let mut lag = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("hist");
        let mut connect = lag.clone();
        lag.record(70).expect("record");
        for v in [200, 300, 400, 2000] {
            connect.record(v).expect("record");
        }
        let mut codes = BTreeMap::new();
        codes.insert("00".to_owned(), 990);
        codes.insert("51".to_owned(), 10);
        RunReport::build(Parts {
            label: "t".into(),
            target: "127.0.0.1:1".into(),
            expect: Expect::Switch,
            connections: 2,
            inflight: 3,
            rate: Some(500),
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(2),
            interrupted: false,
            mix: "m".into(),
            hist,
            lag,
            codes,
            errors: ErrorCounts::default(),
            answered: 1000,
            answered_in_window: 800,
            sent: 1000,
            mismatches: 0,
            mismatch_samples: vec![],
            error_samples: vec![],
            backlog: 0,
            unsent_no_connection: 0,
            unmatched: 0,
            requests_per_connection: Some(250),
            connect,
            per_second: vec![400, 400, 200],
            per_second_at_s: vec![0.5, 1.5, 2.25],
        })
    }
}
