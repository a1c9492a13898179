//! Fuzzes the whole request pipeline with no network: bytes in, the switch's answer out. The
//! input is one frame's payload after a dialect byte (index into `DialectId::ALL`); it goes
//! through `Runtime::handle`, the code every acquirer connection runs: decode, screening, the
//! duplicate window, PAN protection, the on-us issuing engine, journaling, encode.
//!
//! The runtime is the shipped configuration with its remote issuers removed and every BIN
//! (000000-999999) routed to the on-us issuer, so any Luhn-valid card reaches the engine. It runs
//! on a current-thread tokio runtime, journals into a journal that keeps nothing (a long run must
//! not grow without bound), and is rebuilt every `REBUILD_EVERY` inputs so that engine state
//! (holds, idempotency keys) stays small too.
//!
//! Checked: no panic; every answer is a valid message in the dialect (strict decode) on a response
//! MTI, carrying field 39 and the request's STAN when the request's was readable; and a request
//! whose structure decodes but whose content does not (the codec's lenient decode reports a
//! content error) on an MTI the switch serves is always answered, with 30.
#![no_main]

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use chrono::NaiveDate;
use libfuzzer_sys::fuzz_target;
use switch::clock::ManualClock;
use switch::config::{BinRangeConfig, Config};
use switch::iso8583::views::{mti_of, rule_for};
use switch::iso8583::{DialectId, decode, decode_lenient};
use switch::journal::{AppendTicket, Journal, Lsn};
use switch::net::memory;
use switch::net::server::Runtime;

/// Inputs handled by one runtime before it is rebuilt.
const REBUILD_EVERY: u32 = 20_000;

/// A journal that numbers records and keeps none.
#[derive(Default)]
struct Discard(AtomicU64);

impl Journal for Discard {
    fn append(&self, _payload: Bytes) -> AppendTicket {
        AppendTicket::ready(Ok(self.0.fetch_add(1, Ordering::Relaxed) as Lsn + 1))
    }
    fn flush(&self) -> AppendTicket {
        AppendTicket::ready(Ok(self.0.load(Ordering::Relaxed) as Lsn))
    }
    fn close(&self) {}
}

struct World {
    tokio: tokio::runtime::Runtime,
    switches: Vec<Arc<Runtime>>,
    handled: u32,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn build() -> World {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("tokio runtime");
    let mut base = memory::on_us_only(
        Config::load(&root().join("config/switch.toml")).expect("config/switch.toml loads"),
    );
    for ic in &mut base.issuers {
        if let Some(cards) = &ic.cards {
            ic.cards = Some(root().join(cards));
        }
    }
    base.security.keys_file = root().join(&base.security.keys_file);
    let on_us = base.issuers[0].id.clone();
    base.bin_ranges.push(BinRangeConfig {
        low: "000000".into(),
        high: "999999".into(),
        issuer: on_us,
        product: None,
    });
    let at = NaiveDate::from_ymd_opt(2026, 6, 1)
        .and_then(|d| d.and_hms_opt(12, 0, 0))
        .expect("date");
    let switches = DialectId::ALL
        .into_iter()
        .map(|id| {
            let mut c = base.clone();
            c.listener.dialect = id;
            c.validate("fuzz").expect("valid config");
            // Building needs the runtime context (the engine may start timers).
            let _guard = tokio.enter();
            memory::runtime(&c, Arc::new(Discard::default()), ManualClock::new(at))
                .expect("runtime")
        })
        .collect();
    World {
        tokio,
        switches,
        handled: 0,
    }
}

thread_local! {
    static WORLD: RefCell<Option<World>> = const { RefCell::new(None) };
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, payload)) = data.split_first() else {
        return;
    };
    let which = usize::from(sel) % DialectId::ALL.len();
    let dialect = DialectId::ALL[which].dialect();
    let payload = Bytes::copy_from_slice(payload);
    let out = WORLD.with(|w| {
        let mut w = w.borrow_mut();
        if w.as_ref().is_none_or(|w| w.handled >= REBUILD_EVERY) {
            *w = Some(build());
        }
        let world = w.as_mut().expect("built");
        world.handled += 1;
        let rt = Arc::clone(&world.switches[which]);
        world.tokio.block_on(rt.handle(payload.clone()))
    });

    let req = decode_lenient(dialect, payload).ok();
    if let Some(o) = &out {
        let resp = decode(dialect, o.bytes.clone()).expect("every answer is a valid message");
        let mti = mti_of(&resp).expect("the answer's MTI reads");
        assert!(!mti.is_request(), "answered on a response MTI");
        assert!(resp.has(39), "the answer has a response code");
        if let Some(req) = &req
            && req.is_valid(11)
        {
            assert_eq!(resp.get(11), req.get(11), "the answer carries the STAN");
        }
    }
    if let Some(req) = &req
        && req.content_error().is_some()
        && mti_of(req).is_ok_and(|m| m.is_request() && rule_for(m).is_some())
    {
        let o = out.expect("a malformed request is answered");
        let resp = decode(dialect, o.bytes).expect("valid answer");
        assert_eq!(
            resp.get(39).as_deref(),
            Some(&b"30"[..]),
            "a malformed request is answered 30"
        );
    }
});
