//! An issuer of many accounts with one card each, for the examples that measure the engine at
//! volume (`restart_time`, `record_memory`, `snapshot_cost`, `checkpoint_memory`): the same card
//! numbers and account layout, only the product differs.

use switch::domain::{Amount, Currency, Pan, ProcessingCode, luhn_check_digit};
use switch::issuing::{Engine, IdemKey, IssuerFile, IssuingRequest, PinCheck, RequestKind};

/// An engine of `accounts` debit accounts with room for any test load, one card each, and the
/// cards' numbers in account order: what `record_memory` and `snapshot_cost` measure.
#[allow(dead_code)] // Not every example that includes this file uses it.
pub fn debit_engine(accounts: u32) -> (Engine, Vec<Pan>) {
    let (file, pans) = issuer(
        accounts,
        "[[product]]\nid = \"p\"\nkind = \"debit\"\ncurrency = \"156\"\nhold_expiry_h = 168\ncompletion_tolerance_pct = \"0\"\npin_tries_max = 3",
        "100000000.00",
    );
    (Engine::from_file(&file).expect("engine"), pans)
}

/// The issuer file for `accounts` accounts of the one product `product` (a `[[product]]` table
/// with `id = "p"`), each with `balance` and one card, and the cards' numbers in account order.
pub fn issuer(accounts: u32, product: &str, balance: &str) -> (IssuerFile, Vec<Pan>) {
    let mut toml = format!(
        "[issuer]\nid = \"bench\"\nname = \"Bench\"\n[journal]\ndir = \"unused\"\n\n{product}\n"
    );
    let mut pans = Vec::with_capacity(accounts as usize);
    for i in 0..accounts {
        let mut d = format!("605099{:09}", i).into_bytes();
        d.push(luhn_check_digit(&d));
        let pan = String::from_utf8(d).expect("ascii");
        toml.push_str(&format!("\n[[account]]\nid = \"A{i}\"\nproduct = \"p\"\nbalance = \"{balance}\"\n\n[[card]]\npan = \"{pan}\"\naccount = \"A{i}\"\nexpiry = \"3012\"\nstatus = \"active\"\n"));
        pans.push(Pan::parse(pan.as_bytes()).expect("pan"));
    }
    let file = IssuerFile::from_toml_str(&toml, "bench.toml").expect("issuer file");
    (file, pans)
}

/// A 1.00 CNY purchase of `kind` on `pan` under `key`: the requests both examples send.
pub fn purchase(kind: RequestKind, key: IdemKey, pan: Pan) -> IssuingRequest {
    IssuingRequest {
        kind,
        key,
        pan,
        processing_code: ProcessingCode::PURCHASE,
        amount: Some(Amount::new(100, Currency::CNY)),
        currency: Currency::CNY,
        mcc: None,
        expiry: None,
        pin: PinCheck::Absent,
        partial_supported: false,
    }
}
