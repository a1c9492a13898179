//! The metrics one request records, through the facade's macros (a key built and looked up in
//! the recorder's registry at every call) and through [`switch::metrics::RequestMeters`] (handles
//! taken once and kept), with the Prometheus recorder the `switch` binary installs.
//! Run: `cargo bench --bench metrics`.
//!
//! Each iteration is one on-us request's metrics: the request counter by MTI, the response
//! counter by MTI, response code and issuer, and the switch-latency histogram.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use switch::domain::ResponseCode;
use switch::metrics::{self as m, RequestMeters};

fn one_request(c: &mut Criterion) {
    let recorder = switch::metrics::builder()
        .expect("the switch's bucket bounds are valid")
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).expect("the only recorder of this process");
    let issuer = "metro-pay";
    // Runs `one` `iters` times, timed, draining the histogram's samples every 100,000 outside
    // the timing, as the exporter's upkeep does every few seconds: left to pile up, they would
    // be hundreds of megabytes by the end, and their storage would be part of the figure.
    let timed = |iters: u64, one: &dyn Fn()| {
        let mut total = Duration::ZERO;
        let mut left = iters;
        while left > 0 {
            let n = left.min(100_000);
            let start = Instant::now();
            for _ in 0..n {
                one();
            }
            total += start.elapsed();
            handle.run_upkeep();
            left -= n;
        }
        total
    };
    let mut g = c.benchmark_group("one request's metrics");
    g.bench_function("facade macros", |b| {
        b.iter_custom(|iters| {
            timed(iters, &|| {
                let mti = black_box(*b"0100");
                metrics::counter!(m::REQUESTS_TOTAL, "mti" => m::mti_label(&mti)).increment(1);
                let code = black_box(ResponseCode::Approved);
                metrics::counter!(m::RESPONSES_TOTAL, "mti" => m::mti_label(b"0110"), "response_code" => code.as_str(), "issuer" => black_box(issuer).to_owned())
                    .increment(1);
                metrics::histogram!(m::SWITCH_LATENCY_SECONDS).record(black_box(25e-6));
            })
        })
    });
    let meters = RequestMeters::new(["switch", "north-bank", "east-bank", issuer]);
    g.bench_function("kept handles", |b| {
        b.iter_custom(|iters| {
            timed(iters, &|| {
                meters.request(&black_box(*b"0100"));
                meters.response(
                    b"0110",
                    Some(black_box(ResponseCode::Approved)),
                    black_box(issuer),
                );
                meters.switch_latency(black_box(25e-6));
            })
        })
    });
    g.finish();
}

criterion_group!(benches, one_request);
criterion_main!(benches);
