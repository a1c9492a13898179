//! The switch's one typed configuration tree, read from a TOML file (`config/switch.toml`).
//!
//! **Owns:** the shape of the file (every section, field, unit and default), parsing it with
//! `toml`, and the static checks that can be made on the file alone ([`Config::validate`]): address
//! syntax, limits in range, identifiers well formed and unique, issuers referenced by BIN ranges
//! existing, and BIN ranges that either nest or stay apart.
//!
//! **Leaves to others:** what the values *mean* at run time. The listener binds the address, the
//! framing layer ([`crate::net::framing`]) interprets [`LengthHeader`], the codec
//! ([`crate::iso8583::dialect`]) owns [`DialectId`], routing builds its lookup table from
//! [`BinRangeConfig`], the journal opens its directory. Nothing here opens a socket or a file other
//! than the config file itself, so loading a config has no side effects.
//!
//! **Why this way:** one tree means one place to look up a knob and its unit, and
//! `deny_unknown_fields` everywhere turns a misspelt key into an error instead of a silently
//! ignored setting. Validation collects *every* problem at once so an operator fixes a file in one
//! pass, and [`Config::load`] only hands back a config that passed it, so the runtime never
//! re-checks. Limits carry their unit in their name (`_ms`, `_s`, `_bytes`, `_max`).

mod validate;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::process::Scheduling;

pub use validate::{BIN_DIGITS_MAX, BIN_DIGITS_MIN, cipher_suite, cipher_suite_problems};

pub use crate::iso8583::dialect::DialectId;
pub use crate::net::framing::LengthHeader;

/// The whole configuration file. Every section is optional; a missing section takes its defaults.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[listener]`: the acquirer-facing TCP listener.
    #[serde(default)]
    pub listener: ListenerConfig,
    /// `[switch]`: the authorization core.
    #[serde(default)]
    pub switch: SwitchConfig,
    /// `[journal]`: the durable append-only log.
    #[serde(default)]
    pub journal: JournalConfig,
    /// `[metrics]`: the metrics HTTP endpoint.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// `[security]`: where keys come from.
    #[serde(default)]
    pub security: SecurityConfig,
    /// `[clearing]`: business-day cutover, clearing, settlement and their reports.
    #[serde(default)]
    pub clearing: ClearingConfig,
    /// `[[acquirer]]`: the acquiring institutions allowed to send traffic (count, 0..N).
    #[serde(default, rename = "acquirer", skip_serializing_if = "Vec::is_empty")]
    pub acquirers: Vec<AcquirerConfig>,
    /// `[[issuer]]`: the card issuers the switch routes to (count, 0..N).
    #[serde(default, rename = "issuer", skip_serializing_if = "Vec::is_empty")]
    pub issuers: Vec<IssuerConfig>,
    /// `[[bin_range]]`: PAN-prefix ranges mapped to issuers (count, 0..N).
    #[serde(default, rename = "bin_range", skip_serializing_if = "Vec::is_empty")]
    pub bin_ranges: Vec<BinRangeConfig>,
    /// `[[stand_in]]`: limits within which the switch approves for an unreachable issuer (count,
    /// 0..N; an issuer without an entry gets no stand-in: 91).
    #[serde(default, rename = "stand_in", skip_serializing_if = "Vec::is_empty")]
    pub stand_in: Vec<StandInConfig>,
}

/// `[[stand_in]]`: stand-in processing (STIP) parameters for one remote issuer's product.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StandInConfig {
    /// The `[[issuer]].id` (a remote issuer) these limits apply to. Required.
    pub issuer: String,
    /// The product the issuer's BIN ranges carry (label: credit, debit, prepaid). Required.
    pub product: String,
    /// ISO 4217 numeric currency of the amounts below (3 digits). Default `156`.
    #[serde(default = "defaults::currency")]
    pub currency: String,
    /// Largest amount approved in one transaction (major units, e.g. `"500.00"`). Required.
    pub amount_max: String,
    /// Stand-in approvals per card per business day (count). Required.
    pub daily_count_max: u32,
    /// Stand-in approved amount per card per business day (major units). Required.
    pub daily_amount_max: String,
    /// Transaction types allowed (first two digits of field 3, e.g. `["00"]` for purchases
    /// only). Required.
    pub processing_codes: Vec<String>,
    /// The issuer's negative file: one `PAN reason` per line, reason `lost`, `stolen`,
    /// `restricted` or `closed`; `#` starts a comment (filesystem path). Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub negative_file: Option<PathBuf>,
}

/// `[listener]`: where acquirers connect and how their frames look.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenerConfig {
    /// Listen address (`ip:port` socket address). Default `127.0.0.1:8583`.
    pub address: String,
    /// Wire dialect of every message on this listener (dialect name). Default `iso87-ascii`.
    #[serde(serialize_with = "ser_dialect")]
    pub dialect: DialectId,
    /// `[listener.framing]`: the length header and fixed header in front of each message.
    pub framing: FramingConfig,
    /// Largest accepted frame, as counted by the length header (bytes, 64..=65535; at most 9999
    /// for `ascii4` and `bcd2` headers). Default 8192.
    pub frame_bytes_max: u32,
    /// Concurrent acquirer connections (connections). Default 1024.
    pub connections_max: u32,
    /// Connections the kernel holds complete but not yet accepted (connections, 1..=65535; the
    /// kernel caps it at `net.core.somaxconn`). Terminals that dial per transaction arrive in
    /// bursts; a connection over the backlog has its handshake dropped, and the terminal waits
    /// about a second for its retry. Default 1024.
    pub accept_backlog_max: u32,
    /// Requests awaiting a response on one connection (messages). Default 256.
    pub inflight_per_connection_max: u32,
    /// A connection with no traffic for this long is closed (milliseconds). Default 300000.
    pub idle_timeout_ms: u64,
    /// A frame that has started must be complete within this time (milliseconds). Default 30000.
    pub read_timeout_ms: u64,
    /// Sustained requests per second one connection may send; above it requests are answered 91
    /// at once, without being processed (requests per second). Default 50000.
    pub requests_per_s_max: u32,
    /// Requests one connection may send in a burst above `requests_per_s_max` (requests).
    /// Default 5000.
    pub requests_burst_max: u32,
    /// `[listener.tls]`: accept TLS instead of plain TCP. Default: none (plain TCP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ListenerTlsConfig>,
}

/// `[listener.tls]`: the listener's certificate and, optionally, the CA its clients' certificates
/// must chain to. The TLS handshake must finish within `read_timeout_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTlsConfig {
    /// The listener's certificate chain, leaf first (PEM file path). Required.
    pub cert_file: PathBuf,
    /// The private key of `cert_file` (PEM file path: PKCS#8, PKCS#1 or SEC1). Required.
    pub key_file: PathBuf,
    /// CA certificates that client certificates must chain to (PEM file path). When set, every
    /// client must present a valid certificate, and `[[acquirer]] tls_identity` maps it to an
    /// acquirer. Default: none (no client certificates asked for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca_file: Option<PathBuf>,
    /// The cipher suites the listener accepts, in its own order of preference (the listener's
    /// order decides, not the client's), by the names rustls gives them, e.g.
    /// `TLS13_AES_128_GCM_SHA256`; at least one TLS 1.3 suite. Default (empty): every suite
    /// rustls enables, those whose handshake hash is SHA-256 first ([`crate::net::tls`] says
    /// why).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cipher_suites: Vec<String>,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        Self {
            address: "127.0.0.1:8583".to_owned(),
            dialect: DialectId::Iso87Ascii,
            framing: FramingConfig::default(),
            frame_bytes_max: 8192,
            connections_max: 1024,
            accept_backlog_max: 1024,
            inflight_per_connection_max: 256,
            idle_timeout_ms: 300_000,
            read_timeout_ms: 30_000,
            requests_per_s_max: 50_000,
            requests_burst_max: 5_000,
            tls: None,
        }
    }
}

/// `[listener.framing]`: what precedes each ISO 8583 message on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FramingConfig {
    /// Encoding of the length prefix (name: `binary2-be`, `binary2-le`, `ascii4`, `bcd2`).
    /// Default `binary2-be`.
    #[serde(serialize_with = "ser_length_header")]
    pub length_header: LengthHeader,
    /// Fixed header between the length prefix and the MTI, e.g. a TPDU (bytes, 0..=64). Default 0.
    pub header_bytes: u32,
}

impl Default for FramingConfig {
    fn default() -> Self {
        Self {
            length_header: LengthHeader::Binary2Be,
            header_bytes: 0,
        }
    }
}

/// `[switch]`: behaviour of the authorization core.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SwitchConfig {
    /// A repeated request (same acquirer, STAN, transmission time) within this window is a
    /// duplicate (seconds). Default 300.
    pub duplicate_window_s: u64,
    /// Most answered requests the duplicate window remembers (entries); beyond it the oldest are
    /// forgotten before their window ends, so memory stays bounded whatever the rate: each entry
    /// holds its encoded answer, a few hundred bytes. Requests still in flight are kept on top
    /// of it until they are answered (at most `listener.connections_max` times
    /// `listener.inflight_per_connection_max`), so that a repeat never goes through as new. Default
    /// 1000000, at most 100000000.
    pub duplicate_entries_max: usize,
    /// Decline cards whose expiry date (field 14) is in the past (boolean). Default true.
    pub check_expiry: bool,
    /// On shutdown, in-flight requests get this long to complete; 0 stops at once
    /// (milliseconds). Default 5000.
    pub shutdown_grace_ms: u64,
    /// Time of day at which the business date rolls over (`HH:MM`, 24-hour clock, UTC like the
    /// switch's clock): a request before it belongs to today's business date, one at or after it
    /// to tomorrow's (see `clearing::business_date`).
    /// Default `23:00`.
    pub business_date_cutover: String,
    /// How the kernel schedules the switch's threads: `batch` (Linux's `SCHED_BATCH`: a thread
    /// that wakes does not preempt the one running on its core, so batches of answers go out
    /// whole and a busy core switches less) or `normal` (`SCHED_OTHER`, the kernel's default).
    /// Read once at start (`switch run`); a reload does not change it. `crate::process` says
    /// why batch is the default, and when `normal` is the better choice. Default `batch`.
    pub scheduling: Scheduling,
}

impl Default for SwitchConfig {
    fn default() -> Self {
        Self {
            duplicate_window_s: 300,
            duplicate_entries_max: 1_000_000,
            check_expiry: true,
            shutdown_grace_ms: 5000,
            business_date_cutover: "23:00".to_owned(),
            scheduling: Scheduling::Batch,
        }
    }
}

impl SwitchConfig {
    /// The business-date cutover as minutes after midnight (0..1440), or `None` if the field is not
    /// a valid `HH:MM` (which [`Config::validate`] reports).
    pub fn business_date_cutover_minutes(&self) -> Option<u16> {
        validate::parse_hh_mm(&self.business_date_cutover)
    }
}

/// `[clearing]`: what happens at the business-date cutover (`[switch] business_date_cutover`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClearingConfig {
    /// Folder the clearing, settlement and merchant reports and the carry-over files are
    /// written under, one subfolder per business date (filesystem path). Default `reports`.
    pub reports_dir: PathBuf,
    /// The fee schedule: interchange, scheme fees, merchant discount rates (filesystem path to a
    /// TOML file). Default `config/fees.toml`.
    pub fees_file: PathBuf,
    /// The running switch closes each business day itself once the cutover time has passed
    /// (boolean). Default false: run `switch cutover` instead.
    pub auto_cutover: bool,
    /// How long after the cutover time the automatic cutover runs, so that requests in flight
    /// at the cutover have their decisions journaled (seconds). Default 60.
    pub cutover_delay_s: u64,
    /// An authorization hold not completed within this long is reported as expired and no
    /// longer carried over (hours). Default 168 (7 days).
    pub hold_expiry_h: u32,
    /// Cleared, reversed and expired approvals are remembered this many business days, so that
    /// a late reversal or completion still finds its original (days). Default 30.
    pub lookback_days: u32,
    /// Most such approvals the carry-over remembers (approvals): beyond it the oldest of those
    /// closed on earlier days are dropped (the day's own are always carried), and a late
    /// reversal or completion of one is listed as an exception for a person instead of being
    /// matched. Each costs a few hundred bytes in memory and in `carry-over.json`. Default
    /// 5,000,000.
    pub carried_closed_max: u64,
}

impl Default for ClearingConfig {
    fn default() -> Self {
        Self {
            reports_dir: PathBuf::from("reports"),
            fees_file: PathBuf::from("config/fees.toml"),
            auto_cutover: false,
            cutover_delay_s: 60,
            hold_expiry_h: 168,
            lookback_days: 30,
            carried_closed_max: 5_000_000,
        }
    }
}

/// `[journal]`: the durable log every authorization step is appended to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct JournalConfig {
    /// Directory holding the journal segments (filesystem path, relative to the working
    /// directory). Default `data/journal`.
    pub dir: PathBuf,
    /// When appended records are forced to stable storage (`always` | `none`). Default `always`.
    pub sync: JournalSync,
    /// A segment file is rolled over once it reaches this size (bytes). Default 67108864 (64 MiB).
    pub segment_bytes_max: u64,
    /// Most records written and synced together in one group commit (records per batch).
    /// Default 512.
    pub group_commit_max: u32,
    /// Under load, the least time from the start of one group commit to the start of the next
    /// (microseconds; 0: off, the default). While it runs, records queue up, so each fsync
    /// covers more of them: fewer fsyncs, less CPU, more throughput on a saturated machine, for
    /// up to this much more time before an answer. "Under load" means the previous group commit
    /// held at least `group_commit_delay_min_records` records and fewer than `group_commit_max`
    /// (a full batch means more is queued already), so a lightly loaded switch does not wait
    /// (unless a stall let that many records pile up) (docs/performance.md, "A delay between
    /// group commits under load"). At most 10000.
    pub group_commit_delay_us: u32,
    /// How many records the previous group commit must have held for `group_commit_delay_us` to
    /// apply (records; less than `group_commit_max`). Default 16.
    pub group_commit_delay_min_records: u32,
    /// How often the switch writes its checkpoint (seconds; 0: never), so that a restart reads
    /// the journal from the checkpoint's replay point, not from its first record. Default 300.
    pub checkpoint_interval_s: u64,
    /// The most a checkpoint's file is written a second (MiB; 0: as fast as the disk takes it;
    /// else at least 4), so that the journal's fsyncs on the same disk do not wait behind a burst
    /// of checkpoint writes (`crate::journal::WritePace`). Default 32.
    pub checkpoint_write_mib_per_s: u32,
    /// With `sync = always`, write pre-written segments with direct I/O (`O_DIRECT`) where the
    /// file system allows it, so the journal does not go through the page cache
    /// (docs/performance.md, "Direct I/O for the journal"). A file system that refuses it gets
    /// buffered writes either way; `false` asks for them everywhere. Default `true`.
    pub direct_io: bool,
}

impl Default for JournalConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("data/journal"),
            sync: JournalSync::Always,
            segment_bytes_max: 64 * 1024 * 1024,
            group_commit_max: 512,
            group_commit_delay_us: 0,
            group_commit_delay_min_records: 16,
            checkpoint_interval_s: 300,
            checkpoint_write_mib_per_s: CHECKPOINT_WRITE_MIB_PER_S_DEFAULT,
            direct_io: true,
        }
    }
}

/// Default rate of a periodic checkpoint's file, MiB a second (`crate::journal::WritePace`): the
/// switch's (`[journal] checkpoint_write_mib_per_s`) and the issuer hosts'. A host's checkpoint
/// holds about one record for each journaled event since the last, so it must be written faster
/// than the journal grows: at 16,000 events a second a host's journal grows by about 3 MiB a
/// second. The switch's daily snapshot of its on-us engines takes at least its size divided by
/// the rate (a 20 GB snapshot, about 10 minutes), on a background thread.
pub const CHECKPOINT_WRITE_MIB_PER_S_DEFAULT: u32 = 32;

/// The lowest checkpoint write rate a configuration may set, MiB a second (0, unpaced, aside).
/// Even at 4 a 20 GB daily snapshot takes 1.4 hours to write; at 1 it would take almost 6, a
/// quarter of the day it covers.
pub const CHECKPOINT_WRITE_MIB_PER_S_MIN: u32 = 4;

/// Checks a checkpoint write rate, MiB a second: 0 (as fast as the disk) or at least
/// [`CHECKPOINT_WRITE_MIB_PER_S_MIN`]. The switch's config validation and `issuer-sim`'s flag
/// both use it, so the two cannot disagree.
pub fn check_checkpoint_write_rate(mib_per_s: u32) -> Result<u32, String> {
    if mib_per_s == 0 || mib_per_s >= CHECKPOINT_WRITE_MIB_PER_S_MIN {
        Ok(mib_per_s)
    } else {
        Err(format!(
            "must be 0 (as fast as the disk) or at least {CHECKPOINT_WRITE_MIB_PER_S_MIN} (MiB a second)"
        ))
    }
}

/// How the journal makes its writes durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum JournalSync {
    /// `fsync` each group commit before any acquirer in it is answered. The default.
    #[default]
    Always,
    /// Leave flushing to the OS: faster, but a host crash can lose acknowledged records.
    None,
}

/// `[metrics]`: the metrics exposition endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Listen address (`ip:port` socket address). Default `127.0.0.1:9583`.
    pub address: String,
    /// Serve metrics at all (boolean). Default true.
    pub enabled: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            address: "127.0.0.1:9583".to_owned(),
            enabled: true,
        }
    }
}

/// `[security]`: key material. Keys never live in this file, only the path to them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// Path of the keys file (TOML), relative to the working directory. Default
    /// `config/keys.toml`, which holds published test keys only; a real deployment points outside
    /// the repository.
    pub keys_file: PathBuf,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            keys_file: PathBuf::from("config/keys.toml"),
        }
    }
}

/// `[[acquirer]]`: one acquiring institution.
///
/// A connection belongs to an acquirer from its first request whose field 32 names a configured
/// acquirer; `connections_max` and `allowed_sources` are checked then (see
/// [`crate::net::admission`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AcquirerConfig {
    /// Acquiring institution id as sent in field 32 (string of 1–11 decimal digits; leading zeros
    /// are significant). Required.
    pub id: String,
    /// Display name for logs and reports (free text). Required.
    pub name: String,
    /// Key id of the acquirer's MAC key in the keys file (`acquirer:<id>:mac`). When set, every
    /// request from this acquirer (identified by field 32) must carry a valid MAC in field 64
    /// (128 with a secondary bitmap), and every answer to it is MACed. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_key: Option<String>,
    /// Key id of the acquirer's zone PIN key (`acquirer:<id>:zpk`): PIN blocks in field 52 (or
    /// 63) without a KSN are enciphered under it. Default: none (PIN data is refused, 63).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_key: Option<String>,
    /// Key ids of the DUKPT base derivation keys of the acquirer's PIN pads (`bdk:<name>`), at
    /// most one TDES and one AES: a PIN block sent with a KSN (field 62) is under the key the
    /// BDK of the KSN's kind derives. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bdk: Vec<String>,
    /// Connections this acquirer may hold open at once; the request that would exceed it is
    /// answered 91 and its connection closed (connections, at least 1). Default: no limit of its
    /// own, only `[listener] connections_max`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections_max: Option<u32>,
    /// Source addresses this acquirer may connect from (list of IP addresses and CIDR blocks, e.g.
    /// `["127.0.0.1", "10.0.0.0/8"]`, at least one). A request naming this acquirer from any
    /// other address is answered 63. Default: any address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_sources: Option<Vec<String>>,
    /// The SAN DNS name (not the subject CN) of this acquirer's TLS client certificates, compared
    /// without regard to ASCII case (a DNS name, e.g. `acq-100001.example`; wildcards never
    /// match). A connection whose certificate carries it may send only as this acquirer (63
    /// otherwise). Requires `[listener.tls] client_ca_file`. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_identity: Option<String>,
}

/// `[[issuer]]`: one card issuer, either a remote host or the switch's own on-us engine.
///
/// The remote-link fields apply to `kind = "remote"` only; they keep their defaults (and are
/// ignored) for on-us issuers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// Short stable identifier referenced by `[[bin_range]].issuer` and shown in logs and metrics
    /// (1–32 characters of `A-Z a-z 0-9 - _ .`, e.g. `north-bank`). Required.
    pub id: String,
    /// Display name (free text). Required.
    pub name: String,
    /// Where authorizations for this issuer are decided (`remote` | `on-us`). Required.
    pub kind: IssuerKind,
    /// Remote only: the issuer host's addresses (list of `ip:port` socket addresses, 1..N).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<String>,
    /// Remote only: links kept open to each endpoint (connections). Default 1.
    #[serde(default = "defaults::connections_per_endpoint")]
    pub connections_per_endpoint: u32,
    /// Remote only: an authorization request unanswered after this long is timed out
    /// (milliseconds). Default 2000.
    #[serde(default = "defaults::timeout_ms")]
    pub timeout_ms: u64,
    /// Remote only: requests awaiting a response across all links to this issuer (messages).
    /// Default 1024.
    #[serde(default = "defaults::inflight_max")]
    pub inflight_max: u32,
    /// Remote only: send a network echo (0800/301) after a link has been idle this long
    /// (milliseconds). Default 30000.
    #[serde(default = "defaults::echo_idle_ms")]
    pub echo_idle_ms: u64,
    /// Remote only: first delay before reconnecting a dropped link (milliseconds). Default 100.
    #[serde(default = "defaults::reconnect_backoff_min_ms")]
    pub reconnect_backoff_min_ms: u64,
    /// Remote only: the reconnect delay doubles up to this cap (milliseconds). Default 5000.
    #[serde(default = "defaults::reconnect_backoff_max_ms")]
    pub reconnect_backoff_max_ms: u64,
    /// Remote only: store-and-forward advices are retried at most this many times before being
    /// parked (attempts). Default 10.
    #[serde(default = "defaults::saf_retries_max")]
    pub saf_retries_max: u32,
    /// Remote only: most advices the store-and-forward queue holds for this issuer (advices);
    /// at the limit a new advice is refused and logged rather than held without bound.
    /// Default 1000000.
    #[serde(default = "defaults::saf_depth_max")]
    pub saf_depth_max: usize,
    /// Remote only: wire dialect the issuer host speaks (dialect name). Default `iso87-ascii`.
    #[serde(default, serialize_with = "ser_dialect")]
    pub dialect: DialectId,
    /// Remote only: `[issuer.framing]`, the issuer host's length header and fixed header.
    #[serde(default)]
    pub framing: FramingConfig,
    /// Remote only: largest frame exchanged with the issuer host (bytes). Default 8192.
    #[serde(default = "defaults::frame_bytes_max")]
    pub frame_bytes_max: u32,
    /// On-us only: the issuer's file (filesystem path to its TOML: products, cards, PIN keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cards: Option<PathBuf>,
    /// Remote only: key id of the link's MAC key in the keys file (`issuer:<id>:mac`). When
    /// set, every message to the issuer is MACed and every message from it must carry a valid
    /// MAC. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_key: Option<String>,
    /// Remote only: key id of the issuer's zone PIN key (`issuer:<id>:zpk`): PIN blocks are
    /// translated to it before they are forwarded. Default: none (a PIN transaction for this
    /// issuer gets 96).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_key: Option<String>,
    /// Remote only: `[issuer.tls]`, connect to the issuer's hosts with TLS. Default: none (plain
    /// TCP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<IssuerTlsConfig>,
}

/// `[issuer.tls]`: how the switch's links reach a remote issuer over TLS.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerTlsConfig {
    /// CA certificates the issuer hosts' certificates must chain to (PEM file path). Required.
    pub ca_file: PathBuf,
    /// The switch's client certificate chain for this issuer, leaf first (PEM file path). Set
    /// together with `key_file`. Default: none (no client certificate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    /// The private key of `cert_file` (PEM file path). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// The DNS name or IP address the hosts' certificates must carry. Default: each endpoint's
    /// IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
}

/// Where an issuer's decisions are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IssuerKind {
    /// A host reached over ISO 8583 links (`remote`).
    Remote,
    /// Cards issued by the switch operator, decided in-process (`on-us`).
    OnUs,
}

/// `[[bin_range]]`: a range of PAN prefixes routed to one issuer.
///
/// A range of length L covers every PAN whose first L digits, read as a number, fall in
/// `[low, high]`. Ranges may nest (one wholly inside another) but may not
/// otherwise overlap.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BinRangeConfig {
    /// First PAN prefix of the range, inclusive (string of 6–11 digits). Required.
    pub low: String,
    /// Last PAN prefix of the range, inclusive (string of 6–11 digits, same length as `low`).
    /// Required.
    pub high: String,
    /// The `[[issuer]].id` that cards in this range belong to (issuer id). Required.
    pub issuer: String,
    /// The card product of the range (`credit` | `debit` | `prepaid`), journaled with each
    /// request so that clearing can pick the interchange rate. Optional: a range without one
    /// clears at the fee schedule's rates for any product. A range that mixes products is split
    /// into nested ranges, each naming its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<crate::domain::Product>,
}

/// Serde defaults that are not the type's `Default` (fields of list entries).
mod defaults {
    pub(super) fn currency() -> String {
        "156".to_owned()
    }

    pub(super) fn frame_bytes_max() -> u32 {
        8192
    }

    pub(super) fn connections_per_endpoint() -> u32 {
        1
    }
    pub(super) fn timeout_ms() -> u64 {
        2000
    }
    pub(super) fn inflight_max() -> u32 {
        1024
    }
    pub(super) fn echo_idle_ms() -> u64 {
        30_000
    }
    pub(super) fn reconnect_backoff_min_ms() -> u64 {
        100
    }
    pub(super) fn reconnect_backoff_max_ms() -> u64 {
        5000
    }
    pub(super) fn saf_retries_max() -> u32 {
        10
    }
    pub(super) fn saf_depth_max() -> usize {
        1_000_000
    }
}

/// The config-file name of a dialect (the shared enum is deserialize-only).
fn ser_dialect<S: serde::Serializer>(dialect: &DialectId, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(dialect.name())
}

/// The config-file name of a length header (the shared enum is deserialize-only).
fn ser_length_header<S: serde::Serializer>(header: &LengthHeader, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(length_header_name(*header))
}

/// The kebab-case name `LengthHeader` deserializes from.
pub fn length_header_name(header: LengthHeader) -> &'static str {
    match header {
        LengthHeader::Binary2Be => "binary2-be",
        LengthHeader::Binary2Le => "binary2-le",
        LengthHeader::Ascii4 => "ascii4",
        LengthHeader::Bcd2 => "bcd2",
    }
}

/// One thing wrong with a parsed configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file (or other origin) the config came from.
    pub file: String,
    /// Dotted path of the offending key, e.g. `bin_range[2].low` (indices count from 0).
    pub key: String,
    /// What is wrong, phrased as the rule that was broken.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.file, self.key, self.message)
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read config: {source}", path.display())]
    Io {
        /// The path that was opened.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the config shape (unknown key, wrong type).
    #[error("{file}: {message}")]
    Parse {
        /// The file (or other origin) being parsed.
        file: String,
        /// Line, column, the parser's message and the offending line.
        message: String,
    },
    /// The file parsed but broke one or more rules; every problem found is listed.
    #[error("{}", ProblemLines(.0))]
    Invalid(Vec<Problem>),
}

/// Displays problems one per line.
struct ProblemLines<'a>(&'a [Problem]);

impl fmt::Display for ProblemLines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl Config {
    /// Parses `text` as a config file and validates it. `origin` names the source (usually the
    /// file path) in error messages and [`Problem::file`].
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|err| ConfigError::Parse {
            file: origin.to_owned(),
            message: describe_toml_error(&err, text),
        })?;
        config.validate(origin).map_err(ConfigError::Invalid)?;
        Ok(config)
    }

    /// Reads, parses and validates the config file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        Config::from_toml_str(&text, &path.display().to_string())
    }

    /// Checks every rule and reports every broken one (in file order, roughly), not just the first.
    /// `origin` fills [`Problem::file`].
    pub fn validate(&self, origin: &str) -> Result<(), Vec<Problem>> {
        let problems = validate::check(self, origin);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// The configuration re-serialized as TOML (defaults filled in), e.g. for `switch run` to
    /// show the effective settings.
    pub fn to_toml_string(&self) -> Result<String, toml::ser::Error> {
        toml::to_string_pretty(self)
    }
}

/// `line L, column C: <message> (at `<line text>`)`, or the parser's own rendering if it has no
/// position.
fn describe_toml_error(err: &toml::de::Error, text: &str) -> String {
    let Some(span) = err.span() else {
        // No position: the Display form names the key path (`in `a.b``) instead.
        return err.to_string().trim_end().replace('\n', "; ");
    };
    let start = span.start.min(text.len());
    let before = text.get(..start).unwrap_or("");
    let line_index = before.matches('\n').count();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    let line_text = text.lines().nth(line_index).unwrap_or("").trim();
    let message = err.message().trim_end().replace('\n', "; ");
    if line_text.is_empty() {
        format!("line {}, column {column}: {message}", line_index + 1)
    } else {
        format!(
            "line {}, column {column}: {message} (at `{line_text}`)",
            line_index + 1
        )
    }
}
