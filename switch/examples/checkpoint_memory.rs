//! Measures the memory a switch checkpoint takes to write, beyond the engine's own snapshot:
//! `cargo run --release -p switch --example checkpoint_memory -- ACCOUNTS REQUESTS`.
//!
//! It builds a prepaid on-us issuer of ACCOUNTS accounts with one card each, decides REQUESTS
//! purchases (each leaves one idempotency record, all inside the retry window), takes the engine's
//! snapshot, and then writes the checkpoint file twice into a temporary folder, resetting the
//! process's peak resident memory (`/proc/self/clear_refs`) before each:
//! - as format 2 did: the engine's snapshot encoded into bytes, the whole body (holding those
//!   bytes) encoded into a second buffer, its CRC in front, then the file written;
//! - as `switch::net::checkpoint::write` does now: encoded straight into the paced write
//!   (`DurableFile`, one chunk buffered), its CRC at the end.
//!
//! It prints each way's peak above the memory held before it (the engine and its snapshot) and
//! the file's size, with the production allocator (mimalloc, transparent huge pages off, as in
//! the binaries).

#[path = "common/many_accounts.rs"]
mod many_accounts;
#[path = "common/memory.rs"]
mod memory;

use std::path::Path;

use memory::status_bytes;
use switch::issuing::{Engine, RequestKind};
use switch::journal::WritePace;
use switch::net::checkpoint::{CHECKPOINT_FILE, SwitchCheckpoint};

#[global_allocator]
static GLOBAL: switch::alloc::MiMalloc = switch::alloc::MiMalloc;

/// Resets the peak resident memory to the current one; returns that.
fn reset_peak() -> u64 {
    if let Err(e) = std::fs::write("/proc/self/clear_refs", "5") {
        eprintln!("cannot reset the peak ({e}); the figures below are peaks since start");
    }
    status_bytes("VmRSS:")
}

fn mb(b: u64) -> f64 {
    b as f64 / 1e6
}

/// The file as format 2 wrote it: every part in memory before the write.
fn write_as_format_2(dir: &Path, cp: &SwitchCheckpoint) -> u64 {
    let (id, snapshot) = &cp.engines[0];
    let engine_bytes = postcard::to_allocvec(snapshot).expect("encode snapshot");
    // The same fields as `SwitchCheckpoint`, with the engine as bytes.
    let body = postcard::to_allocvec(&(
        cp.format,
        cp.replay_from,
        cp.taken_lsn,
        cp.taken_at_ms,
        cp.horizon_ms,
        cp.cutover_minutes,
        cp.day,
        cp.day_start,
        cp.next_txn,
        cp.next_saf,
        &cp.owed,
        &cp.issuer_stans,
        vec![(id.clone(), engine_bytes)],
    ))
    .expect("encode body");
    let crc = crc32fast::hash(&body).to_le_bytes();
    let mut file = switch::journal::DurableFile::create(dir, CHECKPOINT_FILE, WritePace::unpaced())
        .expect("create");
    file.write_slice(&crc);
    file.write_slice(&body);
    file.commit().expect("written")
}

fn main() {
    switch::process::disable_transparent_huge_pages_or_warn();
    let mut args = std::env::args().skip(1);
    let accounts: u32 = memory::arg(&mut args, 100_000);
    let requests: u64 = memory::arg(&mut args, 2_000_000);
    let (file, pans) = many_accounts::issuer(
        accounts,
        "[[product]]\nid = \"p\"\nkind = \"prepaid\"\ncurrency = \"156\"\nhold_expiry_h = 168\ncompletion_tolerance_pct = \"0\"\npin_tries_max = 3\ncash_allowed = false\npartial_approval = false\nmax_balance = \"100000000.00\"",
        "10000000.00",
    );
    let engine = Engine::from_file(&file).expect("engine");
    drop(file);
    let start = memory::start();
    for i in 0..requests {
        // One request a millisecond: all within the window, none pruned.
        let t = start + chrono::Duration::milliseconds(i as i64);
        let pan = pans[(i % u64::from(accounts)) as usize];
        let req = many_accounts::purchase(RequestKind::Financial, memory::key(i, t), pan);
        let _ = engine.process(&req, t, t.date());
    }
    let snapshot = engine.snapshot();
    let records = snapshot.record_count();
    let mut cp = SwitchCheckpoint::new(1, start.date(), 1);
    cp.engines.push(("bench".to_owned(), snapshot));
    let dir = std::env::temp_dir().join(format!("switchyard-cpmem-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");

    println!("{accounts} accounts, {requests} requests, {records} records in the snapshot");
    for round in 1..=2 {
        let held = reset_peak();
        let old_size = write_as_format_2(&dir, &cp);
        let old_peak = status_bytes("VmHWM:").saturating_sub(held);
        let held = reset_peak();
        let new_size =
            switch::net::checkpoint::write(&dir, &cp, WritePace::unpaced()).expect("written");
        let new_peak = status_bytes("VmHWM:").saturating_sub(held);
        println!(
            "round {round}: format 2 peak +{:.1} MB for a {:.1} MB file; format 3 peak +{:.1} MB for a {:.1} MB file (RSS held before: {:.1} MB)",
            mb(old_peak),
            mb(old_size),
            mb(new_peak),
            mb(new_size),
            mb(held)
        );
    }
    let back = switch::net::checkpoint::read(&dir)
        .expect("reads")
        .expect("there");
    assert_eq!(back.engines, cp.engines, "the file holds the snapshot");
    let _ = std::fs::remove_dir_all(&dir);
}
