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
#[path = "common/pauses.rs"]
mod pauses;

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
    pauses::print_tail(&format!("{n} decisions on one account"), "decisions", times);
}
