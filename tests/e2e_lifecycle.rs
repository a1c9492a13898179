//! End to end over TCP across the life of the processes: graceful shutdown with requests in
//! flight (and the journal it leaves), crash recovery of an issuer host, switch restarts that
//! recover on-us balances, the duplicate window and owed advices, and reloads.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::*;
use switch::client::{TxnKind, TxnOptions, TxnResult};
use switch::config::{AcquirerConfig, BinRangeConfig};
use switch::domain::ResponseCode;
use switch::events::Record;
use switch::host::Faults;
use switch::journal::Journal as _;

/// Requests are still at East Bank when the switch is told to stop: they are answered within the
/// grace period, and afterwards the journal holds a decision for every answered transaction,
/// with the code the acquirer got.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_answers_in_flight_and_journals_every_answer() {
    let mut stack = Stack::builder()
        .faults(
            EAST,
            Faults {
                delay_ms: 300,
                ..Faults::default()
            },
        )
        .start()
        .await;
    let c = stack.client().await;
    let mut answered: Vec<TxnResult> = Vec::new();
    let opts = || TxnOptions::new().expiry("3012");
    for (pan, amount) in [
        (NB_CREDIT, "12.00"),
        (NB_LOST, "5.00"),
        (MP_PREPAID, "3.00"),
        (MP_EMPTY, "3.00"),
        (NB_LOW_LIMIT, "500.00"),
    ] {
        answered.push(
            c.purchase(pan, cny(amount), opts())
                .await
                .expect("answered"),
        );
    }
    answered.push(c.balance(NB_CREDIT).await.expect("answered"));
    // Declined by the switch's own screening, before routing.
    let screened = [
        c.purchase(NO_ISSUER, cny("1.00"), opts())
            .await
            .expect("answered"),
        c.purchase("4111110000000012", cny("1.00"), opts())
            .await
            .expect("answered"),
        c.purchase(NB_CREDIT, cny("0.00"), opts())
            .await
            .expect("answered"),
    ];

    // Five purchases in flight at East Bank when shutdown starts.
    let inflight: Vec<_> = (0..5)
        .map(|i| {
            let c = c.clone();
            tokio::spawn(async move {
                c.purchase(
                    EB_DEBIT,
                    cny(&format!("{}.00", i + 1)),
                    TxnOptions::new().expiry("3012"),
                )
                .await
            })
        })
        .collect();
    let host = stack.host(EAST);
    wait_for(
        "five purchases in flight at East Bank",
        &mut host.requests_watch(),
        |&n| n == 5,
    )
    .await;
    let records = stack.shutdown_switch().await;
    for t in inflight {
        let r = t
            .await
            .expect("task")
            .expect("an in-flight request is answered during shutdown");
        assert_code(&r, ResponseCode::Approved, "in-flight purchase");
        answered.push(r);
    }
    assert_eq!(
        stack.host_balances(EAST, EB_DEBIT).0,
        minor("5000.00") - minor("15.00")
    );

    let decisions: Vec<_> = records
        .iter()
        .filter_map(|r| match r {
            Record::Decision(d) => Some(d),
            _ => None,
        })
        .collect();
    let by_stan: BTreeMap<u32, &switch::events::DecisionRecord> = decisions
        .iter()
        .filter_map(|d| d.key.as_ref().map(|k| (k.stan, *d)))
        .collect();
    for r in &answered {
        let d = by_stan
            .get(&r.stan.value())
            .unwrap_or_else(|| panic!("no decision journaled for STAN {}", r.stan));
        let k = d.key.as_ref().expect("key");
        assert_eq!(
            (k.acquirer.as_str(), k.terminal.as_str()),
            ("100001", "TERM0001")
        );
        assert_eq!(
            d.response_code,
            r.response_code.as_str(),
            "STAN {}: journaled code",
            r.stan
        );
        assert_eq!(
            d.auth_code.as_deref(),
            r.auth_code.as_deref(),
            "STAN {}: journaled auth code",
            r.stan
        );
        assert!(
            records.iter().any(|rec| matches!(rec, Record::Request(q) if q.txn == d.txn && q.key.stan == r.stan.value())),
            "STAN {}: its request is journaled too",
            r.stan
        );
    }
    // Screening declines are journaled without a transaction or key, one per answer.
    let mut keyless: Vec<&str> = decisions
        .iter()
        .filter(|d| d.key.is_none())
        .map(|d| d.response_code.as_str())
        .collect();
    keyless.sort();
    let mut screened_codes: Vec<&str> = screened.iter().map(|r| r.response_code.as_str()).collect();
    screened_codes.sort();
    assert_eq!(screened_codes, vec!["13", "14", "15"]);
    assert_eq!(keyless, screened_codes);
    assert_eq!(
        decisions.len(),
        answered.len() + screened.len(),
        "one decision per answer, no more"
    );
    stack.shutdown().await;
}

/// Runs a mix of approvals, holds, completions, reversals and a decline through the switch
/// against an East Bank host on its own runtime, kills that runtime (no shutdown: nothing
/// flushed, closed or checkpointed at the end), then opens the journal directory with a fresh
/// engine and checks the books are exactly those before the crash.
async fn crash_and_recover(checkpoint_every: u64) -> switch::host::Replayed {
    let stack = Stack::builder().host_down(EAST).start().await;
    let slot = &stack.hosts[EAST];
    let (addr, jdir) = (slot.addr.to_string(), slot.journal_dir.clone());
    // The host runs on its own runtime so that it can be killed mid-life.
    let host_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let host = {
        let (addr, jdir) = (addr.clone(), jdir.clone());
        host_rt
            .spawn(async move {
                start_host_with(EAST, &addr, &jdir, Faults::default(), checkpoint_every).await
            })
            .await
            .expect("host starts")
    };
    stack.wait_ready(EAST).await;

    let c = stack.client().await;
    let o = || TxnOptions::new().expiry("3012");
    let ok = |r: Result<TxnResult, _>, what: &str| {
        let r = r.expect("answered");
        assert_code(&r, ResponseCode::Approved, what);
        r
    };
    ok(c.purchase(EB_DEBIT, cny("100.00"), o()).await, "purchase");
    ok(c.purchase(EB_DEBIT, cny("250.50"), o()).await, "purchase");
    ok(c.preauth(EB_DEBIT, cny("80.00"), o()).await, "open hold");
    let pre = ok(c.preauth(EB_DEBIT, cny("60.00"), o()).await, "preauth");
    ok(c.complete(&pre, cny("50.00")).await, "completion");
    let pre = ok(c.preauth(EB_DEBIT, cny("40.00"), o()).await, "preauth");
    ok(c.reverse(&pre, cny("40.00"), None).await, "reversal");
    ok(c.purchase(EB_LOW, cny("5.00"), o()).await, "purchase");
    let r = c
        .purchase(EB_LOW, cny("20.00"), o())
        .await
        .expect("answered");
    assert_code(&r, ResponseCode::InsufficientFunds, "decline");
    if checkpoint_every < 8 {
        wait_for(
            "a checkpoint is written",
            &mut host.checkpoints_watch(),
            |&n| n >= 1,
        )
        .await;
        assert!(jdir.join(switch::host::CHECKPOINT_FILE).exists());
        // And one more event after it, for the journal's tail.
        ok(c.purchase(EB_DEBIT, cny("1.00"), o()).await, "purchase");
    }

    let pan = |p: &str| switch::domain::Pan::parse(p.as_bytes()).expect("pan");
    let engine = Arc::clone(host.engine());
    let before = engine.snapshot();
    let books = |e: &switch::issuing::Engine| {
        [EB_DEBIT, EB_STOLEN, EB_LOW].map(|p| e.ledger(&pan(p)).expect("card"))
    };
    let before_books = books(&engine);
    let tail = if checkpoint_every < 8 {
        minor("1.00")
    } else {
        0
    };
    assert_eq!(
        before_books[0].available.minor(),
        minor("5000.00") - minor("480.50") - tail,
        "100 + 250.50 + 80 held + 50 (+ 1)"
    );
    assert_eq!(before_books[0].open_holds, 1);
    assert_eq!(before_books[2].available.minor(), minor("5.00"));

    // Crash: every task of the host is dropped, nothing is flushed or closed.
    host_rt.shutdown_background();
    std::mem::forget(host);
    drop(engine);

    let fresh = fresh_engine(EAST);
    let (_journal, replayed) =
        switch::host::open_journal(&jdir, switch::config::JournalSync::Always, &fresh)
            .expect("journal opens");
    assert_eq!(
        books(&fresh),
        before_books,
        "balances, holds and postings after recovery ({replayed:?})"
    );
    assert_eq!(fresh.snapshot(), before, "the whole ledger after recovery");
    stack.shutdown().await;
    replayed
}

/// An issuer host that crashes comes back, from its journal alone, with the same books.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuer_host_recovers_its_books_after_a_crash() {
    let replayed = crash_and_recover(100_000).await;
    assert_eq!(replayed.checkpoint_lsn, None, "no checkpoint was due");
    assert!(
        replayed.events >= 8,
        "every ledger event replayed: {replayed:?}"
    );
}

/// The same with checkpoints written while requests run: the last whole checkpoint plus the
/// journal after it give the same books.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuer_host_recovers_from_a_checkpoint_and_the_journal_tail() {
    let replayed = crash_and_recover(3).await;
    assert!(replayed.checkpoint_lsn.is_some(), "{replayed:?}");
}

/// A host stopped gracefully checkpoints at shutdown and restarts from it with nothing to
/// replay, on the same books.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuer_host_restarts_from_its_shutdown_checkpoint() {
    let mut stack = Stack::start().await;
    let c = stack.client().await;
    let o = || TxnOptions::new().expiry("3012");
    for amount in ["10.00", "20.00"] {
        let r = c
            .purchase(EB_DEBIT, cny(amount), o())
            .await
            .expect("answered");
        assert_code(&r, ResponseCode::Approved, amount);
    }
    let hold = c
        .preauth(EB_DEBIT, cny("30.00"), o())
        .await
        .expect("answered");
    assert_code(&hold, ResponseCode::Approved, "preauth");
    let before = stack.host(EAST).engine().snapshot();
    stack.stop_host(EAST).await;

    let jdir = stack.hosts[EAST].journal_dir.clone();
    let probe = fresh_engine(EAST);
    let (journal, replayed) =
        switch::host::open_journal(&jdir, switch::config::JournalSync::Always, &probe)
            .expect("journal opens");
    assert!(
        replayed.checkpoint_lsn.is_some(),
        "a checkpoint at shutdown: {replayed:?}"
    );
    assert_eq!(replayed.events, 0, "nothing after it to replay");
    assert_eq!(probe.snapshot(), before);
    drop(journal);

    stack.restart_host(EAST, Faults::default()).await;
    assert_eq!(stack.host(EAST).engine().snapshot(), before);
    // The hold taken before the restart can still be completed.
    let done = c.complete(&hold, cny("30.00")).await.expect("answered");
    assert_code(
        &done,
        ResponseCode::Approved,
        "completion after the restart",
    );
    assert_eq!(
        stack.host_balances(EAST, EB_DEBIT),
        (minor("4940.00"), minor("4940.00"))
    );
    stack.shutdown().await;
}

/// A switch restarted on its journal keeps on-us balances, still recognises a duplicate of a
/// request answered before the restart, and delivers the advices it still owed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_restart_recovers_on_us_books_duplicates_and_owed_advices() {
    let mut stack = Stack::builder()
        .timeout_ms(EAST, 300)
        .faults(
            EAST,
            Faults {
                stop_answering_after: Some(0),
                ..Faults::default()
            },
        )
        .start()
        .await;
    let c = stack.client().await;
    let p = c
        .prepare(
            TxnKind::Purchase,
            MP_PREPAID,
            Some(cny("70.00")),
            TxnOptions::new().expiry("3012"),
        )
        .expect("prepare");
    let first = c.send_prepared(&p).await.expect("answered");
    assert_code(&first, ResponseCode::Approved, "on-us purchase");
    let r = c
        .purchase(EB_DEBIT, cny("25.00"), TxnOptions::new().expiry("3012"))
        .await
        .expect("answered");
    assert_code(&r, ResponseCode::IssuerInoperative, "East Bank silent");
    assert_eq!(stack.saf(EAST).depth(), 1, "a reversal advice is owed");
    stack.stop_host(EAST).await;
    stack.shutdown_switch().await;

    // A new switch process starts on the same journal; East Bank answers again.
    stack.server = Some(start_switch(&stack.config).await);
    assert_eq!(stack.server().recovered_advices, 1);
    stack.restart_host(EAST, Faults::default()).await;
    let saf = stack.saf(EAST);
    wait_drained("the recovered advice is delivered", &saf).await;
    assert!(stack.host(EAST).requests() >= 1);

    let c = stack.client().await;
    assert_eq!(
        inquire(&c, MP_PREPAID).await,
        (minor("130.00"), minor("130.00")),
        "on-us books replayed"
    );
    let again = c.send_prepared(&p).await.expect("answered");
    assert_eq!(
        (again.response_code, &again.auth_code),
        (first.response_code, &first.auth_code),
        "the duplicate gets the first answer"
    );
    assert_eq!(
        inquire(&c, MP_PREPAID).await.0,
        minor("130.00"),
        "and is not charged again"
    );
    stack.shutdown().await;
}

/// A reload adds a BIN range and removes an acquirer without dropping connections; a reload
/// that changes the issuer list (or routes to an unknown issuer) is refused and the old tables
/// stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_routing_and_acquirers_and_refuses_invalid_configs() {
    // Without 100002's MAC key: once 100002 is unknown, the switch has no key to MAC its
    // answers with, and this test is about the answer code.
    let stack = Stack::builder()
        .configure(|c| c.acquirers.iter_mut().for_each(|a| a.mac_key = None))
        .start()
        .await;
    let c1 = stack.client_as("100001", "TERM0001").await;
    let c2 = stack.client_as("100002", "TERM0002").await;
    let o = || TxnOptions::new().expiry("3012");
    let code =
        |r: Result<TxnResult, switch::client::ClientError>| r.expect("answered").response_code;

    assert_eq!(
        code(c1.purchase(NO_ISSUER, cny("1.00"), o()).await),
        ResponseCode::NoSuchIssuer
    );
    assert_eq!(
        code(c2.purchase(EB_DEBIT, cny("1.00"), o()).await),
        ResponseCode::Approved
    );
    let north = || stack.host(NORTH).requests();
    assert_eq!(north(), 0);

    let mut next = stack.config.clone();
    next.bin_ranges.push(BinRangeConfig {
        low: "999999".into(),
        high: "999999".into(),
        issuer: NORTH.into(),
        product: None,
    });
    next.acquirers.retain(|a| a.id != "100002");
    stack
        .server()
        .reload(&next)
        .expect("a valid reload is accepted");

    // 999999 now goes to North Bank, which does not know the card; 100002 is unknown.
    let r = c1
        .purchase(NO_ISSUER, cny("1.00"), o())
        .await
        .expect("answered");
    assert_ne!(
        r.response_code,
        ResponseCode::NoSuchIssuer,
        "routed after the reload"
    );
    let issuer_code = r.response_code;
    assert_eq!(north(), 1, "North Bank was asked");
    assert_eq!(
        code(c2.purchase(EB_DEBIT, cny("1.00"), o()).await),
        ResponseCode::InvalidMerchant
    );

    // Invalid: the issuer list changed.
    let mut bad = next.clone();
    bad.issuers.retain(|i| i.id != METRO);
    bad.bin_ranges.retain(|b| b.issuer != METRO);
    bad.acquirers.push(AcquirerConfig {
        id: "100002".into(),
        name: "Summit Merchant Services".into(),
        ..AcquirerConfig::default()
    });
    let e = stack
        .server()
        .reload(&bad)
        .expect_err("the issuer list cannot change");
    assert!(e.contains("issuer"), "{e}");
    // Invalid: a range naming an issuer that does not exist.
    let mut bad = next.clone();
    bad.bin_ranges.push(BinRangeConfig {
        low: "500000".into(),
        high: "500000".into(),
        issuer: "nobody".into(),
        product: None,
    });
    bad.acquirers.push(AcquirerConfig {
        id: "100002".into(),
        name: "Summit Merchant Services".into(),
        ..AcquirerConfig::default()
    });
    assert!(
        stack.server().reload(&bad).is_err(),
        "unknown issuer in a BIN range"
    );

    // The accepted tables are still in force.
    assert_eq!(
        code(c1.purchase(NO_ISSUER, cny("1.00"), o()).await),
        issuer_code
    );
    assert_eq!(north(), 2);
    assert_eq!(
        code(c2.purchase(EB_DEBIT, cny("1.00"), o()).await),
        ResponseCode::InvalidMerchant
    );
    assert_eq!(
        code(c1.purchase(MP_PREPAID, cny("1.00"), o()).await),
        ResponseCode::Approved,
        "Metro Pay still routed"
    );

    // Back to the original: the same connections carry on.
    stack
        .server()
        .reload(&stack.config)
        .expect("reload the original");
    assert_eq!(
        code(c1.purchase(NO_ISSUER, cny("1.00"), o()).await),
        ResponseCode::NoSuchIssuer
    );
    assert_eq!(
        code(c2.purchase(EB_DEBIT, cny("1.00"), o()).await),
        ResponseCode::Approved
    );
    assert!(
        !c1.is_closed() && !c2.is_closed(),
        "no connection was dropped"
    );
    stack.shutdown().await;
}

/// After a switch restart, a reversal and a completion of authorizations approved before it
/// still name their originals as the issuers know them (the STANs they went out under), and
/// stand-in keeps counting the day's approvals it made before the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_restart_keeps_issuer_stans_and_stand_in_counters() {
    let mut stack = Stack::start().await;
    let o = || TxnOptions::new().expiry("3012");
    let c = stack.client().await;
    let north_hold = c
        .preauth(NB_CREDIT, cny("80.00"), o())
        .await
        .expect("answered");
    assert_code(&north_hold, ResponseCode::Approved, "North Bank preauth");
    let east_hold = c
        .preauth(EB_DEBIT, cny("60.00"), o())
        .await
        .expect("answered");
    assert_code(&east_hold, ResponseCode::Approved, "East Bank preauth");

    stack.stop_host(NORTH).await;
    for amount in ["480.00", "400.00"] {
        let r = c
            .purchase(NB_CREDIT, cny(amount), o())
            .await
            .expect("answered");
        assert_code(&r, ResponseCode::Approved, &format!("stand-in {amount}"));
    }
    drop(c);
    stack.shutdown_switch().await;
    stack.server = Some(start_switch(&stack.config).await);
    assert_eq!(
        stack.server().recovered_advices,
        2,
        "the two 0120s are still owed"
    );
    stack.wait_ready(EAST).await;

    let c = stack.client().await;
    let r = c
        .purchase(NB_CREDIT, cny("200.00"), o())
        .await
        .expect("answered");
    assert_code(
        &r,
        ResponseCode::IssuerInoperative,
        "880.00 + 200.00 is above the 1000.00 daily stand-in amount",
    );
    let r = c
        .purchase(NB_CREDIT, cny("100.00"), o())
        .await
        .expect("answered");
    assert_code(&r, ResponseCode::Approved, "980.00 today");

    stack.restart_host(NORTH, Faults::default()).await;
    let saf = stack.saf(NORTH);
    wait_drained("the stand-in advices are delivered", &saf).await;
    let rev = c
        .reverse(&north_hold, cny("80.00"), None)
        .await
        .expect("answered");
    assert_code(
        &rev,
        ResponseCode::Approved,
        "reversal of a preauth approved before the restart",
    );
    let done = c
        .complete(&east_hold, cny("50.00"))
        .await
        .expect("answered");
    assert_code(
        &done,
        ResponseCode::Approved,
        "completion of a preauth approved before the restart",
    );

    let pan = |p: &str| switch::domain::Pan::parse(p.as_bytes()).expect("pan");
    let north = stack
        .host(NORTH)
        .engine()
        .ledger(&pan(NB_CREDIT))
        .expect("card");
    // Only the stand-in amounts are left: the 80.00 hold is released.
    assert_eq!(
        north.available.minor(),
        minor("10000.00") - minor("980.00"),
        "North Bank released the preauth hold"
    );
    let east = stack
        .host(EAST)
        .engine()
        .ledger(&pan(EB_DEBIT))
        .expect("card");
    assert_eq!(
        (east.held.minor(), east.open_holds),
        (0, 0),
        "East Bank completed the hold"
    );
    assert_eq!(east.available.minor(), minor("4950.00"));
    stack.shutdown().await;
}

/// A journal damaged where no crash could have left it stops the switch from starting, with the
/// journal named as the cause; recovery has by then handed part of it to the issuers, and none of
/// that may go on to serve traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_journal_stops_the_switch_from_starting() {
    let mut stack = Stack::start().await;
    let c = stack.client().await;
    let r = c
        .purchase(MP_PREPAID, cny("10.00"), TxnOptions::new().expiry("3012"))
        .await
        .expect("answered");
    assert_code(
        &r,
        ResponseCode::Approved,
        "on-us purchase before the damage",
    );
    drop(c);
    stack.shutdown_switch().await;
    // A segment whose name does not continue the journal's LSNs: not something a crash does.
    std::fs::write(
        stack.journal_dir().join("segment-00000000000099999999.log"),
        b"not a record",
    )
    .expect("write the stray segment");

    let keys = switch::security::KeysFile::load(&stack.config.security.keys_file).expect("keys");
    let started = switch::net::start::SwitchServer::start(switch::net::start::StartOptions {
        config: stack.config.clone(),
        keys,
        clock: Arc::new(switch::clock::SystemClock),
        on_us: Arc::new(switch::onus::engine_factory),
    })
    .await;
    match started {
        Err(switch::net::start::StartError::Journal(switch::journal::JournalError::Corrupt {
            reason,
            ..
        })) => assert!(reason.contains("segment name"), "{reason}"),
        Err(other) => panic!("expected a corrupt journal, got: {other}"),
        Ok(_) => panic!("the switch started on a damaged journal"),
    }
    stack.shutdown().await;
}

/// A restart after a switch checkpoint reads only the journal after the checkpoint's replay
/// point. Damage planted in a segment wholly before it is never read; the on-us balance comes
/// back exactly as the journal has it, and a stand-in advice queued before the replay point is
/// still owed (only the checkpoint knows it) and delivered once. Without the checkpoint the same
/// start reads that segment and stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_after_a_checkpoint_reads_only_the_journal_after_it() {
    use switch::clock::ManualClock;
    use switch::iso8583::views::AdditionalAmount;
    use switch::net::start::{StartOptions, SwitchServer};

    let mut stack = Stack::start().await;
    stack.shutdown_switch().await;
    // Small segments, so that a checkpoint covers whole ones; checkpoints only when asked; a
    // duplicate window of 30 s, so that the replay point is a minute and a half back (and a
    // repeat right after the restart is still inside the window, however slow the machine).
    stack.config.journal.segment_bytes_max = 4096;
    stack.config.journal.checkpoint_interval_s = 0;
    stack.config.switch.duplicate_window_s = 30;
    // 21:00 on June 1: the business day changes at the 23:00 cutover.
    let clock = ManualClock::new(
        chrono::NaiveDate::from_ymd_opt(2026, 6, 1)
            .and_then(|d| d.and_hms_opt(21, 0, 0))
            .expect("time"),
    );
    let start = |clock: Arc<ManualClock>, config: switch::config::Config| async move {
        let keys = switch::security::KeysFile::load(&config.security.keys_file).expect("keys");
        SwitchServer::start(StartOptions {
            config,
            keys,
            clock,
            on_us: Arc::new(switch::onus::engine_factory),
        })
        .await
    };
    stack.server = Some(
        start(clock.clone(), stack.config.clone())
            .await
            .expect("switch starts"),
    );
    let available = |r: &TxnResult| {
        r.additional_amount(AdditionalAmount::AVAILABLE)
            .expect("field 54 available")
            .minor()
    };
    let c = stack.client().await;
    let opening = available(&c.balance(MP_PREPAID).await.expect("answered"));
    async fn buy(c: &switch::client::AcquirerClient, n: usize) {
        for _ in 0..n {
            let r = c
                .purchase(MP_PREPAID, cny("1.00"), TxnOptions::new().expiry("3012"))
                .await
                .expect("answered");
            assert_code(&r, ResponseCode::Approved, "on-us purchase");
        }
    }
    // North Bank down: a stand-in approval, whose 0120 stays owed.
    let (north_opening, _) = stack.host_balances(NORTH, NB_CREDIT);
    stack.stop_host(NORTH).await;
    let r = c
        .purchase(NB_CREDIT, cny("100.00"), TxnOptions::new().expiry("3012"))
        .await
        .expect("answered");
    assert_code(&r, ResponseCode::Approved, "stand-in");
    buy(&c, 10).await;
    assert_eq!(
        stack.server().checkpoint().await.expect("no failure"),
        None,
        "no sample is older than the duplicate window yet"
    );
    // Past the cutover: June 2's business day, and a second stand-in advice, queued after the
    // replay point, so that it is both in the checkpoint and replayed.
    clock.advance_ms(2 * 3_600_000);
    buy(&c, 5).await;
    let r = c
        .purchase(NB_CREDIT, cny("100.00"), TxnOptions::new().expiry("3012"))
        .await
        .expect("answered");
    assert_code(&r, ResponseCode::Approved, "stand-in, June 2");
    // A remote purchase answered before the checkpoint, after its replay point: its entry in the
    // duplicate window comes back only from the records replayed on top of the checkpoint.
    let east = c
        .prepare(
            TxnKind::Purchase,
            EB_DEBIT,
            Some(cny("25.00")),
            TxnOptions::new().expiry("3012"),
        )
        .expect("prepare");
    let east_first = c.send_prepared(&east).await.expect("answered");
    assert_code(&east_first, ResponseCode::Approved, "East Bank purchase");
    let east_seen = stack.host(EAST).requests();
    let replay_from = stack
        .server()
        .checkpoint()
        .await
        .expect("no failure")
        .expect("a checkpoint");
    assert!(replay_from > 0, "the checkpoint covers June 1's records");
    buy(&c, 3).await;
    let before = available(&c.balance(MP_PREPAID).await.expect("answered"));
    assert_eq!(before, opening - 18 * 100, "18 purchases of 1.00");
    drop(c);
    stack.shutdown_switch().await;

    // Damage in the middle of the first segment, which the checkpoint covers wholly.
    let mut segments: Vec<_> = std::fs::read_dir(stack.journal_dir())
        .expect("journal dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("segment-") && n.ends_with(".log"))
        })
        .collect();
    segments.sort();
    let first_lsn = |p: &std::path::Path| -> u64 {
        let n = p.file_name().and_then(|n| n.to_str()).expect("name");
        n["segment-".len()..n.len() - ".log".len()]
            .parse()
            .expect("segment LSN")
    };
    assert!(
        segments.len() >= 3 && first_lsn(&segments[1]) <= replay_from,
        "the first segment lies wholly before the replay point {replay_from}: {segments:?}"
    );
    let mut bytes = std::fs::read(&segments[0]).expect("segment");
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 64] {
        *b ^= 0x5a;
    }
    std::fs::write(&segments[0], &bytes).expect("damage");

    stack.server = Some(
        start(clock.clone(), stack.config.clone())
            .await
            .expect("the switch starts from its checkpoint without reading the damage"),
    );
    assert_eq!(
        stack.server().recovered_advices,
        2,
        "both stand-in advices are still owed: one only the checkpoint knows, one it shares \
         with the records replayed"
    );
    let c = stack.client().await;
    let east_again = c.send_prepared(&east).await.expect("answered");
    assert_eq!(
        (east_again.response_code, &east_again.auth_code),
        (east_first.response_code, &east_first.auth_code),
        "a repeat of a request answered before the checkpoint gets the first answer"
    );
    assert_eq!(
        stack.host(EAST).requests(),
        east_seen,
        "from the duplicate window, rebuilt by the replay: East Bank never saw the repeat"
    );
    assert_eq!(
        available(&c.balance(MP_PREPAID).await.expect("answered")),
        before,
        "the balance after the restart is the one before it"
    );
    stack.restart_host(NORTH, Faults::default()).await;
    wait_drained("the stand-in advice is delivered", &stack.saf(NORTH)).await;
    assert_eq!(
        stack.host_balances(NORTH, NB_CREDIT).0,
        north_opening - minor("200.00"),
        "North Bank took each stand-in approval once"
    );
    buy(&c, 1).await;
    assert_eq!(
        available(&c.balance(MP_PREPAID).await.expect("answered")),
        before - 100
    );
    // North Bank down again, for the stand-in below.
    stack.stop_host(NORTH).await;
    drop(c);
    // Stopped without reading the journal back: it holds the damage.
    stack.server.take().expect("running").shutdown().await;
    // Each advice went out once: two deliveries in the journal after the replay point, of two
    // different advices.
    let delivered: Vec<u64> = {
        let (journal, recovered) = switch::journal::FileJournal::open_after(
            &stack.journal_dir(),
            switch::journal::JournalOptions::from(&stack.config.journal),
            replay_from,
        )
        .expect("the journal after the replay point reads");
        journal.close();
        recovered
            .records
            .iter()
            .filter_map(|(_, b)| match Record::decode(b) {
                Ok(Record::SafDelivered { saf_id, .. }) => Some(saf_id),
                _ => None,
            })
            .collect()
    };
    assert_eq!(delivered.len(), 2, "{delivered:?}");
    assert_ne!(delivered[0], delivered[1], "{delivered:?}");

    // A later business day, restarted from the same checkpoint (June 2's): the day's stand-in
    // use before the restart still counts after it.
    clock.advance_ms(24 * 3_600_000);
    stack.server = Some(
        start(clock.clone(), stack.config.clone())
            .await
            .expect("starts on June 3"),
    );
    let stand_in = |c: &switch::client::AcquirerClient, amount: &'static str| {
        let c = c.clone();
        async move {
            c.purchase(NB_CREDIT, cny(amount), TxnOptions::new().expiry("3012"))
                .await
                .expect("answered")
        }
    };
    let c = stack.client().await;
    assert_code(
        &stand_in(&c, "480.00").await,
        ResponseCode::Approved,
        "stand-in, June 3",
    );
    drop(c);
    stack.server.take().expect("running").shutdown().await;
    stack.server = Some(
        start(clock.clone(), stack.config.clone())
            .await
            .expect("restarts on June 3 from June 2's checkpoint"),
    );
    let c = stack.client().await;
    assert_code(
        &stand_in(&c, "480.00").await,
        ResponseCode::Approved,
        "960.00 on June 3",
    );
    assert_code(
        &stand_in(&c, "100.00").await,
        ResponseCode::IssuerInoperative,
        "1060.00 would be over the 1000.00 daily stand-in amount",
    );
    drop(c);
    stack.server.take().expect("running").shutdown().await;

    // Without the checkpoint the whole journal is read, and the damage stops the start.
    std::fs::remove_file(
        stack
            .journal_dir()
            .join(switch::net::checkpoint::CHECKPOINT_FILE),
    )
    .expect("remove the checkpoint");
    match start(clock, stack.config.clone()).await {
        Err(switch::net::start::StartError::Journal(switch::journal::JournalError::Corrupt {
            ..
        })) => {}
        Err(other) => panic!("expected a corrupt journal, got: {other}"),
        Ok(_) => panic!("the switch read past damage in the journal"),
    }
    stack.shutdown().await;
}

/// A group commit's time is its write plus its fsync (with direct I/O the write waits for the
/// disk too), so the switch's journal reports both: an answered purchase means at least one more
/// of each. Other tests of this binary journal too, so the counts are compared, not named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_times_its_writes_and_its_fsyncs() {
    let count = |name: &str| -> u64 {
        let prefix = format!("{name}_count ");
        metrics()
            .render()
            .lines()
            .find_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok())
            .unwrap_or(0)
    };
    let writes = "switchyard_journal_write_seconds";
    let fsyncs = "switchyard_journal_fsync_seconds";
    let before = (count(writes), count(fsyncs));
    let stack = Stack::start().await;
    let c = stack.client().await;
    let r = c
        .purchase(NB_CREDIT, cny("12.00"), TxnOptions::new().expiry("3012"))
        .await
        .expect("answered");
    assert_code(&r, ResponseCode::Approved, "purchase");
    assert!(count(writes) > before.0, "no journal write timed");
    assert!(count(fsyncs) > before.1, "no journal fsync timed");
    stack.shutdown().await;
}
