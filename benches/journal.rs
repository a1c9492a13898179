//! The journal append path, apart from the network: encoding a request record (PAN encryption
//! included) and appending records to a `FileJournal` through its queue, writer thread and group
//! commit. Run: `cargo bench --bench journal`.
//!
//! The file journal is timed with `sync = none`, so the figure is the software path (queue,
//! framing, CRC, one write per batch, completions), not the disk: `fdatasync` on this machine's
//! virtual disk takes 0.15–4 ms and would drown it (see docs/benchmarks.md, "Journal").

use std::hint::black_box;

use bytes::Bytes;
use chrono::NaiveDate;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use switch::config::JournalSync;
use switch::domain::Pan;
use switch::events::{KeyRecord, Record, RequestRecord};
use switch::journal::{FileJournal, Journal, JournalOptions};
use switch::security::PanVault;

fn request(vault: &PanVault, pan: &Pan, txn: u64) -> Record {
    Record::Request(RequestRecord {
        txn,
        at_ms: 1_795_000_000_000,
        key: KeyRecord {
            acquirer: "100001".into(),
            terminal: "TERM0001".into(),
            stan: (txn % 999_999 + 1) as u32,
            transmission: "1126013000".into(),
        },
        mti: 100,
        pan: vault.protect(pan).expect("protect"),
        masked_pan: pan.to_string().into(),
        processing_code: "000000".into(),
        amount_minor: Some(12_345),
        currency: 156,
        issuer: "north-bank".into(),
        rrn: Some("633001000001".into()),
        merchant: Some("MERCHANT0000001".into()),
        mcc: Some(5411),
        original: None,
        replacement_minor: None,
        business_date: NaiveDate::from_ymd_opt(2026, 11, 26).expect("date"),
        product: None,
        card_present: Some(true),
    })
}

fn encode(c: &mut Criterion) {
    let vault = PanVault::new(&[7u8; 32]);
    let pan = Pan::parse(b"4111111111111111").expect("pan");
    let mut txn = 0u64;
    c.bench_function("request record: encrypt PAN + build + encode", |b| {
        b.iter(|| {
            txn += 1;
            black_box(request(&vault, &pan, txn).encode().expect("encode"))
        })
    });
}

fn append(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = JournalOptions {
        sync: JournalSync::None,
        ..JournalOptions::default()
    };
    let (journal, _) = FileJournal::open(dir.path(), opts).expect("journal");
    let vault = PanVault::new(&[7u8; 32]);
    let pan = Pan::parse(b"4111111111111111").expect("pan");
    let payload = Bytes::from(request(&vault, &pan, 1).encode().expect("encode"));
    let mut g = c.benchmark_group("file journal append (sync none), records per burst");
    for burst in [1usize, 64, 512] {
        g.throughput(Throughput::Elements(burst as u64));
        g.bench_with_input(BenchmarkId::from_parameter(burst), &burst, |b, &burst| {
            b.iter(|| {
                rt.block_on(async {
                    let tickets: Vec<_> = (0..burst).map(|_| journal.append(&payload)).collect();
                    for t in tickets {
                        black_box(t.await.expect("append"));
                    }
                })
            })
        });
    }
    g.finish();
}

criterion_group!(benches, encode, append);
criterion_main!(benches);
