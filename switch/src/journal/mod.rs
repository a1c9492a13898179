//! The journal: a durable, append-only log of everything the switch decides, written before an
//! acquirer is answered.
//!
//! # What this module owns
//!
//! - The [`Journal`] trait the switch core appends through, and the [`AppendTicket`] it awaits.
//!   A ticket resolves to the record's [`Lsn`] once the record is durable by the sync policy.
//! - [`FileJournal`], the embedded default backend: segment files in one directory, one writer
//!   thread, group commit, crash recovery on open. [`read_all`] reads the same files for offline
//!   tools (clearing) without touching them.
//! - [`MemJournal`], an in-memory backend for tests and benches.
//!
//! # What it leaves to others
//!
//! - What a record *is*. Payloads are opaque bytes: the core serialises its typed records and
//!   rebuilds store-and-forward queues and duplicate windows from [`Recovered::records`]. This
//!   module never looks inside a payload and never logs one (a payload may carry masked card data);
//!   it logs sizes, LSNs, segment paths and offsets only.
//! - Retention. Segments are never deleted here: clearing and statements read history from them,
//!   and archiving is an operator's decision. A full recovery insists that the first segment
//!   starts at LSN 1. What keeps restart time bounded is [`FileJournal::open_after`] (and
//!   [`FileJournal::open_streaming`]): a caller holding a checkpoint up to some LSN names it, and
//!   segments wholly before it are not read at all, so they may also have been archived.
//! - Locking the directory against a second process. Two writers on one directory would interleave
//!   LSNs; the processes built on it take a [`PidFile`] ([`owner`]) so that only one of them
//!   writes to a directory at a time.
//!
//! # On-disk format
//!
//! A journal is a directory of segment files named `segment-{first_lsn:020}.log` (the LSN of the
//! segment's first record, zero-padded so names sort in LSN order). A segment is a plain
//! concatenation of records, each:
//!
//! ```text
//! offset  size  field
//!      0     4  payload length, u32 little-endian
//!      4     4  CRC-32 (IEEE, crc32fast) over the 8 LSN bytes followed by the payload, u32 LE
//!      8     8  LSN, u64 little-endian
//!     16     n  payload
//! ```
//!
//! LSNs start at 1 and are contiguous within and across segments. The writer rolls over to a new
//! segment once the current one has reached `segment_bytes_max` (checked between batches, so a
//! segment can overshoot by one batch). A segment is synced, and the new file's directory entry is
//! synced, before the first record goes into the next segment, so only the last segment can ever
//! have a torn tail.
//!
//! Segments are pre-written: a helper thread ([`spare`]) writes the next one full of zeros up to
//! `segment_bytes_max` and syncs it, under a name recovery ignores, and the writer renames it into
//! place when it rolls. Appends then overwrite blocks that are allocated and written already, so
//! `fdatasync` flushes data without committing file-system metadata (the size does not change),
//! which is where this disk's fsync tail comes from (docs/performance.md, "Open-loop tail
//! latency"). The records of a segment end at the first all-zero record header (the *fill*): no
//! record has one, since its LSN is at least 1, so payloads of length 0 stay valid and journals
//! written before pre-writing read the same. If no spare is ready at a roll, the writer starts a
//! plain segment rather than wait for 64 MiB of zeros, and moves to the spare as soon as it is
//! ready (a segment may therefore be short); a plain segment found at open is left the same way.
//! `JournalOptions::prewrite_segments = false` writes plain segments only.
//!
//! Under `sync = always`, a pre-written segment is written with `O_DIRECT` where the file system
//! allows it ([`direct`]): each batch goes to the disk from the writer's buffer in whole blocks,
//! its segment's last partial block written again in front of it and zeros (fill) after it, so the
//! bytes on disk are a buffered segment's (but for up to a block of zeros after a batch that
//! crosses `segment_bytes_max`, which read as fill). Neither the spare's zeros nor the records
//! pass through the page cache, which was the spare's main cost, and `fdatasync` has no dirty
//! pages to write: it flushes the disk's cache, and commits metadata only when a batch grew the
//! file past its pre-written size. A segment continued after a restart, or plain, is written
//! buffered, and so is everything after a direct write the file system refused.
//!
//! # Recovery
//!
//! [`FileJournal::open`] reads every segment in order and checks each record's CRC and LSN. A crash
//! mid-write can only damage the records at the end of the last segment, which were never
//! acknowledged (their batch's fsync had not returned). So a bad record in the last segment
//! *after which no intact record follows* is a torn tail: it and everything after it are truncated
//! away with a warning (segment, offset, bytes dropped) and appends continue from there. Fill
//! running to the end of a segment is a clean end (appends continue at it, not at the file's
//! size); fill followed by non-zero bytes is damage like a bad record. An overwrite of fill can
//! land out of order, so in the last segment damage that starts with fill, or with zeros up to a
//! sector boundary (the rewrite of the sector holding the last acknowledged record's end never
//! landed; not when the record's header there is consistent with the next intact record), or
//! holds a whole sector-aligned 512 bytes of zeros is a torn write even when intact records (of
//! the same unacknowledged batch) follow it. Anything
//! else (a bad record with intact records after it, a bad record in an earlier segment, an LSN gap,
//! a segment name that does not match its first record) is [`JournalError::Corrupt`] and open
//! fails: acknowledged data is never silently skipped, an operator has to look.
//!
//! # Writing and durability
//!
//! Appends go through a bounded queue (`queue_depth_max` records, which refuses new work only: see
//! [`Admission`]) to one dedicated `std::thread`, because blocking file I/O must not run on
//! tokio's workers. The writer sleeps until an append someone waits on arrives (a ticketed append
//! or a flush; a covered record waits for the append that covers it, so it costs no wake-up and
//! no fsync of its own), takes whatever is queued (up to `group_commit_max` records), assigns
//! LSNs, writes the batch with one `write_all` from a reused buffer, calls
//! `sync_data` when the policy is [`JournalSync::Always`], and only then completes the batch's
//! tickets: one fsync covers many concurrent authorizations. Under load it can first wait a
//! little (`group_commit_delay`, off by default) so that each fsync covers more. If a write or
//! an fsync fails, the batch's tickets get the error and the journal refuses everything after it
//! ([`JournalError::Failed`]): after a failed fsync the kernel may have dropped the dirty pages
//! while reporting success to a retry, so the file's state is unknown and carrying on would
//! acknowledge records that may not exist. Restarting the switch runs recovery, which re-reads
//! what is actually on disk.
//!
//! Recovery reads one segment at a time (one buffer per segment, which its recovered payloads
//! share). [`FileJournal::open`] and [`FileJournal::open_after`] return every record they
//! recover, so they hold the whole journal (or the segments after the checkpoint) in memory;
//! [`FileJournal::open_streaming`] hands each segment's records to the caller and lets the
//! segment go, so a caller that decodes and drops them holds one segment at a time, which is
//! what the switch does (docs/reliability.md, "Switch restart"). A pre-written last segment is
//! read whole, fill included (`segment_bytes_max`, 64 MiB by default).

mod direct;
mod file;
mod format;
mod mem;
pub mod owner;
mod recovery;
mod spare;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::config::{JournalConfig, JournalSync};
pub use crate::process::Background;

pub use file::{FileJournal, JournalStats};
pub use format::PAYLOAD_BYTES_MAX;
#[cfg(test)]
pub(crate) use mem::CoveringJournal;
pub use mem::MemJournal;
pub use owner::PidFile;
pub use recovery::{Recovered, read_all, read_each};

/// Runs `work` on a thread of its own at a low CPU priority and resolves to its result (`Err`
/// if it panicked): nice 19 for [`Background::Low`], the idle policy for [`Background::Idle`]
/// (`crate::process::background_cpu_priority` says which work may use which).
///
/// For the periodic checkpoints of the issuer hosts and the switch: copying and writing millions
/// of idempotency records takes seconds of a core, and at normal priority that core was taken
/// from the tokio workers answering requests (a 10-minute soak's p99 was 1.6 s, all of it the
/// hosts' checkpoints; docs/reliability.md). At low priority the scheduler gives the checkpoint
/// what the requests leave. With batch scheduling (`crate::process`) a waking worker does not
/// preempt even a nice-19 thread, so the part that takes no shared lock (encoding and writing
/// the file) runs in the idle policy, which every thread preempts; the part that freezes
/// accounts or copies queues under their locks stays at nice 19, so that a worker waiting on
/// one of those locks is not held up behind an idle-policy thread. (Neither shortened the stall
/// two issuer hosts checkpointing at once caused at about 30,000 remote requests a second: that
/// was mostly the disk, and [`WritePace`] is what shortened it.)
///
/// Its own thread, not `spawn_blocking`'s pool, because an unprivileged thread cannot raise its
/// priority back, and the pool's threads run other blocking work later. A checkpoint that takes
/// longer costs only a longer replay if the process crashed meanwhile. The risk it takes: the
/// snapshot holds each account's lock only to freeze it (microseconds, one small copy), but if
/// the scheduler preempts the thread there, that one account waits until the thread runs again.
pub async fn in_background<T: Send + 'static>(
    level: Background,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("checkpoint".into())
        .spawn(move || {
            crate::process::background_cpu_priority(level);
            let _ = tx.send(work());
        })
        .map_err(|e| format!("checkpoint thread did not start: {e}"))?;
    rx.await
        .map_err(|_| "checkpoint thread stopped without a result".to_owned())
}

/// How fast a [`DurableFile`] may write a checkpoint file: at most
/// `bytes_per_s`, or as fast as the disk takes it.
///
/// Why a limit: the journals' fsyncs share the disk with the checkpoint file. Written at full
/// speed, two issuer hosts' checkpoints (23 MB each at 300,000 records) made the journals'
/// `fdatasync`s wait 4–14 ms at a time instead of about 0.3 ms, and an open-loop run at 32,000
/// remote requests a second had its p99.9 at 129–168 ms instead of 18–23 ms without checkpoints.
/// Paced at 32 MiB/s, and encoded into the write ([`DurableFile`]), it was 18–58 ms
/// (docs/performance.md, "Checkpoints written at a bounded rate"). The checkpoint takes longer;
/// that costs only a longer replay if the process crashed meanwhile, and the state it copies was
/// frozen before the write began.
///
/// Clones share one [`WritePace::hurry`] switch, so a shutdown can make a periodic checkpoint
/// already being written go on without pauses instead of waiting behind it.
#[derive(Debug, Clone)]
pub struct WritePace {
    bytes_per_s: Option<std::num::NonZeroU64>,
    hurry: Arc<std::sync::atomic::AtomicBool>,
}

impl WritePace {
    /// As fast as the disk takes it: for a checkpoint nothing else waits behind (at shutdown, or
    /// in a tool).
    pub fn unpaced() -> WritePace {
        WritePace {
            bytes_per_s: None,
            hurry: Arc::default(),
        }
    }

    /// At most `mib` MiB (2^20 bytes) a second; 0: as fast as the disk takes it.
    pub fn mib_per_s(mib: u32) -> WritePace {
        WritePace {
            bytes_per_s: std::num::NonZeroU64::new(u64::from(mib) << 20),
            hurry: Arc::default(),
        }
    }

    /// The same rate with a [`WritePace::hurry`] switch of its own: what a host keeps from its
    /// configuration, so that hurrying it at shutdown does not unpace the caller's copy.
    pub fn detached(&self) -> WritePace {
        WritePace {
            bytes_per_s: self.bytes_per_s,
            hurry: Arc::default(),
        }
    }

    /// From now on this pace and every clone of it stop pausing between chunks, the write in
    /// progress included (it keeps the chunk size it began with): for a shutdown, which must not
    /// wait seconds behind a paced periodic checkpoint before it writes its own.
    pub fn hurry(&self) {
        self.hurry.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether [`WritePace::hurry`] was called on this pace or a clone of it: other paced
    /// checkpoint work (a host's snapshot) stops pausing too.
    pub fn hurried(&self) -> bool {
        self.hurry.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The rate now: `None` when unpaced or hurried.
    fn rate(&self) -> Option<std::num::NonZeroU64> {
        if self.hurried() {
            None
        } else {
            self.bytes_per_s
        }
    }

    /// Bytes written between two syncs of the file: a 32nd of a second's worth at the rate,
    /// within 256 KiB and 8 MiB, so that the disk never holds much of the checkpoint ahead of a
    /// journal's fsync, and the pauses between syncs are short. Unpaced, 8 MiB: one sync at the
    /// end of a file of hundreds of megabytes made the kernel write all of it at once, and the
    /// journals' fsyncs waited behind it for seconds.
    pub fn chunk_bytes(&self) -> usize {
        const MIN: u64 = 256 << 10;
        const MAX: u64 = 8 << 20;
        let bytes = self
            .bytes_per_s
            .map_or(MAX, |r| (r.get() / 32).clamp(MIN, MAX));
        usize::try_from(bytes).unwrap_or(usize::MAX)
    }

    /// When the next chunk may start, measured from the start of the file, after a chunk of
    /// `bytes` that started at `started`, with `due` the time the chunk itself was due. A chunk
    /// that started late (a slow disk, or the encoding thread kept off the CPU) earns no credit:
    /// the next one is due its own time after this one's start, so the file never goes out in a
    /// burst to catch up. Unpaced or hurried, `started`: no wait. ([`DurableFile`] waits before
    /// a chunk, not after it, so the next chunk is encoded during the time the pace leaves.)
    pub fn next_due(
        &self,
        due: std::time::Duration,
        started: std::time::Duration,
        bytes: u64,
    ) -> std::time::Duration {
        let Some(rate) = self.rate() else {
            return started;
        };
        // In nanoseconds, in u128: no overflow for any chunk or rate.
        let ns = u128::from(bytes) * 1_000_000_000 / u128::from(rate.get());
        let takes = std::time::Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX));
        due.max(started).saturating_add(takes)
    }
}

/// A file written so that a crash leaves either the old file or the new one whole: to a
/// temporary file, synced, then renamed over the old one, and the directory synced. For the
/// checkpoints that let a restart skip the journal they cover. The file is written and synced
/// in chunks at no more than its pace ([`WritePace`]), sleeping between them. The bytes arrive
/// as they are encoded (it is `Extend<u8>`, which `postcard::to_extend` writes into), so that a
/// checkpoint of hundreds of megabytes is never held in memory whole, and its encoding is spread
/// over the paced write instead of running in one burst of a core before it. It buffers at most
/// one chunk ([`WritePace::chunk_bytes`]). Nothing replaces the file `name` until
/// [`DurableFile::commit`]; one that fails, or is dropped before it, removes its temporary file:
/// a half-written checkpoint of hundreds of megabytes must not keep the space a full disk's
/// journal needs.
pub struct DurableFile {
    file: std::fs::File,
    dir: std::path::PathBuf,
    tmp: std::path::PathBuf,
    name: String,
    pace: WritePace,
    chunk: usize,
    buf: Vec<u8>,
    began: std::time::Instant,
    /// When the next chunk may be written, from `began` ([`WritePace::next_due`]).
    due: std::time::Duration,
    written: u64,
    /// CRC-32 of the chunks written so far ([`DurableFile::crc32`]).
    crc: crc32fast::Hasher,
    /// The first write or sync that failed: `Extend` cannot return it, so it is kept for
    /// `commit`, and nothing more is written after it.
    failed: Option<std::io::Error>,
    /// Renamed into place: nothing left to remove on drop.
    committed: bool,
}

impl DurableFile {
    /// Creates (or truncates) the temporary file `name.tmp` in `dir`.
    pub fn create(dir: &std::path::Path, name: &str, pace: WritePace) -> std::io::Result<Self> {
        let tmp = dir.join(format!("{name}.tmp"));
        let file = std::fs::File::create(&tmp)?;
        let chunk = pace.chunk_bytes();
        Ok(DurableFile {
            file,
            dir: dir.to_owned(),
            tmp,
            name: name.to_owned(),
            pace,
            chunk,
            buf: Vec::new(),
            began: std::time::Instant::now(),
            due: std::time::Duration::ZERO,
            written: 0,
            crc: crc32fast::Hasher::new(),
            failed: None,
            committed: false,
        })
    }

    /// The CRC-32 of every byte given so far, buffered ones included: what a file that carries
    /// its own check appends before [`DurableFile::commit`] (the switch's checkpoint).
    pub fn crc32(&self) -> u32 {
        let mut crc = self.crc.clone();
        crc.update(&self.buf);
        crc.finalize()
    }

    /// Appends `data`: whole chunks straight from the slice when nothing is buffered, without a
    /// copy; the rest through the buffer.
    pub fn write_slice(&mut self, mut data: &[u8]) {
        while !data.is_empty() && self.failed.is_none() {
            if self.buf.is_empty() && data.len() >= self.chunk {
                let (now, rest) = data.split_at(self.chunk);
                self.write_chunk(now);
                data = rest;
                continue;
            }
            let room = self.chunk.saturating_sub(self.buf.len()).max(1);
            let (now, rest) = data.split_at(room.min(data.len()));
            self.buf.extend_from_slice(now);
            data = rest;
            if self.buf.len() >= self.chunk {
                self.write_buffered();
            }
        }
    }

    /// Writes the rest, syncs the file, renames it over `name` and syncs the directory; returns
    /// the file's size in bytes, or the first error met on the way (the old file then stays).
    pub fn commit(mut self) -> std::io::Result<u64> {
        self.write_buffered();
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        self.file.sync_all()?;
        std::fs::rename(&self.tmp, self.dir.join(&self.name))?;
        self.committed = true;
        // The rename is durable only once the directory is. A file system that cannot sync a
        // directory still has the file whole under one name or the other, so this is logged,
        // not failed.
        if let Err(e) = std::fs::File::open(&self.dir).and_then(|d| d.sync_all()) {
            tracing::warn!(error = %e, dir = %self.dir.display(), "directory not synced after a checkpoint's rename");
        }
        Ok(self.written)
    }

    fn write_buffered(&mut self) {
        if !self.buf.is_empty() {
            let buf = std::mem::take(&mut self.buf);
            self.write_chunk(&buf);
            self.buf = buf;
            self.buf.clear();
        }
    }

    /// Sleeps until the chunk is due at the pace (not after it: the caller encodes the next
    /// chunk meanwhile, and the last one needs no pause behind it), then writes and syncs it.
    fn write_chunk(&mut self, chunk: &[u8]) {
        use std::io::Write;
        if self.failed.is_some() {
            return;
        }
        let wait = self.due.saturating_sub(self.began.elapsed());
        // Hurried (a shutdown) meanwhile: no wait left.
        if !wait.is_zero() && self.pace.rate().is_some() {
            std::thread::sleep(wait);
        }
        let started = self.began.elapsed();
        self.crc.update(chunk);
        if let Err(e) = self
            .file
            .write_all(chunk)
            .and_then(|()| self.file.sync_data())
        {
            self.failed = Some(e);
            return;
        }
        let bytes = u64::try_from(chunk.len()).unwrap_or(u64::MAX);
        self.written = self.written.saturating_add(bytes);
        self.due = self.pace.next_due(self.due, started, bytes);
    }
}

impl Drop for DurableFile {
    fn drop(&mut self) {
        if !self.committed
            && let Err(e) = std::fs::remove_file(&self.tmp)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(error = %e, file = %self.tmp.display(), "unfinished checkpoint file not removed");
        }
    }
}

impl Extend<u8> for DurableFile {
    fn extend<I: IntoIterator<Item = u8>>(&mut self, bytes: I) {
        let mut bytes = bytes.into_iter();
        // At most a chunk buffered, however much one call brings (a long byte field).
        while self.failed.is_none() {
            let room = self.chunk.saturating_sub(self.buf.len()).max(1);
            let before = self.buf.len();
            self.buf.extend(bytes.by_ref().take(room));
            if self.buf.len() >= self.chunk {
                self.write_buffered();
            } else if self.buf.len() - before < room {
                return;
            }
        }
    }
}

/// Log sequence number: the position of a record in the journal. The first record is 1, and every
/// record's LSN is one more than the one before it.
pub type Lsn = u64;

/// A durable, append-only record log. Implemented by [`FileJournal`] (the embedded default) and
/// [`MemJournal`] (tests); a database backend can implement it later.
pub trait Journal: Send + Sync + 'static {
    /// Queues `payload` as the next record. The ticket resolves to its LSN once the record is
    /// durable by the backend's sync policy, or to the reason it never will be. Dropping the ticket
    /// does not cancel the append.
    ///
    /// The journal copies the payload before it returns, so the caller may reuse its buffer at
    /// once (the switch encodes every record into one per thread, see
    /// [`crate::events::Record::with_encoded`]).
    ///
    /// The record starts new work ([`Admission::New`]): a full queue refuses it.
    fn append(&self, payload: &[u8]) -> AppendTicket {
        self.append_as(payload, Admission::New)
    }

    /// [`append`](Journal::append) for a record that starts new work or, with
    /// [`Admission::Continuing`], continues work already admitted (a full queue does not refuse
    /// it).
    fn append_as(&self, payload: &[u8], admission: Admission) -> AppendTicket;

    /// Queues `payload` like [`append`](Journal::append), without a ticket of its own, for a
    /// record that a later append's ticket covers: records are written in append order and a
    /// failed write fails every ticket after it, so once a later ticket resolves to `Ok` this
    /// record is durable too. Returns at once, and `Err` means the record was not queued (the
    /// caller must not go on as if it were: nothing later can cover it).
    ///
    /// Why: a transaction appends up to three records and needs only the last one's answer; a
    /// ticket is a channel, an allocation and a wake-up (docs/performance.md). A covered record
    /// is written with the next append someone waits on (a ticketed append or a
    /// [`flush`](Journal::flush)), or when the journal is dropped: not before.
    fn append_covered(&self, payload: &[u8], admission: Admission) -> Result<(), JournalError>;

    /// Resolves once every record appended before this call has been written and synced, whatever
    /// the sync policy, to the last LSN written so far (0 if none). Used at shutdown, and where a
    /// record has no later one to cover it (a reversal the switch originates).
    fn flush(&self) -> AppendTicket;

    /// Stops accepting records: later appends resolve to [`JournalError::Closed`]. Records already
    /// queued are still written and their tickets still resolve; a [`flush`](Journal::flush) after
    /// `close` waits for them (and is what writes covered records nothing else covers).
    fn close(&self);
}

/// Whether a record starts new work or continues work already admitted; only new work is refused
/// when the queue is full.
///
/// Why: the queue's bound protects memory when the disk falls behind, and the place to push back
/// is where work enters. A transaction whose request record was taken must be able to journal
/// its ledger change, its decision and any reversal of it: refusing one of those half way would
/// leave a hold journaled that no decision or reversal follows. Continuing records can overshoot
/// `queue_depth_max` by at most what the admitted work still has to write, which the switch's
/// own in-flight limits bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The first record of new work: refused with [`JournalError::Overloaded`] when the queue
    /// holds `queue_depth_max` records.
    New,
    /// A later record of admitted work: never refused for the queue's depth.
    Continuing,
}

/// Why the journal could not take or keep a record. Cloneable because one failed write or fsync is
/// reported to every ticket of its batch.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JournalError {
    /// A filesystem operation failed.
    #[error("journal {op} failed on {}: {source}", path.display())]
    Io {
        /// What was being done: `write`, `fsync`, `open`, `read`, `truncate`, ...
        op: &'static str,
        /// The segment file or directory it was done to.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: Arc<io::Error>,
    },
    /// Existing journal data is damaged somewhere a crash cannot explain; open refuses to go on.
    #[error("journal corrupt in {} at byte offset {offset}: {reason}", segment.display())]
    Corrupt {
        /// The segment file holding the bad record.
        segment: PathBuf,
        /// Byte offset of the bad record (or of the problem) within the segment.
        offset: u64,
        /// What is wrong, e.g. `CRC mismatch` or `LSN out of sequence`.
        reason: &'static str,
    },
    /// The append queue holds `queue_depth_max` records already; the record (new work) was not
    /// queued.
    #[error("journal queue is full; record not queued")]
    Overloaded,
    /// The journal was closed (or its writer has stopped) before the record was queued or written.
    #[error("journal is closed")]
    Closed,
    /// The payload is longer than the format's length field can express.
    #[error("journal record payload of {len} bytes exceeds the maximum of {PAYLOAD_BYTES_MAX}")]
    PayloadTooLarge {
        /// The rejected payload's length in bytes.
        len: usize,
    },
    /// An earlier write or fsync failed, so the journal accepts nothing more until it is reopened.
    #[error("journal stopped after an earlier failure: {0}")]
    Failed(#[source] Arc<JournalError>),
}

impl JournalError {
    /// An [`JournalError::Io`] for `op` on `path`.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        JournalError::Io {
            op,
            path: path.into(),
            source: Arc::new(source),
        }
    }
}

/// Tuning of a [`FileJournal`]. Built from the `[journal]` config section with
/// `JournalOptions::from(&config.journal)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalOptions {
    /// When batches are forced to stable storage.
    pub sync: JournalSync,
    /// Roll over to a new segment once the current one has reached this size (bytes).
    pub segment_bytes_max: u64,
    /// Most records written and synced in one group commit (records; 0 is taken as 1).
    pub group_commit_max: usize,
    /// Most records queued or being written at once; beyond it appends of new work
    /// ([`Admission::New`]) resolve to [`JournalError::Overloaded`] at once, while the later
    /// records of admitted work still go in (records; 0 is taken as 1).
    pub queue_depth_max: usize,
    /// Under load, the least time from the start of one group commit to the start of the next
    /// ([`Duration::ZERO`]: off). Applies only after a group commit of at least
    /// `group_commit_delay_min_records` records, so a lightly loaded journal never waits. See
    /// `[journal] group_commit_delay_us`.
    pub group_commit_delay: Duration,
    /// See [`JournalOptions::group_commit_delay`] (records; 0 is taken as 1).
    pub group_commit_delay_min_records: usize,
    /// Pre-write segments with zeros (a helper thread prepares the next one) so appends overwrite
    /// written blocks and `fdatasync` flushes data only. On in production; off gives the plain
    /// appended segments of earlier versions, for comparing the two and for tests of reading them.
    /// Either reads the other's segments.
    pub prewrite_segments: bool,
    /// Write pre-written segments with `O_DIRECT` under `sync = always`, where the file system
    /// allows it (otherwise they are written buffered, as with `false`). See `journal::direct`.
    pub direct_io: bool,
}

impl JournalOptions {
    /// Default for [`JournalOptions::queue_depth_max`]: about a second of traffic at a busy
    /// switch's peak, and a bound on memory held by queued payloads.
    pub const QUEUE_DEPTH_MAX_DEFAULT: usize = 65_536;
}

impl From<&JournalConfig> for JournalOptions {
    fn from(config: &JournalConfig) -> Self {
        JournalOptions {
            sync: config.sync,
            segment_bytes_max: config.segment_bytes_max,
            group_commit_max: usize::try_from(config.group_commit_max).unwrap_or(usize::MAX),
            group_commit_delay: Duration::from_micros(config.group_commit_delay_us.into()),
            group_commit_delay_min_records: usize::try_from(config.group_commit_delay_min_records)
                .unwrap_or(usize::MAX),
            queue_depth_max: Self::QUEUE_DEPTH_MAX_DEFAULT,
            prewrite_segments: true,
            direct_io: config.direct_io,
        }
    }
}

/// The defaults with this `sync`.
impl From<JournalSync> for JournalOptions {
    fn from(sync: JournalSync) -> Self {
        JournalOptions {
            sync,
            ..JournalOptions::default()
        }
    }
}

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions::from(&JournalConfig::default())
    }
}

/// The pending outcome of an [`Journal::append`] or [`Journal::flush`]: a future resolving to the
/// record's LSN (for a flush, the last LSN written) or the error that stopped it.
#[derive(Debug)]
#[must_use = "an append is only known to be durable once its ticket resolves to Ok"]
pub struct AppendTicket {
    state: TicketState,
}

#[derive(Debug)]
enum TicketState {
    /// Completed by the writer later.
    Pending(oneshot::Receiver<Result<Lsn, JournalError>>),
    /// Completed already (refused, or a backend that completes synchronously); `None` once taken.
    Ready(Option<Result<Lsn, JournalError>>),
}

impl AppendTicket {
    /// A ticket that is already resolved, for backends that complete synchronously and for
    /// refusals (closed, overloaded) that need no channel.
    pub fn ready(result: Result<Lsn, JournalError>) -> Self {
        AppendTicket {
            state: TicketState::Ready(Some(result)),
        }
    }

    /// `Err` if the record was refused at once and never queued. For a caller that must not go
    /// on with a record the journal did not take (the issuing engine applies a ledger change
    /// only once its event is queued); a queued record's fate is still the ticket's to tell.
    pub fn queued(self) -> Result<AppendTicket, JournalError> {
        match self.state {
            TicketState::Ready(Some(Err(error))) => Err(error),
            state => Ok(AppendTicket { state }),
        }
    }

    /// A ticket the holder of the matching sender will complete.
    pub(crate) fn pending(receiver: oneshot::Receiver<Result<Lsn, JournalError>>) -> Self {
        AppendTicket {
            state: TicketState::Pending(receiver),
        }
    }
}

impl Future for AppendTicket {
    type Output = Result<Lsn, JournalError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().state {
            // A dropped sender means the writer went away without answering: the record's fate is
            // unknown to it, and the journal is closed either way.
            TicketState::Pending(receiver) => Pin::new(receiver)
                .poll(cx)
                .map(|received| received.unwrap_or(Err(JournalError::Closed))),
            // Polling again after completion breaks the Future contract; answer rather than panic.
            TicketState::Ready(result) => {
                Poll::Ready(result.take().unwrap_or(Err(JournalError::Closed)))
            }
        }
    }
}
