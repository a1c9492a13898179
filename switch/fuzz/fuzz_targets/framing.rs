//! Fuzzes the framing codec on arbitrary byte streams, under every length-header kind, with and
//! without a fixed header, at several frame limits, fed in one piece or in small chunks.
//!
//! The first byte selects the setup: bits 0-1 the length header (binary2-be, binary2-le, ascii4,
//! bcd2), bit 2 a 5-byte TPDU, bits 3-4 `frame_bytes_max` (64, 300, 8192, 65535, capped at what the
//! header can express), bits 5-7 the chunk size (1, 8, 15, ... 50 bytes). The rest is the stream.
//!
//! Checked: no panic; the same frames and the same error whether the stream arrives whole or in
//! chunks; every frame within the limit and with its fixed header; the codec never holds more
//! than one frame's worth of unread bytes; and the frames, encoded again, decode to themselves.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use switch::net::framing::{Frame, FrameCodec, FramingConfig, LengthHeader};
use tokio_util::codec::{Decoder, Encoder};

const KINDS: [LengthHeader; 4] = [
    LengthHeader::Binary2Be,
    LengthHeader::Binary2Le,
    LengthHeader::Ascii4,
    LengthHeader::Bcd2,
];
const LIMITS: [usize; 4] = [64, 300, 8192, 65535];

/// The frames decoded and, if the stream broke, the error's text.
type Outcome = (Vec<Frame>, Option<String>);

/// Feeds `data` to a fresh codec `chunk` bytes at a time, as `FramedRead` would, then ends the
/// stream.
fn run(cfg: FramingConfig, data: &[u8], chunk: usize) -> Outcome {
    let mut codec = FrameCodec::new(cfg);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let most = cfg.length_header.width() + cfg.frame_bytes_max;
    for piece in data.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(e) => return (frames, Some(e.to_string())),
            }
        }
        assert!(
            buf.len() < most,
            "holding {} unread bytes, more than one frame ({most})",
            buf.len()
        );
    }
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(f)) => frames.push(f),
            Ok(None) => return (frames, None),
            Err(e) => return (frames, Some(e.to_string())),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, stream)) = data.split_first() else {
        return;
    };
    let kind = KINDS[usize::from(sel & 3)];
    let cfg = FramingConfig {
        length_header: kind,
        header_bytes: if sel & 4 != 0 { 5 } else { 0 },
        frame_bytes_max: LIMITS[usize::from((sel >> 3) & 3)].min(kind.max_length()),
    };
    let chunk = 1 + usize::from(sel >> 5) * 7;

    let whole = run(cfg, stream, stream.len());
    let chunked = run(cfg, stream, chunk);
    assert_eq!(whole, chunked, "chunking changed the outcome");

    let (frames, _) = whole;
    let codec = FrameCodec::new(cfg);
    let mut again = BytesMut::new();
    for f in &frames {
        assert_eq!(f.header.len(), cfg.header_bytes, "fixed header length");
        let len = f.header.len() + f.payload.len();
        assert!(len <= cfg.frame_bytes_max, "frame of {len} over the limit");
        assert!(len > 0, "a keep-alive reached the caller");
        codec
            .clone()
            .encode(f.clone(), &mut again)
            .expect("a decoded frame encodes");
    }
    let round = run(cfg, &again, again.len());
    assert_eq!(round, (frames, None), "frames re-encode to themselves");
});
