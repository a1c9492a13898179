//! Measures what `sync = always` costs per group commit, plain appended segments against
//! pre-written ones, in one run: `cargo run --release -p switch --example journal_fsync_tail --
//! 3000 [DIR]`.
//!
//! One appender awaits each 200-byte record before sending the next, so every record is its own
//! batch and its append-to-durable time is one write plus one `fdatasync` (plus the hand-offs to
//! and from the writer thread). The two layouts alternate in rounds (plain, pre-written, plain,
//! pre-written) so a burst of other I/O on a shared machine lands on both. The journal goes in a
//! fresh directory under DIR (default: the current directory), which should be on the disk the
//! switch's journal uses: the figure is a property of that disk. See docs/performance.md,
//! "Open-loop tail latency", cause 3.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use switch::config::JournalSync;
use switch::journal::{FileJournal, Journal, JournalOptions};

const ROUNDS: usize = 2;
const RECORD_BYTES: usize = 200;

fn main() {
    let mut args = std::env::args().skip(1);
    let records: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(3000);
    let base: PathBuf = args
        .next()
        .map_or_else(|| PathBuf::from("."), PathBuf::from);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut plain = Vec::new();
    let mut prewritten = Vec::new();
    for _ in 0..ROUNDS {
        for (prewrite, samples) in [(false, &mut plain), (true, &mut prewritten)] {
            samples.extend(runtime.block_on(round(&base, prewrite, records)));
        }
    }
    println!(
        "{records} records x {ROUNDS} rounds per layout, one awaited append at a time, sync = always"
    );
    println!("layout       p50      p90      p99      p99.9    max     (append to durable)");
    report("plain", &mut plain);
    report("pre-written", &mut prewritten);
}

/// Appends `records` records one at a time to a new journal and returns each one's latency.
async fn round(base: &std::path::Path, prewrite: bool, records: usize) -> Vec<Duration> {
    let dir = tempfile::tempdir_in(base).expect("temporary journal directory");
    let opts = JournalOptions {
        sync: JournalSync::Always,
        prewrite_segments: prewrite,
        ..JournalOptions::default()
    };
    let (journal, _) = FileJournal::open(dir.path(), opts).expect("open journal");
    let payload = Bytes::from(vec![0x5a; RECORD_BYTES]);
    // A new journal starts in a plain segment and moves to the pre-written one once the helper
    // has written it (64 MiB); then the helper writes the next spare. Measure after both, the
    // state a running switch is in for most of a segment's life (the spare's own writing, once
    // per segment, is left out: it is a second or so per 64 MiB of records).
    if prewrite {
        while journal.stats().segments_prepared == 0 {
            journal.append(&payload).await.expect("append");
        }
        while journal.stats().spares_prepared < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let mut samples = Vec::with_capacity(records);
    for _ in 0..records {
        let started = Instant::now();
        journal.append(&payload).await.expect("append");
        samples.push(started.elapsed());
    }
    samples
}

fn report(layout: &str, samples: &mut [Duration]) {
    samples.sort_unstable();
    let at = |q: f64| {
        let index = ((samples.len() as f64 * q) as usize).min(samples.len() - 1);
        samples[index].as_secs_f64() * 1e3
    };
    println!(
        "{layout:<12} {:.3} ms {:.3} ms {:.3} ms {:.3} ms {:.3} ms",
        at(0.5),
        at(0.9),
        at(0.99),
        at(0.999),
        at(1.0)
    );
}
