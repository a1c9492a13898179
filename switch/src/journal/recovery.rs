//! Reading a journal directory back: listing segments, checking every record's CRC and LSN, and
//! deciding whether a bad record is a torn tail (a crash mid-write, safe to cut) or corruption
//! (stop).
//!
//! This file only reads. Acting on the verdict (truncating a torn tail, creating the first
//! segment, starting the writer) is [`super::FileJournal::open`]'s job, so [`read_all`] can share
//! every check and still promise not to modify a journal that a running switch may be writing.

use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::format::{self, BadRecord};
use super::{JournalError, Lsn};

/// What [`super::FileJournal::open`] found in the directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Every intact record, in LSN order (LSNs 1, 2, 3, ...), or only those after the checkpoint
    /// for [`super::FileJournal::open_after`]. The switch core rebuilds its store-and-forward
    /// queues and duplicate windows from these.
    pub records: Vec<(Lsn, Bytes)>,
    /// Bytes of a half-written record or batch cut from the end of the last segment because a
    /// crash left them there, counted up to the last non-zero byte (a pre-written segment's fill
    /// is not counted); 0 after a clean shutdown.
    pub truncated_tail_bytes: u64,
}

/// A torn tail found at the end of the last segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TornTail {
    /// Where the first bad record starts: the segment's valid length.
    pub(crate) offset: u64,
    /// Bytes from there to the last non-zero byte (the rest is pre-written fill or nothing).
    pub(crate) bytes: u64,
    /// What was wrong with the first bad record.
    pub(crate) reason: &'static str,
}

/// The segment appends continue in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LastSegment {
    pub(crate) path: PathBuf,
    /// Bytes of intact records: where appends continue. The file is longer by the torn tail, if
    /// any, and by the pre-written fill after it.
    pub(crate) valid_len: u64,
    /// The file's size.
    pub(crate) file_len: u64,
    pub(crate) torn: Option<TornTail>,
}

/// The result of reading every segment in a directory (its records went to the scan's sink).
#[derive(Debug, Clone)]
pub(crate) struct Scan {
    /// Records handed to the sink.
    pub(crate) records: u64,
    /// The LSN the next appended record gets.
    pub(crate) next_lsn: Lsn,
    /// `None` when the directory holds no segment yet.
    pub(crate) last: Option<LastSegment>,
}

/// Reads of a journal that keep finding damage at a different place before [`read_all`] reports
/// the last one.
const READS_MAX: u32 = 5;

/// Reads every intact record of the journal in `dir`, in LSN order, for offline tools such as
/// clearing. It never modifies the files, so it may run while a switch is appending: a batch caught
/// half written at the end is left out, exactly as recovery would cut it. Fails like
/// [`super::FileJournal::open`] on corruption, and with [`JournalError::Io`] if `dir` is missing.
///
/// Corruption found while a switch appends is read again before it is reported. In a
/// pre-written segment the writer overwrites fill, and a read racing that write can see a page
/// half copied while the next page is already new: damage with intact records after it, which
/// no append to a file's end could show. Damage is reported once two reads in a row find it at
/// the same place (or after [`READS_MAX`] reads); damage on the disk does not move.
pub fn read_all(dir: &Path) -> Result<Vec<(Lsn, Bytes)>, JournalError> {
    let records = std::cell::RefCell::new(Vec::new());
    read_each(
        dir,
        0,
        &mut || records.borrow_mut().clear(),
        &mut |lsn, payload| records.borrow_mut().push((lsn, payload)),
    )?;
    Ok(records.into_inner())
}

/// [`read_all`] without holding the journal: hands each intact record after `covered` (0: all)
/// to `sink` in LSN order, one segment in memory at a time, and skips segments wholly at or below
/// `covered` (which may then be archived, as after a checkpoint). If the read has to start again
/// (damage seen while a switch appends, see [`read_all`]), `restart` is called first, and the
/// caller drops what it built. Returns the LSN the next record will get.
pub fn read_each(
    dir: &Path,
    covered: Lsn,
    restart: &mut dyn FnMut(),
    sink: &mut dyn FnMut(Lsn, Bytes),
) -> Result<Lsn, JournalError> {
    let mut seen: Option<(PathBuf, u64)> = None;
    let mut reads = 0;
    let scan = loop {
        reads += 1;
        if reads > 1 {
            restart();
        }
        match scan(dir, covered, sink) {
            Err(JournalError::Corrupt {
                segment,
                offset,
                reason,
            }) => {
                let here = (segment, offset);
                if reads >= READS_MAX || seen.as_ref() == Some(&here) {
                    let (segment, offset) = here;
                    return Err(JournalError::Corrupt {
                        segment,
                        offset,
                        reason,
                    });
                }
                tracing::debug!(dir = %dir.display(), "journal read found damage; reading again");
                seen = Some(here);
            }
            other => break other?,
        }
    };
    if let Some(LastSegment {
        path,
        torn: Some(torn),
        ..
    }) = &scan.last
    {
        tracing::debug!(
            segment = %path.display(),
            offset = torn.offset,
            bytes = torn.bytes,
            reason = torn.reason,
            "journal read stops before an incomplete tail (left in place)"
        );
    }
    Ok(scan.next_lsn)
}

/// Reads and checks the segments in `dir` (which must exist), handing the records after
/// `covered` (0: all of them) to `sink` in LSN order, one segment at a time: a segment's buffer
/// is let go once its records are handed over, so memory follows the largest segment, not the
/// journal, unless the sink keeps the payloads. If an error is returned, records handed over
/// before it may include some of a damaged journal: a caller must then discard what it built.
///
/// A segment whose records all have LSNs at or below `covered` (known because the next segment
/// starts at or before `covered + 1`) is not read at all: a checkpoint already holds its effects,
/// and reading and checksumming it is most of a restart's time once the journal is long. Such a
/// segment cannot hide a torn tail, since the writer synced it before starting the next one. For
/// the same reason covered segments may be missing (archived by an operator): the journal may then
/// start at any LSN up to `covered + 1`. The last segment is always read, because appends
/// continue there.
pub(crate) fn scan(
    dir: &Path,
    covered: Lsn,
    sink: &mut dyn FnMut(Lsn, Bytes),
) -> Result<Scan, JournalError> {
    let segments = list_segments(dir)?;
    let mut records = 0u64;
    let mut next_lsn: Lsn = 1;
    let mut last = None;
    for (index, (first_lsn, path)) in segments.iter().enumerate() {
        let is_last = index + 1 == segments.len();
        if let Some((next_first, _)) = segments.get(index + 1)
            && *next_first <= covered.saturating_add(1)
        {
            next_lsn = *next_first;
            continue;
        }
        if index == 0 && *first_lsn > next_lsn && *first_lsn <= covered.saturating_add(1) {
            // Segments wholly covered by the checkpoint were archived: the journal now starts
            // where the checkpoint's tail does.
            next_lsn = *first_lsn;
        }
        if *first_lsn != next_lsn {
            // The first segment must start at 1 too: until retention records a low-water mark,
            // a journal that starts later has lost its beginning.
            let reason = if index == 0 {
                "first segment does not start at LSN 1 (earlier segments missing)"
            } else {
                "segment name does not continue the previous segment's LSNs"
            };
            return Err(corrupt(path, 0, reason));
        }
        let data = fs::read(path)
            .map(Bytes::from)
            .map_err(|source| JournalError::io("read", path, source))?;
        let first_in_segment = next_lsn;
        let mut found = Vec::new();
        let segment = scan_segment(path, &data, is_last, covered, &mut next_lsn, &mut found)?;
        // Handed over only once the segment is judged, so a torn tail is never seen.
        records += found.len() as u64;
        for (lsn, payload) in found {
            sink(lsn, payload);
        }
        if next_lsn == first_in_segment && !is_last {
            // The writer syncs a segment before creating the next, so only the newest can hold no
            // record (a crash right after rolling over; pre-written or not).
            return Err(corrupt(path, 0, "empty segment before the last one"));
        }
        if is_last {
            last = Some(segment);
        }
    }
    Ok(Scan {
        records,
        next_lsn,
        last,
    })
}

/// Checks one segment's records, appending them to `records` and advancing `next_lsn`.
fn scan_segment(
    path: &Path,
    data: &Bytes,
    is_last: bool,
    covered: Lsn,
    next_lsn: &mut Lsn,
    records: &mut Vec<(Lsn, Bytes)>,
) -> Result<LastSegment, JournalError> {
    let mut offset = 0;
    let segment = |offset: usize, torn| LastSegment {
        path: path.to_owned(),
        valid_len: offset as u64,
        file_len: data.len() as u64,
        torn,
    };
    while offset < data.len() {
        if format::is_fill(data, offset) {
            // The records end here. Fill all the way to the end is a clean end (a pre-written
            // segment, in any position: one written under a larger `segment_bytes_max` rolls
            // before its fill is used); anything non-zero after it is a write that partly landed.
            if format::nonzero_end(data, offset) == offset {
                return Ok(segment(offset, None));
            }
            let torn = torn_tail(
                path,
                data,
                offset,
                BadRecord::FillThenData,
                is_last,
                *next_lsn,
            )?;
            return Ok(segment(offset, Some(torn)));
        }
        match format::decode_record(data, offset) {
            Ok(record) => {
                // The CRC covers the LSN, so an intact record with the wrong LSN was written that
                // way or copied here whole: not something a crash does.
                if record.lsn != *next_lsn {
                    return Err(corrupt(path, offset, "record LSN out of sequence"));
                }
                if record.lsn > covered {
                    records.push((record.lsn, record.payload));
                }
                *next_lsn = next_lsn
                    .checked_add(1)
                    .ok_or_else(|| corrupt(path, offset, "LSN space exhausted"))?;
                offset = record.end;
            }
            Err(bad) => {
                let torn = torn_tail(path, data, offset, bad, is_last, *next_lsn)?;
                return Ok(segment(offset, Some(torn)));
            }
        }
    }
    Ok(segment(offset, None))
}

/// Decides whether the bad record at `offset` is a torn tail: it must be in the last segment, and
/// no intact record may follow it unless the damage is what a write into pre-written space that
/// partly landed leaves. Only the last batch can be caught mid-write, and it was never
/// acknowledged. Into an appended file, the parts of a write that land first are the first ones
/// (the file's size commits with them), so an intact record after damage means acknowledged data
/// was damaged. An overwrite of pre-written fill has no such order: its sectors can land in any
/// order, leaving fill (zeros) where a part did not land and intact records of the same
/// unacknowledged batch after it. So fill at the damage, zeros from the damage to a sector boundary
/// (see [`format::looks_like_unlanded_write`]), or a whole zero sector between the damage and the
/// next intact record, is read as a torn write; non-zero damage with intact records after it
/// stays corruption.
fn torn_tail(
    path: &Path,
    data: &Bytes,
    offset: usize,
    bad: BadRecord,
    is_last: bool,
    next_lsn: Lsn,
) -> Result<TornTail, JournalError> {
    if !is_last {
        return Err(corrupt(path, offset, bad.reason()));
    }
    let end = format::nonzero_end(data, offset);
    if let Some(intact) = format::intact_record_from(data, offset + 1, end, next_lsn)
        && !format::looks_like_unlanded_write(data, offset, intact)
    {
        return Err(corrupt(
            path,
            offset,
            "damaged record followed by intact records",
        ));
    }
    Ok(TornTail {
        offset: offset as u64,
        bytes: (end - offset) as u64,
        reason: bad.reason(),
    })
}

/// The segments in `dir`, sorted by first LSN. Other files are ignored so an operator's notes or a
/// filesystem's `lost+found` do not stop the switch.
fn list_segments(dir: &Path) -> Result<Vec<(Lsn, PathBuf)>, JournalError> {
    let entries = fs::read_dir(dir).map_err(|source| JournalError::io("list", dir, source))?;
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| JournalError::io("list", dir, source))?;
        let name = entry.file_name();
        match name.to_str().and_then(format::parse_segment_name) {
            Some(first_lsn) => segments.push((first_lsn, entry.path())),
            None => tracing::debug!(file = ?name, "ignoring non-segment file in journal directory"),
        }
    }
    segments.sort_unstable_by_key(|(first_lsn, _)| *first_lsn);
    Ok(segments)
}

fn corrupt(path: &Path, offset: usize, reason: &'static str) -> JournalError {
    JournalError::Corrupt {
        segment: path.to_owned(),
        offset: offset as u64,
        reason,
    }
}
