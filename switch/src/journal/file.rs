//! [`FileJournal`]: the embedded journal backend. Opening (recovery's verdict acted on: torn tail
//! cut, first segment created), the bounded append queue, and the writer thread that group-commits
//! batches into segment files and rolls segments over.
//!
//! What a segment looks like is [`super::format`]'s; reading segments and judging damage is
//! [`super::recovery`]'s; pre-writing the next segment is [`super::spare`]'s, into a file of its
//! own that this writer renames into place. This file is the only one that writes segments.
//!
//! Why a `std::thread` rather than a tokio task: `write` and `fsync` block for milliseconds on a
//! real disk, and on a tokio worker that would stall every connection scheduled there. One thread
//! also gives the journal a single order of LSNs: callers only reserve a queue slot (one atomic
//! add) and copy their payload onto a short-locked queue; the writer assigns LSNs as it takes
//! records off it.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{oneshot, watch};

use super::direct::DirectTail;
use super::format::{self, PAYLOAD_BYTES_MAX};
use super::recovery::{self, Recovered};
use super::spare::{Prepared, Spare};
use super::{Admission, AppendTicket, Journal, JournalError, JournalOptions, Lsn};
use crate::config::JournalSync;
use crate::metrics::{
    JOURNAL_BATCH_RECORDS, JOURNAL_BYTES_TOTAL, JOURNAL_DELAYED_COMMITS_TOTAL,
    JOURNAL_FSYNC_SECONDS, JOURNAL_WRITE_SECONDS,
};

/// Capacity the batch buffer starts with, and keeps: one large record grows it, and it is given
/// back after that batch so a rare big payload does not pin memory for the process's life. The
/// writer's payload buffer (see [`Payloads`]) is given back above the same size.
const BATCH_BUFFER_BYTES: usize = 256 * 1024;

/// Where a ticket's outcome is sent.
type Completion = oneshot::Sender<Result<Lsn, JournalError>>;

/// The journal in a directory of segment files, written by one background thread with group
/// commit. See the [module docs](super) for the format and the durability rules.
///
/// Dropping it closes it, lets the writer finish every queued record, and joins the writer thread,
/// so drop it where blocking for one last batch is acceptable (shutdown), not on a hot task.
#[derive(Debug)]
pub struct FileJournal {
    /// Where appends wait for the writer.
    queue: Arc<Queue>,
    shared: Arc<Shared>,
    writer: Option<thread::JoinHandle<()>>,
    queue_depth_max: usize,
    /// The last LSN written by a group commit (durable by the sync policy).
    progress: watch::Receiver<Lsn>,
}

/// Counters of what the writer has done since open, for tests, benches and diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JournalStats {
    /// Group commits that wrote at least one record.
    pub batches: u64,
    /// Records written.
    pub records: u64,
    /// `sync_data` calls that succeeded.
    pub fsyncs: u64,
    /// Bytes written, record headers included.
    pub bytes: u64,
    /// Segments started in a pre-written spare (appends overwrite fill; fdatasync only flushes
    /// data).
    pub segments_prepared: u64,
    /// Of those, segments written with `O_DIRECT` ([`super::direct`]).
    pub segments_direct: u64,
    /// Segments started as plain appended files because no spare was ready (or pre-writing is off).
    pub segments_unprepared: u64,
    /// Spares the helper thread has finished writing and syncing (used or waiting).
    pub spares_prepared: u64,
    /// Group commits that waited for `group_commit_delay` before starting.
    pub delayed_commits: u64,
}

/// A request to the writer thread.
#[derive(Debug)]
enum Request {
    /// `done` is `None` for [`Journal::append_covered`]: a later record's ticket answers for it.
    /// The payload is the next `len` bytes of the queue's [`Payloads`].
    Append {
        len: u32,
        done: Option<Completion>,
    },
    Flush {
        done: Completion,
    },
}

impl Request {
    /// Someone waits on it (a ticketed append or a flush), so the writer is woken for it.
    fn is_wanted(&self) -> bool {
        !matches!(self, Request::Append { done: None, .. })
    }
}

/// State shared by the appending side, the writer and the spare's helper.
#[derive(Debug, Default)]
pub(super) struct Shared {
    closed: AtomicBool,
    /// Set once by the writer when a write or fsync fails; appends then fail fast.
    failed: OnceLock<Arc<JournalError>>,
    /// Records queued or in the batch being written (not flushes, which carry no payload).
    queued: AtomicUsize,
    batches: AtomicU64,
    records: AtomicU64,
    fsyncs: AtomicU64,
    bytes: AtomicU64,
    segments_prepared: AtomicU64,
    segments_direct: AtomicU64,
    segments_unprepared: AtomicU64,
    pub(super) spares_prepared: AtomicU64,
    delayed_commits: AtomicU64,
    #[cfg(test)]
    pub(super) hooks: TestHooks,
}

/// Ways for tests to steer the writer deterministically instead of racing it with sleeps.
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct TestHooks {
    /// The writer takes this lock after it is woken for a batch and before taking it off the
    /// queue, so a test holding it keeps everything it appends in the queue.
    pub(crate) pause: std::sync::Mutex<()>,
    /// The next `sync_data` fails with an injected error.
    pub(crate) fail_next_sync: AtomicBool,
    /// The spare's helper takes this lock before preparing each spare, so a test holding it keeps
    /// the next spare from being ready.
    pub(crate) spare_pause: std::sync::Mutex<()>,
    /// Whether the writer uses a spare only if it is ready, as in production, instead of waiting
    /// for the one in preparation. Tests wait by default, so which segments are pre-written (and
    /// so their names) does not depend on the helper's timing.
    pub(crate) spare_no_wait: AtomicBool,
    /// The spare's direct writes are refused as a file system without `O_DIRECT` would.
    pub(crate) refuse_direct: AtomicBool,
    /// The writer's next direct write is refused the same way.
    pub(crate) refuse_next_direct_write: AtomicBool,
    /// Spares the helper has finished (or failed) so far, with a condvar to wait on.
    spares_done: (std::sync::Mutex<u64>, std::sync::Condvar),
}

#[cfg(test)]
impl TestHooks {
    pub(super) fn spare_prepared(&self) {
        let (count, changed) = &self.spares_done;
        *count
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
        changed.notify_all();
    }

    /// Blocks until the helper has finished `n` spares since open.
    pub(crate) fn wait_spares_prepared(&self, n: u64) {
        let (count, changed) = &self.spares_done;
        let guard = count
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        drop(
            changed
                .wait_while(guard, |done| *done < n)
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
    }
}

impl FileJournal {
    /// Opens (creating if missing) the journal in `dir`: recovers every intact record, cuts a torn
    /// tail left by a crash, and starts the writer thread. Appends continue after the last intact
    /// record. Fails with [`JournalError::Corrupt`] if damage is found anywhere a crash cannot
    /// explain, and with [`JournalError::Io`] if the directory cannot be read or written.
    pub fn open(
        dir: &Path,
        opts: JournalOptions,
    ) -> Result<(FileJournal, Recovered), JournalError> {
        Self::open_after(dir, opts, 0)
    }

    /// Like [`FileJournal::open`], for a caller whose checkpoint already covers every record up
    /// to LSN `covered`: only the records after it are returned, and segments holding nothing
    /// after it are not read at all, so restart time follows the journal's tail rather than its
    /// length. Appends still continue after the last intact record.
    pub fn open_after(
        dir: &Path,
        opts: JournalOptions,
        covered: Lsn,
    ) -> Result<(FileJournal, Recovered), JournalError> {
        let mut records = Vec::new();
        let (journal, truncated_tail_bytes) =
            Self::open_streaming(dir, opts, covered, &mut |lsn, payload| {
                records.push((lsn, payload))
            })?;
        let recovered = Recovered {
            records,
            truncated_tail_bytes,
        };
        Ok((journal, recovered))
    }

    /// Like [`FileJournal::open_after`], handing each recovered record to `sink` as its segment
    /// is read instead of returning them all: a segment's buffer is let go once its records are
    /// handed over, so recovery holds one segment at a time (unless `sink` keeps the payloads),
    /// not the whole journal. Returns the journal and the bytes of a torn tail cut from the end
    /// (see [`Recovered::truncated_tail_bytes`]). On an error, what `sink` was given may belong to
    /// a damaged journal and must be discarded.
    pub fn open_streaming(
        dir: &Path,
        opts: JournalOptions,
        covered: Lsn,
        sink: &mut dyn FnMut(Lsn, Bytes),
    ) -> Result<(FileJournal, u64), JournalError> {
        create_dir(dir)?;
        let scan = recovery::scan(dir, covered, sink)?;
        let mut truncated_tail_bytes = 0;
        let (path, segment_len, file_len) = match scan.last {
            Some(last) => {
                let mut file_len = last.file_len;
                if let Some(torn) = last.torn {
                    // Cut rather than zeroed: the segment is then a plain one, which the writer
                    // leaves for a spare as soon as one is ready.
                    truncate(&last.path, last.valid_len)?;
                    file_len = last.valid_len;
                    truncated_tail_bytes = torn.bytes;
                    tracing::warn!(
                        segment = %last.path.display(),
                        offset = torn.offset,
                        bytes_dropped = torn.bytes,
                        reason = torn.reason,
                        "journal had a torn tail from an interrupted write; truncated it"
                    );
                }
                (last.path, last.valid_len, file_len)
            }
            None => (create_segment(dir, scan.next_lsn)?, 0, 0),
        };
        let mut file = open_segment(&path)?;
        // Appends continue where the records end, not at the end of the file: the rest of a
        // pre-written segment is fill.
        file.seek(SeekFrom::Start(segment_len))
            .map_err(|source| JournalError::io("seek", &path, source))?;
        tracing::info!(
            dir = %dir.display(),
            records = scan.records,
            next_lsn = scan.next_lsn,
            segment = %path.display(),
            segment_bytes = segment_len,
            "journal opened"
        );

        let shared = Arc::new(Shared::default());
        let queue = Arc::new(Queue::default());
        let spare = if opts.prewrite_segments && opts.segment_bytes_max > 0 {
            Some(Spare::start(
                dir,
                opts.segment_bytes_max,
                opts.direct_io && opts.sync == JournalSync::Always,
                Arc::clone(&shared),
            )?)
        } else {
            None
        };
        let (progress_tx, progress) = watch::channel(scan.next_lsn.saturating_sub(1));
        let writer = Writer {
            dir: dir.to_owned(),
            sync: opts.sync,
            segment_bytes_max: opts.segment_bytes_max,
            group_commit_max: opts.group_commit_max.max(1),
            group_commit_delay: opts.group_commit_delay,
            group_commit_delay_min_records: opts.group_commit_delay_min_records.max(1),
            file,
            path,
            segment_len,
            // A segment written up to the size limit already (ours, or a full one) never needs
            // a spare before it rolls; a shorter one is left as soon as a spare is ready.
            prepared: spare.is_none() || file_len >= opts.segment_bytes_max,
            spare,
            // The segment left open at the last stop is written buffered to its end: direct
            // writes need its last partial block, and it is one segment.
            direct: None,
            next_lsn: scan.next_lsn,
            dirty: false,
            buf: Vec::with_capacity(BATCH_BUFFER_BYTES),
            appends: Vec::new(),
            flushes: Vec::new(),
            failed: None,
            shared: Arc::clone(&shared),
            progress: progress_tx,
            meters: WriterMeters::new(),
        };
        let handle = thread::Builder::new()
            .name("journal-writer".to_owned())
            .spawn({
                let queue = Arc::clone(&queue);
                move || writer.run(&queue)
            })
            .map_err(|source| JournalError::io("start writer thread", dir, source))?;
        let journal = FileJournal {
            queue,
            shared,
            writer: Some(handle),
            queue_depth_max: opts.queue_depth_max.max(1),
            progress,
        };
        Ok((journal, truncated_tail_bytes))
    }

    /// What the writer has done since open.
    pub fn stats(&self) -> JournalStats {
        let shared = &self.shared;
        JournalStats {
            batches: shared.batches.load(Ordering::Relaxed),
            records: shared.records.load(Ordering::Relaxed),
            fsyncs: shared.fsyncs.load(Ordering::Relaxed),
            bytes: shared.bytes.load(Ordering::Relaxed),
            segments_prepared: shared.segments_prepared.load(Ordering::Relaxed),
            segments_direct: shared.segments_direct.load(Ordering::Relaxed),
            segments_unprepared: shared.segments_unprepared.load(Ordering::Relaxed),
            spares_prepared: shared.spares_prepared.load(Ordering::Relaxed),
            delayed_commits: shared.delayed_commits.load(Ordering::Relaxed),
        }
    }

    /// The last LSN written, as it changes: published once per group commit, once the batch is
    /// written (and synced as the policy says) and before its tickets complete, so a reader woken
    /// by it finds the batch's records in the segment files.
    /// Starts at the last recovered LSN (0 for an empty journal). Lets a reader follow the journal
    /// (tests waiting for a record, tools) without polling the files. A covered record
    /// ([`Journal::append_covered`]) shows here only once the append that covers it is written.
    pub fn progress(&self) -> watch::Receiver<Lsn> {
        self.progress.clone()
    }

    #[cfg(test)]
    pub(crate) fn test_hooks(&self) -> &TestHooks {
        &self.shared.hooks
    }

    /// The error a request gets once the writer has failed.
    fn failed(&self) -> Option<JournalError> {
        self.shared
            .failed
            .get()
            .map(|cause| JournalError::Failed(Arc::clone(cause)))
    }

    /// Queues an append after the checks every append gets (the depth only for new work);
    /// `Err` means it was not queued.
    fn queue(
        &self,
        payload: &[u8],
        done: Option<Completion>,
        admission: Admission,
    ) -> Result<(), JournalError> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(JournalError::Closed);
        }
        if let Some(error) = self.failed() {
            return Err(error);
        }
        if payload.len() > PAYLOAD_BYTES_MAX {
            return Err(JournalError::PayloadTooLarge { len: payload.len() });
        }
        // Reserve the slot before sending, so concurrent appends cannot overshoot the bound.
        if self.shared.queued.fetch_add(1, Ordering::AcqRel) >= self.queue_depth_max
            && admission == Admission::New
        {
            self.shared.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(JournalError::Overloaded);
        }
        self.queue
            .push(
                Request::Append {
                    len: payload.len() as u32,
                    done,
                },
                payload,
            )
            .inspect_err(|_| {
                self.shared.queued.fetch_sub(1, Ordering::AcqRel);
            })
    }
}

impl Journal for FileJournal {
    fn append_as(&self, payload: &[u8], admission: Admission) -> AppendTicket {
        let (done, receiver) = oneshot::channel();
        match self.queue(payload, Some(done), admission) {
            Ok(()) => AppendTicket::pending(receiver),
            Err(error) => AppendTicket::ready(Err(error)),
        }
    }

    fn append_covered(&self, payload: &[u8], admission: Admission) -> Result<(), JournalError> {
        self.queue(payload, None, admission)
    }

    fn flush(&self) -> AppendTicket {
        // Allowed after close: shutdown closes first, then flushes to wait for the queue to drain.
        // Not counted against `queue_depth_max`: a flush holds no payload, and refusing one at
        // shutdown because traffic filled the queue would lose the only way to wait for it.
        if let Some(error) = self.failed() {
            return AppendTicket::ready(Err(error));
        }
        let (done, receiver) = oneshot::channel();
        match self.queue.push(Request::Flush { done }, &[]) {
            Ok(()) => AppendTicket::pending(receiver),
            Err(error) => AppendTicket::ready(Err(error)),
        }
    }

    fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
    }
}

impl Drop for FileJournal {
    fn drop(&mut self) {
        self.close();
        // The writer's signal to finish the queue and exit.
        self.queue.end();
        if let Some(handle) = self.writer.take()
            && handle.join().is_err()
        {
            tracing::error!("journal writer thread panicked");
        }
    }
}

/// The appends waiting for the writer, and the writer's sleep.
///
/// Not a channel, because a channel wakes its receiver for every send. An append covered by a
/// later ticket ([`Journal::append_covered`]) needs no writer of its own: the writer sleeps until
/// an append someone waits on (a ticket or a flush) arrives, then takes what is queued (up to
/// `group_commit_max` records a batch, until nothing waited-on is left). At low
/// concurrency that is one fsync per transaction instead of one for the request record and
/// another for the decision (docs/performance.md, "The floor ladder").
#[derive(Debug, Default)]
struct Queue {
    state: Mutex<QueueState>,
    wake: Condvar,
}

#[derive(Debug, Default)]
struct QueueState {
    requests: VecDeque<Request>,
    /// The queued appends' payloads, back to back in queue order.
    payloads: Payloads,
    /// Queued requests someone waits on (ticketed appends and flushes).
    wanted: usize,
    /// The writer is asleep in [`Queue::wait_for_work`] and must be woken for wanted work.
    writer_asleep: bool,
    /// The journal was dropped: the writer handles what is queued, then exits.
    ending: bool,
    /// The writer has exited: nothing queued will be handled.
    ended: bool,
}

impl Queue {
    /// Nothing under this lock panics half way through a change, except [`Payloads::take`] if the
    /// queued lengths and bytes ever disagreed (a bug). That can only happen on the writer
    /// thread, whose exit then marks the queue ended ([`EndOnExit`]), so every later append
    /// fails: a poisoned lock is used as is.
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `request`, with `payload` as its bytes if it is an append.
    fn push(&self, request: Request, payload: &[u8]) -> Result<(), JournalError> {
        let wanted = request.is_wanted();
        let wake = {
            let mut st = self.lock();
            if st.ended || st.ending {
                return Err(JournalError::Closed);
            }
            st.payloads.bytes.extend_from_slice(payload);
            st.requests.push_back(request);
            if wanted {
                st.wanted += 1;
            }
            let wake = wanted && st.writer_asleep;
            if wake {
                st.writer_asleep = false;
            }
            wake
        };
        if wake {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Sleeps until something queued is waited on, or the journal is ending with requests
    /// left. `false` once the journal is ending and nothing is queued.
    fn wait_for_work(&self) -> bool {
        let mut st = self.lock();
        loop {
            if st.wanted > 0 || (st.ending && !st.requests.is_empty()) {
                return true;
            }
            if st.ending {
                return false;
            }
            st.writer_asleep = true;
            st = self.wake.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Moves the queued requests holding up to `records_max` records (flushes hold none) into
    /// `out`, oldest first, and their payloads into `payloads` (which the caller has emptied),
    /// back to back in the same order.
    fn take(&self, records_max: usize, out: &mut Vec<Request>, payloads: &mut Vec<u8>) {
        let mut st = self.lock();
        let mut records = 0;
        let mut bytes = 0;
        while records < records_max {
            let Some(request) = st.requests.pop_front() else {
                break;
            };
            if let Request::Append { len, .. } = request {
                records += 1;
                bytes += len as usize;
            }
            if request.is_wanted() {
                st.wanted -= 1;
            }
            out.push(request);
        }
        let everything = st.requests.is_empty();
        st.payloads.take(bytes, everything, payloads);
    }

    /// The writer's wait of [`JournalOptions::group_commit_delay`]: `d`, or until the journal is
    /// dropped. Appends meanwhile do not wake it (the writer is not asleep for them).
    fn pause(&self, d: std::time::Duration) {
        let st = self.lock();
        drop(
            self.wake
                .wait_timeout_while(st, d, |st| !st.ending)
                .unwrap_or_else(PoisonError::into_inner),
        );
    }

    /// The journal is dropped: the writer finishes the queue and exits.
    fn end(&self) {
        self.lock().ending = true;
        self.wake.notify_one();
    }
}

/// The payloads of the queued appends, copied in by the appending threads.
///
/// Why one buffer rather than a `Bytes` per record: a record was an allocation on the appending
/// worker and a free on the writer thread, and a free from another thread is paid again by the
/// allocating thread when it collects it. With three or four records per transaction that was
/// about 3.5% of the switch workers' samples with the encoding's own buffer, and the collection
/// of the frees another 1.5% (docs/performance.md, "Metric handles kept, and journal payloads
/// without an allocation each"). The writer takes the whole buffer in exchange for its own
/// emptied one when it takes the whole queue, which is the usual case, so in steady state
/// neither side allocates.
///
/// The cost, only under a backlog: the buffer grows by doubling, and a batch cut short by
/// `group_commit_max` moves the rest to the front once more than half is taken. Both copy
/// under the queue's lock, so appending workers wait for them: at `queue_depth_max` (65,536)
/// records of about 150 bytes the last doubling copies some 5 MB, about a millisecond, once per
/// backlog (the writer gives a grown buffer back after the batch that takes it).
#[derive(Debug, Default)]
struct Payloads {
    bytes: Vec<u8>,
    /// Where the first queued payload starts: the bytes before it were taken by the writer in a
    /// batch that left requests behind (`group_commit_max` reached).
    head: usize,
}

impl Payloads {
    /// Moves the first `len` queued bytes to the end of `out` (which is empty). `everything`
    /// says they are all the bytes queued: then the buffers are exchanged instead of copied.
    fn take(&mut self, len: usize, everything: bool, out: &mut Vec<u8>) {
        if everything && self.head == 0 {
            debug_assert_eq!(len, self.bytes.len());
            std::mem::swap(&mut self.bytes, out);
            return;
        }
        let end = self.head + len;
        out.extend_from_slice(&self.bytes[self.head..end]);
        self.head = end;
        if self.head == self.bytes.len() {
            self.bytes.clear();
            self.head = 0;
        } else if self.head > self.bytes.len() / 2 {
            // More taken than left: move the rest to the front, so a queue that never empties
            // (a backlog above `group_commit_max`) does not grow its buffer for good. Each byte
            // moves at most once per halving, so this costs no more than the copies above.
            self.bytes.drain(..self.head);
            self.head = 0;
        }
    }
}

/// Marks the queue ended when the writer thread leaves, however it leaves: later appends fail
/// with [`JournalError::Closed`], and tickets still queued resolve to it (their senders are
/// dropped here).
struct EndOnExit<'a>(&'a Queue);

impl Drop for EndOnExit<'_> {
    fn drop(&mut self) {
        let left = {
            let mut st = self.0.lock();
            st.ended = true;
            st.wanted = 0;
            st.payloads = Payloads::default();
            std::mem::take(&mut st.requests)
        };
        drop(left);
    }
}

/// The writer thread's state: the open segment and the batch being built.
struct Writer {
    dir: PathBuf,
    sync: JournalSync,
    segment_bytes_max: u64,
    group_commit_max: usize,
    group_commit_delay: Duration,
    group_commit_delay_min_records: usize,
    file: File,
    path: PathBuf,
    /// Bytes of records in the current segment: the write position.
    segment_len: u64,
    /// Whether the current segment was pre-written to `segment_bytes_max` (or pre-writing is off,
    /// so there is nothing better to move to). If not, the writer moves to a spare as soon as one
    /// is ready, even before the segment is full.
    prepared: bool,
    /// The helper preparing the next segment; `None` when pre-writing is off.
    spare: Option<Spare>,
    /// The current segment is open with `O_DIRECT` and written in whole blocks through this.
    direct: Option<DirectTail>,
    /// LSN of the first record of the batch being built.
    next_lsn: Lsn,
    /// Bytes written since the last successful `sync_data`.
    dirty: bool,
    /// The batch's encoded records; reused across batches.
    buf: Vec<u8>,
    /// Tickets of the batch's records, in LSN order from `next_lsn` (`None`: covered by a later
    /// ticket).
    appends: Vec<Option<Completion>>,
    flushes: Vec<Completion>,
    /// Set after a write or fsync failure; everything after it is refused.
    failed: Option<Arc<JournalError>>,
    shared: Arc<Shared>,
    /// Where the last LSN written is published (see [`FileJournal::progress`]).
    progress: watch::Sender<Lsn>,
    meters: WriterMeters,
}

/// The writer's metric handles, registered once when the journal opens (so after the process
/// installed its recorder, as the switch and the bench grid do first). Looked up by name on
/// every group commit they cost about 570 instructions a commit, a commit a request at light
/// load (docs/performance.md, "Instructions per answer").
struct WriterMeters {
    write_seconds: metrics::Histogram,
    fsync_seconds: metrics::Histogram,
    batch_records: metrics::Histogram,
    bytes_total: metrics::Counter,
}

impl WriterMeters {
    fn new() -> WriterMeters {
        WriterMeters {
            write_seconds: metrics::histogram!(JOURNAL_WRITE_SECONDS),
            fsync_seconds: metrics::histogram!(JOURNAL_FSYNC_SECONDS),
            batch_records: metrics::histogram!(JOURNAL_BATCH_RECORDS),
            bytes_total: metrics::counter!(JOURNAL_BYTES_TOTAL),
        }
    }
}

impl Writer {
    fn run(mut self, queue: &Queue) {
        // Whatever way this thread ends, appends after it fail and queued tickets resolve.
        let _ended = EndOnExit(queue);
        let mut taken = Vec::new();
        // The batch's payloads, back to back in the order of `taken`'s appends.
        let mut payloads = Vec::new();
        // When the last group commit started, if it held enough records for the delay to apply.
        let mut loaded_since: Option<Instant> = None;
        // `false` once the journal was dropped and everything queued before that is handled.
        while queue.wait_for_work() {
            // Under load, give the records arriving now a moment to join this group commit:
            // fewer fsyncs for the same records (docs/performance.md, "A delay between group
            // commits under load"). Cut short when the journal is dropped.
            if let Some(started) = loaded_since
                && let Some(left) = self.group_commit_delay.checked_sub(started.elapsed())
                && !left.is_zero()
            {
                queue.pause(left);
                self.shared.delayed_commits.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(JOURNAL_DELAYED_COMMITS_TOTAL).increment(1);
            }
            let started = Instant::now();
            #[cfg(test)]
            drop(
                self.shared
                    .hooks
                    .pause
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
            queue.take(self.group_commit_max, &mut taken, &mut payloads);
            let mut at = 0;
            let records = taken
                .drain(..)
                .map(|r| self.take(r, &payloads, &mut at))
                .sum();
            // A full batch means more is queued already: waiting would only cap the rate at
            // `group_commit_max` records per delay. So only a batch between the two is load
            // worth waiting for.
            loaded_since = (!self.group_commit_delay.is_zero()
                && records >= self.group_commit_delay_min_records
                && records < self.group_commit_max)
                .then_some(started);
            self.commit(records);
            // Emptied for the next exchange, and given back now if a backlog grew it, rather
            // than kept for as long as the journal then stays idle.
            payloads.clear();
            if payloads.capacity() > BATCH_BUFFER_BYTES {
                payloads = Vec::new();
            }
        }
        self.finish();
    }

    /// Adds a request to the batch; returns how many records it adds (for the queue count). An
    /// append's payload is the next bytes of `payloads` from `at`, which it advances.
    fn take(&mut self, request: Request, payloads: &[u8], at: &mut usize) -> usize {
        match request {
            Request::Append { len, done } => {
                let payload = &payloads[*at..*at + len as usize];
                *at += len as usize;
                if let Some(cause) = &self.failed {
                    if let Some(done) = done {
                        let _ = done.send(Err(JournalError::Failed(Arc::clone(cause))));
                    }
                } else {
                    let lsn = self.next_lsn + self.appends.len() as u64;
                    format::encode_record(&mut self.buf, lsn, payload);
                    self.appends.push(done);
                }
                1
            }
            Request::Flush { done } => {
                self.flushes.push(done);
                0
            }
        }
    }

    /// Writes and syncs the batch, then completes its tickets.
    fn commit(&mut self, records: usize) {
        let outcome = match &self.failed {
            Some(cause) => Err(JournalError::Failed(Arc::clone(cause))),
            None => self.write_batch(),
        };
        // Free the batch's queue slots before any ticket completes, so that a caller woken by
        // its ticket finds room again.
        self.shared.queued.fetch_sub(records, Ordering::AcqRel);
        match outcome {
            Ok(()) => {
                let first = self.next_lsn;
                self.next_lsn += self.appends.len() as u64;
                let last = self.next_lsn - 1;
                // Before the tickets, so whoever awaited a ticket finds progress at or past it. A
                // batch of flushes alone writes nothing new: no wake-up for it.
                self.progress.send_if_modified(|published| {
                    let moved = *published != last;
                    *published = last;
                    moved
                });
                for (lsn, done) in (first..).zip(self.appends.drain(..)) {
                    // A dropped ticket is fine: the record is durable whether or not anyone waits.
                    if let Some(done) = done {
                        let _ = done.send(Ok(lsn));
                    }
                }
                for done in self.flushes.drain(..) {
                    let _ = done.send(Ok(last));
                }
            }
            Err(error) => {
                if self.failed.is_none() {
                    tracing::error!(
                        segment = %self.path.display(),
                        first_lsn = self.next_lsn,
                        records = self.appends.len(),
                        %error,
                        "journal write failed; refusing every later append until restart"
                    );
                    let cause = Arc::new(error.clone());
                    let _ = self.shared.failed.set(Arc::clone(&cause));
                    self.failed = Some(cause);
                }
                for done in self
                    .appends
                    .drain(..)
                    .flatten()
                    .chain(self.flushes.drain(..))
                {
                    let _ = done.send(Err(error.clone()));
                }
            }
        }
        self.buf.clear();
        if self.buf.capacity() > BATCH_BUFFER_BYTES {
            self.buf = Vec::with_capacity(BATCH_BUFFER_BYTES);
        }
        if let Some(direct) = &mut self.direct {
            direct.shrink_to(BATCH_BUFFER_BYTES);
        }
    }

    /// Writes `buf` (rolling over first if the segment is full) and syncs as the policy and any
    /// flush in the batch require. Advances nothing on failure.
    fn write_batch(&mut self) -> Result<(), JournalError> {
        let count = self.appends.len() as u64;
        if count > 0 {
            let full = self.segment_len > 0 && self.segment_len >= self.segment_bytes_max;
            if full || !self.prepared {
                let spare = self.take_spare();
                if full || spare.is_some() {
                    self.roll_over(spare)?;
                }
            }
            let started = Instant::now();
            self.write_records()?;
            self.meters
                .write_seconds
                .record(started.elapsed().as_secs_f64());
            let bytes = self.buf.len() as u64;
            self.segment_len += bytes;
            self.dirty = true;
            self.meters.bytes_total.increment(bytes);
            self.meters.batch_records.record(count as f64);
            self.shared.bytes.fetch_add(bytes, Ordering::Relaxed);
            self.shared.records.fetch_add(count, Ordering::Relaxed);
            self.shared.batches.fetch_add(1, Ordering::Relaxed);
        }
        if self.dirty && (self.sync == JournalSync::Always || !self.flushes.is_empty()) {
            self.sync_data()?;
        }
        Ok(())
    }

    /// Writes the batch's records at the end of the segment: directly when the segment was
    /// prepared that way, else buffered. A direct write refused as unsupported (a device whose
    /// sectors are larger than the probe's blocks) is not a failure of the disk: the segment is
    /// opened again without the flag and written buffered from here, and so are later spares.
    fn write_records(&mut self) -> Result<(), JournalError> {
        let io = |source| JournalError::io("write", &self.path, source);
        let Some(direct) = &mut self.direct else {
            return self.file.write_all(&self.buf).map_err(io);
        };
        #[cfg(test)]
        let refused = self
            .shared
            .hooks
            .refuse_next_direct_write
            .swap(false, Ordering::AcqRel)
            .then(|| std::io::Error::from_raw_os_error(libc::EINVAL));
        #[cfg(not(test))]
        let refused: Option<std::io::Error> = None;
        let error = match refused {
            Some(e) => e,
            None => match direct.write(&self.file, self.segment_len, &self.buf) {
                Ok(()) => return Ok(()),
                Err(e) => e,
            },
        };
        if !super::direct::refused(&error) {
            return Err(io(error));
        }
        tracing::warn!(
            segment = %self.path.display(),
            %error,
            "journal direct write refused; writing buffered from here"
        );
        self.direct = None;
        if let Some(spare) = &self.spare {
            spare.without_direct_io();
        }
        self.file = open_segment(&self.path)?;
        self.file
            .seek(SeekFrom::Start(self.segment_len))
            .map_err(|source| JournalError::io("seek", &self.path, source))?;
        self.file.write_all(&self.buf).map_err(io)
    }

    /// The spare if it is ready. Never waits in production: a roll with no spare ready goes to a
    /// plain segment instead of stalling appends for the rest of a 64 MiB write.
    fn take_spare(&mut self) -> Option<Prepared> {
        #[cfg(test)]
        let wait = !self.shared.hooks.spare_no_wait.load(Ordering::Acquire);
        #[cfg(not(test))]
        let wait = false;
        self.spare.as_mut()?.take(wait)
    }

    /// Starts a new segment at `next_lsn`: the pre-written `spare` renamed to the segment's name,
    /// or a new empty file without one. The old segment is synced first and the new directory
    /// entry after, so a later segment never exists on disk while an earlier one could still lose
    /// its tail: recovery relies on only the last segment being torn. An old segment holding no
    /// record yet (a plain one, left for a spare) is replaced by the spare under the same name.
    fn roll_over(&mut self, spare: Option<Prepared>) -> Result<(), JournalError> {
        if self.dirty {
            self.sync_data()?;
        }
        let prepared = spare.is_some();
        let (file, path, direct) = match (spare, &self.spare) {
            (Some(Prepared { file, direct }), Some(helper)) => {
                let path = self.dir.join(format::segment_name(self.next_lsn));
                // Renaming over an existing segment is only right for the empty one being left.
                if self.segment_len > 0 && path.exists() {
                    return Err(JournalError::io(
                        "rename spare",
                        &path,
                        std::io::ErrorKind::AlreadyExists.into(),
                    ));
                }
                fs::rename(helper.path(), &path)
                    .map_err(|source| JournalError::io("rename spare", &path, source))?;
                sync_dir(&self.dir)?;
                (file, path, direct)
            }
            _ => {
                let path = create_segment(&self.dir, self.next_lsn)?;
                (open_segment(&path)?, path, false)
            }
        };
        let counter = if prepared {
            &self.shared.segments_prepared
        } else {
            &self.shared.segments_unprepared
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if direct {
            self.shared.segments_direct.fetch_add(1, Ordering::Relaxed);
        }
        tracing::info!(
            previous = %self.path.display(),
            previous_bytes = self.segment_len,
            segment = %path.display(),
            first_lsn = self.next_lsn,
            prepared,
            direct,
            "journal rolled over to a new segment"
        );
        self.direct = direct.then(DirectTail::default);
        self.file = file;
        self.path = path;
        self.segment_len = 0;
        self.prepared = prepared || self.spare.is_none();
        if let Some(helper) = &mut self.spare {
            helper.request();
        }
        Ok(())
    }

    fn sync_data(&mut self) -> Result<(), JournalError> {
        let started = Instant::now();
        #[cfg(test)]
        if self
            .shared
            .hooks
            .fail_next_sync
            .swap(false, Ordering::AcqRel)
        {
            return Err(JournalError::io(
                "fsync",
                &self.path,
                std::io::Error::other("injected fsync failure"),
            ));
        }
        self.file
            .sync_data()
            .map_err(|source| JournalError::io("fsync", &self.path, source))?;
        self.meters
            .fsync_seconds
            .record(started.elapsed().as_secs_f64());
        self.shared.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.dirty = false;
        Ok(())
    }

    /// Last act of the thread: make what `sync = none` left in the page cache durable, so a clean
    /// shutdown loses nothing under either policy.
    fn finish(&mut self) {
        if self.dirty
            && self.failed.is_none()
            && let Err(error) = self.sync_data()
        {
            tracing::error!(%error, "journal final fsync at shutdown failed");
        }
        tracing::info!(
            segment = %self.path.display(),
            next_lsn = self.next_lsn,
            "journal writer stopped"
        );
    }
}

/// Creates `dir` and its parents if missing, and makes the new directory entry durable.
fn create_dir(dir: &Path) -> Result<(), JournalError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|source| JournalError::io("create directory", dir, source))?;
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent),
        _ => sync_dir(Path::new(".")),
    }
}

/// Opens a segment for the writer. Not in append mode: in a pre-written segment appends overwrite
/// the fill from the end of the records.
fn open_segment(path: &Path) -> Result<File, JournalError> {
    OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|source| JournalError::io("open", path, source))
}

/// Creates the empty segment whose first record will be `first_lsn`, and syncs the directory so
/// the file survives a crash.
fn create_segment(dir: &Path, first_lsn: Lsn) -> Result<PathBuf, JournalError> {
    let path = dir.join(format::segment_name(first_lsn));
    // `create_new`: a segment for this LSN existing already would mean two writers or a bug.
    OpenOptions::new()
        .append(true)
        .create_new(true)
        .open(&path)
        .map_err(|source| JournalError::io("create", &path, source))?;
    sync_dir(dir)?;
    Ok(path)
}

/// Cuts a segment back to `len` bytes and syncs it, so the dropped tail cannot reappear.
fn truncate(path: &Path, len: u64) -> Result<(), JournalError> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|source| JournalError::io("open", path, source))?;
    file.set_len(len)
        .map_err(|source| JournalError::io("truncate", path, source))?;
    file.sync_all()
        .map_err(|source| JournalError::io("fsync", path, source))
}

/// Syncs a directory so entries created in it are durable. Only meaningful (and only possible) on
/// Unix; elsewhere a no-op.
fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|handle| handle.sync_all())
            .map_err(|source| JournalError::io("fsync directory", dir, source))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod payloads_tests {
    use std::collections::VecDeque;

    use proptest::prelude::*;

    use super::Payloads;

    proptest! {
        /// Against a model (a queue of separate payloads): any mix of pushes and takes of some
        /// of the queued payloads gives back exactly the bytes pushed, in order.
        #[test]
        fn takes_give_back_what_was_pushed_in_order(
            steps in proptest::collection::vec((0usize..5, 0usize..300, any::<bool>()), 1..60)
        ) {
            let mut payloads = Payloads::default();
            let mut model: VecDeque<Vec<u8>> = VecDeque::new();
            let mut out = Vec::new();
            let mut n = 0u8;
            for (pushes, len, take_all) in steps {
                for _ in 0..pushes {
                    n = n.wrapping_add(1);
                    let p = vec![n; len % 97];
                    payloads.bytes.extend_from_slice(&p);
                    model.push_back(p);
                }
                let count = if take_all { model.len() } else { model.len() / 2 };
                let taken: Vec<Vec<u8>> = model.drain(..count).collect();
                let len: usize = taken.iter().map(Vec::len).sum();
                out.clear();
                payloads.take(len, model.is_empty(), &mut out);
                prop_assert_eq!(&out, &taken.concat());
                let left: usize = model.iter().map(Vec::len).sum();
                prop_assert_eq!(payloads.bytes.len() - payloads.head, left);
            }
        }
    }
}
