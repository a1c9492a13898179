//! Tests of [`FileJournal`] and [`read_all`] against real files in throwaway directories: what
//! comes back after reopening, how damage is told apart from a torn tail, and the writer's group
//! commit, back-pressure, close and failure behaviour. Tests that need the writer held still use
//! its test hooks rather than sleeps, so they cannot pass or fail by timing.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError};

use bytes::Bytes;
use futures::FutureExt;
use proptest::prelude::*;

use super::format::{HEADER_BYTES, SPARE_NAME, encode_record, segment_name};
use super::*;
use crate::config::{JournalConfig, JournalSync};

/// Segments of 64 KiB: every journal here is pre-written (a segment and a spare), so the size is
/// kept small for the disk's sake; nothing but the roll-over tests fills one.
const SEGMENT_BYTES: u64 = 64 << 10;

fn options(sync: JournalSync) -> JournalOptions {
    JournalOptions {
        sync,
        segment_bytes_max: SEGMENT_BYTES,
        group_commit_max: 512,
        group_commit_delay: std::time::Duration::ZERO,
        group_commit_delay_min_records: 16,
        queue_depth_max: 65_536,
        prewrite_segments: true,
        direct_io: true,
    }
}

/// Payloads of one fixed length (11 bytes), so record offsets are easy to compute.
fn payload(i: u64) -> Bytes {
    Bytes::from(format!("record-{i:04}"))
}
const RECORD_BYTES: u64 = HEADER_BYTES as u64 + 11;

fn open(dir: &Path, opts: JournalOptions) -> (FileJournal, Recovered) {
    match FileJournal::open(dir, opts) {
        Ok(opened) => opened,
        Err(error) => panic!("open failed: {error}"),
    }
}

/// Appends `payloads[from..to]` one at a time, awaiting each, so each is its own batch.
async fn append_each(journal: &FileJournal, range: std::ops::Range<u64>) {
    for i in range {
        assert_eq!(journal.append(&payload(i)).await.unwrap(), i);
    }
}

/// Appends `payloads[range]` while the writer is held, so they go into batches of up to
/// `group_commit_max` together, then awaits each at its LSN (the range's own numbers).
async fn append_held(journal: &FileJournal, range: std::ops::RangeInclusive<u64>) {
    let pause = hold_writer(journal);
    let tickets: Vec<_> = range.clone().map(|i| journal.append(&payload(i))).collect();
    drop(pause);
    for (i, ticket) in range.zip(tickets) {
        assert_eq!(ticket.await.unwrap(), i);
    }
}

/// Holds the writer after it takes its next request: what is appended meanwhile waits in the
/// queue and goes into one batch when the guard is dropped.
fn hold_writer(journal: &FileJournal) -> std::sync::MutexGuard<'_, ()> {
    journal
        .test_hooks()
        .pause
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

fn expected(range: std::ops::RangeInclusive<u64>) -> Vec<(Lsn, Bytes)> {
    range.map(|i| (i, payload(i))).collect()
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
        .collect();
    paths.sort();
    paths
}

/// Every file in `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            let bytes = fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect()
}

fn flip_byte(path: &Path, offset: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x40;
    fs::write(path, bytes).unwrap();
}

/// A whole file written through a [`DurableFile`] from `parts`, one after the other.
fn write_durably(dir: &Path, name: &str, parts: &[&[u8]], pace: WritePace) -> std::io::Result<u64> {
    let mut file = DurableFile::create(dir, name, pace)?;
    for part in parts {
        file.write_slice(part);
    }
    file.commit()
}

fn append_raw(path: &Path, bytes: &[u8]) {
    OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

fn assert_corrupt(
    result: Result<(FileJournal, Recovered), JournalError>,
    at: &Path,
    at_offset: u64,
) {
    match result {
        Err(JournalError::Corrupt {
            segment, offset, ..
        }) => {
            assert_eq!((segment.as_path(), offset), (at, at_offset));
        }
        Err(other) => panic!("expected Corrupt, got {other}"),
        Ok(_) => panic!("expected Corrupt, but the journal opened"),
    }
}

#[tokio::test]
async fn records_come_back_in_order_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, recovered) = open(dir.path(), options(JournalSync::Always));
    assert_eq!(recovered, Recovered::default());
    let tickets: Vec<_> = (1..=100).map(|i| journal.append(&payload(i))).collect();
    for (i, ticket) in (1..).zip(tickets) {
        assert_eq!(ticket.await.unwrap(), i);
    }
    drop(journal);

    let (_journal, recovered) = open(dir.path(), options(JournalSync::Always));
    assert_eq!(recovered.records, expected(1..=100));
    assert_eq!(recovered.truncated_tail_bytes, 0);
    assert_eq!(segments(dir.path()), vec![dir.path().join(segment_name(1))]);
}

#[tokio::test]
async fn lsns_continue_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open(dir.path(), options(JournalSync::Always));
    append_each(&journal, 1..6).await;
    drop(journal);
    let (journal, recovered) = open(dir.path(), options(JournalSync::Always));
    assert_eq!(recovered.records.len(), 5);
    append_each(&journal, 6..11).await;
    drop(journal);
    assert_eq!(read_all(dir.path()).unwrap(), expected(1..=10));
}

#[tokio::test]
async fn segments_roll_over_and_read_back_across_them() {
    let dir = tempfile::tempdir().unwrap();
    // Four 27-byte records reach 100 bytes; one record per batch, so every segment holds four.
    let opts = JournalOptions {
        segment_bytes_max: 100,
        ..options(JournalSync::Always)
    };
    let (journal, _) = open(dir.path(), opts);
    append_each(&journal, 1..11).await;
    drop(journal);

    let names: Vec<PathBuf> = [1, 5, 9]
        .map(|lsn| dir.path().join(segment_name(lsn)))
        .into();
    assert_eq!(segments(dir.path()), names);
    assert_eq!(fs::metadata(&names[0]).unwrap().len(), 4 * RECORD_BYTES);
    assert_eq!(read_all(dir.path()).unwrap(), expected(1..=10));

    let (journal, recovered) = open(dir.path(), opts);
    assert_eq!(recovered.records, expected(1..=10));
    // The last segment (two records) is not full, so appends continue in it.
    append_each(&journal, 11..13).await;
    drop(journal);
    assert_eq!(segments(dir.path()), names);
    assert_eq!(read_all(dir.path()).unwrap(), expected(1..=12));
}

#[tokio::test]
async fn garbage_after_the_last_record_is_truncated_and_appends_follow() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open(dir.path(), options(JournalSync::Always));
    append_each(&journal, 1..11).await;
    drop(journal);
    let segment = dir.path().join(segment_name(1));
    write_at(&segment, 10 * RECORD_BYTES, &[0xab; 37]);

    let (journal, recovered) = open(dir.path(), options(JournalSync::Always));
    assert_eq!(recovered.records, expected(1..=10));
    assert_eq!(recovered.truncated_tail_bytes, 37);
    assert_eq!(fs::metadata(&segment).unwrap().len(), 10 * RECORD_BYTES);
    append_each(&journal, 11..12).await;
    drop(journal);

    let (_journal, recovered) = open(dir.path(), options(JournalSync::Always));
    assert_eq!(recovered.records, expected(1..=11));
    assert_eq!(recovered.truncated_tail_bytes, 0);
}

#[tokio::test]
async fn a_half_written_last_record_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open(dir.path(), options(JournalSync::Always));
    append_each(&journal, 1..6).await;
    drop(journal);
    let segment = dir.path().join(segment_name(1));
    // Inside record 5's payload, after its last non-zero header byte.
    let cut = 5 * RECORD_BYTES - 5;
    OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(cut)
        .unwrap();

    let (journal, recovered) = open(dir.path(), options(JournalSync::Always));
    assert_eq!(recovered.records, expected(1..=4));
    assert_eq!(recovered.truncated_tail_bytes, cut - 4 * RECORD_BYTES);
    // LSN 5 was lost with the torn record, so the next append takes it.
    assert_eq!(journal.append(b"after").await.unwrap(), 5);
}

#[tokio::test]
async fn a_bad_crc_on_the_last_record_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open(dir.path(), options(JournalSync::Always));
    append_each(&journal, 1..6).await;
    drop(journal);
    let segment = dir.path().join(segment_name(1));
    flip_byte(&segment, 5 * RECORD_BYTES - 1);

    let (_journal, recovered) = open(dir.path(), options(JournalSync::Always));
    assert_eq!(recovered.records, expected(1..=4));
    assert_eq!(recovered.truncated_tail_bytes, RECORD_BYTES);
}

#[tokio::test]
async fn damage_in_an_earlier_segment_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let opts = JournalOptions {
        segment_bytes_max: 100,
        ..options(JournalSync::Always)
    };
    let (journal, _) = open(dir.path(), opts);
    append_each(&journal, 1..11).await;
    drop(journal);
    let first = dir.path().join(segment_name(1));
    // A payload byte of the second record.
    flip_byte(&first, RECORD_BYTES + HEADER_BYTES as u64 + 3);
    let before = snapshot(dir.path());

    assert_corrupt(FileJournal::open(dir.path(), opts), &first, RECORD_BYTES);
    assert!(matches!(
        read_all(dir.path()),
        Err(JournalError::Corrupt { offset, .. }) if offset == RECORD_BYTES
    ));
    assert_eq!(
        snapshot(dir.path()),
        before,
        "a failed open must not touch the files"
    );
}

#[tokio::test]
async fn damage_followed_by_intact_records_in_the_last_segment_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open(dir.path(), options(JournalSync::Always));
    append_each(&journal, 1..11).await;
    drop(journal);
    let segment = dir.path().join(segment_name(1));
    flip_byte(&segment, 4 * RECORD_BYTES + HEADER_BYTES as u64);

    assert_corrupt(
        FileJournal::open(dir.path(), options(JournalSync::Always)),
        &segment,
        4 * RECORD_BYTES,
    );
}

#[tokio::test]
async fn a_missing_segment_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let opts = JournalOptions {
        segment_bytes_max: 100,
        ..options(JournalSync::Always)
    };
    let (journal, _) = open(dir.path(), opts);
    append_each(&journal, 1..11).await;
    drop(journal);

    fs::remove_file(dir.path().join(segment_name(5))).unwrap();
    assert_corrupt(
        FileJournal::open(dir.path(), opts),
        &dir.path().join(segment_name(9)),
        0,
    );
    fs::remove_file(dir.path().join(segment_name(1))).unwrap();
    assert_corrupt(
        FileJournal::open(dir.path(), opts),
        &dir.path().join(segment_name(9)),
        0,
    );
}

#[tokio::test]
async fn an_empty_last_segment_from_a_crash_after_roll_over_is_reused() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open(dir.path(), options(JournalSync::Always));
    append_each(&journal, 1..4).await;
    drop(journal);
    let empty = dir.path().join(segment_name(4));
    fs::File::create(&empty).unwrap();

    let (journal, recovered) = open(dir.path(), options(JournalSync::Always));
    assert_eq!(recovered.records, expected(1..=3));
    append_each(&journal, 4..5).await;
    // The plain empty segment was replaced by a pre-written one under the same name.
    assert_eq!(journal.stats().segments_prepared, 1);
    drop(journal);
    assert_eq!(fs::metadata(&empty).unwrap().len(), SEGMENT_BYTES);
    assert_eq!(
        segments(dir.path()),
        vec![dir.path().join(segment_name(1)), empty]
    );
    assert_eq!(read_all(dir.path()).unwrap(), expected(1..=4));
}

#[tokio::test]
async fn read_all_leaves_the_files_alone() {
    let dir = tempfile::tempdir().unwrap();
    let opts = JournalOptions {
        segment_bytes_max: 100,
        ..options(JournalSync::Always)
    };
    let (journal, _) = open(dir.path(), opts);
    append_each(&journal, 1..8).await;
    drop(journal);
    // A torn tail too, which open would cut and read_all must not.
    append_raw(&dir.path().join(segment_name(5)), &[0x01, 0x02, 0x03]);
    let before = snapshot(dir.path());

    assert_eq!(read_all(dir.path()).unwrap(), expected(1..=7));
    assert_eq!(read_all(dir.path()).unwrap(), expected(1..=7));
    assert_eq!(snapshot(dir.path()), before);
    assert!(matches!(
        read_all(&dir.path().join("missing")),
        Err(JournalError::Io { op: "list", .. })
    ));
}

#[test]
fn open_creates_the_directory_and_ignores_other_files() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a/b/journal");
    let (journal, recovered) = open(&nested, options(JournalSync::Always));
    assert!(recovered.records.is_empty());
    drop(journal);
    fs::write(nested.join("README.txt"), b"operator notes").unwrap();
    let (_journal, recovered) = open(&nested, options(JournalSync::Always));
    assert!(recovered.records.is_empty());
    assert_eq!(segments(&nested), vec![nested.join(segment_name(1))]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open(dir.path(), options(JournalSync::Always));
    let journal = Arc::new(journal);
    let tasks: Vec<_> = (1..=1000)
        .map(|i| {
            let journal = Arc::clone(&journal);
            tokio::spawn(async move { journal.append(&payload(i)).await })
        })
        .collect();
    let mut lsns = Vec::new();
    for task in tasks {
        lsns.push(task.await.unwrap().unwrap());
    }
    lsns.sort_unstable();
    assert_eq!(lsns, (1..=1000).collect::<Vec<_>>());

    let stats = journal.stats();
    assert_eq!(stats.records, 1000);
    assert_eq!(stats.bytes, 1000 * RECORD_BYTES);
    assert_eq!(stats.fsyncs, stats.batches);
    assert!(stats.batches < 1000, "no batching happened: {stats:?}");
    drop(journal);
    assert_eq!(read_all(dir.path()).unwrap().len(), 1000);
}

#[tokio::test]
async fn a_batch_takes_everything_queued_up_to_group_commit_max() {
    let dir = tempfile::tempdir().unwrap();
    let opts = JournalOptions {
        group_commit_max: 4,
        ..options(JournalSync::Always)
    };
    let (journal, _) = open(dir.path(), opts);
    append_held(&journal, 1..=10).await;
    let stats = journal.stats();
    assert_eq!((stats.batches, stats.records, stats.fsyncs), (3, 10, 3));
}

/// After a group commit of at least `group_commit_delay_min_records` records, the next one starts
/// no sooner than `group_commit_delay` after it began; after a smaller one it starts at once.
#[tokio::test]
async fn under_load_the_next_group_commit_waits_out_the_delay() {
    let delay = std::time::Duration::from_millis(400);
    let dir = tempfile::tempdir().unwrap();
    let opts = JournalOptions {
        group_commit_delay: delay,
        group_commit_delay_min_records: 3,
        ..options(JournalSync::Always)
    };
    let (journal, _) = open(dir.path(), opts);
    // Two records, alone in their batches: below the minimum, so nothing waits.
    journal.append(&payload(1)).await.unwrap();
    journal.append(&payload(2)).await.unwrap();
    assert_eq!(journal.stats().delayed_commits, 0);
    // A batch of three (the writer held while they queue) is load: the next commit waits.
    // Before the batch can begin: its commit starts after its first record is queued.
    let loaded_from = std::time::Instant::now();
    append_held(&journal, 3..=5).await;
    assert_eq!(journal.append(&payload(6)).await.unwrap(), 6);
    // The batch of three began after `loaded_from`, and the next one `delay` after it.
    assert!(loaded_from.elapsed() >= delay, "waited the delay");
    let stats = journal.stats();
    assert_eq!((stats.batches, stats.delayed_commits), (4, 1));
    // The one-record batch that waited is no load itself: the next commit does not wait.
    journal.append(&payload(7)).await.unwrap();
    assert_eq!(journal.stats().delayed_commits, 1);
    // A loaded batch, then a flush: the flush waits (it is the next commit), and its own batch,
    // which holds no record, is no load for the append after it.
    append_held(&journal, 8..=10).await;
    journal.flush().await.unwrap();
    journal.append(&payload(11)).await.unwrap();
    assert_eq!(journal.stats().delayed_commits, 2);
}

/// A batch cut at `group_commit_max` means more is queued already: the next commit does not
/// wait, or the delay would cap the journal at `group_commit_max` records per delay.
#[tokio::test]
async fn a_full_batch_is_not_followed_by_a_delay() {
    let dir = tempfile::tempdir().unwrap();
    let opts = JournalOptions {
        group_commit_max: 3,
        group_commit_delay: std::time::Duration::from_secs(30),
        group_commit_delay_min_records: 2,
        ..options(JournalSync::Always)
    };
    let (journal, _) = open(dir.path(), opts);
    // Batches of 3, 3 and 1: the two full ones are followed at once (a wait of 30 s would
    // hold this test up), and the last is the only one after which a commit would wait.
    append_held(&journal, 1..=7).await;
    let stats = journal.stats();
    assert_eq!((stats.batches, stats.delayed_commits), (3, 0));
}

/// Batches cut by `group_commit_max` take the queue's payloads in pieces: each record must still
/// get its own bytes, in order, whatever the lengths around it.
#[tokio::test]
async fn payloads_of_many_lengths_come_back_whole_when_batches_cut_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let opts = JournalOptions {
        group_commit_max: 3,
        ..options(JournalSync::Always)
    };
    let (journal, _) = open(dir.path(), opts);
    let payloads: Vec<Vec<u8>> = (0..17u8)
        .map(|i| vec![b'a' + i; usize::from(i) * 7 % 40])
        .collect();
    let pause = hold_writer(&journal);
    let tickets: Vec<_> = payloads.iter().map(|p| journal.append(p)).collect();
    drop(pause);
    for (i, ticket) in (1..).zip(tickets) {
        assert_eq!(ticket.await.unwrap(), i);
    }
    // Cut by the limit: 17 records in batches of at most 3.
    assert_eq!(journal.stats().batches, 6);
    drop(journal);
    let (_, recovered) = open(dir.path(), options(JournalSync::Always));
    let back: Vec<Vec<u8>> = recovered.records.iter().map(|(_, p)| p.to_vec()).collect();
    assert_eq!(back, payloads);
}

#[tokio::test]
async fn a_full_queue_refuses_appends_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let opts = JournalOptions {
        queue_depth_max: 4,
        ..options(JournalSync::Always)
    };
    let (journal, _) = open(dir.path(), opts);
    let pause = hold_writer(&journal);
    let tickets: Vec<_> = (1..=4).map(|i| journal.append(&payload(i))).collect();
    let refused = journal.append(&payload(5)).now_or_never();
    assert!(
        matches!(refused, Some(Err(JournalError::Overloaded))),
        "{refused:?}"
    );
    drop(pause);

    for (i, ticket) in (1..).zip(tickets) {
        assert_eq!(ticket.await.unwrap(), i);
    }
    // The slots are free again once the batch is done.
    assert_eq!(journal.append(&payload(5)).await.unwrap(), 5);
    drop(journal);
    assert_eq!(read_all(dir.path()).unwrap(), expected(1..=5));
}

#[tokio::test]
async fn close_refuses_later_appends_but_writes_queued_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open(dir.path(), options(JournalSync::Always));
    let pause = hold_writer(&journal);
    let queued: Vec<_> = (1..=3).map(|i| journal.append(&payload(i))).collect();
    journal.close();
    let late = journal.append(&payload(4)).now_or_never();
    assert!(matches!(late, Some(Err(JournalError::Closed))), "{late:?}");
    drop(pause);

    for (i, ticket) in (1..).zip(queued) {
        assert_eq!(ticket.await.unwrap(), i);
    }
    assert_eq!(journal.flush().await.unwrap(), 3);
    drop(journal);
    assert_eq!(read_all(dir.path()).unwrap(), expected(1..=3));
}

#[tokio::test]
async fn flush_resolves_after_every_earlier_append_is_synced() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open(dir.path(), options(JournalSync::None));
    assert_eq!(journal.flush().await.unwrap(), 0);
    assert_eq!(
        journal.stats().fsyncs,
        0,
        "nothing written, nothing to sync"
    );

    let tickets: Vec<_> = (1..=100).map(|i| journal.append(&payload(i))).collect();
    assert_eq!(journal.flush().await.unwrap(), 100);
    for (i, ticket) in (1..).zip(tickets) {
        assert!(matches!(ticket.now_or_never(), Some(Ok(lsn)) if lsn == i));
    }
    // With sync = none only the flush forces an fsync.
    assert!(journal.stats().fsyncs >= 1);
    assert_eq!(read_all(dir.path()).unwrap(), expected(1..=100));
}

#[tokio::test]
async fn a_failed_fsync_fails_its_batch_and_everything_after() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open(dir.path(), options(JournalSync::Always));
    append_each(&journal, 1..3).await;
    journal
        .test_hooks()
        .fail_next_sync
        .store(true, std::sync::atomic::Ordering::SeqCst);

    let failed = journal.append(&payload(3)).await;
    assert!(
        matches!(&failed, Err(JournalError::Io { op: "fsync", .. })),
        "{failed:?}"
    );
    let later = journal.append(&payload(4)).await;
    assert!(matches!(&later, Err(JournalError::Failed(_))), "{later:?}");
    let flushed = journal.flush().await;
    assert!(
        matches!(&flushed, Err(JournalError::Failed(_))),
        "{flushed:?}"
    );
    assert_eq!(journal.stats().records, 3);
    drop(journal);

    // Reopening re-reads what is actually on disk (here the unacknowledged record did land).
    let (_journal, recovered) = open(dir.path(), options(JournalSync::Always));
    assert_eq!(recovered.records, expected(1..=3));
}

#[tokio::test]
async fn covered_appends_take_their_place_in_order_and_the_ticket_that_covers_them_shares_its_fsync()
 {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open(dir.path(), options(JournalSync::Always));
    // Nobody waits on these, so the writer is not woken for them...
    journal.append_covered(&payload(1), Admission::New).unwrap();
    journal
        .append_covered(&payload(2), Admission::Continuing)
        .unwrap();
    // ...and the append that covers them takes them along: one batch, one fsync.
    assert_eq!(
        journal
            .append_as(&payload(3), Admission::Continuing)
            .await
            .unwrap(),
        3
    );
    // Synced with the ticket's batch: readable, in order, before the journal is dropped.
    assert_eq!(read_all(dir.path()).unwrap(), expected(1..=3));
    let stats = journal.stats();
    assert_eq!((stats.batches, stats.records, stats.fsyncs), (1, 3, 1));
}

#[tokio::test]
async fn covered_records_with_nothing_after_them_are_written_by_a_flush_or_at_drop() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open(dir.path(), options(JournalSync::Always));
    journal.append_covered(&payload(1), Admission::New).unwrap();
    assert_eq!(journal.flush().await.unwrap(), 1);
    journal.append_covered(&payload(2), Admission::New).unwrap();
    drop(journal);
    assert_eq!(read_all(dir.path()).unwrap(), expected(1..=2));
}

#[tokio::test]
async fn covered_records_split_over_batches_still_wait_for_what_covers_them() {
    let dir = tempfile::tempdir().unwrap();
    let opts = JournalOptions {
        group_commit_max: 1,
        ..options(JournalSync::Always)
    };
    let (journal, _) = open(dir.path(), opts);
    journal.append_covered(&payload(1), Admission::New).unwrap();
    journal
        .append_covered(&payload(2), Admission::Continuing)
        .unwrap();
    // One record a batch: the flush's wake-up carries both covered records, in two batches.
    assert_eq!(journal.flush().await.unwrap(), 2);
    assert_eq!(journal.stats().batches, 2);
    assert_eq!(read_all(dir.path()).unwrap(), expected(1..=2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_mixing_covered_ticketed_and_flushes_lose_and_reorder_nothing() {
    const TASKS: u64 = 8;
    const TXNS: u64 = 200;
    let dir = tempfile::tempdir().unwrap();
    let opts = JournalOptions {
        group_commit_max: 3,
        ..options(JournalSync::None)
    };
    let journal = Arc::new(open(dir.path(), opts).0);
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let journal = Arc::clone(&journal);
        tasks.push(tokio::spawn(async move {
            for i in 0..TXNS {
                let rec = |leg: u64| Bytes::from(format!("{t:02}-{i:04}-{leg}"));
                journal.append_covered(&rec(0), Admission::New).unwrap();
                journal
                    .append_covered(&rec(1), Admission::Continuing)
                    .unwrap();
                let done = journal.append_as(&rec(2), Admission::Continuing);
                if i % 50 == 0 {
                    journal.flush().await.unwrap();
                }
                // A lost wake-up would hang here: bounded, so it fails instead.
                tokio::time::timeout(std::time::Duration::from_secs(30), done)
                    .await
                    .expect("a ticket was never completed")
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(journal.flush().await.unwrap(), TASKS * TXNS * 3);
    // Each task's records in its own order, none missing.
    let records = read_all(dir.path()).unwrap();
    for t in 0..TASKS {
        let mine: Vec<Bytes> = records
            .iter()
            .map(|(_, p)| p.clone())
            .filter(|p| p.starts_with(format!("{t:02}-").as_bytes()))
            .collect();
        let want: Vec<Bytes> = (0..TXNS)
            .flat_map(|i| (0..3).map(move |leg| Bytes::from(format!("{t:02}-{i:04}-{leg}"))))
            .collect();
        assert_eq!(mine, want, "task {t}");
    }
}

#[tokio::test]
async fn a_full_queue_refuses_new_work_but_not_the_rest_of_admitted_work() {
    let dir = tempfile::tempdir().unwrap();
    let opts = JournalOptions {
        queue_depth_max: 2,
        ..options(JournalSync::Always)
    };
    let (journal, _) = open(dir.path(), opts);
    let pause = hold_writer(&journal);
    journal.append_covered(&payload(1), Admission::New).unwrap();
    let ticket = journal.append(&payload(2));
    // Full: new work is refused at once, covered or not...
    let refused = journal.append_covered(&payload(3), Admission::New);
    assert!(
        matches!(refused, Err(JournalError::Overloaded)),
        "{refused:?}"
    );
    let refused = journal.append(&payload(3)).now_or_never();
    assert!(
        matches!(refused, Some(Err(JournalError::Overloaded))),
        "{refused:?}"
    );
    // ...but a transaction already admitted can still write its later records.
    journal
        .append_covered(&payload(3), Admission::Continuing)
        .unwrap();
    let continuing = journal.append_as(&payload(4), Admission::Continuing);
    journal.close();
    let closed = journal.append_covered(&payload(5), Admission::Continuing);
    assert!(matches!(closed, Err(JournalError::Closed)), "{closed:?}");
    drop(pause);
    assert_eq!(ticket.await.unwrap(), 2);
    assert_eq!(continuing.await.unwrap(), 4);
    drop(journal);
    assert_eq!(read_all(dir.path()).unwrap(), expected(1..=4));
}

#[tokio::test]
async fn a_covered_record_whose_write_fails_fails_the_flush_and_everything_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open(dir.path(), options(JournalSync::Always));
    append_each(&journal, 1..2).await;
    journal
        .test_hooks()
        .fail_next_sync
        .store(true, std::sync::atomic::Ordering::SeqCst);
    // The covered record waits for the flush (nobody waits on it), so it is the only append in
    // the batch and the failure is its own.
    journal.append_covered(&payload(2), Admission::New).unwrap();
    let flushed = journal.flush().await;
    assert!(
        matches!(&flushed, Err(JournalError::Io { op: "fsync", .. })),
        "{flushed:?}"
    );
    // Nothing after it can succeed, covered or ticketed, new or continuing.
    let later = journal.append_as(&payload(3), Admission::Continuing).await;
    assert!(matches!(&later, Err(JournalError::Failed(_))), "{later:?}");
    let covered = journal.append_covered(&payload(3), Admission::Continuing);
    assert!(
        matches!(&covered, Err(JournalError::Failed(_))),
        "{covered:?}"
    );
}

#[tokio::test]
async fn a_ticket_whose_writer_vanished_resolves_to_closed() {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    drop(sender);
    assert!(matches!(
        AppendTicket::pending(receiver).await,
        Err(JournalError::Closed)
    ));
    assert_eq!(AppendTicket::ready(Ok(7)).await.unwrap(), 7);
}

#[test]
fn options_come_from_the_journal_config() {
    let config = JournalConfig {
        sync: JournalSync::None,
        segment_bytes_max: 4096,
        group_commit_max: 64,
        group_commit_delay_us: 250,
        group_commit_delay_min_records: 8,
        ..JournalConfig::default()
    };
    assert_eq!(
        JournalOptions::from(&config),
        JournalOptions {
            sync: JournalSync::None,
            segment_bytes_max: 4096,
            group_commit_max: 64,
            group_commit_delay: std::time::Duration::from_micros(250),
            group_commit_delay_min_records: 8,
            queue_depth_max: 65_536,
            prewrite_segments: true,
            direct_io: true,
        }
    );
    let defaults = JournalOptions::default();
    assert_eq!(
        (
            defaults.group_commit_delay,
            defaults.group_commit_delay_min_records
        ),
        (std::time::Duration::ZERO, 16),
        "off by default"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn any_payloads_round_trip_through_reopen(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..600), 0..40),
        segment_bytes_max in 1u64..4096,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let opts = JournalOptions { segment_bytes_max, ..options(JournalSync::None) };
        let (journal, _) = open(dir.path(), opts);
        let tickets: Vec<_> = payloads
            .iter()
            .map(|bytes| journal.append(bytes))
            .collect();
        for (i, ticket) in (1..).zip(tickets) {
            prop_assert_eq!(futures::executor::block_on(ticket).unwrap(), i);
        }
        drop(journal);

        let (_journal, recovered) = open(dir.path(), opts);
        let expected: Vec<(Lsn, Bytes)> =
            (1..).zip(payloads.iter().map(|bytes| Bytes::copy_from_slice(bytes))).collect();
        prop_assert_eq!(&recovered.records, &expected);
        prop_assert_eq!(recovered.truncated_tail_bytes, 0);
        prop_assert_eq!(read_all(dir.path()).unwrap(), expected);
    }
}

/// Writes records 1..=10 into segments 1..=4, 5..=8 and 9..=10, and returns the options used.
async fn ten_records_in_three_segments(dir: &Path) -> JournalOptions {
    let opts = JournalOptions {
        segment_bytes_max: 100,
        ..options(JournalSync::Always)
    };
    let (journal, _) = open(dir, opts);
    append_each(&journal, 1..11).await;
    // Pre-written (the open_after tests read them): the first one replaced at the first append.
    assert_eq!(journal.stats().segments_prepared, 3);
    opts
}

#[tokio::test]
async fn open_after_a_checkpoint_skips_the_segments_it_covers() {
    let dir = tempfile::tempdir().unwrap();
    let opts = ten_records_in_three_segments(dir.path()).await;
    // Segments 1..=4, 5..=8 and 9..=10. Damage in the first one is never seen when a checkpoint
    // covers it, which shows it is not read at all; a full open still finds it.
    let first = dir.path().join(segment_name(1));
    flip_byte(&first, RECORD_BYTES + HEADER_BYTES as u64 + 3);
    assert_corrupt(FileJournal::open(dir.path(), opts), &first, RECORD_BYTES);

    let (journal, recovered) = FileJournal::open_after(dir.path(), opts, 6).unwrap();
    assert_eq!(recovered.records, expected(7..=10));
    assert_eq!(journal.append(&payload(11)).await.unwrap(), 11);
    drop(journal);

    // A checkpoint inside the last segment: every earlier segment is skipped.
    let (_journal, recovered) = FileJournal::open_after(dir.path(), opts, 9).unwrap();
    assert_eq!(recovered.records, expected(10..=11));
}

#[tokio::test]
async fn segments_covered_by_a_checkpoint_may_be_archived_but_no_others() {
    let dir = tempfile::tempdir().unwrap();
    let opts = ten_records_in_three_segments(dir.path()).await;
    fs::remove_file(dir.path().join(segment_name(1))).unwrap();

    let (_journal, recovered) = FileJournal::open_after(dir.path(), opts, 4).unwrap();
    assert_eq!(recovered.records, expected(5..=10));
    drop(_journal);
    // A checkpoint at 3 does not cover record 4, which went with the first segment.
    assert_corrupt(
        FileJournal::open_after(dir.path(), opts, 3),
        &dir.path().join(segment_name(5)),
        0,
    );
    assert_corrupt(
        FileJournal::open(dir.path(), opts),
        &dir.path().join(segment_name(5)),
        0,
    );
}

#[tokio::test]
async fn progress_publishes_the_last_lsn_once_per_group_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open(dir.path(), options(JournalSync::Always));
    let mut progress = journal.progress();
    assert_eq!(*progress.borrow_and_update(), 0);

    append_each(&journal, 1..4).await;
    assert!(progress.has_changed().unwrap(), "appends publish");
    assert_eq!(*progress.borrow_and_update(), 3);
    assert_eq!(journal.flush().await.unwrap(), 3);
    assert!(
        !progress.has_changed().unwrap(),
        "a flush writes nothing new"
    );

    // A reader woken by progress finds the records in the files.
    let reader = {
        let mut progress = journal.progress();
        let dir = dir.path().to_owned();
        tokio::spawn(async move {
            progress.wait_for(|&lsn| lsn >= 5).await.unwrap();
            read_all(&dir).unwrap()
        })
    };
    let tickets: Vec<_> = (4..=5).map(|i| journal.append(&payload(i))).collect();
    for ticket in tickets {
        ticket.await.unwrap();
    }
    assert_eq!(reader.await.unwrap(), expected(1..=5));

    // The writer gone, watchers learn that nothing more will come; reopening starts where it was.
    assert_eq!(*progress.borrow_and_update(), 5);
    drop(journal);
    assert!(progress.changed().await.is_err());
    let (journal, _) = open(dir.path(), options(JournalSync::Always));
    assert_eq!(*journal.progress().borrow(), 5);
}

/// Records 1..=`records` appended one per batch to a new journal in `dir`, closed again; returns
/// the path of its (pre-written) first segment.
async fn closed_journal_of(dir: &Path, records: u64) -> PathBuf {
    let (journal, _) = open(dir, options(JournalSync::Always));
    append_each(&journal, 1..records + 1).await;
    drop(journal);
    dir.join(segment_name(1))
}

/// Writes `bytes` at `offset` in place, as the writer does in a pre-written segment.
fn write_at(path: &Path, offset: u64, bytes: &[u8]) {
    use std::io::{Seek, SeekFrom};
    let mut file = OpenOptions::new().write(true).open(path).unwrap();
    file.seek(SeekFrom::Start(offset)).unwrap();
    file.write_all(bytes).unwrap();
}

#[tokio::test]
async fn a_zero_filled_tail_is_the_end_of_the_records_not_damage() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open(dir.path(), options(JournalSync::Always));
    append_each(&journal, 1..5).await;
    assert_eq!(journal.stats().segments_prepared, 1);
    drop(journal);
    let segment = dir.path().join(segment_name(1));
    assert_eq!(fs::metadata(&segment).unwrap().len(), SEGMENT_BYTES);
    let before = snapshot(dir.path());

    assert_eq!(read_all(dir.path()).unwrap(), expected(1..=4));
    let (_journal, recovered) = open(dir.path(), options(JournalSync::Always));
    assert_eq!(recovered.records, expected(1..=4));
    assert_eq!(recovered.truncated_tail_bytes, 0);
    assert_eq!(
        fs::read(&segment).unwrap(),
        before[&segment],
        "a clean open leaves the fill alone"
    );
}

#[tokio::test]
async fn a_torn_record_inside_a_prewritten_segment_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let segment = closed_journal_of(dir.path(), 5).await;
    // Record 6 half landed over the fill: its header and part of its payload.
    let mut record = Vec::new();
    encode_record(&mut record, 6, &payload(6));
    write_at(&segment, 5 * RECORD_BYTES, &record[..HEADER_BYTES + 4]);

    let (journal, recovered) = open(dir.path(), options(JournalSync::Always));
    assert_eq!(recovered.records, expected(1..=5));
    assert_eq!(recovered.truncated_tail_bytes, HEADER_BYTES as u64 + 4);
    append_each(&journal, 6..8).await;
    drop(journal);
    assert_eq!(read_all(dir.path()).unwrap(), expected(1..=7));
}

#[tokio::test]
async fn a_batch_whose_middle_never_landed_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let segment = closed_journal_of(dir.path(), 5).await;
    // An unacknowledged batch of records 6..=65 whose sector [512, 1024) never reached the disk:
    // intact records follow the damage, but a whole sector of fill shows it was a torn write.
    let mut batch = Vec::new();
    for i in 6..=65 {
        encode_record(&mut batch, i, &payload(i));
    }
    let start = 5 * RECORD_BYTES;
    write_at(&segment, start, &batch);
    write_at(&segment, 512, &[0u8; 512]);
    let last_whole = (512 - start) / RECORD_BYTES; // records of the batch wholly before 512
    let damaged_at = start + last_whole * RECORD_BYTES;

    let (journal, recovered) = open(dir.path(), options(JournalSync::Always));
    assert_eq!(recovered.records, expected(1..=5 + last_whole));
    assert_eq!(
        recovered.truncated_tail_bytes,
        start + batch.len() as u64 - damaged_at
    );
    append_each(&journal, 6 + last_whole..7 + last_whole).await;
    drop(journal);
    assert_eq!(read_all(dir.path()).unwrap(), expected(1..=6 + last_whole));
}

#[tokio::test]
async fn a_batch_whose_first_sector_never_landed_is_a_torn_tail() {
    // The sector holding the end of the last acknowledged record is rewritten by the next batch
    // (the acknowledged bytes, then the batch's first bytes). If that write never landed but the
    // batch's later sectors did, the disk holds the old sector: the acknowledged bytes, then a few
    // zeros up to the sector boundary, then intact records of the unacknowledged batch. With fewer
    // zeros than a record header, and the header's non-zero bytes past the boundary, this is
    // neither a zero header nor a whole zero sector: the case a review found read as corruption.
    let acknowledged = (1..2000u64)
        .find(|n| (1..=8).contains(&(512 - (n * RECORD_BYTES) % 512)))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let segment = closed_journal_of(dir.path(), acknowledged).await;
    let end = acknowledged * RECORD_BYTES;
    let boundary = end.div_ceil(512) * 512;
    let mut batch = Vec::new();
    for i in acknowledged + 1..=acknowledged + 60 {
        encode_record(&mut batch, i, &payload(i));
    }
    write_at(&segment, end, &batch);
    write_at(&segment, end, &vec![0u8; (boundary - end) as usize]);

    let (journal, recovered) = open(dir.path(), options(JournalSync::Always));
    assert_eq!(recovered.records, expected(1..=acknowledged));
    assert_eq!(recovered.truncated_tail_bytes, batch.len() as u64);
    append_each(&journal, acknowledged + 1..acknowledged + 2).await;
    drop(journal);
    assert_eq!(
        read_all(dir.path()).unwrap(),
        expected(1..=acknowledged + 1)
    );
}

#[tokio::test]
async fn rolls_go_to_prepared_segments() {
    let dir = tempfile::tempdir().unwrap();
    let opts = JournalOptions {
        segment_bytes_max: 100,
        ..options(JournalSync::Always)
    };
    let (journal, _) = open(dir.path(), opts);
    append_each(&journal, 1..11).await;
    let stats = journal.stats();
    assert_eq!((stats.segments_prepared, stats.segments_unprepared), (3, 0));
    drop(journal);
    let lens: Vec<u64> = segments(dir.path())
        .iter()
        .map(|path| fs::metadata(path).unwrap().len())
        .collect();
    // Full ones overshoot by their last record; the last is pre-written to 100 with 2 records.
    assert_eq!(lens, vec![4 * RECORD_BYTES, 4 * RECORD_BYTES, 100]);
    assert!(dir.path().join(SPARE_NAME).exists(), "the next spare waits");
    assert_eq!(read_all(dir.path()).unwrap(), expected(1..=10));
}

#[tokio::test]
async fn an_acknowledged_record_whose_header_begins_with_zeros_to_a_sector_boundary_stays_corrupt()
{
    // Record 2 starts one byte before a sector boundary and its length, 256, begins with a zero
    // byte: the zeros-to-a-boundary rule for torn writes must not take its damaged payload, with
    // acknowledged records after it, for a torn tail (found in review).
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open(dir.path(), options(JournalSync::Always));
    let first = Bytes::from(vec![b'a'; 511 - HEADER_BYTES]);
    let second = Bytes::from(vec![b'b'; 256]);
    assert_eq!(journal.append(&first).await.unwrap(), 1);
    assert_eq!(journal.append(&second).await.unwrap(), 2);
    append_each(&journal, 3..6).await;
    drop(journal);
    let segment = dir.path().join(segment_name(1));
    write_at(&segment, 511 + HEADER_BYTES as u64 + 10, b"X");

    assert_corrupt(
        FileJournal::open(dir.path(), options(JournalSync::Always)),
        &segment,
        511,
    );
    assert!(matches!(
        read_all(dir.path()),
        Err(JournalError::Corrupt { offset: 511, .. })
    ));
}

#[tokio::test]
async fn a_spare_that_could_not_be_prepared_is_asked_for_again() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the spare's file goes: the helper cannot create it.
    let blocker = dir.path().join(SPARE_NAME);
    fs::create_dir(&blocker).unwrap();
    let (journal, _) = open(dir.path(), options(JournalSync::Always));
    let hooks = journal.test_hooks();
    hooks.wait_spares_prepared(1);
    // The first batch takes the failed answer and stays in the plain segment.
    append_each(&journal, 1..2).await;
    assert_eq!(journal.stats().spares_prepared, 0);
    fs::remove_dir(&blocker).unwrap();
    // The next batch asks again; the one after takes the spare and moves to it.
    append_each(&journal, 2..4).await;
    let stats = journal.stats();
    // The roll asks for the next spare at once, which may be ready already.
    assert!(stats.spares_prepared >= 1, "{stats:?}");
    assert_eq!(stats.segments_prepared, 1);
    drop(journal);
    assert_eq!(read_all(dir.path()).unwrap(), expected(1..=3));
    let segment = segments(dir.path()).pop().unwrap();
    assert_eq!(
        fs::metadata(segment).unwrap().len(),
        SEGMENT_BYTES,
        "the last segment is the pre-written spare"
    );
}

// The held lock is the spare helper's, which the awaited appends never take.
#[allow(clippy::await_holding_lock)]
#[tokio::test]
async fn a_roll_with_no_spare_ready_goes_to_a_plain_segment_then_to_the_spare() {
    let dir = tempfile::tempdir().unwrap();
    let opts = JournalOptions {
        segment_bytes_max: 100,
        ..options(JournalSync::Always)
    };
    let (journal, _) = open(dir.path(), opts);
    let hooks = journal.test_hooks();
    hooks.wait_spares_prepared(1);
    hooks
        .spare_no_wait
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let pause = hooks
        .spare_pause
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    // Record 1 moves into spare 1; spare 2 is held up, so the roll at record 5 goes to a plain
    // segment, which records 6 and 7 keep using.
    append_each(&journal, 1..8).await;
    let stats = journal.stats();
    assert_eq!((stats.segments_prepared, stats.segments_unprepared), (1, 1));
    assert_eq!(
        fs::metadata(dir.path().join(segment_name(5)))
            .unwrap()
            .len(),
        3 * RECORD_BYTES
    );
    drop(pause);
    hooks.wait_spares_prepared(2);
    // Spare 2 is ready: the next append leaves the plain segment for it at once.
    append_each(&journal, 8..9).await;
    assert_eq!(journal.stats().segments_prepared, 2);
    drop(journal);
    assert_eq!(
        fs::metadata(dir.path().join(segment_name(8)))
            .unwrap()
            .len(),
        100
    );
    assert_eq!(read_all(dir.path()).unwrap(), expected(1..=8));
}

#[tokio::test]
async fn a_restart_in_a_prewritten_segment_appends_where_the_records_end() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open(dir.path(), options(JournalSync::Always));
    append_each(&journal, 1..4).await;
    drop(journal);
    let (journal, recovered) = open(dir.path(), options(JournalSync::Always));
    assert_eq!(recovered.records, expected(1..=3));
    append_each(&journal, 4..6).await;
    // Still the same pre-written segment: no roll, no new file.
    let stats = journal.stats();
    assert_eq!((stats.segments_prepared, stats.segments_unprepared), (0, 0));
    drop(journal);
    let segment = dir.path().join(segment_name(1));
    assert_eq!(segments(dir.path()), vec![segment.clone()]);
    assert_eq!(fs::metadata(&segment).unwrap().len(), SEGMENT_BYTES);
    let bytes = fs::read(&segment).unwrap();
    let mut records = Vec::new();
    for i in 1..=5 {
        encode_record(&mut records, i, &payload(i));
    }
    assert_eq!(&bytes[..records.len()], &records[..]);
    assert!(bytes[records.len()..].iter().all(|&byte| byte == 0));
}

#[tokio::test]
async fn a_journal_of_plain_segments_is_read_and_continued_in_prepared_ones() {
    let dir = tempfile::tempdir().unwrap();
    let plain = JournalOptions {
        prewrite_segments: false,
        ..options(JournalSync::Always)
    };
    let (journal, _) = open(dir.path(), plain);
    append_each(&journal, 1..4).await;
    drop(journal);
    assert_eq!(
        fs::metadata(dir.path().join(segment_name(1)))
            .unwrap()
            .len(),
        3 * RECORD_BYTES
    );
    assert!(!dir.path().join(SPARE_NAME).exists());

    let (journal, recovered) = open(dir.path(), options(JournalSync::Always));
    assert_eq!(recovered.records, expected(1..=3));
    append_each(&journal, 4..6).await;
    assert_eq!(journal.stats().segments_prepared, 1);
    drop(journal);
    assert_eq!(
        segments(dir.path()),
        vec![
            dir.path().join(segment_name(1)),
            dir.path().join(segment_name(4))
        ]
    );
    // And back: plain segments continue after pre-written ones.
    let (journal, recovered) = open(dir.path(), plain);
    assert_eq!(recovered.records, expected(1..=5));
    append_each(&journal, 6..7).await;
    drop(journal);
    assert_eq!(read_all(dir.path()).unwrap(), expected(1..=6));
}

/// Background work (checkpoints) runs at nice 19, and in the idle policy only when asked: the
/// part that takes the request path's locks must not sit behind an idle-policy thread.
#[tokio::test]
#[cfg(target_os = "linux")]
async fn background_work_runs_at_nice_19_and_idle_only_when_asked() {
    let read = || {
        // SAFETY: pid/who 0 is the calling thread; both calls only read its settings.
        unsafe {
            (
                libc::sched_getscheduler(0),
                libc::getpriority(libc::PRIO_PROCESS, 0),
            )
        }
    };
    let (policy, nice) = in_background(Background::Idle, read)
        .await
        .expect("the background thread answers");
    assert_eq!((policy, nice), (libc::SCHED_IDLE, 19));
    // SAFETY: pid 0 is the calling thread; the call only reads its policy.
    let ours = unsafe { libc::sched_getscheduler(0) };
    let (policy, nice) = in_background(Background::Low, read)
        .await
        .expect("the background thread answers");
    assert_eq!((policy, nice), (ours, 19), "Low keeps the process's policy");
}

/// The pace's arithmetic: when the next chunk may start, so that the file goes out at the rate,
/// and never faster to catch up after a stall.
#[test]
fn a_paced_write_waits_until_its_next_chunk_is_due() {
    use std::time::Duration;
    let ms = Duration::from_millis;
    let one_mib = WritePace::mib_per_s(1);
    // 512 KiB at 1 MiB/s take half a second: started at 0, the next is due at 500 ms; a chunk
    // that started on time at 500 ms makes the one after it due at 1 s.
    assert_eq!(
        one_mib.next_due(Duration::ZERO, Duration::ZERO, 512 << 10),
        ms(500)
    );
    assert_eq!(one_mib.next_due(ms(500), ms(500), 512 << 10), ms(1000));
    // A chunk that started 2 s late (a stall) earns no credit: the next is due half a second
    // after its start, not at once.
    assert_eq!(one_mib.next_due(ms(500), ms(2500), 512 << 10), ms(3000));
    // Unpaced, and 0 MiB/s, never wait: the next chunk is due when this one started.
    assert_eq!(WritePace::unpaced().next_due(ms(9), ms(7), u64::MAX), ms(7));
    assert_eq!(
        WritePace::mib_per_s(0).next_due(ms(9), ms(7), 1 << 30),
        ms(7)
    );
    // The largest sizes and rates neither overflow nor panic.
    assert!(
        one_mib.next_due(Duration::ZERO, Duration::ZERO, u64::MAX) > Duration::from_secs(1 << 30)
    );
    assert_eq!(
        WritePace::mib_per_s(u32::MAX).next_due(ms(1), ms(1), 1),
        ms(1)
    );
    assert_eq!(
        one_mib.next_due(Duration::MAX, Duration::ZERO, u64::MAX),
        Duration::MAX
    );
    // Hurried (a shutdown), the pace and every clone of it stop waiting at once.
    let clone = one_mib.clone();
    one_mib.hurry();
    assert_eq!(clone.next_due(ms(500), ms(500), 512 << 10), ms(500));
    // The chunk size is the configured rate's, hurried or not.
    assert_eq!(clone.chunk_bytes(), 256 << 10);
}

/// About a 32nd of a second's worth between syncs, within 256 KiB and 8 MiB.
#[test]
fn a_paced_write_syncs_about_32_times_a_second() {
    assert_eq!(WritePace::mib_per_s(32).chunk_bytes(), 1 << 20);
    assert_eq!(WritePace::mib_per_s(64).chunk_bytes(), 2 << 20);
    assert_eq!(WritePace::mib_per_s(1).chunk_bytes(), 256 << 10);
    assert_eq!(WritePace::mib_per_s(4096).chunk_bytes(), 8 << 20);
    assert_eq!(WritePace::unpaced().chunk_bytes(), 8 << 20);
    assert_eq!(WritePace::mib_per_s(0).chunk_bytes(), 8 << 20);
}

/// A file written in several paced chunks is whole and byte for byte what was given, it replaces
/// the old one, and no temporary file is left; the write took at least as long as its rate
/// allows (a lower bound the pace guarantees, not a measure of speed).
#[test]
fn a_paced_write_leaves_the_whole_file_and_keeps_to_its_rate() {
    let dir = tempfile::tempdir().unwrap();
    let pace = WritePace::mib_per_s(8);
    assert_eq!(pace.chunk_bytes(), 256 << 10);
    write_durably(dir.path(), "cp.bin", &[b"old"], pace.clone()).unwrap();
    // Three full chunks and a part of one.
    let bytes: Vec<u8> = (0..(3 * (256 << 10) + 17))
        .map(|i| (i % 251) as u8)
        .collect();
    let began = std::time::Instant::now();
    write_durably(dir.path(), "cp.bin", &[&bytes], pace).unwrap();
    let took = began.elapsed();
    assert_eq!(fs::read(dir.path().join("cp.bin")).unwrap(), bytes);
    assert!(!dir.path().join("cp.bin.tmp").exists());
    // The fourth chunk may start only when three chunks of 256 KiB at 8 MiB/s are due: 93.75 ms.
    assert!(took >= std::time::Duration::from_millis(93), "{took:?}");
}

/// A checkpoint encoded straight into the file (`postcard::to_extend`) comes out byte for byte
/// as the same value encoded into one buffer, across several paced chunks, and replaces the old
/// file only at `commit`.
#[test]
fn a_file_encoded_as_it_is_written_equals_the_buffered_encoding() {
    let dir = tempfile::tempdir().unwrap();
    write_durably(dir.path(), "cp.bin", &[b"old"], WritePace::unpaced()).unwrap();
    // About 900 KB of varints: four chunks of 256 KiB at 8 MiB/s.
    let value: Vec<(u64, String)> = (0..60_000u64)
        .map(|i| (i * 7_919, format!("record {i}")))
        .collect();
    let expected = postcard::to_allocvec(&value).unwrap();
    assert!(expected.len() > 3 * (256 << 10));
    let file = DurableFile::create(dir.path(), "cp.bin", WritePace::mib_per_s(8)).unwrap();
    let file = postcard::to_extend(&value, file).unwrap();
    assert_eq!(fs::read(dir.path().join("cp.bin")).unwrap(), b"old");
    // The running CRC covers the chunks written and the bytes still buffered.
    assert_eq!(file.crc32(), crc32fast::hash(&expected));
    assert_eq!(file.commit().unwrap(), expected.len() as u64);
    assert_eq!(fs::read(dir.path().join("cp.bin")).unwrap(), expected);
    assert!(!dir.path().join("cp.bin.tmp").exists());

    // Dropped before its commit, a file replaces nothing and leaves no temporary file.
    let mut file = DurableFile::create(dir.path(), "cp.bin", WritePace::unpaced()).unwrap();
    file.write_slice(b"never committed");
    assert!(dir.path().join("cp.bin.tmp").exists());
    drop(file);
    assert_eq!(fs::read(dir.path().join("cp.bin")).unwrap(), expected);
    assert!(!dir.path().join("cp.bin.tmp").exists());
}

/// A checkpoint file that cannot be created is an error, not a panic.
#[test]
fn a_durable_file_in_a_missing_folder_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-folder");
    assert!(DurableFile::create(&missing, "cp.bin", WritePace::unpaced()).is_err());
    assert!(write_durably(&missing, "cp.bin", &[b"x"], WritePace::unpaced()).is_err());
}

/// However the bytes arrive (a slice after a partial chunk, one long run through `Extend`), at
/// most a chunk is held, and each full chunk is written and synced on its own.
#[test]
fn a_durable_file_holds_at_most_one_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let pace = WritePace::mib_per_s(8);
    pace.hurry(); // no pauses: this test is about chunks, not time
    let chunk = 256 << 10;
    let mut file = DurableFile::create(dir.path(), "cp.bin", pace).unwrap();
    assert_eq!(file.chunk, chunk);
    file.write_slice(&[1]);
    file.write_slice(&vec![2; 4 * chunk]);
    assert_eq!(file.written, 4 * chunk as u64);
    assert_eq!(file.buf.len(), 1);
    file.extend(std::iter::repeat_n(3u8, 3 * chunk - 1));
    assert_eq!(file.written, 7 * chunk as u64);
    assert!(file.buf.is_empty());
    file.extend(std::iter::repeat_n(4u8, 10));
    assert_eq!(file.buf.len(), 10);
    assert_eq!(file.commit().unwrap(), 7 * chunk as u64 + 10);
    let bytes = fs::read(dir.path().join("cp.bin")).unwrap();
    assert_eq!(bytes.len(), 7 * chunk + 10);
    assert_eq!((bytes[0], bytes[1], bytes[4 * chunk]), (1, 2, 2));
    assert_eq!(
        (bytes[4 * chunk + 1], bytes[7 * chunk - 1], bytes[7 * chunk]),
        (3, 3, 4)
    );
}

/// A write that fails (a full disk: the temporary file is `/dev/full`) is reported by `commit`,
/// and the old checkpoint stays as it was.
#[cfg(target_os = "linux")]
#[test]
fn a_failed_checkpoint_write_is_an_error_and_keeps_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    write_durably(dir.path(), "cp.bin", &[b"old"], WritePace::unpaced()).unwrap();
    std::os::unix::fs::symlink("/dev/full", dir.path().join("cp.bin.tmp")).unwrap();
    let mut file = DurableFile::create(dir.path(), "cp.bin", WritePace::unpaced()).unwrap();
    file.write_slice(&vec![5; 9 << 20]);
    file.extend(std::iter::repeat_n(6u8, 100));
    let err = file.commit().expect_err("a full disk fails the checkpoint");
    assert_eq!(err.raw_os_error(), Some(28), "ENOSPC: {err}");
    assert_eq!(fs::read(dir.path().join("cp.bin")).unwrap(), b"old");
    // The half-written file goes, so it keeps no space the journal needs.
    assert!(fs::symlink_metadata(dir.path().join("cp.bin.tmp")).is_err());
}

/// Whether files in `dir` can be written with `O_DIRECT` (ext4 and xfs can; tmpfs before Linux
/// 6.6 cannot), tried the way the spare tries it.
fn direct_io_works_in(dir: &Path) -> bool {
    let path = dir.join("probe");
    let works = super::direct::open(&path, true).is_ok_and(|file| {
        use std::os::unix::fs::FileExt;
        let mut block = super::direct::AlignedBuf::default();
        file.write_all_at(block.zeroed(super::direct::BLOCK_BYTES), 0)
            .is_ok()
    });
    let _ = fs::remove_file(&path);
    works
}

#[tokio::test]
async fn prewritten_segments_are_written_direct_where_the_file_system_allows() {
    let dir = tempfile::tempdir().unwrap();
    let direct = direct_io_works_in(dir.path());
    // Two blocks a segment: about 150 records of 27 bytes, so batches cross block boundaries
    // and segments fill and overshoot.
    let opts = JournalOptions {
        segment_bytes_max: 8192,
        ..options(JournalSync::Always)
    };
    let (journal, _) = open(dir.path(), opts);
    append_each(&journal, 1..701).await;
    let flushed: Vec<_> = (701..1001).map(|i| journal.append(&payload(i))).collect();
    for (i, t) in (701..).zip(flushed) {
        assert_eq!(t.await.unwrap(), i);
    }
    let stats = journal.stats();
    assert!(stats.segments_prepared >= 2, "{stats:?}");
    let expect_direct = if direct { stats.segments_prepared } else { 0 };
    if !direct {
        eprintln!(
            "no O_DIRECT in {:?}: the buffered fallback was tested",
            dir.path()
        );
    }
    assert_eq!(stats.segments_direct, expect_direct, "direct: {direct}");
    drop(journal);
    // Every record back, in order, from segments whose records are followed only by fill.
    assert_eq!(read_all(dir.path()).unwrap(), expected(1..=1000));
    for path in segments(dir.path()) {
        let bytes = fs::read(&path).unwrap();
        if direct {
            assert_eq!(bytes.len() % super::direct::BLOCK_BYTES, 0, "{path:?}");
        }
    }
    // And continued after a restart, which writes the open segment buffered.
    let (journal, recovered) = open(dir.path(), opts);
    assert_eq!(recovered.records.len(), 1000);
    append_each(&journal, 1001..1101).await;
    drop(journal);
    assert_eq!(read_all(dir.path()).unwrap(), expected(1..=1100));
}

#[tokio::test]
async fn direct_io_is_off_when_asked_and_without_sync_always() {
    for opts in [
        JournalOptions {
            direct_io: false,
            ..options(JournalSync::Always)
        },
        options(JournalSync::None),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let opts = JournalOptions {
            segment_bytes_max: 8192,
            ..opts
        };
        let (journal, _) = open(dir.path(), opts);
        append_each(&journal, 1..701).await;
        let stats = journal.stats();
        assert!(stats.segments_prepared >= 2, "{stats:?}");
        assert_eq!(stats.segments_direct, 0);
        drop(journal);
        assert_eq!(read_all(dir.path()).unwrap(), expected(1..=700));
    }
}

#[tokio::test]
async fn a_spare_whose_direct_write_is_refused_is_written_buffered() {
    let dir = tempfile::tempdir().unwrap();
    let opts = JournalOptions {
        segment_bytes_max: 8192,
        ..options(JournalSync::Always)
    };
    let (journal, _) = open(dir.path(), opts);
    // Every spare from here (the first may be ready already) is refused at its first write.
    journal
        .test_hooks()
        .refuse_direct
        .store(true, std::sync::atomic::Ordering::Release);
    append_each(&journal, 1..701).await;
    let stats = journal.stats();
    assert!(stats.segments_prepared >= 3, "{stats:?}");
    assert!(
        stats.segments_direct <= 1,
        "refused spares were used direct: {stats:?}"
    );
    drop(journal);
    assert_eq!(read_all(dir.path()).unwrap(), expected(1..=700));
}

#[tokio::test]
async fn a_direct_write_refused_in_the_writer_goes_on_buffered_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    if !direct_io_works_in(dir.path()) {
        eprintln!("no O_DIRECT in {:?}: nothing to refuse", dir.path());
        return;
    }
    let opts = JournalOptions {
        segment_bytes_max: 8192,
        ..options(JournalSync::Always)
    };
    let (journal, _) = open(dir.path(), opts);
    // Into the first direct segment, with a partial block to carry.
    append_each(&journal, 1..201).await;
    assert!(journal.stats().segments_direct >= 1);
    journal
        .test_hooks()
        .refuse_next_direct_write
        .store(true, std::sync::atomic::Ordering::Release);
    append_each(&journal, 201..801).await;
    let stats = journal.stats();
    // Spares asked for after the refusal are buffered; one may have been prepared before it.
    let direct_after = stats.segments_direct;
    // About four segments' worth: each would be direct again without the refusal remembered.
    append_each(&journal, 801..2001).await;
    assert!(
        journal.stats().segments_direct <= direct_after + 1,
        "still writing spares direct after a refusal: {:?}",
        journal.stats()
    );
    assert!(journal.stats().segments_prepared > stats.segments_prepared);
    drop(journal);
    assert_eq!(read_all(dir.path()).unwrap(), expected(1..=2000));
}

/// The same appends, direct and buffered, give the same bytes in every segment, but for the
/// zeros a direct write adds after a batch that crosses the segment's size.
#[tokio::test]
async fn direct_and_buffered_segments_hold_the_same_bytes() {
    let mut contents = Vec::new();
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    for (dir, direct_io) in dirs.iter().zip([true, false]) {
        let opts = JournalOptions {
            segment_bytes_max: 8192,
            direct_io,
            ..options(JournalSync::Always)
        };
        let (journal, _) = open(dir.path(), opts);
        // Uneven payloads, some larger than a block.
        for i in 1..400u64 {
            let p = Bytes::from(vec![(i % 251) as u8 | 1; (i as usize * 37) % 5000]);
            assert_eq!(journal.append(&p).await.unwrap(), i);
        }
        drop(journal);
        let names: Vec<_> = segments(dir.path())
            .iter()
            .map(|p| (p.file_name().unwrap().to_owned(), fs::read(p).unwrap()))
            .collect();
        contents.push(names);
    }
    let (direct, buffered) = (&contents[0], &contents[1]);
    assert_eq!(direct.len(), buffered.len(), "segments");
    for ((name, d), (other, b)) in direct.iter().zip(buffered) {
        assert_eq!(name, other);
        let common = d.len().min(b.len());
        assert_eq!(&d[..common], &b[..common], "{name:?}");
        let rest = if d.len() > common {
            &d[common..]
        } else {
            &b[common..]
        };
        assert!(
            rest.iter().all(|&z| z == 0),
            "{name:?}: more than fill differs"
        );
    }
}
