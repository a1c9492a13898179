//! Writes the fuzz targets' seed corpora (`switch/fuzz/corpus/<target>/seed-*`) with the switch's
//! own encoder, so that each target starts from messages that get deep into its code instead of
//! having to discover a bitmap and field 32 by chance:
//! `cargo run -p switch --example fuzz_seeds -- switch/fuzz/corpus`.
//!
//! - `decode`: one message of each request and response MTI, in every dialect;
//! - `framing`: a selector byte (see `fuzz_targets/framing.rs`) and a byte stream of frames
//!   under each length header, with and without a 5-byte TPDU, keep-alives included;
//! - `pipeline`: a dialect byte and one request of each MTI the switch serves, plus a few it
//!   declines (format error, unknown acquirer, a response MTI, no field 32).

use std::path::{Path, PathBuf};

use switch::iso8583::{DialectId, MessageBuilder, samples};
use switch::net::framing::{Frame, FrameCodec, FramingConfig, LengthHeader};
use tokio_util::codec::Encoder;

/// A named message: MTI and fields.
struct Seed {
    name: &'static str,
    mti: [u8; 4],
    fields: Vec<(u8, &'static [u8])>,
}

const PREPAID: &[u8] = b"6050010000000013";
const CREDIT: &[u8] = b"4111110000000013";

/// Fields every acquirer request carries here.
fn common(stan: &'static [u8]) -> Vec<(u8, &'static [u8])> {
    vec![
        (7, b"0601120000"),
        (11, stan),
        (12, b"120000"),
        (13, b"0601"),
        (32, b"100001"),
        (41, b"TERM0001"),
        (42, b"MERCHANT0000001"),
        (49, b"156"),
    ]
}

fn with(
    mut base: Vec<(u8, &'static [u8])>,
    more: &[(u8, &'static [u8])],
) -> Vec<(u8, &'static [u8])> {
    base.extend_from_slice(more);
    base.sort_by_key(|&(n, _)| n);
    base
}

/// Field 90 naming the original 0100 of STAN 000101 from acquirer 100001.
const ORIGINAL_0100: &[u8] = b"010000010106011200000000010000100000000000";

fn requests() -> Vec<Seed> {
    vec![
        Seed {
            name: "0100-purchase-on-us",
            mti: *b"0100",
            fields: with(
                common(b"000101"),
                &[
                    (2, PREPAID),
                    (3, b"000000"),
                    (4, b"000000000100"),
                    (14, b"3012"),
                    (18, b"5411"),
                    (22, b"051"),
                ],
            ),
        },
        Seed {
            name: "0100-balance-inquiry",
            mti: *b"0100",
            fields: with(
                common(b"000102"),
                &[(2, PREPAID), (3, b"310000"), (14, b"3012")],
            ),
        },
        Seed {
            name: "0100-preauth-track2",
            mti: *b"0100",
            fields: with(
                common(b"000103"),
                &[
                    (2, CREDIT),
                    (3, b"000000"),
                    (4, b"000000012345"),
                    (22, b"021"),
                    (35, b"4111110000000013=30121011234567890123"),
                    (37, b"533022000001"),
                ],
            ),
        },
        Seed {
            name: "0200-purchase",
            mti: *b"0200",
            fields: with(
                common(b"000104"),
                &[
                    (2, PREPAID),
                    (3, b"000000"),
                    (4, b"000000000250"),
                    (14, b"3012"),
                ],
            ),
        },
        Seed {
            name: "0220-completion",
            mti: *b"0220",
            fields: with(
                common(b"000105"),
                &[
                    (2, PREPAID),
                    (3, b"000000"),
                    (4, b"000000000100"),
                    (37, b"533022000001"),
                    (38, b"M00001"),
                    (90, ORIGINAL_0100),
                ],
            ),
        },
        Seed {
            name: "0400-reversal",
            mti: *b"0400",
            fields: with(
                common(b"000106"),
                &[
                    (2, PREPAID),
                    (3, b"000000"),
                    (4, b"000000000100"),
                    (90, ORIGINAL_0100),
                ],
            ),
        },
        Seed {
            name: "0420-reversal-advice",
            mti: *b"0420",
            fields: with(
                common(b"000107"),
                &[
                    (2, PREPAID),
                    (3, b"000000"),
                    (4, b"000000000100"),
                    (90, ORIGINAL_0100),
                ],
            ),
        },
        Seed {
            name: "0800-echo",
            mti: *b"0800",
            fields: vec![
                (7, b"0601120000"),
                (11, b"000108"),
                (32, b"100001"),
                (70, b"301"),
            ],
        },
        Seed {
            name: "0800-sign-on",
            mti: *b"0800",
            fields: vec![(7, b"0601120000"), (11, b"000109"), (70, b"001")],
        },
        Seed {
            name: "0100-format-error",
            mti: *b"0100",
            fields: with(
                common(b"000110"),
                &[(2, PREPAID), (3, b"000000"), (4, b"000000000777")],
            ),
        },
        Seed {
            name: "0100-unknown-acquirer",
            mti: *b"0100",
            fields: {
                let mut f = with(
                    common(b"000111"),
                    &[(2, PREPAID), (3, b"000000"), (4, b"000000000100")],
                );
                for (n, v) in &mut f {
                    if *n == 32 {
                        *v = b"999999";
                    }
                }
                f
            },
        },
    ]
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).expect("corpus directory");
    std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("seed written");
}

fn encode(id: DialectId, s: &Seed) -> Vec<u8> {
    let mut b = MessageBuilder::new(id.dialect(), s.mti);
    for &(n, v) in &s.fields {
        b.set(n, v);
    }
    let mut out = b.to_bytes().expect("seed encodes").to_vec();
    if s.name.ends_with("format-error") {
        // The encoder refuses bad content, so the amount 7.77 is spoilt after encoding: a letter
        // in the ASCII dialects, a nibble above 9 in BCD.
        let (find, bad): (&[u8], u8) = if id == DialectId::Iso87Bcd {
            (&[0x07, 0x77], 0x7a)
        } else {
            (b"777", b'X')
        };
        let at = out
            .windows(find.len())
            .position(|w| w == find)
            .expect("the amount is in the message");
        out[at + 1] = bad;
    }
    out
}

fn main() {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "switch/fuzz/corpus".into()),
    );
    let reqs = requests();
    for (i, id) in DialectId::ALL.into_iter().enumerate() {
        let d = id.dialect();
        // decode: every request plus the two sample messages.
        for s in &reqs {
            write(
                &out.join("decode"),
                &format!("{}-{}", id.name(), s.name),
                &encode(id, s),
            );
        }
        let sample_req = samples::auth_request(d).to_bytes().expect("sample");
        let sample_resp = samples::auth_response(d).to_bytes().expect("sample");
        write(
            &out.join("decode"),
            &format!("{}-sample-0100", id.name()),
            &sample_req,
        );
        write(
            &out.join("decode"),
            &format!("{}-sample-0110", id.name()),
            &sample_resp,
        );
        // pipeline: the dialect's index, then the message.
        for s in &reqs {
            let mut v = vec![i as u8];
            v.extend_from_slice(&encode(id, s));
            write(
                &out.join("pipeline"),
                &format!("{}-{}", id.name(), s.name),
                &v,
            );
        }
        for (name, msg) in [
            ("sample-0110-response", &sample_resp),
            ("sample-0100-no-field-32", &sample_req),
        ] {
            let mut v = vec![i as u8];
            v.extend_from_slice(msg);
            write(&out.join("pipeline"), &format!("{}-{name}", id.name()), &v);
        }
    }
    // framing: selector = kind | tpdu << 2 | limit 8192 (index 2) << 3 | chunking 1 << 5.
    let kinds = [
        LengthHeader::Binary2Be,
        LengthHeader::Binary2Le,
        LengthHeader::Ascii4,
        LengthHeader::Bcd2,
    ];
    let payloads: Vec<Vec<u8>> = reqs
        .iter()
        .take(3)
        .map(|s| encode(DialectId::Iso87Ascii, s))
        .collect();
    for (k, kind) in kinds.into_iter().enumerate() {
        for tpdu in [0usize, 5] {
            let codec = FrameCodec::new(FramingConfig {
                length_header: kind,
                header_bytes: tpdu,
                frame_bytes_max: 8192,
            });
            let selector = k as u8 | u8::from(tpdu == 5) << 2 | 2 << 3 | 1 << 5;
            let mut stream = bytes::BytesMut::new();
            stream.extend_from_slice(&[selector]);
            for p in &payloads {
                let frame = Frame {
                    header: bytes::Bytes::from(vec![0x60; tpdu]),
                    payload: bytes::Bytes::from(p.clone()),
                };
                codec
                    .clone()
                    .encode(frame, &mut stream)
                    .expect("frame encodes");
                // A keep-alive between frames.
                stream.extend_from_slice(&vec![
                    if kind == LengthHeader::Ascii4 {
                        b'0'
                    } else {
                        0
                    };
                    kind.width()
                ]);
            }
            // A last frame cut short: the stream ends mid-frame.
            let mut tail = bytes::BytesMut::new();
            codec
                .clone()
                .encode(
                    Frame {
                        header: bytes::Bytes::from(vec![0x60; tpdu]),
                        payload: bytes::Bytes::from(payloads[0].clone()),
                    },
                    &mut tail,
                )
                .expect("frame encodes");
            let whole = stream.to_vec();
            write(&out.join("framing"), &format!("{k}-{tpdu}-frames"), &whole);
            let mut truncated = whole.clone();
            truncated.extend_from_slice(&tail[..tail.len() / 2]);
            write(
                &out.join("framing"),
                &format!("{k}-{tpdu}-truncated"),
                &truncated,
            );
        }
    }
    println!("seeds written under {}", out.display());
}
