//! The journal's byte layout: segment file names and the record frame (length, CRC, LSN,
//! payload), encoding and decoding one record at a time.
//!
//! It owns nothing else: which segments exist and what to do about a bad record is recovery's call
//! ([`super::recovery`]), and when to write is the writer's ([`super::file`]). Keeping the layout
//! in one small file keeps the writer and the reader from drifting apart. The layout itself is
//! documented in the module doc of [`super`].

use bytes::Bytes;

use super::Lsn;

/// Bytes in front of every payload: length (4), CRC (4), LSN (8).
pub(crate) const HEADER_BYTES: usize = 16;

/// Longest payload a record can hold: its length field is a `u32`.
pub const PAYLOAD_BYTES_MAX: usize = u32::MAX as usize;

/// Where the next segment is pre-written before it is renamed to its segment name. Not a segment
/// name, so recovery ignores it (a crash can leave one behind, half written; it is rewritten).
pub(crate) const SPARE_NAME: &str = "segment-spare.tmp";

/// Granularity at which a disk may persist part of a write and not the rest. A torn write into
/// pre-written space leaves whole sectors of the fill (zeros) between the parts that did land.
const SECTOR_BYTES: usize = 512;

const SEGMENT_PREFIX: &str = "segment-";
const SEGMENT_SUFFIX: &str = ".log";
/// Digits of the zero-padded first LSN in a segment name: enough for any `u64`.
const SEGMENT_LSN_DIGITS: usize = 20;

/// The file name of the segment whose first record is `first_lsn`.
pub(crate) fn segment_name(first_lsn: Lsn) -> String {
    format!("{SEGMENT_PREFIX}{first_lsn:020}{SEGMENT_SUFFIX}")
}

/// The first LSN encoded in a segment file name, or `None` if `name` is not a segment name.
pub(crate) fn parse_segment_name(name: &str) -> Option<Lsn> {
    let digits = name
        .strip_prefix(SEGMENT_PREFIX)?
        .strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != SEGMENT_LSN_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// CRC-32 of a record: over the LSN's little-endian bytes and then the payload, so a record copied
/// to the wrong position (a stale block, a misdirected write) fails the check too.
fn record_crc(lsn: Lsn, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&lsn.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// Appends one encoded record to `out`. The caller has checked `payload.len()` against
/// [`PAYLOAD_BYTES_MAX`]; a longer payload is cut to the maximum length field rather than
/// panicking, and then fails its CRC on read.
pub(crate) fn encode_record(out: &mut Vec<u8>, lsn: Lsn, payload: &[u8]) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.reserve(record_len(payload.len()));
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&record_crc(lsn, payload).to_le_bytes());
    out.extend_from_slice(&lsn.to_le_bytes());
    out.extend_from_slice(payload);
}

/// Size of a record with a payload of `payload_len` bytes.
pub(crate) fn record_len(payload_len: usize) -> usize {
    HEADER_BYTES + payload_len
}

/// Why the bytes at some offset are not a valid record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadRecord {
    /// Fewer than [`HEADER_BYTES`] bytes are left.
    TruncatedHeader,
    /// The length field points past the end of the segment.
    TruncatedPayload,
    /// The bytes are all there but the CRC does not match them.
    CrcMismatch,
    /// A pre-written segment's fill (zeros) with non-zero bytes after it.
    FillThenData,
}

impl BadRecord {
    /// Text for [`super::JournalError::Corrupt::reason`].
    pub(crate) fn reason(self) -> &'static str {
        match self {
            BadRecord::TruncatedHeader => "record header truncated",
            BadRecord::TruncatedPayload => "record length runs past the end of the segment",
            BadRecord::CrcMismatch => "record CRC mismatch",
            BadRecord::FillThenData => "non-zero bytes after the end of the records",
        }
    }
}

/// One record decoded from a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decoded {
    pub(crate) lsn: Lsn,
    /// Shares the segment buffer's allocation.
    pub(crate) payload: Bytes,
    /// Offset just past this record.
    pub(crate) end: usize,
}

/// Decodes the record starting at `offset` in `segment`, checking its length and CRC (not its
/// LSN: sequence is recovery's business).
pub(crate) fn decode_record(segment: &Bytes, offset: usize) -> Result<Decoded, BadRecord> {
    let rest = segment.get(offset..).unwrap_or_default();
    let header = rest.get(..HEADER_BYTES).ok_or(BadRecord::TruncatedHeader)?;
    let (len, crc, lsn) = parse_header(header);
    let end = usize::try_from(len)
        .ok()
        .and_then(|len| offset.checked_add(HEADER_BYTES)?.checked_add(len))
        .filter(|&end| end <= segment.len())
        .ok_or(BadRecord::TruncatedPayload)?;
    let payload = segment.slice(offset + HEADER_BYTES..end);
    if record_crc(lsn, &payload) != crc {
        return Err(BadRecord::CrcMismatch);
    }
    Ok(Decoded { lsn, payload, end })
}

/// Whether the bytes at `offset` are the fill of a pre-written segment rather than a record: a header
/// of zeros (or, at the very end, fewer than a header's bytes, all zero). No record has such a
/// header, because its LSN is at least 1, so this marks the end of the records unambiguously even
/// though a payload may be empty (length 0).
pub(crate) fn is_fill(segment: &[u8], offset: usize) -> bool {
    let end = offset.saturating_add(HEADER_BYTES).min(segment.len());
    offset < end
        && segment
            .get(offset..end)
            .is_some_and(|header| header.iter().all(|&byte| byte == 0))
}

/// One past the last non-zero byte of `segment` at or after `from` (`from` itself if there is
/// none): where the pre-written fill really starts. Compares a block at a time from the end with
/// a block of zeros: byte-slice equality is a `memcmp`, fast in every build (a byte loop over a
/// 64 MiB segment took seconds per open in debug builds, which the tests run).
pub(crate) fn nonzero_end(segment: &[u8], from: usize) -> usize {
    const BLOCK: usize = 4096;
    static ZEROS: [u8; BLOCK] = [0; BLOCK];
    let Some(tail) = segment.get(from..) else {
        return from;
    };
    let mut end = tail.len();
    while end > 0 {
        let start = end.saturating_sub(BLOCK);
        let block = &tail[start..end];
        if block != &ZEROS[..block.len()] {
            let last = block.iter().rposition(|&byte| byte != 0).unwrap_or(0);
            return from + start + last + 1;
        }
        end = start;
    }
    from
}

/// Whether `segment[from..to]` is what a torn write into pre-written space leaves: it starts with
/// fill, or with zeros up to a sector boundary, or holds a whole sector-aligned sector of zeros (a
/// part of the write that never landed).
///
/// Zeros up to the boundary: the sector holding the end of the last acknowledged record is
/// rewritten by the next batch (with direct I/O, the whole 4 KiB block holding it, its earlier
/// bytes unchanged: `super::direct`). If that one write never landed, the disk still holds the old
/// sector: the acknowledged bytes, then zeros to its end, fewer than a record header when the
/// record ended near the boundary.
pub(crate) fn looks_like_unlanded_write(segment: &[u8], from: usize, to: usize) -> bool {
    if is_fill(segment, from) {
        return true;
    }
    // Unless those zeros are the real first bytes of a record that ends exactly where the next
    // intact one starts (a length that is a multiple of 256 starts with a zero byte): that is an
    // acknowledged record with a damaged payload, which stays corruption.
    let boundary = (from / SECTOR_BYTES + 1) * SECTOR_BYTES;
    let consistent_header = segment
        .get(from..from + HEADER_BYTES)
        .is_some_and(|header| from + HEADER_BYTES + parse_header(header).0 as usize == to);
    if boundary <= to
        && !consistent_header
        && segment
            .get(from..boundary)
            .is_some_and(|rest| rest.iter().all(|&byte| byte == 0))
    {
        return true;
    }
    let first = from.div_ceil(SECTOR_BYTES) * SECTOR_BYTES;
    (first..to)
        .step_by(SECTOR_BYTES)
        .filter(|start| start + SECTOR_BYTES <= to)
        .any(|start| {
            segment
                .get(start..start + SECTOR_BYTES)
                .is_some_and(|sector| sector.iter().all(|&byte| byte == 0))
        })
}

/// Whether an intact record whose LSN is at least `lsn_min` starts anywhere in `segment` at or
/// after `from` and before `before` (a record's header is never all zero, so none starts in the
/// fill past the last non-zero byte); returns where the first one starts. Recovery uses it to tell a torn tail (nothing intact after the damage) from damage
/// in the middle of acknowledged data. Every byte offset is tried; the LSN and length fields filter
/// out almost all of them before a CRC is computed.
pub(crate) fn intact_record_from(
    segment: &Bytes,
    from: usize,
    before: usize,
    lsn_min: Lsn,
) -> Option<usize> {
    let last_start = segment.len().checked_sub(HEADER_BYTES)?;
    (from..=last_start.min(before.saturating_sub(1))).find(|&offset| {
        let Some(header) = segment.get(offset..offset + HEADER_BYTES) else {
            return false;
        };
        let (len, _, lsn) = parse_header(header);
        // Each record is at least a header long, so no LSN past this bound fits in what is left.
        let remaining_records = ((segment.len() - offset) / HEADER_BYTES) as u64;
        lsn >= lsn_min
            && lsn <= lsn_min.saturating_add(remaining_records)
            && (len as usize) <= segment.len() - offset - HEADER_BYTES
            && decode_record(segment, offset).is_ok()
    })
}

/// Splits a record header into (payload length, CRC, LSN).
fn parse_header(header: &[u8]) -> (u32, u32, Lsn) {
    let mut len = [0u8; 4];
    let mut crc = [0u8; 4];
    let mut lsn = [0u8; 8];
    len.copy_from_slice(&header[0..4]);
    crc.copy_from_slice(&header[4..8]);
    lsn.copy_from_slice(&header[8..16]);
    (
        u32::from_le_bytes(len),
        u32::from_le_bytes(crc),
        u64::from_le_bytes(lsn),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(records: &[(Lsn, &[u8])]) -> Bytes {
        let mut out = Vec::new();
        for (lsn, payload) in records {
            encode_record(&mut out, *lsn, payload);
        }
        Bytes::from(out)
    }

    #[test]
    fn segment_names_round_trip_and_sort_in_lsn_order() {
        assert_eq!(segment_name(1), "segment-00000000000000000001.log");
        assert_eq!(parse_segment_name(&segment_name(1)), Some(1));
        assert_eq!(parse_segment_name(&segment_name(u64::MAX)), Some(u64::MAX));
        assert!(segment_name(9) < segment_name(10));
        for bad in [
            "segment-1.log",
            "segment-0000000000000000000a.log",
            "segment-00000000000000000001.log.tmp",
            "other-00000000000000000001.log",
            "segment-+0000000000000000001.log",
        ] {
            assert_eq!(parse_segment_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn record_layout_is_length_crc_lsn_payload() {
        let segment = encoded(&[(7, b"abc")]);
        assert_eq!(segment.len(), record_len(3));
        assert_eq!(&segment[0..4], &3u32.to_le_bytes());
        assert_eq!(&segment[8..16], &7u64.to_le_bytes());
        assert_eq!(&segment[16..], b"abc");
        let mut crc_input = 7u64.to_le_bytes().to_vec();
        crc_input.extend_from_slice(b"abc");
        assert_eq!(&segment[4..8], &crc32fast::hash(&crc_input).to_le_bytes());
    }

    #[test]
    fn decodes_consecutive_records() {
        let segment = encoded(&[(1, b"first"), (2, b""), (3, b"third")]);
        let first = decode_record(&segment, 0).unwrap();
        assert_eq!((first.lsn, &first.payload[..]), (1, &b"first"[..]));
        let second = decode_record(&segment, first.end).unwrap();
        assert_eq!((second.lsn, &second.payload[..]), (2, &b""[..]));
        let third = decode_record(&segment, second.end).unwrap();
        assert_eq!((third.lsn, &third.payload[..]), (3, &b"third"[..]));
        assert_eq!(third.end, segment.len());
        assert_eq!(
            decode_record(&segment, third.end),
            Err(BadRecord::TruncatedHeader)
        );
    }

    #[test]
    fn reports_each_kind_of_damage() {
        let segment = encoded(&[(1, b"payload")]);
        let cut = segment.slice(..10);
        assert_eq!(decode_record(&cut, 0), Err(BadRecord::TruncatedHeader));
        let cut = segment.slice(..segment.len() - 1);
        assert_eq!(decode_record(&cut, 0), Err(BadRecord::TruncatedPayload));
        for position in [4, 8, 16, segment.len() - 1] {
            let mut flipped = segment.to_vec();
            flipped[position] ^= 0x01;
            assert_eq!(
                decode_record(&Bytes::from(flipped), 0),
                Err(BadRecord::CrcMismatch)
            );
        }
        // A huge length field must not overflow or allocate.
        let mut huge = segment.to_vec();
        huge[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            decode_record(&Bytes::from(huge), 0),
            Err(BadRecord::TruncatedPayload)
        );
    }

    #[test]
    fn finds_intact_records_after_damage_only_when_there_are_some() {
        let segment = encoded(&[(1, b"one"), (2, b"two"), (3, b"three")]);
        let second = decode_record(&segment, 0).unwrap().end;
        let mut damaged = segment.to_vec();
        damaged[second + HEADER_BYTES] ^= 0xff; // payload of record 2
        let damaged = Bytes::from(damaged);
        assert_eq!(decode_record(&damaged, second), Err(BadRecord::CrcMismatch));
        assert_eq!(
            intact_record_from(&damaged, second + 1, damaged.len(), 2),
            Some(decode_record(&segment, second).unwrap().end)
        );
        // With the last record damaged instead, nothing intact follows.
        let mut tail = segment.to_vec();
        let last = tail.len() - 1;
        tail[last] ^= 0xff;
        assert_eq!(
            intact_record_from(&Bytes::from(tail), second + 1, usize::MAX, 3),
            None
        );
        assert_eq!(intact_record_from(&Bytes::new(), 0, usize::MAX, 1), None);
        // Records starting at or after `before` are not looked for.
        assert_eq!(
            intact_record_from(&damaged, second + 1, second + 2, 2),
            None
        );
    }

    #[test]
    fn a_zero_header_is_fill_and_an_empty_payload_is_not() {
        let mut segment = encoded(&[(1, b"")]).to_vec();
        let record = segment.len();
        segment.resize(record + 100, 0);
        assert!(!is_fill(&segment, 0), "an empty record has LSN >= 1");
        assert!(decode_record(&Bytes::from(segment.clone()), 0).is_ok());
        assert!(is_fill(&segment, record));
        assert!(is_fill(&segment, segment.len() - 3), "a short all-zero end");
        assert!(
            !is_fill(&segment, segment.len()),
            "nothing left is not fill"
        );
        assert_eq!(nonzero_end(&segment, record), record);
        assert_eq!(nonzero_end(&segment, 0), 9, "the LSN's low byte");
        segment.extend(std::iter::repeat_n(0u8, 9000));
        segment[record + 5000] = 7;
        assert_eq!(nonzero_end(&segment, record), record + 5001);
        assert_eq!(nonzero_end(&segment, segment.len() + 5), segment.len() + 5);
    }

    #[test]
    fn an_unlanded_write_leaves_fill_or_a_zero_sector() {
        let mut segment = vec![0xa5u8; 4096];
        assert!(!looks_like_unlanded_write(&segment, 10, 4096));
        segment[10..26].fill(0);
        assert!(
            looks_like_unlanded_write(&segment, 10, 4096),
            "starts with fill"
        );
        segment[10..26].fill(0xa5);
        segment[1024..1536].fill(0);
        assert!(looks_like_unlanded_write(&segment, 10, 4096));
        assert!(
            !looks_like_unlanded_write(&segment, 10, 1535),
            "sector cut off"
        );
        segment[1024..1536].fill(0xa5);
        segment[1100..1700].fill(0);
        assert!(
            !looks_like_unlanded_write(&segment, 10, 4096),
            "no aligned sector"
        );
    }
}
