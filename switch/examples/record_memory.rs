//! Measures what the issuing engine's idempotency records cost in memory:
//! `cargo run --release -p switch --example record_memory -- ACCOUNTS REQUESTS`.
//!
//! It builds a debit issuer of ACCOUNTS accounts with one card each, then sends REQUESTS requests
//! spread over the cards: a third authorizations (each an open hold, indexed for expiry), a third
//! financial requests (postings that stay reversible) and a third completions of earlier
//! authorizations. Every request leaves one record for the retry window. It prints the process's
//! resident memory before and after and divided by the records held, with the production
//! allocator (mimalloc, transparent huge pages off, as in the binaries), so that `[ledger]
//! records_max` can be sized in bytes.

#[path = "common/many_accounts.rs"]
mod many_accounts;
#[path = "common/memory.rs"]
mod memory;

use memory::{key, status_bytes};
use switch::issuing::RequestKind;

#[global_allocator]
static GLOBAL: switch::alloc::MiMalloc = switch::alloc::MiMalloc;

fn main() {
    switch::process::disable_transparent_huge_pages_or_warn();
    let mut args = std::env::args().skip(1);
    let accounts: u32 = memory::arg(&mut args, 100_000);
    let requests: u64 = memory::arg(&mut args, 3_000_000);
    let (engine, pans) = many_accounts::debit_engine(accounts);
    let start = memory::start();
    memory::release_freed();
    let before = status_bytes("VmRSS:");
    let n_accounts = u64::from(accounts);
    let mut approved = 0u64;
    for i in 0..requests {
        // One request a millisecond: all within the window, none pruned.
        let t = start + chrono::Duration::milliseconds(i as i64);
        // Request i - 2 of a completion is the authorization it completes, on that one's card.
        let (kind, pan) = match i % 3 {
            0 => (RequestKind::Authorization, pans[(i % n_accounts) as usize]),
            1 => (RequestKind::Financial, pans[(i % n_accounts) as usize]),
            _ => {
                let orig_t = start + chrono::Duration::milliseconds(i as i64 - 2);
                (
                    RequestKind::Completion {
                        original: key(i - 2, orig_t),
                    },
                    pans[((i - 2) % n_accounts) as usize],
                )
            }
        };
        let req = many_accounts::purchase(kind, key(i, t), pan);
        if engine.process(&req, t, t.date()).result.is_ok() {
            approved += 1;
        }
    }
    let after = status_bytes("VmRSS:");
    let records = engine.records_held() as u64;
    println!(
        "{accounts} accounts, {requests} requests ({approved} approved), {records} records held"
    );
    println!(
        "RSS {:.1} MB before, {:.1} MB after: {:.0} bytes per record",
        before as f64 / 1e6,
        after as f64 / 1e6,
        after.saturating_sub(before) as f64 / records.max(1) as f64
    );
}
