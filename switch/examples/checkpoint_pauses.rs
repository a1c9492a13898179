//! Measures how long a checkpoint's snapshot holds up the decisions of a busy account: `cargo run
//! --release -p switch --example checkpoint_pauses -- 100000 5`.
//!
//! One debit account is filled with N balance inquiries (N idempotency records, as a test card
//! holds after about 20 s of `loadgen run` with the default mix). Then, S times, a second thread
//! takes [`Engine::snapshot`] while this thread keeps deciding requests on that account, each
//! timed: a decision that has to wait for the account's lock shows the snapshot's hold on it
//! (in a server, the tokio worker waits that long too). It prints the longest decision while
//! each snapshot ran, the snapshot's own duration, and for comparison the longest decision of
//! the same number of requests with no snapshot running (docs/performance.md, "Open-loop tail
//! latency").

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[path = "common/hot_account.rs"]
mod hot_account;

use hot_account::Load;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let rounds: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let mut load = Load::new();
    for _ in 0..n {
        load.one();
    }
    println!("{n} records on one account; {rounds} snapshots while its requests keep coming");
    let engine = Arc::clone(&load.engine);
    let mut worst_during = Duration::ZERO;
    let mut worst_quiet = Duration::ZERO;
    for round in 1..=rounds {
        let done = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicBool::new(false));
        let snapper = {
            let (engine, done, started) =
                (Arc::clone(&engine), Arc::clone(&done), Arc::clone(&started));
            std::thread::spawn(move || {
                started.store(true, Ordering::Release);
                let t = Instant::now();
                let snap = engine.snapshot();
                let took = t.elapsed();
                done.store(true, Ordering::Release);
                drop(snap);
                took
            })
        };
        while !started.load(Ordering::Acquire) {
            std::hint::spin_loop();
        }
        let (mut max, mut count) = (Duration::ZERO, 0u64);
        while !done.load(Ordering::Acquire) {
            max = max.max(load.one());
            count += 1;
        }
        let snap_took = snapper.join().expect("snapshot thread");
        let mut quiet = Duration::ZERO;
        for _ in 0..count.max(1) {
            quiet = quiet.max(load.one());
        }
        worst_during = worst_during.max(max);
        worst_quiet = worst_quiet.max(quiet);
        println!(
            "snapshot {round}: took {:.1} ms; {count} decisions meanwhile, longest {:.2} ms; \
             the next {} without a snapshot, longest {:.2} ms",
            ms(snap_took),
            ms(max),
            count.max(1),
            ms(quiet),
        );
    }
    println!(
        "longest decision: {:.2} ms during snapshots, {:.2} ms without",
        ms(worst_during),
        ms(worst_quiet)
    );
}
