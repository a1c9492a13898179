//! Measures the longest single decisions on one busy account: `cargo run --release -p switch
//! --example hot_account_pauses -- 300000`.
//!
//! One debit account takes N balance inquiries one after another, a millisecond of engine time
//! apart, so none of their idempotency records leaves the retry window and the account's record
//! map only grows (as a test card's does under `loadgen run` with the default mix). The usual
//! decision takes about a microsecond; what this prints is the tail: the slowest decisions and
//! where in the sequence they were, because each of those held the account's lock that long and,
//! in a server, the tokio worker deciding it (docs/performance.md, "Open-loop tail latency").

use std::time::Duration;

#[path = "common/hot_account.rs"]
mod hot_account;

use hot_account::Load;

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(300_000);
    let mut load = Load::new();
    let mut times: Vec<(Duration, u64)> = Vec::with_capacity(n as usize);
    for i in 0..n {
        times.push((load.one(), i));
    }
    let total: Duration = times.iter().map(|(d, _)| *d).sum();
    times.sort_unstable();
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)].0;
    println!(
        "{n} decisions on one account: mean {:.2} us, p99 {:.2} us, p99.99 {:.1} us, max {:.1} ms",
        total.as_secs_f64() * 1e6 / n as f64,
        pct(0.99).as_secs_f64() * 1e6,
        pct(0.9999).as_secs_f64() * 1e6,
        times.last().map_or(0.0, |(d, _)| d.as_secs_f64() * 1e3),
    );
    let over: Vec<String> = times
        .iter()
        .rev()
        .take_while(|(d, _)| *d > Duration::from_millis(1))
        .map(|(d, i)| format!("{:.1} ms at #{i}", d.as_secs_f64() * 1e3))
        .collect();
    println!(
        "decisions over 1 ms: {} [{}]",
        over.len(),
        over.iter().take(12).cloned().collect::<Vec<_>>().join(", ")
    );
}
