//! Every metric name the switch emits, in one place, with its labels. Labels never carry a PAN,
//! an amount or anything else about a cardholder: only MTIs, response codes, issuer and acquirer
//! ids, link states and similar small closed sets.
//!
//! Modules record through the `metrics` facade using these constants; [`install_exporter`] serves
//! them at `http://<metrics.address>/metrics` in Prometheus text format. The few metrics every
//! request records go through [`RequestMeters`] instead, which keeps their handles: the facade's
//! macros build the key and look it up in the recorder's registry on every call, which cost 4%
//! of the switch's worker time (docs/performance.md, "Metric handles kept, and journal payloads
//! without an allocation each").

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::OnceLock;

use metrics::{Counter, Histogram};

use crate::domain::ResponseCode;

/// Requests received from acquirers. Labels: `mti`.
pub const REQUESTS_TOTAL: &str = "switchyard_requests_total";
/// Responses sent to acquirers. Labels: `mti`, `response_code`, `issuer`.
pub const RESPONSES_TOTAL: &str = "switchyard_responses_total";
/// Time from a request's arrival to its response being queued for writing, minus the issuer's
/// round trip: what the switch itself adds. Seconds.
pub const SWITCH_LATENCY_SECONDS: &str = "switchyard_switch_latency_seconds";
/// Issuer round trip, from write to matched reply. Seconds. Labels: `issuer`.
pub const ISSUER_ROUND_TRIP_SECONDS: &str = "switchyard_issuer_round_trip_seconds";
/// Requests in flight to issuers. Gauge. Labels: `issuer`.
pub const ISSUER_INFLIGHT: &str = "switchyard_issuer_inflight";
/// Link state changes. Labels: `issuer`, `state` (connecting, signing_on, ready, down).
pub const LINK_STATE_CHANGES_TOTAL: &str = "switchyard_link_state_changes_total";
/// Links currently ready. Gauge. Labels: `issuer`.
pub const LINKS_READY: &str = "switchyard_links_ready";
/// Requests that timed out waiting for the issuer. Labels: `issuer`.
pub const ISSUER_TIMEOUTS_TOTAL: &str = "switchyard_issuer_timeouts_total";
/// Replies that arrived after their request had timed out, or matched nothing. Labels: `issuer`.
pub const LATE_REPLIES_TOTAL: &str = "switchyard_late_replies_total";
/// Reversal advices queued for store-and-forward. Labels: `issuer`, `reason`.
pub const REVERSALS_QUEUED_TOTAL: &str = "switchyard_reversals_queued_total";
/// Advices delivered (acknowledged by the issuer). Labels: `issuer`.
pub const SAF_DELIVERED_TOTAL: &str = "switchyard_saf_delivered_total";
/// Advices parked after `saf_retries_max`. Labels: `issuer`.
pub const SAF_PARKED_TOTAL: &str = "switchyard_saf_parked_total";
/// Advices waiting. Gauge. Labels: `issuer`.
pub const SAF_DEPTH: &str = "switchyard_saf_depth";
/// Acquirer connections open. Gauge.
pub const CONNECTIONS_OPEN: &str = "switchyard_connections_open";
/// Acquirer connections accepted. Counter.
pub const CONNECTIONS_ACCEPTED_TOTAL: &str = "switchyard_connections_accepted_total";
/// Connections refused at a connection limit. Labels: `limit` (`global`: `[listener]
/// connections_max`, closed unread; `acquirer`: `[[acquirer]] connections_max`, answered 91 and
/// closed), and `acquirer` for the latter.
pub const CONNECTIONS_REFUSED_TOTAL: &str = "switchyard_connections_refused_total";
/// TLS handshakes on the acquirer listener that failed; the connection is closed unread. Labels:
/// `reason` (`timeout`: not finished within `read_timeout_ms`; `certificate`: a resumed session
/// whose client certificate no longer verifies, e.g. expired since the session began; `error`:
/// anything else, e.g. plain TCP, no or an untrusted client certificate).
pub const TLS_HANDSHAKE_FAILURES_TOTAL: &str = "switchyard_tls_handshake_failures_total";
/// TLS handshakes on the acquirer listener that completed. Labels: `kind` (`full`: certificates
/// and signatures exchanged; `resumed`: a session the client kept from an earlier connection,
/// without certificate signatures, several times cheaper for the switch's CPU).
pub const TLS_HANDSHAKES_TOTAL: &str = "switchyard_tls_handshakes_total";
/// Requests answered 91 at once, unprocessed, because their connection was over
/// `requests_per_s_max` (not in `requests_total`). Labels: `acquirer` (the connection's, or
/// `unidentified` before its first request naming one).
pub const REQUESTS_THROTTLED_TOTAL: &str = "switchyard_requests_throttled_total";
/// Requests in flight on acquirer connections. Gauge.
pub const ACQUIRER_INFLIGHT: &str = "switchyard_acquirer_inflight";
/// Messages dropped unanswered. Labels: `reason` (structure, framing, slow_frame,
/// unexpected_response, encode).
pub const DROPPED_TOTAL: &str = "switchyard_dropped_total";
/// Idempotency records an on-us issuer's engine holds, set after each sweep: what its memory
/// grows with, bounded by its `[ledger] records_max`. Gauge. Labels: `issuer`.
pub const ONUS_RECORDS: &str = "switchyard_onus_records";
/// Journal events an on-us issuer's sweeps made (expired holds released, old records forgotten:
/// at most two per account and pass). Counter. Labels: `issuer`.
pub const ONUS_SWEEP_EVENTS_TOTAL: &str = "switchyard_onus_sweep_events_total";
/// Duplicate requests answered from the window. Counter.
pub const DUPLICATES_TOTAL: &str = "switchyard_duplicates_total";
/// Journal fsync duration. Seconds.
pub const JOURNAL_FSYNC_SECONDS: &str = "switchyard_journal_fsync_seconds";
/// Journal write of one group commit's records, before its fsync. Seconds. With direct I/O
/// (`[journal] direct_io`) it waits for the disk, so a commit's time is this plus the fsync;
/// buffered, it is a copy into the page cache and the fsync does the writing.
pub const JOURNAL_WRITE_SECONDS: &str = "switchyard_journal_write_seconds";
/// Records per journal group commit. Histogram.
pub const JOURNAL_BATCH_RECORDS: &str = "switchyard_journal_batch_records";
/// Journal bytes appended. Counter.
pub const JOURNAL_BYTES_TOTAL: &str = "switchyard_journal_bytes_total";
/// Group commits that waited for `[journal] group_commit_delay_us` before starting (the delay at
/// work under load). Counter.
pub const JOURNAL_DELAYED_COMMITS_TOTAL: &str = "switchyard_journal_delayed_commits_total";
/// Stand-in decisions. Labels: `issuer`, `response_code`.
pub const STANDIN_TOTAL: &str = "switchyard_standin_total";
/// Messages refused for security: a MAC missing or wrong, PIN data the switch cannot read.
/// Labels: `party` (`acquirer` or `issuer`: who sent it) and `reason` (`mac_missing`,
/// `mac_invalid`, `pin_key_missing`, `pin_block_invalid`, `source_not_allowed`: a request names
/// an acquirer from an address outside its `allowed_sources`, `acquirer_changed`: a connection
/// that belongs to one acquirer sends a request naming another, `certificate_mismatch`: a request
/// names another acquirer than the one its connection's TLS client certificate identifies,
/// `certificate_unknown`: a request on a connection whose client certificate identifies no
/// configured acquirer).
pub const SECURITY_VIOLATIONS_TOTAL: &str = "switchyard_security_violations_total";
/// Config reloads. Labels: `outcome` (applied, rejected).
pub const CONFIG_RELOADS_TOTAL: &str = "switchyard_config_reloads_total";

/// Bucket bounds of every histogram in seconds (the `_seconds` metrics): 25 µs to 10 s, about
/// three to a decade, so `histogram_quantile` reads a p99 of a fraction of a millisecond or of
/// seconds alike.
pub const SECONDS_BUCKETS: [f64; 19] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Bucket bounds of [`JOURNAL_BATCH_RECORDS`]: powers of two up to the largest `group_commit_max`
/// worth setting.
pub const RECORDS_BUCKETS: [f64; 13] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];

/// The exporter as the switch configures it: every histogram rendered as Prometheus buckets
/// (`_bucket{le=…}`, `_sum`, `_count`), which a scraper can aggregate across switches and read
/// with `histogram_quantile`. The exporter's default, a summary of quantiles kept per process,
/// cannot be aggregated, and keeping it cost 2,100–2,700 instructions per answer in the upkeep
/// that drains the samples into its sketches (docs/performance.md, "Instructions per answer");
/// a bucketed sample costs a comparison with each bound and an add. A histogram whose name
/// does not end in `_seconds` needs a line of its own below, or it is exported as a summary
/// (test `every_histogram_renders_as_buckets`). Tests and benches that record as the switch
/// does build their recorder from this too.
pub fn builder()
-> Result<metrics_exporter_prometheus::PrometheusBuilder, metrics_exporter_prometheus::BuildError> {
    use metrics_exporter_prometheus::Matcher;
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &SECONDS_BUCKETS)?
        .set_buckets_for_metric(
            Matcher::Full(JOURNAL_BATCH_RECORDS.to_owned()),
            &RECORDS_BUCKETS,
        )
}

/// Installs the Prometheus recorder without its HTTP listener, for a process that runs the switch
/// in-process and wants its metrics recorded as the `switch` binary records them (the bench
/// grid). Must run inside a tokio runtime: a task runs the recorder's upkeep every five seconds
/// as the exporter does (it drains the histograms' samples, which otherwise grow until a scrape).
pub fn install_recorder() -> Result<(), metrics_exporter_prometheus::BuildError> {
    // Checked first: a recorder installed without its upkeep would hold every histogram sample.
    let runtime = tokio::runtime::Handle::try_current().map_err(|e| {
        metrics_exporter_prometheus::BuildError::FailedToCreateRuntime(e.to_string())
    })?;
    let handle = builder()?.install_recorder()?;
    runtime.spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            every.tick().await;
            handle.run_upkeep();
        }
    });
    Ok(())
}

/// Starts the Prometheus exporter's HTTP listener on `addr`. Must run inside a tokio runtime.
pub fn install_exporter(addr: SocketAddr) -> Result<(), metrics_exporter_prometheus::BuildError> {
    builder()?.with_http_listener(addr).install()
}

/// The values the `mti` label takes: the message types the switch receives and answers, then
/// `other` for anything else (a closed set, so a peer cannot grow the series without bound).
const MTI_LABELS: [&str; 15] = [
    "0100", "0110", "0120", "0130", "0200", "0210", "0220", "0230", "0400", "0410", "0420", "0430",
    "0800", "0810", "other",
];

/// Where `mti`'s label sits in [`MTI_LABELS`].
fn mti_index(mti: &[u8; 4]) -> usize {
    MTI_LABELS[..MTI_LABELS.len() - 1]
        .iter()
        .position(|l| l.as_bytes() == mti)
        .unwrap_or(MTI_LABELS.len() - 1)
}

/// The `mti` label of a message type.
pub fn mti_label(mti: &[u8; 4]) -> &'static str {
    MTI_LABELS[mti_index(mti)]
}

/// Response-code slots per (issuer, MTI): one per number up to the highest [`ResponseCode`] (a
/// code's discriminant is its number), then one for a code outside the set (label `??`).
/// Derived from [`ResponseCode::ALL`], so a code added there always has a slot of its own.
const CODE_SLOTS: usize = {
    let mut highest = 0;
    let mut i = 0;
    while i < ResponseCode::ALL.len() {
        let n = ResponseCode::ALL[i] as usize;
        if n > highest {
            highest = n;
        }
        i += 1;
    }
    highest + 2
};

/// The handles of the metrics every request records ([`REQUESTS_TOTAL`], [`RESPONSES_TOTAL`],
/// [`SWITCH_LATENCY_SECONDS`]), each taken from the recorder the first time it is used and kept.
///
/// Why: `metrics::counter!(name, labels)` builds a key (allocating the owned label values) and
/// looks it up in the recorder's registry under a lock at every call. Three or four of those
/// per request were 4% of the switch's worker samples. Taking a handle on first use, not here
/// at construction, keeps the exporter's output as it was: a series appears once it has
/// counted something, and a recorder installed after this is built but before the first
/// request is the one the handles belong to.
///
/// The label sets are closed: MTIs by `MTI_LABELS`, response codes by `CODE_SLOTS`, and
/// issuers by the labels given at construction. A response labelled with an issuer not among
/// them (none of the switch's own paths does that) is counted through the facade, as before.
#[derive(Debug)]
pub struct RequestMeters {
    latency: OnceLock<Histogram>,
    requests: [OnceLock<Counter>; MTI_LABELS.len()],
    issuers: HashMap<Box<str>, usize, foldhash::fast::RandomState>,
    /// Per issuer label, its MTI × code table, allocated when the label first answers.
    responses: Box<[OnceLock<CodeTable>]>,
}

/// One issuer label's response counters, by MTI then response code.
type CodeTable = Box<[OnceLock<Counter>]>;

impl RequestMeters {
    /// Meters for responses labelled with one of `issuers` (the issuer ids and `switch`).
    pub fn new<'a>(issuers: impl IntoIterator<Item = &'a str>) -> RequestMeters {
        let mut by_label = HashMap::with_hasher(foldhash::fast::RandomState::default());
        for label in issuers {
            let next = by_label.len();
            by_label.entry(Box::from(label)).or_insert(next);
        }
        let responses = (0..by_label.len()).map(|_| OnceLock::new()).collect();
        RequestMeters {
            latency: OnceLock::new(),
            requests: std::array::from_fn(|_| OnceLock::new()),
            issuers: by_label,
            responses,
        }
    }

    /// Records the switch's own share of a request's time ([`SWITCH_LATENCY_SECONDS`]).
    pub fn switch_latency(&self, seconds: f64) {
        self.latency
            .get_or_init(|| metrics::histogram!(SWITCH_LATENCY_SECONDS))
            .record(seconds);
    }

    /// Counts a request received ([`REQUESTS_TOTAL`]).
    pub fn request(&self, mti: &[u8; 4]) {
        let ix = mti_index(mti);
        self.requests[ix]
            .get_or_init(|| metrics::counter!(REQUESTS_TOTAL, "mti" => MTI_LABELS[ix]))
            .increment(1);
    }

    /// Counts a response sent ([`RESPONSES_TOTAL`]); `code` is `None` for a code outside
    /// [`ResponseCode`]'s set.
    pub fn response(&self, mti: &[u8; 4], code: Option<ResponseCode>, issuer: &str) {
        let mti_ix = mti_index(mti);
        let code_ix = code.map_or(CODE_SLOTS - 1, |c| usize::from(c as u8));
        let code_label = code.map_or("??", |c| c.as_str());
        let register = || metrics::counter!(RESPONSES_TOTAL, "mti" => MTI_LABELS[mti_ix], "response_code" => code_label, "issuer" => issuer.to_owned());
        // Every index is in range (`CODE_SLOTS` is derived from the codes); `get` all the same,
        // so that a mistake there costs a slower count, never a panic.
        let slot = self.issuers.get(issuer).and_then(|&issuer_ix| {
            self.responses[issuer_ix]
                .get_or_init(|| {
                    (0..MTI_LABELS.len() * CODE_SLOTS)
                        .map(|_| OnceLock::new())
                        .collect()
                })
                .get(mti_ix * CODE_SLOTS + code_ix)
        });
        match slot {
            Some(slot) => slot.get_or_init(register).increment(1),
            None => register().increment(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request and its response: MTI received, MTI and code answered, issuer label, the
    /// switch's own seconds.
    type Event = (
        &'static [u8; 4],
        &'static [u8; 4],
        Option<ResponseCode>,
        &'static str,
        f64,
    );

    /// The requests and responses of the tests below.
    const EVENTS: [Event; 6] = [
        (
            b"0100",
            b"0110",
            Some(ResponseCode::Approved),
            "north-bank",
            0.000_25,
        ),
        (
            b"0100",
            b"0110",
            Some(ResponseCode::Approved),
            "north-bank",
            0.000_5,
        ),
        (
            b"9999",
            b"0110",
            Some(ResponseCode::InsufficientFunds),
            "north-bank",
            0.001,
        ),
        (
            b"0400",
            b"0410",
            Some(ResponseCode::SystemMalfunction),
            "switch",
            0.002,
        ),
        (b"0100", b"0110", None, "switch", 0.004),
        // Not among the labels given: counted through the facade, in the same series shape.
        (
            b"0200",
            b"0210",
            Some(ResponseCode::Approved),
            "east-bank",
            0.008,
        ),
    ];

    /// The Prometheus text of `record` run against a recorder of its own, lines sorted.
    fn rendered(record: impl FnOnce()) -> Vec<String> {
        let recorder = builder().expect("bucket bounds are valid").build_recorder();
        metrics::with_local_recorder(&recorder, record);
        let mut lines: Vec<String> = recorder
            .handle()
            .render()
            .lines()
            .map(str::to_owned)
            .collect();
        lines.sort();
        lines
    }

    /// `EVENTS` recorded through meters for `switch` and `north-bank`, rendered.
    fn rendered_through_meters() -> Vec<String> {
        let meters = RequestMeters::new(["switch", "north-bank"]);
        rendered(|| {
            for (mti, resp, code, issuer, secs) in EVENTS {
                meters.request(mti);
                meters.response(resp, code, issuer);
                meters.switch_latency(secs);
            }
        })
    }

    /// What the switch recorded before `RequestMeters`: the facade's macros at every call.
    #[test]
    fn kept_handles_render_exactly_what_the_facade_macros_rendered() {
        let kept = rendered_through_meters();
        let facade = rendered(|| {
            for (mti, resp, code, issuer, secs) in EVENTS {
                metrics::counter!(REQUESTS_TOTAL, "mti" => mti_label(mti)).increment(1);
                let code = code.map_or("??", |c| c.as_str());
                metrics::counter!(RESPONSES_TOTAL, "mti" => mti_label(resp), "response_code" => code, "issuer" => issuer.to_owned())
                    .increment(1);
                metrics::histogram!(SWITCH_LATENCY_SECONDS).record(secs);
            }
        });
        assert!(
            kept.iter().any(|l| l.starts_with(SWITCH_LATENCY_SECONDS)),
            "the histogram is rendered"
        );
        assert_eq!(kept, facade);
    }

    #[test]
    fn kept_handles_count_the_series_the_exporter_shows() {
        let counters: Vec<String> = rendered_through_meters()
            .into_iter()
            .filter(|l| l.starts_with(REQUESTS_TOTAL) || l.starts_with(RESPONSES_TOTAL))
            .collect();
        let resp = |mti: &str, code: &str, issuer: &str, n: u32| {
            format!(
                "{RESPONSES_TOTAL}{{mti=\"{mti}\",response_code=\"{code}\",issuer=\"{issuer}\"}} {n}"
            )
        };
        let mut expected = vec![
            format!("{REQUESTS_TOTAL}{{mti=\"0100\"}} 3"),
            format!("{REQUESTS_TOTAL}{{mti=\"0200\"}} 1"),
            format!("{REQUESTS_TOTAL}{{mti=\"0400\"}} 1"),
            format!("{REQUESTS_TOTAL}{{mti=\"other\"}} 1"),
            resp("0110", "00", "north-bank", 2),
            resp("0110", "51", "north-bank", 1),
            resp("0110", "??", "switch", 1),
            resp("0210", "00", "east-bank", 1),
            resp("0410", "96", "switch", 1),
        ];
        expected.sort();
        assert_eq!(counters, expected);
    }

    /// Every histogram the switch records renders as buckets, none as a summary, and a value
    /// lands in the first bucket whose bound is at or above it.
    #[test]
    fn every_histogram_renders_as_buckets() {
        let seconds = [
            SWITCH_LATENCY_SECONDS,
            JOURNAL_FSYNC_SECONDS,
            JOURNAL_WRITE_SECONDS,
        ];
        let lines = rendered(|| {
            for name in seconds {
                metrics::histogram!(name).record(0.0003);
            }
            metrics::histogram!(ISSUER_ROUND_TRIP_SECONDS, "issuer" => "north-bank").record(0.0003);
            metrics::histogram!(JOURNAL_BATCH_RECORDS).record(3.0);
        });
        assert!(
            !lines.iter().any(|l| l.contains("quantile=")),
            "no summaries: {lines:?}"
        );
        let count = |prefix: &str| {
            lines
                .iter()
                .find(|l| l.starts_with(prefix))
                .and_then(|l| l.rsplit(' ').next())
                .map(str::to_owned)
        };
        let mut expected: Vec<(String, &str)> = Vec::new();
        for name in seconds {
            expected.push((format!("{name}_bucket{{le=\"0.00025\"}}"), "0"));
            expected.push((format!("{name}_bucket{{le=\"0.0005\"}}"), "1"));
            expected.push((format!("{name}_count"), "1"));
        }
        expected.extend([
            (
                format!(
                    "{ISSUER_ROUND_TRIP_SECONDS}_bucket{{issuer=\"north-bank\",le=\"0.0005\"}}"
                ),
                "1",
            ),
            (format!("{JOURNAL_BATCH_RECORDS}_bucket{{le=\"2\"}}"), "0"),
            (format!("{JOURNAL_BATCH_RECORDS}_bucket{{le=\"4\"}}"), "1"),
        ]);
        for (series, value) in expected {
            assert_eq!(count(&series), Some(value.to_owned()), "{series}");
        }
    }

    #[test]
    fn every_mti_label_is_its_own_and_anything_else_is_other() {
        for label in &MTI_LABELS[..MTI_LABELS.len() - 1] {
            let mti: [u8; 4] = label.as_bytes().try_into().expect("four digits");
            assert_eq!(mti_label(&mti), *label);
        }
        assert_eq!(mti_label(b"0420"), "0420");
        assert_eq!(mti_label(b"0101"), "other");
        assert_eq!(mti_label(b"abcd"), "other");
    }

    #[test]
    fn every_response_code_has_a_slot_of_its_own() {
        let mut seen = std::collections::HashSet::new();
        for c in ResponseCode::ALL {
            let ix = usize::from(*c as u8);
            assert!(
                ix < CODE_SLOTS - 1,
                "{} fits below the unknown slot",
                c.as_str()
            );
            assert!(seen.insert(ix), "{} shares a slot", c.as_str());
        }
    }
}
