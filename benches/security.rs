//! The security module's per-transaction operations, apart from the sockets: a MAC over a
//! typical 0200 (X9.19 and AES-CMAC), its check, a format 0 PIN block translated between two
//! zone PIN keys, and a PIN verified against a Visa PVV. Keys are the repository's test keys.
//! Run: `cargo bench --bench security`.
//!
//! A MACed remote purchase costs eight MAC operations end to end (the terminal, the switch twice
//! on the acquirer side, the switch and the issuer twice each on the link, the terminal's check
//! of the answer), so these figures times eight are the cryptography in `loadgen grid --security`.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use switch::domain::Pan;
use switch::issuing::visa_pvv;
use switch::security::pinblock::encrypt_iso0;
use switch::security::{
    EncryptedPinBlock, KeyId, KeysFile, SecurityModule, SoftwareSecurityModule,
};

fn module() -> SoftwareSecurityModule {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/keys.toml");
    let keys = KeysFile::load(&path).expect("test keys");
    SoftwareSecurityModule::from_keys(&keys).expect("module")
}

fn id(text: &str) -> KeyId {
    text.parse().expect("key id")
}

/// About the size of a 0200 with track 2, terminal and merchant fields: 180 bytes.
fn message() -> Vec<u8> {
    (0..180u8).map(|i| b'0' + i % 10).collect()
}

fn macs(c: &mut Criterion) {
    let hsm = module();
    let data = message();
    let x919 = id("acquirer:100002:mac");
    let cmac = id("issuer:east-bank:mac");
    let mut g = c.benchmark_group("MAC of a 180-byte message");
    g.bench_function("X9.19 generate", |b| {
        b.iter(|| black_box(hsm.generate_mac(&x919, black_box(&data)).expect("mac")));
    });
    let mac = hsm.generate_mac(&x919, &data).expect("mac");
    g.bench_function("X9.19 verify", |b| {
        b.iter(|| {
            hsm.verify_mac(&x919, black_box(&data), &mac)
                .expect("valid")
        });
    });
    g.bench_function("AES-CMAC generate", |b| {
        b.iter(|| black_box(hsm.generate_mac(&cmac, black_box(&data)).expect("mac")));
    });
    g.finish();
}

fn pins(c: &mut Criterion) {
    let hsm = module();
    let pan: Pan = "4111110000000013".parse().expect("pan");
    // The acquirer ZPK of the test keys file (acquirer:100001:zpk), as a PIN pad holds it.
    let zpk: [u8; 16] = hex16("387DC02F50189F866DBFB7C4A4AE8EF3");
    let block: EncryptedPinBlock = encrypt_iso0(&zpk, "1234", &pan).expect("block");
    let from = id("acquirer:100001:zpk");
    let to = id("issuer:north-bank:zpk");
    let mut g = c.benchmark_group("PIN");
    g.bench_function("translate format 0, TDES zone to zone", |b| {
        b.iter(|| {
            black_box(
                hsm.translate_pin(&from, &to, &pan, black_box(&block))
                    .expect("ok"),
            )
        });
    });
    let pvk = hex16("0123456789ABCDEFFEDCBA9876543210");
    g.bench_function("Visa PVV of a PIN", |b| {
        b.iter(|| black_box(visa_pvv(&pvk, &pan, 1, black_box("1234"))));
    });
    g.finish();
}

fn hex16(text: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    hex::decode_to_slice(text, &mut out).expect("32 hex digits");
    out
}

criterion_group!(benches, macs, pins);
criterion_main!(benches);
