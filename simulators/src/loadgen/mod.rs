//! `loadgen`, the bench harness: drives ISO 8583 traffic at a switch over many pipelined
//! connections, checks every answer against a model of what the switch should say, and reports
//! throughput and latency.
//!
//! # What it does
//!
//! - [`runner`]: opens C connections to the target ([`switch::client::AcquirerClient`], requests
//!   matched by STAN) with P requests in flight on each. *Closed loop* keeps P outstanding per
//!   connection (maximum throughput). *Open loop* sends at a fixed total rate and measures each
//!   latency from the request's **scheduled** send time, not the time it was actually sent, so a
//!   stall that delays sends is charged to the latency (the coordinated-omission correction of
//!   wrk2). Warmup, then a measured window.
//! - [`mix`]: the transaction mix file (TOML): card sets and weighted transactions (purchase 0200,
//!   preauthorization 0100, balance inquiry 0100/31), amounts as decimal strings (never floats).
//! - [`model`]: what each request should get (approval or the exact decline code) from the card
//!   set's declared properties, in the switch's and the issuing engine's order of checks.
//! - [`report`]: TPS, latency percentiles (hdrhistogram, microseconds), response codes, errors,
//!   mismatches; text, JSON, and an SVG chart ([`plot`]).
//! - [`gencards`]: `loadgen gen-cards`, issuer files with CSVs of many cards and a matching mix;
//!   with `--tls`, a test PKI for a TLS listener ([`pki`]).
//! - [`relay`]: the raw relay baseline (`loadgen relay`) and the echo backend
//!   (`loadgen echo-backend`): the same framing, no ISO 8583 parsing.
//! - [`stack`]: the switch with a remote issuer host and an on-us issuer in one process.
//! - [`grid`]: `loadgen grid`, the standard C×P grid through the relay, a remote issuer and on-us,
//!   written into `docs/benchmarks.md`.
//!
//! Every function that tests need ([`runner::run`], [`gencards::generate`],
//! [`stack::Stack::start`], [`relay::EchoBackend::start`], [`relay::Relay::start`]) is a library
//! function; the `loadgen` binary is only a command line over them.

pub mod gencards;
pub mod grid;
pub mod ladder;
pub mod mix;
pub mod model;
pub mod pki;
pub mod plot;
pub mod relay;
pub mod report;
pub mod runner;
pub mod stack;

/// `12345678` → `12,345,678`, for reports.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(12_345_678), "12,345,678");
    }
}
