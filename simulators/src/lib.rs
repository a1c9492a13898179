//! The library side of the `simulators` package: the load generator's modules ([`loadgen`]), so
//! that integration tests (and other tools) can generate cards, start an in-process stack and run
//! a load against it without going through a command line.
//!
//! The binaries live in `src/bin/`: `issuer-sim`, `acquirer-sim` (whose modules it includes by
//! path) and `loadgen` (a command line over [`loadgen`]). [`log_to_stderr`] is their one way of
//! setting up logs, and [`tls_args`] their one set of client TLS flags.

pub mod loadgen;
pub mod tls_args;

/// Logs to stderr, filtered by `RUST_LOG` or else at `default_level` ("warn", "info"), with
/// colours only on a terminal: logs redirected to a file stay plain text. For the binaries'
/// `main`; a second call (a subscriber already set) changes nothing.
pub fn log_to_stderr(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
