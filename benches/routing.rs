//! BIN routing lookup with 100k ranges (and 10 for comparison): one binary search over the
//! flattened segments, for the issuer alone (`route`) and for the issuer and card product that
//! screening takes (`route_card`). Run: `cargo bench --bench routing`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use switch::config::BinRangeConfig;
use switch::domain::{Pan, luhn_check_digit};
use switch::routing::RoutingTable;

/// `n` 8-digit ranges spread over the BIN space, every tenth with a nested 10-digit child.
fn ranges(n: u64) -> Vec<BinRangeConfig> {
    let mut out = Vec::with_capacity(n as usize * 11 / 10);
    let step = 60_000_000 / n;
    for i in 0..n {
        let low = 30_000_000 + i * step;
        let high = low + step / 2;
        out.push(BinRangeConfig {
            low: low.to_string(),
            high: high.to_string(),
            issuer: format!("i{}", i % 16),
            product: None,
        });
        if i % 10 == 0 {
            let child = low * 100 + 5;
            out.push(BinRangeConfig {
                low: child.to_string(),
                high: (child + 3).to_string(),
                issuer: "child".into(),
                product: None,
            });
        }
    }
    out
}

fn pans(count: usize) -> Vec<Pan> {
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    (0..count)
        .map(|_| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let body = format!("{:015}", 300_000_000_000_000 + rng % 600_000_000_000_000);
            let mut digits = body.into_bytes();
            digits.push(luhn_check_digit(&digits));
            Pan::parse(&digits).expect("generated PAN is valid")
        })
        .collect()
}

fn routing(c: &mut Criterion) {
    let index = |id: &str| -> Option<u32> {
        if id == "child" {
            Some(99)
        } else {
            id.strip_prefix('i').and_then(|n| n.parse().ok())
        }
    };
    let probe = pans(4096);
    let mut g = c.benchmark_group("routing");
    for n in [10u64, 100_000] {
        let table = RoutingTable::build(&ranges(n), index).expect("table");
        let mut i = 0usize;
        g.bench_function(format!("route/{n}_ranges"), |b| {
            b.iter(|| {
                i = (i + 1) & 4095;
                black_box(table.route(black_box(&probe[i])))
            })
        });
        // What an authorization's screening calls: the issuer and the card product together.
        g.bench_function(format!("route_card/{n}_ranges"), |b| {
            b.iter(|| {
                i = (i + 1) & 4095;
                black_box(table.route_card(black_box(&probe[i])))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, routing);
criterion_main!(benches);
