//! Direct I/O for pre-written segments: opening a file with `O_DIRECT`, memory aligned for it,
//! and [`DirectTail`], which turns the writer's batches of records into whole, aligned blocks.
//!
//! Why: written through the page cache, every byte of the journal was copied into a fresh page
//! twice, once as the spare's zeros and once as the record itself, and the kernel's writeback then
//! went through those pages again. With `O_DIRECT` the disk reads the zeros and the records from
//! our own buffers, and writing puts nothing in the page cache (recovery's reads at open still
//! do; docs/performance.md, "Direct I/O for the journal"). The price is that a write must start
//! and end on a block boundary, from memory aligned to one: each batch rewrites the segment's
//! last partial block with the bytes it already held, then the new records, then zeros to the
//! block's end. Inside the pre-written size those zeros are the fill that was there already, so
//! the bytes are a buffered segment's; a batch that crosses `segment_bytes_max` leaves up to a
//! block of zeros past its records where a buffered file would end, which reads as fill.
//!
//! Rewriting durable bytes is safe because they are rewritten unchanged: a write torn at any
//! sector leaves each sector either as it was or as it was meant to be, and both hold the same
//! earlier records ([`super::format`]'s torn-write rule covers the new ones). Buffered writeback
//! rewrote whole pages the same way.
//!
//! What it leaves to others: which segments are written this way (only spares prepared with the
//! flag, [`super::spare`]) and when to sync ([`super::file`]). Recovery reads segments through the
//! page cache as before; the kernel keeps cached pages and direct writes coherent.

use std::fs::File;
use std::io;
use std::path::Path;

/// Block size for offsets, lengths and memory alignment: the page size, and the physical sector
/// of the disks this runs on. A logical sector of 512 would also do for offsets on most disks,
/// but 4096 suits every one.
pub(super) const BLOCK_BYTES: usize = 4096;

/// Opens `path` for writing, created empty, with `O_DIRECT` when `direct`.
pub(super) fn open(path: &Path, direct: bool) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(true);
    if direct {
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.custom_flags(libc::O_DIRECT);
        }
        #[cfg(not(target_os = "linux"))]
        return Err(io::Error::from(io::ErrorKind::Unsupported));
    }
    options.open(path)
}

/// Whether `e` says the file system does not do direct I/O (as opposed to a failing disk).
pub(super) fn refused(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Unsupported || e.raw_os_error() == Some(libc::EINVAL)
}

/// A byte buffer whose working slice starts on a [`BLOCK_BYTES`] boundary: a `Vec` one block
/// longer than asked, used from its first aligned byte. No `unsafe` and no allocator API.
#[derive(Debug, Default)]
pub(super) struct AlignedBuf {
    bytes: Vec<u8>,
}

impl AlignedBuf {
    /// The aligned slice of `len` bytes, keeping the first `keep` bytes of the previous one
    /// (`keep` ≤ its length); the rest is whatever was there. Reallocates only to grow, and then
    /// to at least twice the size, so batches that grow a little each time do not each copy.
    fn slice(&mut self, len: usize, keep: usize) -> &mut [u8] {
        let have = self.bytes.len().saturating_sub(BLOCK_BYTES);
        if have < len {
            let kept = self.aligned(keep.min(have)).to_vec();
            self.bytes = vec![0u8; len.max(2 * have) + BLOCK_BYTES];
            self.aligned(kept.len()).copy_from_slice(&kept);
        }
        self.aligned(len)
    }

    /// `len` zero bytes, aligned.
    pub(super) fn zeroed(&mut self, len: usize) -> &mut [u8] {
        let s = self.slice(len, 0);
        s.fill(0);
        s
    }

    /// The first `len` bytes from the first aligned address (the buffer is one block longer
    /// than any `len` asked for, so they fit; an empty buffer gives only the empty slice).
    fn aligned(&mut self, len: usize) -> &mut [u8] {
        if len == 0 {
            return &mut [];
        }
        let at = (BLOCK_BYTES - self.bytes.as_ptr().addr() % BLOCK_BYTES) % BLOCK_BYTES;
        &mut self.bytes[at..at + len]
    }

    fn capacity(&self) -> usize {
        self.bytes.len()
    }
}

/// The writer's side of a segment opened with `O_DIRECT`: the bytes of the segment's last partial
/// block, which the next batch must write again in front of its own.
#[derive(Debug, Default)]
pub(super) struct DirectTail {
    buf: AlignedBuf,
    /// Bytes of records in the segment's last, partial block (at the front of `buf`).
    tail: usize,
}

impl DirectTail {
    /// Writes `records` at `end`, the segment's length in bytes of records, as whole blocks:
    /// the last partial block again, the records, zeros to the end of the block.
    pub(super) fn write(&mut self, file: &File, end: u64, records: &[u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let tail = self.tail;
        debug_assert_eq!(end % BLOCK_BYTES as u64, tail as u64);
        let len = tail + records.len();
        let padded = len.div_ceil(BLOCK_BYTES) * BLOCK_BYTES;
        let out = self.buf.slice(padded, tail);
        out[tail..len].copy_from_slice(records);
        out[len..padded].fill(0);
        // By hand rather than `write_all_at`: after a short write it would go on from an
        // unaligned offset, and its EINVAL would hide why the first write was short.
        let at = end - tail as u64;
        let written = file.write_at(out, at)?;
        if written < padded {
            return Err(io::Error::other(format!(
                "direct write of {padded} bytes at {at} wrote {written}"
            )));
        }
        // The new last partial block moves to the front for the next batch.
        let next = len % BLOCK_BYTES;
        out.copy_within(len - next..len, 0);
        self.tail = next;
        Ok(())
    }

    /// Gives back memory a large batch grew the buffer to, keeping the tail.
    pub(super) fn shrink_to(&mut self, bytes: usize) {
        if self.buf.capacity() > bytes.max(BLOCK_BYTES) + 2 * BLOCK_BYTES {
            let kept = self.buf.aligned(self.tail).to_vec();
            let mut smaller = AlignedBuf::default();
            smaller.slice(bytes.max(BLOCK_BYTES), 0)[..kept.len()].copy_from_slice(&kept);
            self.buf = smaller;
        }
    }

    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.buf.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn aligned_slices_are_aligned_and_keep_what_they_are_asked_to() {
        let mut b = AlignedBuf::default();
        let s = b.slice(10, 0);
        assert_eq!(s.as_ptr().align_offset(BLOCK_BYTES), 0);
        s.copy_from_slice(b"0123456789");
        // Growing keeps the front.
        let s = b.slice(3 * BLOCK_BYTES, 4);
        assert_eq!(s.as_ptr().align_offset(BLOCK_BYTES), 0);
        assert_eq!(&s[..4], b"0123");
        assert!(b.zeroed(100).iter().all(|&z| z == 0));
        assert!(AlignedBuf::default().zeroed(0).is_empty());
        assert!(AlignedBuf::default().slice(0, 0).is_empty());
    }

    /// Batches written through the tail read back as the same bytes written plainly, with zeros
    /// after them to the block's end (a buffered file here: the layout is the point).
    #[test]
    fn batches_land_as_if_appended_with_fill_after_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let file = open(&path, false).unwrap();
        let mut tail = DirectTail::default();
        let mut expected = Vec::new();
        let mut end = 0u64;
        for (i, n) in [1usize, 4095, 1, 5000, 8192, 3, 12_000]
            .into_iter()
            .enumerate()
        {
            let batch: Vec<u8> = (0..n).map(|j| (i * 31 + j) as u8 | 1).collect();
            tail.write(&file, end, &batch).unwrap();
            expected.extend_from_slice(&batch);
            end += n as u64;
            if i == 4 {
                // After a batch grew the buffer, and with a partial block to carry over.
                let before = tail.capacity();
                tail.shrink_to(0);
                assert!(tail.capacity() < before, "not shrunk: {before}");
            }
        }
        let mut got = Vec::new();
        File::open(&path).unwrap().read_to_end(&mut got).unwrap();
        assert_eq!(got.len() % BLOCK_BYTES, 0, "whole blocks only");
        assert_eq!(&got[..expected.len()], &expected[..]);
        assert!(got[expected.len()..].iter().all(|&z| z == 0), "fill after");
    }
}
