//! Times (or, under valgrind, counts instructions for) decoding and encoding the sample 0100 and
//! 0110 without criterion, for quick repeatable measurements:
//! `CARGO_PROFILE_RELEASE_LTO=false cargo build --release -p switch --example codec_timing` then
//! `valgrind --tool=callgrind ./target/release/examples/codec_timing dec 100000` (or `enc`).

use bytes::{Bytes, BytesMut};
use std::hint::black_box;
use std::time::Instant;
use switch::iso8583::samples::{self, AUTH_REQUEST_FIELDS, AUTH_RESPONSE_FIELDS};
use switch::iso8583::{ISO87_ASCII, MessageBuilder, decode};

fn enc(mti: [u8; 4], fields: &[(u8, &'static [u8])], out: &mut BytesMut) {
    let mut b = MessageBuilder::new(&ISO87_ASCII, mti);
    for &(n, v) in fields {
        b.set(n, v);
    }
    out.clear();
    b.encode(out).unwrap();
}
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let op = args.get(1).map(|s| s.as_str()).unwrap_or("all");
    let n: u32 = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000_000);
    let req = {
        let mut b = BytesMut::new();
        samples::auth_request(&ISO87_ASCII).encode(&mut b).unwrap();
        b.freeze()
    };
    let resp = {
        let mut b = BytesMut::new();
        samples::auth_response(&ISO87_ASCII).encode(&mut b).unwrap();
        b.freeze()
    };
    let _keep: Vec<Bytes> = vec![req.clone(), resp.clone()];
    let mut out = BytesMut::with_capacity(1024);
    let t = Instant::now();
    for _ in 0..n {
        if op == "dec" || op == "all" {
            black_box(decode(&ISO87_ASCII, black_box(&req).clone()).unwrap());
            black_box(decode(&ISO87_ASCII, black_box(&resp).clone()).unwrap());
        }
        if op == "enc" || op == "all" {
            enc(*b"0100", black_box(&AUTH_REQUEST_FIELDS), &mut out);
            black_box(&out);
            enc(*b"0110", black_box(&AUTH_RESPONSE_FIELDS), &mut out);
            black_box(&out);
        }
    }
    println!(
        "{op}: {:.0} ns per iteration",
        t.elapsed().as_nanos() as f64 / n as f64
    );
}
