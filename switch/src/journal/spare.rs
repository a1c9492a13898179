//! The spare segment: a helper thread that pre-writes the next segment file (zeros up to
//! `segment_bytes_max`, synced) while the writer fills the current one, so the writer's appends
//! overwrite blocks that are already allocated and written.
//!
//! Why: appending to a file changes its size, so every `fdatasync` also commits the file system's
//! metadata journal and waits for whatever else the machine wrote; on this project's disk that is
//! a p99 of 3.5–4.3 ms per fsync. Overwriting already-written blocks only flushes data (p99 about
//! 0.2 ms). Zeros are the fill because recovery reads a zero record header as the end of the records
//! ([`super::format::is_fill`]).
//!
//! What it leaves to the writer ([`super::file`]): when to use the spare, renaming it to its
//! segment name and syncing the directory, and what to do when no spare is ready (roll to a plain,
//! appended segment rather than wait: a roll never stalls appends for a 64 MiB write). At most one
//! spare exists, under [`super::format::SPARE_NAME`]; preparing it again truncates whatever a crash
//! left there.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use super::JournalError;
use super::file::Shared;
use super::format;

/// Zeros written, and then synced, per step while preparing: large enough that the syscalls cost
/// nothing next to the disk, small enough that a stop request is seen within a few milliseconds
/// and that a journal fsync issued meanwhile queues behind at most this much of the spare's data
/// (one sync of 64 MiB at the end measurably stretched the writer's fsyncs while it ran).
const FILL_CHUNK_BYTES: usize = 1 << 20;

/// After a failed preparation, how long before the writer asks again: soon enough that a disk
/// that was briefly full gets pre-written segments back within the segment, not at its end; not
/// so soon that a directory that refuses the file is asked on every batch. (No wait in tests.)
#[cfg(not(test))]
const RETRY_AFTER: Duration = Duration::from_secs(10);
#[cfg(test)]
const RETRY_AFTER: Duration = Duration::ZERO;

/// The writer's handle on the helper thread and the spare it prepares.
#[derive(Debug)]
pub(super) struct Spare {
    /// `None` only while dropping, so the helper sees the channel close.
    requests: Option<mpsc::Sender<()>>,
    ready: mpsc::Receiver<Result<Prepared, JournalError>>,
    /// A request was sent and its answer not yet taken: at most one spare at a time.
    in_flight: bool,
    /// The last preparation failed: ask again from this instant.
    retry_at: Option<Instant>,
    stop: Arc<AtomicBool>,
    /// Whether to try `O_DIRECT` for the next spares: cleared when the writer's direct write
    /// was refused, since the same file system will refuse the next ones.
    direct: Arc<AtomicBool>,
    helper: Option<thread::JoinHandle<()>>,
    path: PathBuf,
}

impl Spare {
    /// Starts the helper thread for `dir` and asks it for the first spare at once.
    /// With `direct`, the spare is written with `O_DIRECT` where the file system allows it, and
    /// handed over open that way (see [`Prepared::direct`]).
    pub(super) fn start(
        dir: &Path,
        segment_bytes: u64,
        direct: bool,
        shared: Arc<Shared>,
    ) -> Result<Spare, JournalError> {
        let path = dir.join(format::SPARE_NAME);
        let (requests, jobs) = mpsc::channel::<()>();
        let (done, ready) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let direct = Arc::new(AtomicBool::new(direct));
        let helper = {
            let path = path.clone();
            let stop = Arc::clone(&stop);
            let direct = Arc::clone(&direct);
            thread::Builder::new()
                .name("journal-spare".to_owned())
                .spawn(move || {
                    while jobs.recv().is_ok() {
                        #[cfg(test)]
                        drop(
                            shared
                                .hooks
                                .spare_pause
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner),
                        );
                        let direct = direct.load(Ordering::Acquire);
                        let prepared = prepare(&path, segment_bytes, direct, &stop, &shared);
                        if stop.load(Ordering::Acquire) {
                            break;
                        }
                        if let Err(error) = &prepared {
                            tracing::warn!(%error, "journal could not prepare a spare segment");
                            // Up to a segment's worth of zeros would otherwise sit on a disk
                            // that may be short of space; the next attempt starts over anyway.
                            let _ = std::fs::remove_file(&path);
                        }
                        if prepared.is_ok() {
                            shared.spares_prepared.fetch_add(1, Ordering::Relaxed);
                        }
                        let _ = done.send(prepared);
                        #[cfg(test)]
                        shared.hooks.spare_prepared();
                    }
                })
                .map_err(|source| JournalError::io("start spare thread", dir, source))?
        };
        let mut spare = Spare {
            requests: Some(requests),
            ready,
            in_flight: false,
            retry_at: None,
            stop,
            direct,
            helper: Some(helper),
            path,
        };
        spare.request();
        Ok(spare)
    }

    /// Prepares the next spares buffered (the writer's direct write was refused).
    pub(super) fn without_direct_io(&self) {
        self.direct.store(false, Ordering::Release);
    }

    /// Where the spare is prepared; the writer renames it from here.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Asks for the next spare unless one is already on its way.
    pub(super) fn request(&mut self) {
        self.retry_at = None;
        if !self.in_flight
            && let Some(requests) = &self.requests
            && requests.send(()).is_ok()
        {
            self.in_flight = true;
        }
    }

    /// The prepared spare, if it is ready (`wait`: once it is, for tests that must not race the
    /// helper). A failed preparation gives `None`; the spare is asked for again once
    /// [`RETRY_AFTER`] has passed, on a later call.
    pub(super) fn take(&mut self, wait: bool) -> Option<Prepared> {
        if !self.in_flight {
            if self.retry_at.is_some_and(|at| Instant::now() >= at) {
                self.request();
            }
            return None;
        }
        let answer = if wait {
            self.ready.recv().ok()
        } else {
            match self.ready.try_recv() {
                Ok(answer) => Some(answer),
                Err(mpsc::TryRecvError::Empty) => return None,
                Err(mpsc::TryRecvError::Disconnected) => None,
            }
        };
        self.in_flight = false;
        match answer {
            Some(Ok(prepared)) => Some(prepared),
            Some(Err(_)) => {
                self.retry_at = Some(Instant::now() + RETRY_AFTER);
                None
            }
            // The helper is gone: nothing to ask.
            None => None,
        }
    }
}

impl Drop for Spare {
    fn drop(&mut self) {
        // A half-written spare is harmless: recovery ignores it and the next one truncates it.
        self.stop.store(true, Ordering::Release);
        drop(self.requests.take());
        if let Some(helper) = self.helper.take()
            && helper.join().is_err()
        {
            tracing::error!("journal spare thread panicked");
        }
    }
}

/// A spare ready for the writer.
#[derive(Debug)]
pub(super) struct Prepared {
    pub file: File,
    /// Opened with `O_DIRECT`: the writer must write it in whole, aligned blocks
    /// ([`super::direct`]). The zeros went to the disk without passing through the page cache.
    pub direct: bool,
}

/// Writes `bytes` zeros to a fresh file at `path` and syncs it (data and size), so its blocks are
/// allocated and written before any record goes there. Returns it positioned at 0. Gives up early,
/// with an error, once `stop` is set.
///
/// With `direct` (and a size in whole blocks), the file is opened with `O_DIRECT` and the zeros
/// are written from one aligned buffer. Buffered, the kernel copied every zero into a fresh page
/// of the page cache, and that copy was 6-8% of the switch's samples (docs/performance.md,
/// "Direct I/O for the journal"); the pages were then only overwritten by the writer. A file
/// system that refuses `O_DIRECT` (tmpfs before Linux 6.6, some network file systems), at open or
/// at one of the first two one-block writes (at offsets 0 and 4096, the writer's alignment), gets
/// the buffered fill, and the writer writes that segment buffered too.
fn prepare(
    path: &Path,
    bytes: u64,
    direct: bool,
    stop: &AtomicBool,
    shared: &Shared,
) -> Result<Prepared, JournalError> {
    let io = |op| move |source| JournalError::io(op, path, source);
    let aligned = bytes.is_multiple_of(super::direct::BLOCK_BYTES as u64);
    if direct && aligned {
        match super::direct::open(path, true) {
            Ok(file) => match fill(file, path, bytes, stop, true, shared) {
                Ok(file) => return Ok(Prepared { file, direct: true }),
                // Refused at a probe write: some file systems open with the flag and fail the
                // I/O. Start over buffered.
                Err(FillError::Refused) => {}
                Err(FillError::Failed(e)) => return Err(e),
            },
            Err(e) if super::direct::refused(&e) => {}
            Err(e) => return Err(io("create")(e)),
        }
    }
    let file = super::direct::open(path, false).map_err(io("create"))?;
    match fill(file, path, bytes, stop, false, shared) {
        Ok(file) => Ok(Prepared {
            file,
            direct: false,
        }),
        Err(FillError::Refused) => Err(io("write")(std::io::Error::other("write refused"))),
        Err(FillError::Failed(e)) => Err(e),
    }
}

enum FillError {
    /// The first direct write was refused as not supported.
    Refused,
    Failed(JournalError),
}

fn fill(
    mut file: File,
    path: &Path,
    bytes: u64,
    stop: &AtomicBool,
    direct: bool,
    #[cfg_attr(not(test), allow(unused_variables))] shared: &Shared,
) -> Result<File, FillError> {
    let io = |op| move |source| FillError::Failed(JournalError::io(op, path, source));
    let mut zeros = super::direct::AlignedBuf::default();
    let zeros = zeros.zeroed(FILL_CHUNK_BYTES);
    let mut left = bytes;
    let mut probes = 0;
    while left > 0 {
        if stop.load(Ordering::Acquire) {
            return Err(io("prepare")(std::io::Error::other("journal closing")));
        }
        // Direct, the first two writes are one block each, at 0 and at one block: the offsets
        // the writer will use, which a device with larger sectors refuses. Refused here, the
        // segment is written buffered from the start; refused only in the writer, it would
        // reopen the segment buffered there (`Writer::write_records`).
        let probing = direct && probes < 2;
        let chunk = if probing {
            super::direct::BLOCK_BYTES
        } else {
            usize::try_from(left).map_or(FILL_CHUNK_BYTES, |left| left.min(FILL_CHUNK_BYTES))
        };
        #[cfg(test)]
        let refused_here = probing && shared.hooks.refuse_direct.load(Ordering::Acquire);
        #[cfg(not(test))]
        let refused_here = false;
        match file.write_all(&zeros[..chunk]) {
            Ok(()) if !refused_here => {}
            Ok(()) => return Err(FillError::Refused),
            Err(e) if probing && super::direct::refused(&e) => {
                return Err(FillError::Refused);
            }
            Err(e) => return Err(io("write")(e)),
        }
        probes += 1;
        file.sync_data().map_err(io("fsync"))?;
        left -= chunk as u64;
    }
    file.sync_all().map_err(io("fsync"))?;
    file.seek(SeekFrom::Start(0)).map_err(io("seek"))?;
    Ok(file)
}
