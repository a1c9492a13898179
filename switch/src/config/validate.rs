//! The rules behind [`Config::validate`]: each check appends to one list so every problem is
//! reported in a single pass. The BIN-range overlap check sorts once and sweeps with a stack, so it
//! stays O(n log n) on tables of 100k ranges.

use std::cmp::Reverse;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use super::{Config, IssuerConfig, IssuerKind, LengthHeader, Problem, length_header_name};
use crate::security::{KeyId, KeyPurpose};

/// Fewest digits in a BIN-range bound (digits).
pub const BIN_DIGITS_MIN: usize = 6;
/// Most digits in a BIN-range bound (digits); shorter bounds are compared after extension to this.
pub const BIN_DIGITS_MAX: usize = 11;

/// Largest frame a 4-digit decimal length header (`ascii4`, `bcd2`) can express (bytes).
const DECIMAL_HEADER_FRAME_BYTES_MAX: u32 = 9999;
/// Bounds on `listener.frame_bytes_max` (bytes).
const FRAME_BYTES_MIN: u32 = 64;
const FRAME_BYTES_MAX: u32 = 65535;
/// Largest fixed header (bytes).
const HEADER_BYTES_MAX: u32 = 64;
/// Most digits in a field-32 acquiring institution id (digits).
const ACQUIRER_ID_DIGITS_MAX: usize = 11;
/// Longest issuer id (characters).
const ISSUER_ID_CHARS_MAX: usize = 32;

/// Collects problems for one origin.
struct Report<'a> {
    file: &'a str,
    problems: Vec<Problem>,
}

impl Report<'_> {
    fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.to_owned(),
            key: key.into(),
            message: message.into(),
        });
    }

    fn non_zero(&mut self, key: impl Into<String>, value: u64) {
        if value == 0 {
            self.push(key, "must be greater than 0");
        }
    }

    /// A key id, if given: it must parse and name a key of `purpose`. Whether the keys file
    /// holds it is checked when the switch starts and loads the keys.
    fn key_id(&mut self, key: String, value: Option<&str>, purpose: KeyPurpose) {
        let Some(text) = value else { return };
        match text.parse::<KeyId>() {
            Err(e) => self.push(key, format!("{e} (got {text:?})")),
            Ok(id) if id.purpose() != purpose => self.push(key, format!("{id} is not {purpose}")),
            Ok(_) => {}
        }
    }

    fn socket_addr(&mut self, key: impl Into<String>, value: &str) -> Option<SocketAddr> {
        match value.parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                self.push(
                    key,
                    format!(
                        "must be an ip:port socket address, e.g. 127.0.0.1:8583 (got {value:?})"
                    ),
                );
                None
            }
        }
    }
}

/// Runs every check; an empty result means the config is valid.
pub(super) fn check(config: &Config, origin: &str) -> Vec<Problem> {
    let mut report = Report {
        file: origin,
        problems: Vec::new(),
    };
    let listen_addr = listener(config, &mut report);
    switch(config, &mut report);
    journal(config, &mut report);
    clearing(config, &mut report);
    metrics(config, listen_addr, &mut report);
    acquirers(config, &mut report);
    let issuer_ids = issuers(config, &mut report);
    bin_ranges(config, &issuer_ids, &mut report);
    stand_in(config, &mut report);
    report.problems
}

fn stand_in(config: &Config, report: &mut Report<'_>) {
    use crate::domain::{Amount, Currency};
    let mut seen = HashSet::new();
    for (i, s) in config.stand_in.iter().enumerate() {
        let key = |k: &str| format!("stand_in[{i}].{k}");
        match config.issuers.iter().find(|x| x.id == s.issuer) {
            None => report.push(key("issuer"), "names no [[issuer]]"),
            Some(x) if x.kind != IssuerKind::Remote => {
                report.push(key("issuer"), "stand-in applies to remote issuers only")
            }
            Some(_) => {}
        }
        if !seen.insert(s.issuer.as_str()) {
            report.push(key("issuer"), "more than one [[stand_in]] for this issuer");
        }
        let currency = Currency::from_field(s.currency.as_bytes()).ok();
        if currency.is_none() {
            report.push(key("currency"), "must be a known ISO 4217 numeric code");
        }
        if let Some(c) = currency {
            for (k, v) in [
                ("amount_max", &s.amount_max),
                ("daily_amount_max", &s.daily_amount_max),
            ] {
                match Amount::parse_major(v, c) {
                    Ok(a) if !a.is_negative() => {}
                    _ => report.push(
                        key(k),
                        "must be a non-negative amount in major units, e.g. \"500.00\"",
                    ),
                }
            }
        }
        if s.processing_codes.is_empty() {
            report.push(
                key("processing_codes"),
                "must list at least one transaction type",
            );
        }
        for (j, pc) in s.processing_codes.iter().enumerate() {
            if pc.len() != 2 || !all_digits(pc) {
                report.push(
                    format!("stand_in[{i}].processing_codes[{j}]"),
                    "must be two digits, e.g. \"00\"",
                );
            }
        }
    }
}

fn listener(config: &Config, report: &mut Report<'_>) -> Option<SocketAddr> {
    let l = &config.listener;
    let addr = report.socket_addr("listener.address", &l.address);
    if !(FRAME_BYTES_MIN..=FRAME_BYTES_MAX).contains(&l.frame_bytes_max) {
        report.push(
            "listener.frame_bytes_max",
            format!(
                "must be in {FRAME_BYTES_MIN}..={FRAME_BYTES_MAX} bytes (got {})",
                l.frame_bytes_max
            ),
        );
    } else if matches!(
        l.framing.length_header,
        LengthHeader::Ascii4 | LengthHeader::Bcd2
    ) && l.frame_bytes_max > DECIMAL_HEADER_FRAME_BYTES_MAX
    {
        report.push(
            "listener.frame_bytes_max",
            format!(
                "must be at most {DECIMAL_HEADER_FRAME_BYTES_MAX} bytes with a `{}` length header (got {})",
                length_header_name(l.framing.length_header),
                l.frame_bytes_max
            ),
        );
    }
    if l.framing.header_bytes > HEADER_BYTES_MAX {
        report.push(
            "listener.framing.header_bytes",
            format!(
                "must be at most {HEADER_BYTES_MAX} bytes (got {})",
                l.framing.header_bytes
            ),
        );
    }
    report.non_zero("listener.connections_max", l.connections_max.into());
    if !(1..=65_535).contains(&l.accept_backlog_max) {
        report.push(
            "listener.accept_backlog_max",
            format!(
                "must be 1 to 65535 connections (got {})",
                l.accept_backlog_max
            ),
        );
    }
    report.non_zero(
        "listener.inflight_per_connection_max",
        l.inflight_per_connection_max.into(),
    );
    report.non_zero("listener.idle_timeout_ms", l.idle_timeout_ms);
    report.non_zero("listener.read_timeout_ms", l.read_timeout_ms);
    report.non_zero("listener.requests_per_s_max", l.requests_per_s_max.into());
    report.non_zero("listener.requests_burst_max", l.requests_burst_max.into());
    if let Some(tls) = &l.tls {
        let files = [
            ("listener.tls.cert_file", Some(&tls.cert_file)),
            ("listener.tls.key_file", Some(&tls.key_file)),
            ("listener.tls.client_ca_file", tls.client_ca_file.as_ref()),
        ];
        for (key, path) in files {
            if let Some(path) = path
                && !path.is_file()
            {
                report.push(key, format!("no such file: {}", path.display()));
            }
        }
        cipher_suites(&tls.cipher_suites, report);
    }
    addr
}

/// `[listener.tls] cipher_suites`: names rustls knows, each once, at least one for TLS 1.3.
/// The last is this project's rule, not rustls's: the listener always offers TLS 1.3, and a
/// list of TLS 1.2 suites alone would quietly turn it off.
fn cipher_suites(names: &[String], report: &mut Report<'_>) {
    for problem in cipher_suite_problems(names) {
        report.push("listener.tls.cipher_suites", problem);
    }
}

/// The suite `name` names, as rustls spells it (`TLS13_AES_128_GCM_SHA256`), among those the
/// listeners can use (ring's). The one lookup behind the validation below and the listener's
/// provider (`net::tls`).
pub fn cipher_suite(name: &str) -> Option<rustls::SupportedCipherSuite> {
    rustls::crypto::ring::ALL_CIPHER_SUITES
        .iter()
        .find(|s| s.suite().as_str() == Some(name))
        .copied()
}

/// What is wrong with a list of TLS cipher suites for a listener, every problem at once (empty:
/// nothing, and an empty list means the default order): names rustls does not know, names
/// listed twice, no TLS 1.3 suite. Shared by `[listener.tls] cipher_suites` and `issuer-sim
/// --tls-cipher-suites`.
pub fn cipher_suite_problems(names: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    if names.is_empty() {
        return problems;
    }
    let mut tls13 = false;
    for (i, name) in names.iter().enumerate() {
        match cipher_suite(name) {
            None => {
                let all: Vec<&str> = rustls::crypto::ring::ALL_CIPHER_SUITES
                    .iter()
                    .filter_map(|s| s.suite().as_str())
                    .collect();
                problems.push(format!("unknown suite {name:?}; known: {}", all.join(", ")));
            }
            Some(s) => tls13 |= s.tls13().is_some(),
        }
        if names[..i].contains(name) {
            problems.push(format!("{name} is listed twice"));
        }
    }
    if !tls13 {
        problems.push("must name at least one TLS 1.3 suite (TLS13_...)".to_owned());
    }
    problems
}

/// Most entries `switch.duplicate_entries_max` may name: 100 million keys is tens of GiB of
/// answers, more than any one switch process should hold.
pub const DUPLICATE_ENTRIES_MAX_LIMIT: usize = 100_000_000;

fn switch(config: &Config, report: &mut Report<'_>) {
    let s = &config.switch;
    report.non_zero("switch.duplicate_window_s", s.duplicate_window_s);
    report.non_zero(
        "switch.duplicate_entries_max",
        u64::try_from(s.duplicate_entries_max).unwrap_or(u64::MAX),
    );
    // About 300 bytes a key once held (net::duplicates): a mistyped limit must be refused here,
    // not run the process out of memory hours later.
    if s.duplicate_entries_max > DUPLICATE_ENTRIES_MAX_LIMIT {
        report.push(
            "switch.duplicate_entries_max",
            format!("must be at most {DUPLICATE_ENTRIES_MAX_LIMIT} entries"),
        );
    }
    if parse_hh_mm(&s.business_date_cutover).is_none() {
        report.push(
            "switch.business_date_cutover",
            format!(
                "must be a 24-hour time HH:MM, e.g. 23:00 (got {:?})",
                s.business_date_cutover
            ),
        );
    }
}

fn journal(config: &Config, report: &mut Report<'_>) {
    let j = &config.journal;
    if j.dir.as_os_str().is_empty() {
        report.push("journal.dir", "must not be empty");
    }
    report.non_zero("journal.segment_bytes_max", j.segment_bytes_max);
    report.non_zero("journal.group_commit_max", j.group_commit_max.into());
    if j.group_commit_delay_us > GROUP_COMMIT_DELAY_US_MAX {
        report.push(
            "journal.group_commit_delay_us",
            format!("must be at most {GROUP_COMMIT_DELAY_US_MAX} (microseconds)"),
        );
    }
    report.non_zero(
        "journal.group_commit_delay_min_records",
        j.group_commit_delay_min_records.into(),
    );
    if j.group_commit_delay_min_records >= j.group_commit_max && j.group_commit_max > 0 {
        report.push(
            "journal.group_commit_delay_min_records",
            "must be less than journal.group_commit_max (a full batch never waits)",
        );
    }
    if let Err(e) = super::check_checkpoint_write_rate(j.checkpoint_write_mib_per_s) {
        report.push("journal.checkpoint_write_mib_per_s", e);
    }
}

/// The longest `[journal] group_commit_delay_us`: 10 ms, beyond which the delay would only hold
/// answers back (an fsync on a real disk takes well under a millisecond).
const GROUP_COMMIT_DELAY_US_MAX: u32 = 10_000;

fn clearing(config: &Config, report: &mut Report<'_>) {
    let c = &config.clearing;
    if c.reports_dir.as_os_str().is_empty() {
        report.push("clearing.reports_dir", "must not be empty");
    }
    if c.fees_file.as_os_str().is_empty() {
        report.push("clearing.fees_file", "must not be empty");
    }
    report.non_zero("clearing.hold_expiry_h", c.hold_expiry_h.into());
    report.non_zero("clearing.lookback_days", c.lookback_days.into());
    report.non_zero("clearing.carried_closed_max", c.carried_closed_max);
    if c.cutover_delay_s >= 86_400 {
        report.push(
            "clearing.cutover_delay_s",
            format!("must be less than a day (got {})", c.cutover_delay_s),
        );
    }
}

fn metrics(config: &Config, listen_addr: Option<SocketAddr>, report: &mut Report<'_>) {
    let m = &config.metrics;
    let addr = report.socket_addr("metrics.address", &m.address);
    if m.enabled && addr.is_some() && addr == listen_addr {
        report.push("metrics.address", "must differ from listener.address");
    }
}

fn acquirers(config: &Config, report: &mut Report<'_>) {
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(config.acquirers.len());
    let mut identities: HashMap<String, usize> = HashMap::new();
    for (i, acquirer) in config.acquirers.iter().enumerate() {
        let id = acquirer.id.as_str();
        if id.is_empty() || id.len() > ACQUIRER_ID_DIGITS_MAX || !all_digits(id) {
            report.push(
                format!("acquirer[{i}].id"),
                format!("must be 1–{ACQUIRER_ID_DIGITS_MAX} digits (got {id:?})"),
            );
        } else if let Some(first) = seen.insert(id, i) {
            seen.insert(id, first);
            report.push(
                format!("acquirer[{i}].id"),
                format!("duplicate of acquirer[{first}].id ({id:?})"),
            );
        }
        if acquirer.name.trim().is_empty() {
            report.push(format!("acquirer[{i}].name"), "must not be empty");
        }
        let key = |k: &str| format!("acquirer[{i}].{k}");
        report.key_id(key("mac_key"), acquirer.mac_key.as_deref(), KeyPurpose::Mac);
        report.key_id(key("pin_key"), acquirer.pin_key.as_deref(), KeyPurpose::Zpk);
        for (j, bdk) in acquirer.bdk.iter().enumerate() {
            report.key_id(key(&format!("bdk[{j}]")), Some(bdk), KeyPurpose::Bdk);
        }
        if acquirer.connections_max == Some(0) {
            report.push(
                format!("acquirer[{i}].connections_max"),
                "must be greater than 0 (omit it for no per-acquirer limit)",
            );
        }
        if let Some(sources) = &acquirer.allowed_sources {
            if sources.is_empty() {
                report.push(
                    format!("acquirer[{i}].allowed_sources"),
                    "must list at least one address (omit it to allow any source)",
                );
            }
            for (j, s) in sources.iter().enumerate() {
                if crate::net::admission::SourceRule::parse(s).is_none() {
                    report.push(
                        format!("acquirer[{i}].allowed_sources[{j}]"),
                        format!("must be an IP address or CIDR block, e.g. 10.0.0.0/8 (got {s:?})"),
                    );
                }
            }
        }
        if let Some(name) = &acquirer.tls_identity {
            let key = key("tls_identity");
            let client_ca = config
                .listener
                .tls
                .as_ref()
                .is_some_and(|t| t.client_ca_file.is_some());
            if !client_ca {
                report.push(
                    key.clone(),
                    "requires [listener.tls] client_ca_file (client certificates are not verified without it)",
                );
            }
            let lower = name.to_ascii_lowercase();
            if rustls_pki_types::DnsName::try_from(lower.as_str()).is_err()
                || lower.starts_with('*')
            {
                report.push(
                    key,
                    format!("must be a DNS name without wildcards, e.g. acq-100001.example (got {name:?})"),
                );
            } else if let Some(first) = identities.insert(lower, i) {
                report.push(
                    key,
                    format!("duplicate of acquirer[{first}].tls_identity ({name:?})"),
                );
            }
        }
    }
}

/// `[issuer.tls]`: remote only, files that exist, a certificate only with its key.
fn issuer_tls(i: usize, issuer: &IssuerConfig, report: &mut Report<'_>) {
    let Some(tls) = &issuer.tls else { return };
    let key = |k: &str| format!("issuer[{i}].tls.{k}");
    if issuer.kind != IssuerKind::Remote {
        report.push(format!("issuer[{i}].tls"), "applies to remote issuers only");
    }
    let files = [
        ("ca_file", Some(&tls.ca_file)),
        ("cert_file", tls.cert_file.as_ref()),
        ("key_file", tls.key_file.as_ref()),
    ];
    for (k, path) in files {
        if let Some(path) = path
            && !path.is_file()
        {
            report.push(key(k), format!("no such file: {}", path.display()));
        }
    }
    if tls.cert_file.is_some() != tls.key_file.is_some() {
        report.push(key("cert_file"), "cert_file and key_file go together");
    }
    if let Some(name) = &tls.server_name
        && rustls_pki_types::ServerName::try_from(name.as_str()).is_err()
    {
        report.push(
            key("server_name"),
            format!("must be a DNS name or IP address (got {name:?})"),
        );
    }
}

/// Checks issuers and returns the set of well-formed ids (for `bin_range.issuer`).
fn issuers<'c>(config: &'c Config, report: &mut Report<'_>) -> HashSet<&'c str> {
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(config.issuers.len());
    for (i, issuer) in config.issuers.iter().enumerate() {
        issuer_tls(i, issuer, report);
        let id = issuer.id.as_str();
        if id.is_empty() {
            report.push(format!("issuer[{i}].id"), "must not be empty");
        } else if id.chars().count() > ISSUER_ID_CHARS_MAX
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            report.push(
                format!("issuer[{i}].id"),
                format!(
                    "must be 1–{ISSUER_ID_CHARS_MAX} characters of A-Z a-z 0-9 - _ . (got {id:?})"
                ),
            );
        } else if let Some(first) = seen.insert(id, i) {
            seen.insert(id, first);
            report.push(
                format!("issuer[{i}].id"),
                format!("duplicate of issuer[{first}].id ({id:?})"),
            );
        }
        if issuer.name.trim().is_empty() {
            report.push(format!("issuer[{i}].name"), "must not be empty");
        }
        match issuer.kind {
            IssuerKind::Remote => remote_issuer(i, issuer, report),
            IssuerKind::OnUs => {
                if !issuer.endpoints.is_empty() {
                    report.push(
                        format!("issuer[{i}].endpoints"),
                        "must be absent for an on-us issuer",
                    );
                }
                // PINs of on-us cards are verified inside the security module and no link
                // carries the issuer's messages: neither key has a use.
                for (k, v) in [("mac_key", &issuer.mac_key), ("pin_key", &issuer.pin_key)] {
                    if v.is_some() {
                        report.push(
                            format!("issuer[{i}].{k}"),
                            "only a remote issuer has link keys",
                        );
                    }
                }
            }
        }
        report.key_id(
            format!("issuer[{i}].mac_key"),
            issuer.mac_key.as_deref(),
            KeyPurpose::Mac,
        );
        report.key_id(
            format!("issuer[{i}].pin_key"),
            issuer.pin_key.as_deref(),
            KeyPurpose::Zpk,
        );
    }
    // Every non-empty id counts as existing, so a malformed id is reported once, not again at
    // each bin range that names it.
    config
        .issuers
        .iter()
        .map(|issuer| issuer.id.as_str())
        .filter(|id| !id.is_empty())
        .collect()
}

fn remote_issuer(i: usize, issuer: &IssuerConfig, report: &mut Report<'_>) {
    if issuer.endpoints.is_empty() {
        report.push(
            format!("issuer[{i}].endpoints"),
            "a remote issuer needs at least one endpoint",
        );
    }
    let mut seen: HashSet<SocketAddr> = HashSet::with_capacity(issuer.endpoints.len());
    for (e, endpoint) in issuer.endpoints.iter().enumerate() {
        let key = format!("issuer[{i}].endpoints[{e}]");
        if let Some(addr) = report.socket_addr(key.clone(), endpoint)
            && !seen.insert(addr)
        {
            report.push(key, format!("duplicate endpoint {endpoint:?}"));
        }
    }
    report.non_zero(
        format!("issuer[{i}].connections_per_endpoint"),
        issuer.connections_per_endpoint.into(),
    );
    report.non_zero(format!("issuer[{i}].timeout_ms"), issuer.timeout_ms);
    report.non_zero(
        format!("issuer[{i}].inflight_max"),
        issuer.inflight_max.into(),
    );
    report.non_zero(format!("issuer[{i}].echo_idle_ms"), issuer.echo_idle_ms);
    report.non_zero(
        format!("issuer[{i}].reconnect_backoff_min_ms"),
        issuer.reconnect_backoff_min_ms,
    );
    report.non_zero(
        format!("issuer[{i}].reconnect_backoff_max_ms"),
        issuer.reconnect_backoff_max_ms,
    );
    if issuer.reconnect_backoff_min_ms > issuer.reconnect_backoff_max_ms {
        report.push(
            format!("issuer[{i}].reconnect_backoff_min_ms"),
            format!(
                "must not exceed reconnect_backoff_max_ms ({} > {})",
                issuer.reconnect_backoff_min_ms, issuer.reconnect_backoff_max_ms
            ),
        );
    }
    report.non_zero(
        format!("issuer[{i}].saf_retries_max"),
        issuer.saf_retries_max.into(),
    );
    report.non_zero(
        format!("issuer[{i}].saf_depth_max"),
        u64::try_from(issuer.saf_depth_max).unwrap_or(u64::MAX),
    );
    if issuer.cards.is_some() {
        report.push(
            format!("issuer[{i}].cards"),
            "only an on-us issuer has a card file",
        );
    }
}

/// A well-formed BIN range, extended to [`BIN_DIGITS_MAX`] digits so ranges of any length compare.
#[derive(Clone, Copy)]
struct Span {
    low: u64,
    high: u64,
    index: usize,
}

fn bin_ranges(config: &Config, issuer_ids: &HashSet<&str>, report: &mut Report<'_>) {
    let mut spans: Vec<Span> = Vec::with_capacity(config.bin_ranges.len());
    for (i, range) in config.bin_ranges.iter().enumerate() {
        let low = bin_bound(&range.low);
        let high = bin_bound(&range.high);
        if low.is_none() {
            report.push(
                format!("bin_range[{i}].low"),
                format!("must be {BIN_DIGITS_MIN}–{BIN_DIGITS_MAX} digits"),
            );
        }
        if high.is_none() {
            report.push(
                format!("bin_range[{i}].high"),
                format!("must be {BIN_DIGITS_MIN}–{BIN_DIGITS_MAX} digits"),
            );
        }
        if let (Some(low), Some(high)) = (low, high) {
            if range.low.len() != range.high.len() {
                report.push(
                    format!("bin_range[{i}].high"),
                    format!(
                        "must have as many digits as low ({} vs {})",
                        range.high.len(),
                        range.low.len()
                    ),
                );
            } else if low > high {
                report.push(
                    format!("bin_range[{i}].low"),
                    format!("must not exceed high ({} > {})", range.low, range.high),
                );
            } else {
                let scale = 10u64.pow((BIN_DIGITS_MAX - range.low.len()) as u32);
                spans.push(Span {
                    low: low * scale,
                    high: high * scale + (scale - 1),
                    index: i,
                });
            }
        }
        if !issuer_ids.contains(range.issuer.as_str()) {
            report.push(
                format!("bin_range[{i}].issuer"),
                format!("no issuer has id {:?}", range.issuer),
            );
        }
    }
    overlaps(config, spans, report);
}

/// Parses a BIN bound of [`BIN_DIGITS_MIN`]..=[`BIN_DIGITS_MAX`] ASCII digits.
fn bin_bound(text: &str) -> Option<u64> {
    if (BIN_DIGITS_MIN..=BIN_DIGITS_MAX).contains(&text.len()) && all_digits(text) {
        text.parse().ok()
    } else {
        None
    }
}

/// Reports ranges that overlap without one containing the other (identical ranges included).
///
/// Sorted by low ascending then high descending, every range comes after all ranges that contain
/// it. A stack holds the chain of open ranges, each nested in the one below; ranges that end before
/// the current one starts are popped. The top is then the innermost open range containing the
/// current start: the current range is fine if it also ends inside the top, else it crosses the
/// top's end. Offending ranges are not pushed, so the chain stays properly nested.
fn overlaps(config: &Config, mut spans: Vec<Span>, report: &mut Report<'_>) {
    spans.sort_unstable_by_key(|s| (s.low, Reverse(s.high), s.index));
    let mut found: Vec<(usize, usize, bool)> = Vec::new(); // (later index, earlier index, identical)
    let mut stack: Vec<Span> = Vec::new();
    for span in spans {
        while stack.last().is_some_and(|top| top.high < span.low) {
            stack.pop();
        }
        match stack.last() {
            Some(top) if top.low == span.low && top.high == span.high => {
                found.push((top.index.max(span.index), top.index.min(span.index), true));
            }
            Some(top) if span.high > top.high => {
                found.push((top.index.max(span.index), top.index.min(span.index), false));
            }
            _ => stack.push(span),
        }
    }
    found.sort_unstable();
    for (later, earlier, identical) in found {
        let other = &config.bin_ranges[earlier];
        let message = if identical {
            format!(
                "covers the same PANs as bin_range[{earlier}] ({}–{})",
                other.low, other.high
            )
        } else {
            format!(
                "overlaps bin_range[{earlier}] ({}–{}) without either containing the other",
                other.low, other.high
            )
        };
        report.push(format!("bin_range[{later}]"), message);
    }
}

/// Minutes after midnight for a strict `HH:MM` (00:00..=23:59).
pub(super) fn parse_hh_mm(text: &str) -> Option<u16> {
    let (hours, minutes) = text.split_once(':')?;
    if hours.len() != 2 || minutes.len() != 2 || !all_digits(hours) || !all_digits(minutes) {
        return None;
    }
    let hours: u16 = hours.parse().ok()?;
    let minutes: u16 = minutes.parse().ok()?;
    (hours < 24 && minutes < 60).then_some(hours * 60 + minutes)
}

fn all_digits(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_digit())
}
