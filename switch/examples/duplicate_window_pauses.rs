//! Measures the longest single claims in the switch's duplicate window as it fills:
//! `cargo run --release -p switch --example duplicate_window_pauses -- 1200000 [ENTRIES_MAX]`.
//!
//! Every request the switch answers passes through the window (claim, then complete with the
//! answer), and the window keeps up to `duplicate_entries_max` keys (1,000,000 by default). This
//! claims and completes N distinct keys one after another, as a busy switch does, and prints the
//! slowest claims and where in the sequence they were: a claim that has to grow the window's
//! tables holds a lock every other request needs, so in the server its time is a stall of the
//! whole acquirer side (docs/performance.md, "Open loop on a quiet machine"). It also prints the
//! process's resident memory before and after, with the production allocator (mimalloc,
//! transparent huge pages off, as in the binaries): the window is the switch's largest memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use switch::domain::{AcquirerId, Mti, Stan, TerminalId, TransmissionDateTime};
use switch::net::duplicates::{Answer, Claim, DupKey, DuplicateWindow};

#[path = "common/pauses.rs"]
mod pauses;
// Only its reading of /proc/self/status is used here.
#[allow(dead_code)]
#[path = "common/memory.rs"]
mod memory;

#[global_allocator]
static GLOBAL: switch::alloc::MiMalloc = switch::alloc::MiMalloc;

fn main() {
    switch::process::disable_transparent_huge_pages_or_warn();
    let mut args = std::env::args().skip(1);
    let n: u32 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_200_000);
    let entries_max: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let window = Arc::new(DuplicateWindow::new(Duration::from_secs(3600), entries_max));
    let acquirer = AcquirerId::parse("100001").expect("acquirer id");
    let transmission = TransmissionDateTime::from_field(b"1126063000").expect("field 7");
    let mti = Mti::AUTH_REQUEST;
    // About the size of a real answer (the window keeps an exact-size copy of each).
    let answer = Bytes::from(vec![b'0'; 150]);
    let mut times: Vec<(Duration, u64)> = Vec::with_capacity(n as usize);
    let resident_before = memory::status_bytes("VmRSS:");
    for i in 0..n {
        // Terminals × STANs: distinct keys, the way many terminals' requests are.
        let terminal = format!("T{:07}", i / 999_999);
        let key = DupKey {
            acquirer,
            terminal: TerminalId::from_field(terminal.as_bytes()).expect("terminal"),
            stan: Stan::new(i % 999_999 + 1).expect("stan"),
            transmission,
        };
        let started = Instant::now();
        let claim = window.claim(key, mti, tokio::time::Instant::from_std(started));
        times.push((started.elapsed(), u64::from(i)));
        match claim {
            Claim::New(p) => {
                p.complete(Answer::Bytes(answer.clone()));
            }
            Claim::Duplicate(_) => panic!("key #{i} was not new"),
        }
    }
    let resident_after = memory::status_bytes("VmRSS:");
    println!(
        "resident: {:.1} MB before, {:.1} MB after, {:.0} bytes per key held ({} held)",
        resident_before as f64 / 1e6,
        resident_after as f64 / 1e6,
        resident_after.saturating_sub(resident_before) as f64 / window.len().max(1) as f64,
        window.len(),
    );
    pauses::print_tail(
        &format!("{n} claims, window of {entries_max}"),
        "claims",
        times,
    );
}
