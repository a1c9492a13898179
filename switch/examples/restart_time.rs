//! Measures an issuer host's restart time after N journaled ledger events, with and without a
//! checkpoint: `cargo run --release -p switch --example restart_time -- 1000000`.
//!
//! It builds a prepaid issuer of 1,000 accounts in a temporary folder, runs N purchases through
//! the engine journaling every event (sync = none: the disk's fsync rate is not what is measured),
//! then times (a) a fresh engine replaying the whole journal and (b) a fresh engine restoring the
//! checkpoint and replaying the tail, and checks both reach the same balances.

#[path = "common/many_accounts.rs"]
mod many_accounts;

use std::sync::Arc;
use std::time::Instant;

use chrono::NaiveDate;
use switch::config::JournalSync;
use switch::domain::{AcquirerId, Stan, TerminalId, TransmissionDateTime};
use switch::events::Record;
use switch::host::{open_journal, write_checkpoint};
use switch::issuing::{Engine, IdemKey, RequestKind};
use switch::journal::Journal;

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("switchyard-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let accounts = 1000u32;
    let (file, pans) = many_accounts::issuer(
        accounts,
        "[[product]]\nid = \"p\"\nkind = \"prepaid\"\ncurrency = \"156\"\nhold_expiry_h = 168\ncompletion_tolerance_pct = \"0\"\npin_tries_max = 3\ncash_allowed = false\npartial_approval = false\nmax_balance = \"100000000.00\"",
        "10000000.00",
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let engine = Engine::from_file(&file).expect("engine");
        let (journal, _) = open_journal(&dir, JournalSync::None, &engine).expect("journal");
        let now = NaiveDate::from_ymd_opt(2026, 11, 25)
            .and_then(|d| d.and_hms_opt(12, 0, 0))
            .expect("now");
        let acq = AcquirerId::parse("100001").expect("acq");
        let tid = TerminalId::from_field(b"TERM0001").expect("tid");
        let t0 = Instant::now();
        let mut last = None;
        for i in 0..n {
            let t = now + chrono::Duration::milliseconds(i as i64);
            let req = many_accounts::purchase(
                RequestKind::Financial,
                IdemKey::new(
                    acq,
                    tid,
                    Stan::new((i % 999_999 + 1) as u32).expect("stan"),
                    TransmissionDateTime::from_datetime(t),
                ),
                pans[(i % accounts as u64) as usize],
            );
            engine.process_with(&req, t, t.date(), |ev| {
                let rec = Record::Ledger {
                    issuer: "bench".into(),
                    at_ms: 0,
                    event: ev.encode().map_err(|_| ())?,
                };
                last = Some(journal.append(&rec.encode().map_err(|_| ())?));
                Ok::<(), ()>(())
            });
        }
        let lsn = match last.take() {
            Some(t) => t.await.expect("append"),
            None => 0,
        };
        let wrote = t0.elapsed();
        let fp = engine.snapshot().fingerprint();
        let t1 = Instant::now();
        write_checkpoint(&dir, lsn, &engine).expect("checkpoint");
        let cp_ms = t1.elapsed().as_millis();
        let probe = pans[7];
        let want = engine.balances(&probe).expect("balances");
        drop(journal);

        // (a) without the checkpoint
        std::fs::rename(dir.join("checkpoint.bin"), dir.join("checkpoint.keep"))
            .expect("move checkpoint");
        let fresh = Engine::from_file(&file).expect("engine");
        let t2 = Instant::now();
        let (j, r) = open_journal(&dir, JournalSync::None, &fresh).expect("reopen");
        let full = t2.elapsed();
        assert_eq!(
            fresh.balances(&probe),
            Some(want),
            "full replay reaches the same balances"
        );
        drop(j);

        // (b) with the checkpoint
        std::fs::rename(dir.join("checkpoint.keep"), dir.join("checkpoint.bin"))
            .expect("restore checkpoint");
        let fresh2 = Engine::from_file(&file).expect("engine");
        let t3 = Instant::now();
        let (_j2, r2) = open_journal(&dir, JournalSync::None, &fresh2).expect("reopen");
        let with_cp = t3.elapsed();
        // The part of it that is the checkpoint itself: decoding and restoring the snapshot.
        let fresh3 = Engine::from_file(&file).expect("engine");
        let snapshot = fresh2.snapshot();
        let t4 = Instant::now();
        fresh3.restore(&snapshot).expect("restore");
        let restore_only = t4.elapsed();
        assert_eq!(
            fresh2.balances(&probe),
            Some(want),
            "checkpoint + tail reaches the same balances"
        );
        assert_eq!(fresh2.snapshot().fingerprint(), fp);
        println!(
            "{n} ledger events journaled in {:.1} s; checkpoint written in {cp_ms} ms",
            wrote.as_secs_f64()
        );
        println!(
            "restart, full replay:        {:>7.0} ms ({} records read, {} events applied)",
            full.as_secs_f64() * 1e3,
            r.records,
            r.events
        );
        println!(
            "restart, checkpoint + tail:  {:>7.0} ms ({} records read, {} events applied)",
            with_cp.as_secs_f64() * 1e3,
            r2.records,
            r2.events
        );
        println!(
            "  of which restoring the snapshot: {:>5.0} ms; journal segments on disk: {}",
            restore_only.as_secs_f64() * 1e3,
            std::fs::read_dir(&dir)
                .map(|d| d
                    .filter(|e| e
                        .as_ref()
                        .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "log")))
                    .count())
                .unwrap_or(0)
        );
    });
    let _ = std::fs::remove_dir_all(&dir);
    let _ = Arc::new(());
}
