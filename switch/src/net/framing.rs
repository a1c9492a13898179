//! Length-prefixed framing: cuts a peer's byte stream into ISO 8583 frames, and puts the length
//! header back on frames going out.
//!
//! # What this module owns
//!
//! - The length header in its four wire forms ([`LengthHeader`]).
//! - The optional fixed header that follows it (e.g. a 5-byte TPDU). It is carried as opaque bytes
//!   in [`Frame::header`] so it can be echoed in the reply.
//! - Zero-length keep-alives, which are consumed on read and never reach the caller.
//! - The frame size limit ([`FramingConfig::frame_bytes_max`]) in both directions.
//!
//! # What it leaves to others
//!
//! - Everything inside the message (MTI, bitmaps, fields) belongs to [`crate::iso8583`]. Here a
//!   frame is bytes, never a message.
//! - The meaning of the fixed header. If a dialect swaps the TPDU addresses in replies, the caller
//!   does that; this module writes back exactly the bytes it is given.
//! - Timeouts, reconnects and closing the socket. Those belong to the connection tasks that drive
//!   this codec through `tokio_util::codec::Framed`.
//!
//! # Why the line is drawn here
//!
//! A bad length and a bad message call for different responses. A bad length desynchronises the
//! stream: every later byte is suspect, so the only safe thing to do is close the connection. Every
//! decoder error means exactly that. A malformed message inside a well-formed frame leaves the
//! stream intact, and the layers above decline it with response code 30. Because framing never
//! looks inside the message, the two kinds of failure cannot be confused.
//!
//! # Speed
//!
//! Frames are cut out of the read buffer without copying: [`Frame::payload`] shares the read
//! buffer's allocation, and the ISO decoder indexes straight into it. On the way out,
//! [`FrameCodec::begin_frame`] and [`FrameCodec::finish_frame`] let the message encoder write into
//! the connection's output buffer right after a reserved length slot, so a response is not built in
//! one buffer and then copied into another.

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::Deserialize;
use thiserror::Error;
use tokio_util::codec::{Decoder, Encoder};

/// How the length of each frame is written in front of it. The length counts every byte after the
/// length header itself (the optional fixed header, e.g. a TPDU, plus the ISO message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LengthHeader {
    /// 2-byte binary, big-endian (network order). The default.
    #[default]
    Binary2Be,
    /// 2-byte binary, little-endian.
    Binary2Le,
    /// 4 ASCII decimal digits, e.g. `0204`.
    Ascii4,
    /// 2 bytes of packed BCD, e.g. `0x02 0x04` for 204 (max 9999).
    Bcd2,
}

impl LengthHeader {
    /// Bytes the length header itself takes on the wire.
    pub const fn width(self) -> usize {
        match self {
            Self::Binary2Be | Self::Binary2Le | Self::Bcd2 => 2,
            Self::Ascii4 => 4,
        }
    }

    /// The largest length this header can express.
    pub const fn max_length(self) -> usize {
        match self {
            Self::Binary2Be | Self::Binary2Le => u16::MAX as usize,
            Self::Ascii4 | Self::Bcd2 => 9999,
        }
    }

    /// Reads the declared length from exactly [`Self::width`] bytes. Returns `None` when the bytes
    /// are not a number in this form.
    fn read(self, b: &[u8]) -> Option<usize> {
        match self {
            Self::Binary2Be => Some(usize::from(u16::from_be_bytes([b[0], b[1]]))),
            Self::Binary2Le => Some(usize::from(u16::from_le_bytes([b[0], b[1]]))),
            Self::Ascii4 => b[..4].iter().try_fold(0, |acc, &c| {
                let digit = c.wrapping_sub(b'0');
                (digit < 10).then(|| acc * 10 + usize::from(digit))
            }),
            Self::Bcd2 => b[..2].iter().try_fold(0, |acc, &c| {
                let (hi, lo) = (c >> 4, c & 0x0f);
                (hi < 10 && lo < 10).then(|| acc * 100 + usize::from(hi * 10 + lo))
            }),
        }
    }

    /// Writes `len` into `slot`, which is exactly [`Self::width`] bytes. The caller has already
    /// checked `len` against [`Self::max_length`].
    fn write(self, len: usize, slot: &mut [u8]) {
        debug_assert!(len <= self.max_length());
        let digit = |place: usize| (len / place % 10) as u8;
        match self {
            Self::Binary2Be => slot.copy_from_slice(&(len as u16).to_be_bytes()),
            Self::Binary2Le => slot.copy_from_slice(&(len as u16).to_le_bytes()),
            Self::Ascii4 => {
                slot.copy_from_slice(&[1000, 100, 10, 1].map(|place| b'0' + digit(place)));
            }
            Self::Bcd2 => {
                slot[0] = (digit(1000) << 4) | digit(100);
                slot[1] = (digit(10) << 4) | digit(1);
            }
        }
    }
}

/// Framing settings for one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramingConfig {
    /// The wire form of the length in front of each frame.
    pub length_header: LengthHeader,
    /// Length of the fixed header between the length and the message (e.g. 5 for a TPDU), or 0
    /// for none. It counts toward the declared length.
    pub header_bytes: usize,
    /// The largest declared length accepted or sent, i.e. the fixed header plus the message,
    /// without the length header itself. This is also the most a peer can make us buffer for one
    /// frame.
    pub frame_bytes_max: usize,
}

impl Default for FramingConfig {
    fn default() -> Self {
        Self {
            length_header: LengthHeader::Binary2Be,
            header_bytes: 0,
            frame_bytes_max: 8192,
        }
    }
}

/// One frame without its length header.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Frame {
    /// The fixed header (e.g. a TPDU), exactly [`FramingConfig::header_bytes`] long. Empty when
    /// there is none.
    pub header: Bytes,
    /// The ISO 8583 message. It shares the read buffer's memory.
    pub payload: Bytes,
}

// Card data (PAN, track 2, PIN block) travels in the payload. This keeps a stray `{:?}` in a log
// line from printing it.
impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field("header_len", &self.header.len())
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

/// What went wrong, and on which side. "Peer" errors mean the other end's byte stream can no longer
/// be trusted, so the connection must be closed. "Internal" errors mean this switch tried to send a
/// frame that cannot be framed; nothing was written, and the connection itself is fine.
#[derive(Debug, Error)]
pub enum FramingError {
    /// The peer declared a length no valid frame can have. It is too large, not a number, or
    /// shorter than the fixed header.
    #[error(
        "peer framing error: impossible frame length {} (expected 0 for a keep-alive, or {min}..={max})",
        DeclaredLength(*.declared)
    )]
    ImpossibleLength {
        /// The declared length, or `None` if the length header was not a number.
        declared: Option<usize>,
        /// The smallest length a frame can have (the fixed header size, or 1 without one).
        min: usize,
        /// [`FramingConfig::frame_bytes_max`].
        max: usize,
    },
    /// The peer closed the stream partway through a frame.
    #[error("peer framing error: stream ended mid-frame with {have} of at least {need} bytes")]
    TruncatedAtEof {
        /// Bytes received, counted from the start of the length header.
        have: usize,
        /// Bytes the frame needs, counted the same way. If the length header itself was cut off,
        /// this is just the length header's width.
        need: usize,
    },
    /// An outbound frame is larger than the configured limit, or than the length header can
    /// express.
    #[error("internal framing error: outbound frame of {len} bytes exceeds the limit of {limit}")]
    FrameTooLarge {
        /// The fixed header plus the message.
        len: usize,
        /// The smaller of `frame_bytes_max` and [`LengthHeader::max_length`].
        limit: usize,
    },
    /// An outbound fixed header is not [`FramingConfig::header_bytes`] long.
    #[error("internal framing error: fixed header is {got} bytes, configured for {expected}")]
    HeaderLength {
        /// [`FramingConfig::header_bytes`].
        expected: usize,
        /// The length that was given.
        got: usize,
    },
    /// The output buffer was cut shorter than where [`FrameCodec::begin_frame`] started the frame.
    #[error(
        "internal framing error: output buffer shrank to {buffer_len} bytes, below the frame begun at {start}"
    )]
    FrameMarkLost {
        /// Where the frame's length header was placed.
        start: usize,
        /// The buffer's length when the frame was finished.
        buffer_len: usize,
    },
    /// The underlying stream failed.
    #[error("framing I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Formats the declared length in an error. The non-number case keeps the message readable
/// without carrying the raw bytes, which could be message content.
struct DeclaredLength(Option<usize>);

impl fmt::Display for DeclaredLength {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(len) => write!(f, "{len}"),
            None => f.write_str("(not a number)"),
        }
    }
}

/// A frame started with [`FrameCodec::begin_frame`] whose length is not yet written.
#[derive(Debug)]
#[must_use = "the frame's length stays zero until finish_frame patches it"]
pub struct FrameMark {
    /// Offset in the output buffer where the length header begins.
    start: usize,
}

/// The tokio-util codec. It decodes [`Frame`]s and encodes them, either from a [`Frame`] or in
/// place with [`FrameCodec::begin_frame`] and [`FrameCodec::finish_frame`].
#[derive(Debug, Clone)]
pub struct FrameCodec {
    config: FramingConfig,
    /// The real outbound limit: `frame_bytes_max`, capped at what the length header can express.
    out_limit: usize,
}

/// How much of the read buffer goes into the log when a length is impossible. This is enough to
/// see the length header, any TPDU and the MTI, which is usually enough to tell a misconfigured
/// length form or a stray protocol (HTTP, TLS) apart from a corrupted stream.
const LOGGED_HEAD_BYTES: usize = 32;

/// The least room the read buffer keeps free for the next read, once a connection has traffic.
///
/// tokio-util's `FramedRead` reads into whatever capacity the buffer has left (it reserves one
/// byte), and a frame cut out of the buffer takes its allocation's front with it, so the room
/// shrinks frame by frame. A switch connection with a 512-byte buffer then read one frame in up
/// to four `recvfrom` calls (1 byte, 7, 113, then `EAGAIN`; strace, on-us at 3,000/s: 2.1 calls
/// per request on average). With room to spare a frame comes in one read, and a read
/// that does not fill the room tells tokio the socket is drained, so the `EAGAIN` call goes too.
/// A connection that has never sent a byte keeps its small first buffer (10k idle connections:
/// docs/performance.md).
pub const READ_ROOM_MIN_BYTES: usize = 512;

/// How much room a buffer below [`READ_ROOM_MIN_BYTES`] is given. More than the minimum, so
/// that a buffer still shared with frames being answered (it cannot be reused in place) is
/// reallocated once per dozen frames, not once per frame.
const READ_ROOM_GROW_BYTES: usize = 2048;

/// Keeps room for the `need` bytes still missing from the frame being read, and at least
/// [`READ_ROOM_MIN_BYTES`].
fn keep_read_room(src: &mut BytesMut, need: usize) {
    if src.capacity() - src.len() < need.max(READ_ROOM_MIN_BYTES) {
        src.reserve(need.max(READ_ROOM_GROW_BYTES));
    }
}

impl FrameCodec {
    /// A codec for one connection.
    pub fn new(config: FramingConfig) -> Self {
        Self {
            config,
            out_limit: config
                .frame_bytes_max
                .min(config.length_header.max_length()),
        }
    }

    /// The settings this codec was built with.
    pub fn config(&self) -> &FramingConfig {
        &self.config
    }

    /// Starts a frame at the end of `dst`: reserves the length slot and writes the fixed `header`.
    /// The caller then writes the message straight into `dst` and calls
    /// [`finish_frame`](Self::finish_frame). If `header` is not exactly `header_bytes` long,
    /// nothing is written.
    ///
    /// A frame with no fixed header and nothing written before `finish_frame` goes out as a
    /// zero-length keep-alive.
    pub fn begin_frame(
        &self,
        dst: &mut BytesMut,
        header: &[u8],
    ) -> Result<FrameMark, FramingError> {
        self.check_header(header)?;
        let start = dst.len();
        let width = self.config.length_header.width();
        dst.reserve(width + header.len());
        // Placeholder only; finish_frame overwrites it.
        dst.put_bytes(0, width);
        dst.extend_from_slice(header);
        Ok(FrameMark { start })
    }

    /// Writes the length of the frame started by `mark`. The frame is everything in `dst` after
    /// the mark's length slot. If the frame is too large to send, `dst` is truncated back to where
    /// the frame began, so no partial frame can reach the wire.
    pub fn finish_frame(&self, dst: &mut BytesMut, mark: FrameMark) -> Result<(), FramingError> {
        let body_start = mark.start + self.config.length_header.width();
        let Some(len) = dst.len().checked_sub(body_start) else {
            let buffer_len = dst.len();
            dst.truncate(mark.start);
            return Err(FramingError::FrameMarkLost {
                start: mark.start,
                buffer_len,
            });
        };
        if len > self.out_limit {
            dst.truncate(mark.start);
            return Err(FramingError::FrameTooLarge {
                len,
                limit: self.out_limit,
            });
        }
        self.config
            .length_header
            .write(len, &mut dst[mark.start..body_start]);
        Ok(())
    }

    fn check_header(&self, header: &[u8]) -> Result<(), FramingError> {
        if header.len() == self.config.header_bytes {
            Ok(())
        } else {
            Err(FramingError::HeaderLength {
                expected: self.config.header_bytes,
                got: header.len(),
            })
        }
    }

    /// The smallest non-zero length a frame can declare.
    fn min_len(&self) -> usize {
        self.config.header_bytes.max(1)
    }

    #[cold]
    fn impossible(&self, declared: Option<usize>, src: &BytesMut) -> FramingError {
        tracing::warn!(
            declared = ?declared,
            min = self.min_len(),
            max = self.config.frame_bytes_max,
            length_header = ?self.config.length_header,
            head = %Hex(&src[..src.len().min(LOGGED_HEAD_BYTES)]),
            "peer sent an impossible frame length; the stream is out of sync and will be closed"
        );
        FramingError::ImpossibleLength {
            declared,
            min: self.min_len(),
            max: self.config.frame_bytes_max,
        }
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FramingError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FramingError> {
        let kind = self.config.length_header;
        let width = kind.width();
        let header_bytes = self.config.header_bytes;
        // Keep-alives may come in runs. Skipping them here spares Framed a round trip per
        // keep-alive.
        loop {
            // Waiting for the rest of a length header is always safe: it is at most 4 bytes, and
            // the connection's idle timeout covers a peer that stalls.
            let Some(prefix) = src.get(..width) else {
                keep_read_room(src, 0);
                return Ok(None);
            };
            let declared = kind.read(prefix);
            let len = match declared {
                Some(0) => {
                    src.advance(width);
                    continue;
                }
                Some(len) if len >= header_bytes && len <= self.config.frame_bytes_max => len,
                // Fail now, before buffering anything: waiting for bytes that a wrong length asks
                // for would hang the connection or let a peer make us hold up to 64 KiB.
                _ => return Err(self.impossible(declared, src)),
            };
            let total = width + len;
            if src.len() < total {
                // Grow once to fit the whole frame, rather than letting Framed grow the buffer
                // in small steps and copy it each time.
                keep_read_room(src, total - src.len());
                return Ok(None);
            }
            src.advance(width);
            // split_to + freeze shares the read buffer's allocation: the frame costs a reference
            // count, not a copy.
            let header = if header_bytes == 0 {
                Bytes::new()
            } else {
                src.split_to(header_bytes).freeze()
            };
            let payload = src.split_to(len - header_bytes).freeze();
            return Ok(Some(Frame { header, payload }));
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FramingError> {
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        if src.is_empty() {
            return Ok(None);
        }
        let kind = self.config.length_header;
        let width = kind.width();
        // decode already rejected impossible lengths, so a complete length header here is a valid
        // one and the frame is just short.
        let need = src
            .get(..width)
            .and_then(|prefix| kind.read(prefix))
            .map_or(width, |len| width + len);
        Err(FramingError::TruncatedAtEof {
            have: src.len(),
            need,
        })
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = FramingError;

    /// Copies the frame into `dst`. On the hot path, prefer
    /// [`begin_frame`](FrameCodec::begin_frame) and [`finish_frame`](FrameCodec::finish_frame),
    /// which skip the intermediate payload buffer. An empty frame with no fixed header goes out
    /// as a keep-alive. On error `dst` is unchanged.
    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), FramingError> {
        self.check_header(&frame.header)?;
        let len = frame.header.len() + frame.payload.len();
        if len > self.out_limit {
            return Err(FramingError::FrameTooLarge {
                len,
                limit: self.out_limit,
            });
        }
        let kind = self.config.length_header;
        let width = kind.width();
        let mut slot = [0; 4];
        kind.write(len, &mut slot[..width]);
        dst.reserve(width + len);
        dst.extend_from_slice(&slot[..width]);
        dst.extend_from_slice(&frame.header);
        dst.extend_from_slice(&frame.payload);
        Ok(())
    }
}

/// Lowercase hex for the log, written straight to the formatter without building a String.
///
/// The head of a frame can hold the first digits of a PAN (after a 2-byte length, MTI, bitmap and
/// LL prefix), and a PAN must never reach a log. So every byte inside a run of six or more ASCII
/// digits prints as `**`: MTIs and lengths stay readable, card numbers do not.
struct Hex<'a>(&'a [u8]);

const MASKED_DIGIT_RUN: usize = 6;

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        let mut i = 0;
        while i < b.len() {
            let run = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
            if run >= MASKED_DIGIT_RUN {
                for _ in 0..run {
                    f.write_str("**")?;
                }
                i += run;
            } else if run > 0 {
                b[i..i + run]
                    .iter()
                    .try_for_each(|c| write!(f, "{c:02x}"))?;
                i += run;
            } else {
                write!(f, "{:02x}", b[i])?;
                i += 1;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KINDS: [LengthHeader; 4] = [
        LengthHeader::Binary2Be,
        LengthHeader::Binary2Le,
        LengthHeader::Ascii4,
        LengthHeader::Bcd2,
    ];

    fn codec(length_header: LengthHeader, header_bytes: usize) -> FrameCodec {
        FrameCodec::new(FramingConfig {
            length_header,
            header_bytes,
            ..FramingConfig::default()
        })
    }

    fn frame(header: &[u8], payload: &[u8]) -> Frame {
        Frame {
            header: Bytes::copy_from_slice(header),
            payload: Bytes::copy_from_slice(payload),
        }
    }

    fn encode(codec: &mut FrameCodec, frames: &[Frame]) -> BytesMut {
        let mut wire = BytesMut::new();
        for f in frames {
            codec.encode(f.clone(), &mut wire).unwrap();
        }
        wire
    }

    /// Decodes everything in `src` as a connection would: decode until it wants more, then EOF.
    fn decode_to_eof(
        codec: &mut FrameCodec,
        src: &mut BytesMut,
    ) -> Result<Vec<Frame>, FramingError> {
        let mut out = Vec::new();
        while let Some(f) = codec.decode(src)? {
            out.push(f);
        }
        while let Some(f) = codec.decode_eof(src)? {
            out.push(f);
        }
        Ok(out)
    }

    #[test]
    fn each_length_header_writes_the_expected_bytes_and_round_trips() {
        let payload = vec![0xAB; 204];
        let expected_prefix: [(LengthHeader, &[u8]); 4] = [
            (LengthHeader::Binary2Be, &[0x00, 0xCC]),
            (LengthHeader::Binary2Le, &[0xCC, 0x00]),
            (LengthHeader::Ascii4, b"0204"),
            (LengthHeader::Bcd2, &[0x02, 0x04]),
        ];
        for (kind, prefix) in expected_prefix {
            let mut c = codec(kind, 0);
            let sent = frame(&[], &payload);
            let mut wire = encode(&mut c, std::slice::from_ref(&sent));
            assert_eq!(&wire[..kind.width()], prefix, "{kind:?}");
            assert_eq!(wire.len(), kind.width() + 204);
            assert_eq!(
                decode_to_eof(&mut c, &mut wire).unwrap(),
                vec![sent],
                "{kind:?}"
            );
            assert!(wire.is_empty());
        }
    }

    #[test]
    fn largest_lengths_round_trip_in_every_form() {
        for kind in KINDS {
            let max = kind.max_length();
            let mut c = FrameCodec::new(FramingConfig {
                length_header: kind,
                header_bytes: 0,
                frame_bytes_max: max,
            });
            for len in [1, 9, 10, 99, 100, 999, 1000, max] {
                let sent = frame(&[], &vec![7; len]);
                let mut wire = encode(&mut c, std::slice::from_ref(&sent));
                assert_eq!(
                    decode_to_eof(&mut c, &mut wire).unwrap(),
                    vec![sent],
                    "{kind:?} {len}"
                );
            }
        }
    }

    #[test]
    fn payload_shares_the_read_buffer() {
        let mut c = codec(LengthHeader::Binary2Be, 5);
        let mut src = encode(&mut c, &[frame(b"TPDU!", b"0100 message")]);
        let base = src.as_ptr();
        let f = c.decode(&mut src).unwrap().unwrap();
        assert_eq!(f.header.as_ptr(), base.wrapping_add(2));
        assert_eq!(f.payload.as_ptr(), base.wrapping_add(2 + 5));
    }

    #[test]
    fn partial_frame_reserves_room_for_the_rest() {
        let mut c = codec(LengthHeader::Binary2Be, 0);
        let mut src = BytesMut::new();
        src.extend_from_slice(&[0x1F, 0x40, 1, 2, 3]); // declares 8000
        assert!(c.decode(&mut src).unwrap().is_none());
        assert!(src.capacity() >= 2 + 8000);
        assert_eq!(src.len(), 5, "nothing consumed while waiting");
    }

    #[test]
    fn byte_at_a_time_gives_the_same_frames() {
        for kind in KINDS {
            let mut c = codec(kind, 0);
            let sent = vec![
                frame(&[], b"first"),
                frame(&[], &[0; 300]),
                frame(&[], b"x"),
            ];
            let wire = encode(&mut c, &sent);
            let mut src = BytesMut::new();
            let mut got = Vec::new();
            for &b in wire.iter() {
                src.put_u8(b);
                while let Some(f) = c.decode(&mut src).unwrap() {
                    got.push(f);
                }
            }
            assert_eq!(got, sent, "{kind:?}");
            assert_eq!(c.decode_eof(&mut src).unwrap(), None);
        }
    }

    #[test]
    fn several_frames_in_one_buffer() {
        let mut c = codec(LengthHeader::Ascii4, 0);
        let sent = vec![frame(&[], b"one"), frame(&[], b"two"), frame(&[], b"three")];
        let mut src = encode(&mut c, &sent);
        assert_eq!(c.decode(&mut src).unwrap(), Some(sent[0].clone()));
        assert_eq!(c.decode(&mut src).unwrap(), Some(sent[1].clone()));
        assert_eq!(c.decode(&mut src).unwrap(), Some(sent[2].clone()));
        assert_eq!(c.decode(&mut src).unwrap(), None);
        assert!(src.is_empty());
    }

    #[test]
    fn zero_length_keep_alives_are_skipped() {
        for kind in KINDS {
            let mut c = codec(kind, 0);
            let keep_alive = encode(&mut c, &[Frame::default()]);
            assert_eq!(keep_alive.len(), kind.width());
            let a = frame(&[], b"a");
            let b = frame(&[], b"bb");
            let mut src = BytesMut::new();
            src.extend_from_slice(&keep_alive);
            src.extend_from_slice(&encode(&mut c, std::slice::from_ref(&a)));
            src.extend_from_slice(&keep_alive);
            src.extend_from_slice(&keep_alive);
            src.extend_from_slice(&encode(&mut c, std::slice::from_ref(&b)));
            src.extend_from_slice(&keep_alive);
            assert_eq!(
                decode_to_eof(&mut c, &mut src).unwrap(),
                vec![a, b],
                "{kind:?}"
            );
            assert!(src.is_empty(), "trailing keep-alive consumed");
        }
    }

    #[test]
    fn only_keep_alives_yield_nothing() {
        let mut c = codec(LengthHeader::Bcd2, 5);
        let mut src = BytesMut::from(&[0u8; 10][..]);
        assert_eq!(c.decode(&mut src).unwrap(), None);
        assert!(src.is_empty());
    }

    #[test]
    fn tpdu_header_is_kept_and_echoed() {
        let tpdu = [0x60, 0x00, 0x03, 0x00, 0x00];
        let mut c = codec(LengthHeader::Binary2Be, 5);
        let mut src = BytesMut::new();
        src.extend_from_slice(&[0x00, 0x09]);
        src.extend_from_slice(&tpdu);
        src.extend_from_slice(b"0100");
        let request = c.decode(&mut src).unwrap().unwrap();
        assert_eq!(&request.header[..], &tpdu);
        assert_eq!(&request.payload[..], b"0100");

        let mut out = BytesMut::new();
        let reply = Frame {
            header: request.header.clone(),
            payload: Bytes::from_static(b"0110"),
        };
        c.encode(reply, &mut out).unwrap();
        assert_eq!(
            &out[..],
            &[
                0x00, 0x09, 0x60, 0x00, 0x03, 0x00, 0x00, b'0', b'1', b'1', b'0'
            ]
        );

        // The in-place path writes the same bytes.
        let mut in_place = BytesMut::new();
        let mark = c.begin_frame(&mut in_place, &request.header).unwrap();
        in_place.extend_from_slice(b"0110");
        c.finish_frame(&mut in_place, mark).unwrap();
        assert_eq!(in_place, out);
    }

    #[test]
    fn a_frame_of_only_the_fixed_header_is_yielded_with_an_empty_payload() {
        let mut c = codec(LengthHeader::Binary2Be, 5);
        let mut src = BytesMut::from(&[0x00, 0x05, 1, 2, 3, 4, 5][..]);
        let f = c.decode(&mut src).unwrap().unwrap();
        assert_eq!(&f.header[..], &[1, 2, 3, 4, 5]);
        assert!(f.payload.is_empty());
    }

    fn impossible(
        kind: LengthHeader,
        header_bytes: usize,
        bytes: &[u8],
    ) -> (Option<usize>, usize, usize) {
        let mut c = codec(kind, header_bytes);
        let mut src = BytesMut::from(bytes);
        match c.decode(&mut src) {
            Err(FramingError::ImpossibleLength { declared, min, max }) => (declared, min, max),
            other => panic!("{kind:?} {bytes:?}: expected ImpossibleLength, got {other:?}"),
        }
    }

    #[test]
    fn length_over_the_limit_fails_without_waiting_for_the_body() {
        assert_eq!(
            impossible(LengthHeader::Binary2Be, 0, &[0x20, 0x01]),
            (Some(8193), 1, 8192)
        );
        assert_eq!(
            impossible(LengthHeader::Binary2Le, 0, &[0xFF, 0xFF]),
            (Some(65535), 1, 8192)
        );
        assert_eq!(
            impossible(LengthHeader::Ascii4, 0, b"9000"),
            (Some(9000), 1, 8192)
        );
        assert_eq!(
            impossible(LengthHeader::Bcd2, 0, &[0x81, 0x93]),
            (Some(8193), 1, 8192)
        );
    }

    #[test]
    fn exactly_the_limit_is_accepted() {
        let mut c = codec(LengthHeader::Binary2Be, 0);
        let mut src = BytesMut::from(&[0x20, 0x00][..]);
        src.extend_from_slice(&[0; 8192]);
        assert_eq!(c.decode(&mut src).unwrap().unwrap().payload.len(), 8192);
    }

    #[test]
    fn non_digit_ascii_length_is_impossible() {
        assert_eq!(
            impossible(LengthHeader::Ascii4, 0, b"02A4"),
            (None, 1, 8192)
        );
        // An HTTP probe against an ASCII-framed port.
        assert_eq!(
            impossible(LengthHeader::Ascii4, 0, b"GET / HTTP/1.1"),
            (None, 1, 8192)
        );
        assert_eq!(
            impossible(LengthHeader::Ascii4, 0, b" 204"),
            (None, 1, 8192)
        );
    }

    #[test]
    fn bad_bcd_nibble_is_impossible() {
        assert_eq!(
            impossible(LengthHeader::Bcd2, 0, &[0x0A, 0x00]),
            (None, 1, 8192)
        );
        assert_eq!(
            impossible(LengthHeader::Bcd2, 0, &[0x00, 0x0F]),
            (None, 1, 8192)
        );
        assert_eq!(
            impossible(LengthHeader::Bcd2, 0, &[0xA0, 0x00]),
            (None, 1, 8192)
        );
    }

    #[test]
    fn length_shorter_than_the_fixed_header_is_impossible() {
        assert_eq!(
            impossible(LengthHeader::Binary2Be, 5, &[0x00, 0x03, 1, 2, 3]),
            (Some(3), 5, 8192)
        );
        assert_eq!(
            impossible(LengthHeader::Ascii4, 5, b"0004"),
            (Some(4), 5, 8192)
        );
    }

    #[test]
    fn impossible_length_after_a_good_frame_still_yields_the_good_frame_first() {
        let mut c = codec(LengthHeader::Ascii4, 0);
        let mut src = BytesMut::from(&b"0002okXXXX"[..]);
        assert_eq!(&c.decode(&mut src).unwrap().unwrap().payload[..], b"ok");
        assert!(matches!(
            c.decode(&mut src),
            Err(FramingError::ImpossibleLength { declared: None, .. })
        ));
    }

    #[test]
    fn truncated_at_eof_errors() {
        let mut c = codec(LengthHeader::Binary2Be, 0);
        let mut src = BytesMut::from(&[0x00, 0x0A, 1, 2, 3, 4, 5, 6][..]);
        assert_eq!(c.decode(&mut src).unwrap(), None);
        assert!(matches!(
            c.decode_eof(&mut src),
            Err(FramingError::TruncatedAtEof { have: 8, need: 12 })
        ));

        // Cut inside the length header itself.
        let mut c = codec(LengthHeader::Ascii4, 0);
        let mut src = BytesMut::from(&b"00"[..]);
        assert!(matches!(
            c.decode_eof(&mut src),
            Err(FramingError::TruncatedAtEof { have: 2, need: 4 })
        ));
    }

    #[test]
    fn clean_eof_after_whole_frames_is_ok() {
        let mut c = codec(LengthHeader::Bcd2, 0);
        let mut src = encode(&mut c, &[frame(&[], b"abc")]);
        assert_eq!(c.decode_eof(&mut src).unwrap(), Some(frame(&[], b"abc")));
        assert_eq!(c.decode_eof(&mut src).unwrap(), None);
    }

    #[test]
    fn encode_over_the_limit_errors_and_leaves_dst_unchanged() {
        let mut c = codec(LengthHeader::Binary2Be, 0);
        let mut dst = encode(&mut c, &[frame(&[], b"already queued")]);
        let before = dst.clone();

        let err = c.encode(frame(&[], &[0; 8193]), &mut dst).unwrap_err();
        assert!(matches!(
            err,
            FramingError::FrameTooLarge {
                len: 8193,
                limit: 8192
            }
        ));
        assert_eq!(dst, before);

        let mark = c.begin_frame(&mut dst, &[]).unwrap();
        dst.extend_from_slice(&[0; 8193]);
        let err = c.finish_frame(&mut dst, mark).unwrap_err();
        assert!(matches!(
            err,
            FramingError::FrameTooLarge {
                len: 8193,
                limit: 8192
            }
        ));
        assert_eq!(dst, before);
    }

    #[test]
    fn outbound_limit_is_capped_by_what_the_header_can_express() {
        for kind in KINDS {
            let mut c = FrameCodec::new(FramingConfig {
                length_header: kind,
                header_bytes: 0,
                frame_bytes_max: 1 << 20,
            });
            let limit = kind.max_length();
            let mut dst = BytesMut::new();
            let err = c
                .encode(frame(&[], &vec![0; limit + 1]), &mut dst)
                .unwrap_err();
            assert!(matches!(err, FramingError::FrameTooLarge { limit: l, .. } if l == limit));
            assert!(dst.is_empty());

            let mark = c.begin_frame(&mut dst, &[]).unwrap();
            dst.put_bytes(0, limit + 1);
            assert!(c.finish_frame(&mut dst, mark).is_err(), "{kind:?}");
            assert!(dst.is_empty());
        }
    }

    #[test]
    fn wrong_header_length_is_refused_and_writes_nothing() {
        let mut c = codec(LengthHeader::Binary2Be, 5);
        let mut dst = BytesMut::new();
        assert!(matches!(
            c.begin_frame(&mut dst, b"abc"),
            Err(FramingError::HeaderLength {
                expected: 5,
                got: 3
            })
        ));
        assert!(matches!(
            c.encode(frame(b"", b"0110"), &mut dst),
            Err(FramingError::HeaderLength {
                expected: 5,
                got: 0
            })
        ));
        assert!(dst.is_empty());
    }

    #[test]
    fn finish_frame_detects_a_shrunken_buffer() {
        let c = codec(LengthHeader::Ascii4, 0);
        let mut dst = BytesMut::from(&b"queued"[..]);
        let mark = c.begin_frame(&mut dst, &[]).unwrap();
        dst.truncate(8);
        assert!(matches!(
            c.finish_frame(&mut dst, mark),
            Err(FramingError::FrameMarkLost {
                start: 6,
                buffer_len: 8
            })
        ));
        assert_eq!(&dst[..], b"queued");
    }

    #[test]
    fn errors_say_which_side_failed_and_carry_no_content() {
        let peer = FramingError::ImpossibleLength {
            declared: None,
            min: 1,
            max: 8192,
        };
        assert_eq!(
            peer.to_string(),
            "peer framing error: impossible frame length (not a number) (expected 0 for a keep-alive, or 1..=8192)"
        );
        let ours = FramingError::FrameTooLarge {
            len: 9000,
            limit: 8192,
        };
        assert!(ours.to_string().starts_with("internal framing error"));
        assert!(format!("{:?}", frame(b"", b"4111111111111111")).contains("payload_len: 16"));
        assert!(!format!("{:?}", frame(b"", b"4111111111111111")).contains("4111"));
    }

    #[test]
    fn hex_log_helper() {
        assert_eq!(Hex(&[0x00, 0xAB, 0x10]).to_string(), "00ab10");
        // MTI digits stay, a PAN-like run does not.
        assert_eq!(
            Hex(b"0100\x8016411111").to_string(),
            "3031303080****************"
        );
        assert!(
            !Hex(b"\x00\xcc01004111110000000013")
                .to_string()
                .contains("34313131")
        );
    }

    fn kind_strategy() -> impl Strategy<Value = LengthHeader> {
        prop::sample::select(KINDS.to_vec())
    }

    /// Splits `wire` at the given points (in any order, duplicates allowed) into consecutive
    /// chunks.
    fn chunks(wire: &[u8], cuts: &[prop::sample::Index]) -> Vec<Vec<u8>> {
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        points.push(0);
        points.push(wire.len());
        points.sort_unstable();
        points
            .windows(2)
            .map(|w| wire[w[0]..w[1]].to_vec())
            .collect()
    }

    proptest! {
        #[test]
        fn encoded_payloads_decode_back_in_any_chunking(
            kind in kind_strategy(),
            header_bytes in 0usize..6,
            payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..400), 0..16),
            in_place in prop::collection::vec(any::<bool>(), 16),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..24),
        ) {
            let mut c = codec(kind, header_bytes);
            let mut wire = BytesMut::new();
            let mut expected = Vec::new();
            for (i, payload) in payloads.iter().enumerate() {
                let header = vec![i as u8; header_bytes];
                if in_place[i] {
                    let mark = c.begin_frame(&mut wire, &header).unwrap();
                    wire.extend_from_slice(payload);
                    c.finish_frame(&mut wire, mark).unwrap();
                } else {
                    c.encode(frame(&header, payload), &mut wire).unwrap();
                }
                // With no fixed header an empty payload is a keep-alive and is never yielded.
                if header_bytes > 0 || !payload.is_empty() {
                    expected.push(frame(&header, payload));
                }
            }

            let mut src = BytesMut::new();
            let mut got = Vec::new();
            for chunk in chunks(&wire, &cuts) {
                src.extend_from_slice(&chunk);
                while let Some(f) = c.decode(&mut src).unwrap() {
                    got.push(f);
                }
            }
            prop_assert_eq!(c.decode_eof(&mut src).unwrap(), None);
            prop_assert!(src.is_empty());
            prop_assert_eq!(got, expected);
        }

        #[test]
        fn random_bytes_never_panic_and_frames_respect_the_limits(
            kind in kind_strategy(),
            header_bytes in 0usize..6,
            frame_bytes_max in 0usize..600,
            bytes in prop::collection::vec(any::<u8>(), 0..1024),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..16),
        ) {
            let mut c = FrameCodec::new(FramingConfig { length_header: kind, header_bytes, frame_bytes_max });
            let mut src = BytesMut::new();
            let mut frames = Vec::new();
            let mut failed = false;
            'feed: for chunk in chunks(&bytes, &cuts) {
                src.extend_from_slice(&chunk);
                loop {
                    match c.decode(&mut src) {
                        Ok(Some(f)) => frames.push(f),
                        Ok(None) => break,
                        Err(_) => {
                            failed = true;
                            break 'feed;
                        }
                    }
                }
            }
            if !failed {
                match c.decode_eof(&mut src) {
                    Ok(_) => {}
                    Err(FramingError::TruncatedAtEof { have, need }) => prop_assert!(have < need),
                    Err(other) => prop_assert!(false, "unexpected {other:?}"),
                }
            }
            for f in frames {
                prop_assert_eq!(f.header.len(), header_bytes);
                let len = f.header.len() + f.payload.len();
                prop_assert!(len >= 1 && len <= frame_bytes_max);
            }
        }
    }

    #[tokio::test]
    async fn works_over_a_real_stream() {
        use futures::{SinkExt, StreamExt};
        use tokio::io::AsyncWriteExt;
        use tokio_util::codec::Framed;

        let config = FramingConfig {
            length_header: LengthHeader::Ascii4,
            header_bytes: 5,
            ..FramingConfig::default()
        };
        // A tiny pipe, so frames cross it in several pieces.
        let (client, server) = tokio::io::duplex(7);

        // An echo host that reverses each payload and echoes the TPDU.
        let host = tokio::spawn(async move {
            let mut framed = Framed::new(server, FrameCodec::new(config));
            let mut served = 0;
            while let Some(request) = framed.next().await {
                let request = request?;
                let mut payload = request.payload.to_vec();
                payload.reverse();
                framed
                    .send(Frame {
                        header: request.header,
                        payload: payload.into(),
                    })
                    .await?;
                served += 1;
            }
            Ok::<_, FramingError>(served)
        });

        let codec = FrameCodec::new(config);
        let mut client = Framed::new(client, codec.clone());
        let tpdu = Bytes::from_static(&[0x60, 0x00, 0x01, 0x00, 0x02]);

        client
            .send(Frame {
                header: tpdu.clone(),
                payload: Bytes::from_static(b"0100 request one"),
            })
            .await
            .unwrap();
        let reply = client.next().await.unwrap().unwrap();
        assert_eq!(reply.header, tpdu);
        assert_eq!(&reply.payload[..], b"eno tseuqer 0010");

        // A keep-alive on the raw stream goes unnoticed by the host.
        client.get_mut().write_all(b"0000").await.unwrap();

        // The hot path: encode straight into Framed's write buffer.
        let mark = codec.begin_frame(client.write_buffer_mut(), &tpdu).unwrap();
        client.write_buffer_mut().extend_from_slice(b"0200 two");
        codec.finish_frame(client.write_buffer_mut(), mark).unwrap();
        client.flush().await.unwrap();
        let reply = client.next().await.unwrap().unwrap();
        assert_eq!(&reply.payload[..], b"owt 0020");

        drop(client);
        assert_eq!(host.await.unwrap().unwrap(), 2);
    }

    /// A socket stand-in that hands out its bytes at most `chunk` at a time, and records the room
    /// each read was offered.
    struct Chunked {
        data: std::collections::VecDeque<u8>,
        chunk: usize,
        offered: Vec<usize>,
    }

    impl tokio::io::AsyncRead for Chunked {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            self.offered.push(buf.remaining());
            let n = self.chunk.min(buf.remaining()).min(self.data.len());
            let bytes: Vec<u8> = self.data.drain(..n).collect();
            // Nothing put: end of stream.
            buf.put_slice(&bytes);
            std::task::Poll::Ready(Ok(()))
        }
    }

    /// Reads 40 requests of 130 bytes on the wire, handed out `chunk` bytes at a time, through a
    /// 512-byte starting buffer as the switch's acquirer side reads them. With `keep`, every frame
    /// stays alive while the next is read (the switch answers them concurrently), so the buffer
    /// cannot reuse its allocation. Returns the frames kept and the room offered to each read.
    async fn read_forty(chunk: usize, keep: bool) -> (Vec<Frame>, Vec<usize>) {
        use futures::StreamExt;
        use tokio_util::codec::FramedRead;

        let data = (0..40u8)
            .flat_map(|i| {
                let mut f = 128u16.to_be_bytes().to_vec();
                f.extend(std::iter::repeat_n(b'0' + i % 10, 128));
                f
            })
            .collect();
        let socket = Chunked {
            data,
            chunk,
            offered: Vec::new(),
        };
        let mut reader =
            FramedRead::with_capacity(socket, FrameCodec::new(FramingConfig::default()), 512);
        let (mut kept, mut seen) = (Vec::new(), 0);
        while let Some(frame) = reader.next().await {
            let frame = frame.unwrap();
            assert_eq!(frame.payload.len(), 128);
            seen += 1;
            if keep {
                kept.push(frame);
            }
        }
        assert_eq!(seen, 40);
        (kept, reader.into_inner().offered)
    }

    #[tokio::test]
    async fn once_traffic_flows_each_frame_comes_in_one_read() {
        for keep in [true, false] {
            let (kept, offered) = read_forty(130, keep).await;
            // One read per frame and one that finds the end: no frame was split across reads.
            assert_eq!(offered.len(), 41, "keep {keep}, room offered: {offered:?}");
            assert!(
                offered[1..].iter().all(|&room| room >= READ_ROOM_MIN_BYTES),
                "keep {keep}, room offered: {offered:?}"
            );
            // Frames that follow each other in memory share an allocation: count the new ones.
            // Growing by the minimum alone would take one per frame.
            let allocations = 1 + kept
                .windows(2)
                .filter(|w| w[1].payload.as_ptr() != w[0].payload.as_ptr().wrapping_add(130))
                .count();
            assert!(allocations <= 8, "{allocations} read buffers for 40 frames");
        }
    }

    #[tokio::test]
    async fn a_frame_cut_across_reads_still_leaves_room_for_the_next() {
        // Reads of a frame and a half: after each, the rest of a frame is missing.
        for keep in [true, false] {
            let (_, offered) = read_forty(195, keep).await;
            assert_eq!(
                offered.len(),
                (40 * 130usize).div_ceil(195) + 1,
                "keep {keep}, room offered: {offered:?}"
            );
            assert!(
                offered[1..].iter().all(|&room| room >= READ_ROOM_MIN_BYTES),
                "keep {keep}, room offered: {offered:?}"
            );
        }
    }

    #[tokio::test]
    async fn impossible_length_on_a_real_stream_ends_it() {
        use futures::StreamExt;
        use tokio::io::AsyncWriteExt;
        use tokio_util::codec::FramedRead;

        let (mut peer, ours) = tokio::io::duplex(64);
        let mut frames = FramedRead::new(ours, codec(LengthHeader::Ascii4, 0));
        // The peer stays connected; the error must come without waiting for more bytes or EOF.
        peer.write_all(b"0003abcGET / HTTP/1.1\r\n").await.unwrap();
        assert_eq!(&frames.next().await.unwrap().unwrap().payload[..], b"abc");
        assert!(matches!(
            frames.next().await,
            Some(Err(FramingError::ImpossibleLength { declared: None, .. }))
        ));
        assert!(
            frames.next().await.is_none(),
            "the stream is finished after the error"
        );
    }
}
