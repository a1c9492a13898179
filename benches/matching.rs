//! The response-matching maps, apart from the sockets: an issuer link's in-flight map (a reply
//! found by its STAN, deadlines in a heap) and the switch's duplicate window (a request claimed
//! by acquirer, terminal, STAN and time, then completed with its answer).
//! Run: `cargo bench --bench matching`.
//!
//! Each iteration is one request's whole life in the map at a steady state of N in flight:
//! allocate a STAN, insert, and take the reply of the request sent N earlier.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use switch::domain::{AcquirerId, Mti, Stan, TerminalId, TransmissionDateTime};
use switch::net::duplicates::{Answer, Claim, DupKey, DuplicateWindow};
use switch::net::issuer::inflight::InFlight;
use tokio::time::Instant;

fn inflight(c: &mut Criterion) {
    let mut g = c.benchmark_group("inflight map: allocate STAN, insert, match reply");
    for n in [16usize, 1024, 4096] {
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            let t0 = Instant::now();
            let deadline = t0 + Duration::from_secs(2);
            let mut m: InFlight<u64> = InFlight::new();
            let mut last = Stan::new(1).expect("stan");
            let mut ring = std::collections::VecDeque::with_capacity(n);
            for i in 0..n {
                let s = m.next_free_stan(&mut last);
                m.insert(s, deadline, i as u64);
                ring.push_back(s.value());
            }
            let mut i = n as u64;
            b.iter(|| {
                let s = m.next_free_stan(&mut last);
                m.insert(s, deadline, i);
                ring.push_back(s.value());
                let oldest = ring.pop_front().expect("ring");
                black_box(m.remove(oldest));
                i += 1;
            });
        });
    }
    g.finish();
}

fn key(n: u32) -> DupKey {
    DupKey {
        acquirer: AcquirerId::parse("100001").expect("acquirer"),
        terminal: TerminalId::from_field(format!("T{:07}", n % 64).as_bytes()).expect("terminal"),
        stan: Stan::new(n % 999_999 + 1).expect("stan"),
        transmission: TransmissionDateTime::from_field(b"1126013000").expect("time"),
    }
}

fn duplicates(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let _guard = rt.enter();
    // About the size of a real answer: the window keeps an exact-size copy of each.
    let answer = Answer::Bytes(bytes::Bytes::from(vec![b'0'; 150]));
    // Twice as many distinct keys as the window keeps, so every claim is new and evicts: the
    // steady state of a busy switch. 1M is the default `duplicate_entries_max`.
    for remembered in [100_000usize, 1_000_000] {
        let name = format!(
            "duplicate window: claim + complete ({}k remembered)",
            remembered / 1000
        );
        c.bench_function(&name, |b| {
            let w = Arc::new(DuplicateWindow::new(Duration::from_secs(300), remembered));
            let now = Instant::now();
            let keys: Vec<DupKey> = (0..2 * remembered as u32).map(key).collect();
            let mut n = 0usize;
            b.iter(|| {
                n = (n + 1) % keys.len();
                match w.claim(keys[n], Mti::AUTH_REQUEST, now) {
                    Claim::New(p) => {
                        black_box(p.complete(answer.clone()));
                    }
                    Claim::Duplicate(d) => {
                        black_box(d);
                    }
                }
            });
        });
    }
}

criterion_group!(benches, inflight, duplicates);
criterion_main!(benches);
