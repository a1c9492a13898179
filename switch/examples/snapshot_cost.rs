//! Measures what a checkpoint's snapshot costs an engine of many small accounts, and what the
//! first change to each account after it costs: `cargo run --release -p switch --example
//! snapshot_cost -- ACCOUNTS REQUESTS ROUNDS`.
//!
//! It builds a debit issuer of ACCOUNTS accounts with one card each and decides REQUESTS
//! purchases spread over them (a few idempotency records per account, as most accounts hold).
//! Then, ROUNDS times, it takes the engine's snapshot and drops it, and decides one more purchase
//! on every account. It prints each snapshot's time and each pass's time per decision, beside a
//! pass with no snapshot before it. Why: a checkpoint shares each account's record table with
//! its copy (`SplitMap::share`), and the first change after it takes the table back
//! (docs/performance.md, "An account's record table in place"); both are per account.

#[path = "common/many_accounts.rs"]
mod many_accounts;
#[path = "common/memory.rs"]
mod memory;

use std::time::Instant;

use memory::{key, status_bytes};
use switch::issuing::RequestKind;

#[global_allocator]
static GLOBAL: switch::alloc::MiMalloc = switch::alloc::MiMalloc;

fn main() {
    switch::process::disable_transparent_huge_pages_or_warn();
    let mut args = std::env::args().skip(1);
    let accounts: u32 = memory::arg(&mut args, 1_000_000);
    let requests: u64 = memory::arg(&mut args, 3_000_000);
    let rounds: u32 = memory::arg(&mut args, 3);
    let (engine, pans) = many_accounts::debit_engine(accounts);
    let start = memory::start();
    let mut i = 0u64;
    // One request a millisecond: all within the window, none pruned.
    let mut decide = |n: u64| {
        let began = Instant::now();
        for _ in 0..n {
            let t = start + chrono::Duration::milliseconds(i as i64);
            let pan = pans[(i % u64::from(accounts)) as usize];
            let req = many_accounts::purchase(RequestKind::Financial, key(i, t), pan);
            let _ = engine.process(&req, t, t.date());
            i += 1;
        }
        began.elapsed().as_nanos() as f64 / n.max(1) as f64
    };
    decide(requests);
    println!(
        "{accounts} accounts, {} records held, RSS {:.1} MB",
        engine.records_held(),
        status_bytes("VmRSS:") as f64 / 1e6
    );
    let pass = u64::from(accounts);
    println!(
        "a pass with no snapshot before it: {:.0} ns per decision",
        decide(pass)
    );
    for round in 1..=rounds {
        let began = Instant::now();
        let snapshot = engine.snapshot();
        let took = began.elapsed();
        drop(snapshot);
        let after = decide(pass);
        println!(
            "round {round}: snapshot {:.0} ms; the pass after it {after:.0} ns per decision",
            took.as_secs_f64() * 1e3
        );
        println!(
            "a pass with no snapshot before it: {:.0} ns per decision",
            decide(pass)
        );
    }
}
