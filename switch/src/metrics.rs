//! Every metric name the switch emits, in one place, with its labels. Labels never carry a PAN,
//! an amount or anything else about a cardholder: only MTIs, response codes, issuer and acquirer
//! ids, link states and similar small closed sets.
//!
//! Modules record through the `metrics` facade using these constants; [`install_exporter`] serves
//! them at `http://<metrics.address>/metrics` in Prometheus text format.

use std::net::SocketAddr;

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
/// `reason` (`timeout`: not finished within `read_timeout_ms`, `error`: anything else, e.g. plain
/// TCP, no or an untrusted client certificate).
pub const TLS_HANDSHAKE_FAILURES_TOTAL: &str = "switchyard_tls_handshake_failures_total";
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
/// Records per journal group commit. Histogram.
pub const JOURNAL_BATCH_RECORDS: &str = "switchyard_journal_batch_records";
/// Journal bytes appended. Counter.
pub const JOURNAL_BYTES_TOTAL: &str = "switchyard_journal_bytes_total";
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

/// Installs the Prometheus recorder without its HTTP listener, for a process that runs the switch
/// in-process and wants its metrics recorded as the `switch` binary records them (the bench
/// grid). Must run inside a tokio runtime: a task runs the recorder's upkeep every five seconds
/// as the exporter does (it drains the histograms' samples, which otherwise grow until a scrape).
pub fn install_recorder() -> Result<(), metrics_exporter_prometheus::BuildError> {
    // Checked first: a recorder installed without its upkeep would hold every histogram sample.
    let runtime = tokio::runtime::Handle::try_current().map_err(|e| {
        metrics_exporter_prometheus::BuildError::FailedToCreateRuntime(e.to_string())
    })?;
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
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
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
}
