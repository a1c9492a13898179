//! The codec against an independent one, iso8583_rs 0.1.10, on the same bytes: the sample 0100
//! (204 bytes) and 0110 (129 bytes) in `iso87-ascii` (see `switch::iso8583::samples`). Both codecs
//! produce identical bytes for these messages (checked below before timing, and in
//! `tests/interop.rs`).
//!
//! Run: `cargo bench --bench codec`. One criterion group, `codec`, times each operation for ours
//! and then for iso8583_rs, so the two print side by side:
//! - `decode_0100`, `decode_0110`: bytes → message.
//! - `encode_0100`, `encode_0110`: create a message, set every field, write the bytes.
//! - `round_trip`, the headline: decode the 0100, encode the 0110, decode the 0110, encode the
//!   0100, i.e. one decode and one encode of each message.
//!
//! After the group, a plain `Instant` loop times each operation again and prints one summary line
//! each (ours, iso8583_rs, ratio), ending with the round trip.
//!
//! How each side is driven:
//! - Ours decodes from a `Bytes` made by `BytesMut::freeze()` and already shared, so the clone
//!   handed to `decode` is a reference-count increment, not a copy. It encodes into one reused
//!   `BytesMut` (cleared each time) from a `MessageBuilder` built inside the timed loop with every
//!   field set, as the switch does per message.
//! - iso8583_rs parses from a `Vec<u8>`. Its `parse` takes `&mut Vec<u8>` but only reads it (checked
//!   below), so the same vector is passed every iteration and no clone is timed. It encodes by
//!   `new_msg`, `set("message_type")`, `set_on` for every field and `assemble()`. The spec and the
//!   message segment are looked up once, outside the timing, which favours iso8583_rs.
//! - Each decoded message or encoded buffer goes through `black_box` and is dropped inside the
//!   timing, on both sides.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, criterion_group};
use iso8583_rs::iso8583::iso_spec::{self, IsoMsg, MessageSegment, Spec};
use switch::iso8583::samples::{self, AUTH_REQUEST_FIELDS, AUTH_RESPONSE_FIELDS};
use switch::iso8583::{ISO87_ASCII, Message, MessageBuilder, decode};

const SPEC_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/iso8583_rs_spec.yaml"
);

/// The round-trip goal for ours, and the minimum speed-up over iso8583_rs.
const GOAL_NS: f64 = 330.0;
const GOAL_RATIO: f64 = 20.0;

// ---- ours ----------------------------------------------------------------------------------------

#[inline(always)]
fn ours_decode(wire: &Bytes) -> Message {
    decode(&ISO87_ASCII, wire.clone()).expect("decode")
}

#[inline(always)]
fn ours_encode(mti: [u8; 4], fields: &[(u8, &'static [u8])], out: &mut BytesMut) {
    let mut b = MessageBuilder::new(&ISO87_ASCII, mti);
    for &(n, v) in fields {
        b.set(n, v);
    }
    out.clear();
    b.encode(out).expect("encode");
    black_box(&out[..]);
}

struct Ours {
    req: Bytes,
    resp: Bytes,
    out: BytesMut,
}

impl Ours {
    fn new() -> Self {
        let req = samples::auth_request(&ISO87_ASCII).to_bytes().unwrap();
        let resp = samples::auth_response(&ISO87_ASCII).to_bytes().unwrap();
        // `to_bytes` ends in `BytesMut::freeze()`. Clone once so that each buffer is in its shared
        // form (a later clone is then only a reference-count increment), and keep the originals
        // alive so the count never reaches zero in the loop.
        drop((req.clone(), resp.clone()));
        Ours {
            req,
            resp,
            out: BytesMut::with_capacity(512),
        }
    }

    fn decode_req(&self) -> Message {
        ours_decode(black_box(&self.req))
    }

    fn decode_resp(&self) -> Message {
        ours_decode(black_box(&self.resp))
    }

    fn encode_req(&mut self) {
        ours_encode(*b"0100", black_box(&AUTH_REQUEST_FIELDS), &mut self.out);
    }

    fn encode_resp(&mut self) {
        ours_encode(*b"0110", black_box(&AUTH_RESPONSE_FIELDS), &mut self.out);
    }

    fn round_trip(&mut self) {
        black_box(self.decode_req());
        self.encode_resp();
        black_box(self.decode_resp());
        self.encode_req();
    }
}

// ---- iso8583_rs ----------------------------------------------------------------------------------

struct Theirs {
    spec: &'static Spec,
    seg: &'static MessageSegment,
    req: Vec<u8>,
    resp: Vec<u8>,
    req_fields: Vec<(u32, &'static str)>,
    resp_fields: Vec<(u32, &'static str)>,
}

fn as_text(fields: &[(u8, &'static [u8])]) -> Vec<(u32, &'static str)> {
    fields
        .iter()
        .map(|&(n, v)| (n as u32, std::str::from_utf8(v).unwrap()))
        .collect()
}

#[inline(always)]
fn their_parse(spec: &'static Spec, wire: &mut Vec<u8>) -> IsoMsg {
    match spec.parse(wire) {
        Ok(m) => m,
        Err(e) => panic!("iso8583_rs parse: {}", e.msg),
    }
}

impl Theirs {
    fn new(ours: &Ours) -> Self {
        let spec = iso_spec::spec("");
        let seg = spec.get_message_from_header("0100").expect("segment");
        Theirs {
            spec,
            seg,
            req: ours.req.to_vec(),
            resp: ours.resp.to_vec(),
            req_fields: as_text(&AUTH_REQUEST_FIELDS),
            resp_fields: as_text(&AUTH_RESPONSE_FIELDS),
        }
    }

    #[inline(always)]
    fn assemble(&self, mti: &str, fields: &[(u32, &str)]) -> Vec<u8> {
        let mut m = iso_spec::new_msg(self.spec, self.seg);
        m.set("message_type", mti).unwrap();
        for &(n, v) in fields {
            m.set_on(n, v).unwrap();
        }
        match m.assemble() {
            Ok(v) => v,
            Err(e) => panic!("iso8583_rs assemble: {}", e.msg),
        }
    }

    fn decode_req(&mut self) -> IsoMsg {
        their_parse(self.spec, black_box(&mut self.req))
    }

    fn decode_resp(&mut self) -> IsoMsg {
        their_parse(self.spec, black_box(&mut self.resp))
    }

    fn encode_req(&self) -> Vec<u8> {
        self.assemble(black_box("0100"), black_box(&self.req_fields))
    }

    fn encode_resp(&self) -> Vec<u8> {
        self.assemble(black_box("0110"), black_box(&self.resp_fields))
    }

    fn round_trip(&mut self) {
        black_box(self.decode_req());
        black_box(self.encode_resp());
        black_box(self.decode_resp());
        black_box(self.encode_req());
    }
}

/// Both sides do the same work on the same bytes; fail loudly otherwise.
fn check(ours: &mut Ours, theirs: &mut Theirs) {
    assert_eq!(ours.req.len(), 204);
    assert_eq!(ours.resp.len(), 129);
    ours.encode_req();
    assert_eq!(&ours.out[..], &ours.req[..]);
    ours.encode_resp();
    assert_eq!(&ours.out[..], &ours.resp[..]);
    assert_eq!(
        ours.decode_req().field_numbers().count(),
        AUTH_REQUEST_FIELDS.len()
    );
    assert_eq!(
        ours.decode_resp().field_numbers().count(),
        AUTH_RESPONSE_FIELDS.len()
    );

    assert_eq!(
        theirs.encode_req(),
        ours.req,
        "iso8583_rs's 0100 differs from ours"
    );
    assert_eq!(
        theirs.encode_resp(),
        ours.resp,
        "iso8583_rs's 0110 differs from ours"
    );
    let before = theirs.req.clone();
    let m = theirs.decode_req();
    assert_eq!(theirs.req, before, "iso8583_rs's parse changed its input");
    for &(n, v) in &theirs.req_fields {
        assert_eq!(m.bmp_child_value(n).unwrap(), v, "field {n}");
    }
    let m = theirs.decode_resp();
    for &(n, v) in &theirs.resp_fields {
        assert_eq!(m.bmp_child_value(n).unwrap(), v, "field {n}");
    }
}

fn set_spec_file() {
    // SAFETY: called first thing in `main`, before any other thread exists.
    unsafe { std::env::set_var("SPEC_FILE", SPEC_PATH) };
}

fn codec(c: &mut Criterion) {
    let mut ours = Ours::new();
    let mut theirs = Theirs::new(&ours);
    check(&mut ours, &mut theirs);

    let mut g = c.benchmark_group("codec");
    g.sample_size(50)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));

    g.bench_function(BenchmarkId::new("decode_0100", "ours"), |b| {
        b.iter(|| ours.decode_req())
    });
    g.bench_function(BenchmarkId::new("decode_0100", "iso8583_rs"), |b| {
        b.iter(|| theirs.decode_req())
    });
    g.bench_function(BenchmarkId::new("decode_0110", "ours"), |b| {
        b.iter(|| ours.decode_resp())
    });
    g.bench_function(BenchmarkId::new("decode_0110", "iso8583_rs"), |b| {
        b.iter(|| theirs.decode_resp())
    });
    g.bench_function(BenchmarkId::new("encode_0100", "ours"), |b| {
        b.iter(|| ours.encode_req())
    });
    g.bench_function(BenchmarkId::new("encode_0100", "iso8583_rs"), |b| {
        b.iter(|| theirs.encode_req())
    });
    g.bench_function(BenchmarkId::new("encode_0110", "ours"), |b| {
        b.iter(|| ours.encode_resp())
    });
    g.bench_function(BenchmarkId::new("encode_0110", "iso8583_rs"), |b| {
        b.iter(|| theirs.encode_resp())
    });
    g.bench_function(BenchmarkId::new("round_trip", "ours"), |b| {
        b.iter(|| ours.round_trip())
    });
    g.bench_function(BenchmarkId::new("round_trip", "iso8583_rs"), |b| {
        b.iter(|| theirs.round_trip())
    });
    g.finish();
}

criterion_group!(benches, codec);

/// Mean nanoseconds per call of `f` over `iters` calls, after `iters / 10` untimed ones.
fn mean_ns(iters: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..iters / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    start.elapsed().as_nanos() as f64 / iters as f64
}

/// One line per operation from a plain timing loop, ending with the round trip.
fn summary() {
    let mut ours = Ours::new();
    let mut theirs = Theirs::new(&ours);
    check(&mut ours, &mut theirs);
    const OURS_ITERS: u32 = 1_000_000;
    const THEIRS_ITERS: u32 = 100_000;

    println!();
    println!(
        "summary: mean of {OURS_ITERS} calls (ours) and {THEIRS_ITERS} calls (iso8583_rs), std::time::Instant"
    );
    let line = |name: &str, o: f64, t: f64| {
        println!(
            "{name}: ours {o:.0} ns, iso8583_rs {t:.0} ns, ratio {:.0}x",
            t / o
        );
        (o, t)
    };
    line(
        "decode 0100",
        mean_ns(OURS_ITERS, || drop(black_box(ours.decode_req()))),
        mean_ns(THEIRS_ITERS, || drop(black_box(theirs.decode_req()))),
    );
    line(
        "decode 0110",
        mean_ns(OURS_ITERS, || drop(black_box(ours.decode_resp()))),
        mean_ns(THEIRS_ITERS, || drop(black_box(theirs.decode_resp()))),
    );
    line(
        "encode 0100",
        mean_ns(OURS_ITERS, || ours.encode_req()),
        mean_ns(THEIRS_ITERS, || drop(black_box(theirs.encode_req()))),
    );
    line(
        "encode 0110",
        mean_ns(OURS_ITERS, || ours.encode_resp()),
        mean_ns(THEIRS_ITERS, || drop(black_box(theirs.encode_resp()))),
    );
    let (o, t) = line(
        "round trip",
        mean_ns(OURS_ITERS, || ours.round_trip()),
        mean_ns(THEIRS_ITERS, || theirs.round_trip()),
    );
    let met = o <= GOAL_NS && t / o >= GOAL_RATIO;
    println!(
        "goal (round trip <= {GOAL_NS:.0} ns and >= {GOAL_RATIO:.0}x faster): {}",
        if met { "met" } else { "MISSED" }
    );
}

fn main() {
    set_spec_file();
    benches();
    Criterion::default().configure_from_args().final_summary();
    // `cargo bench` passes `--bench`; `cargo test --benches` does not (criterion then only checks
    // that each benchmark runs once), and the summary loop would be slow in a debug build. Listing
    // and profiling (`--profile-time`, e.g. under perf) skip it too.
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| {
        args.iter()
            .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
    };
    if has("--bench") && !has("--list") && !has("--profile-time") {
        summary();
    }
}
