//! End to end over TCP, at the protocol level: pipelining on one connection, two acquirers with
//! the same STANs (and two terminals with one STAN in flight on one issuer link), duplicates (sequential and while the original is in flight), and malformed
//! frames that must not hurt anyone else.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use switch::client::{ClientOptions, TxnKind, TxnOptions, TxnResult};
use switch::clock::{Clock, ManualClock, SystemClock};
use switch::domain::{ResponseCode, Stan};
use switch::host::Faults;
use switch::iso8583::views::AdditionalAmount;
use switch::iso8583::{ISO87_ASCII, decode_lenient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Balance inquiries only: not debits, so no velocity limit, and each card's answer is its own
/// published balance, so a response matched to the wrong request shows.
const CARDS: [(&str, &str); 6] = [
    (NB_CREDIT, "10000.00"),
    (NB_LOW_LIMIT, "100.00"),
    (EB_DEBIT, "5000.00"),
    (EB_LOW, "10.00"),
    (MP_PREPAID, "200.00"),
    (MP_EMPTY, "0.00"),
];

/// 1,000 requests written back to back on one connection before any answer is read: every one
/// is answered exactly once, under its own STAN, with its own card's balance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_pipelined_requests_on_one_connection() {
    const N: usize = 1000;
    let stack = Stack::start().await;
    let builder = stack.client().await;
    let mut expected: HashMap<u32, (&str, i64)> = HashMap::new();
    let mut wire = Vec::new();
    for i in 0..N {
        let (pan, balance) = CARDS[i % CARDS.len()];
        let p = builder
            .prepare(TxnKind::Balance, pan, None, TxnOptions::new())
            .expect("prepare");
        assert!(
            expected
                .insert(p.stan.value(), (pan, minor(balance)))
                .is_none(),
            "STANs are unique"
        );
        wire.extend_from_slice(&frame(&p.payload));
    }
    let s = TcpStream::connect(stack.addr()).await.expect("connect");
    let (mut r, mut w) = s.into_split();
    // Written from another task: the switch stops reading at its in-flight limit until answers
    // are read, so one task doing both could deadlock.
    let writer = tokio::spawn(async move {
        w.write_all(&wire).await.expect("write every request");
        w
    });
    let read_all = async {
        for _ in 0..N {
            let payload = read_frame(&mut r).await.expect("an answer");
            let msg = decode_lenient(&ISO87_ASCII, Bytes::from(payload)).expect("answer decodes");
            assert_eq!(msg.mti_digits(), *b"0110");
            let stan = Stan::from_field(&msg.get(11).expect("field 11"))
                .expect("STAN")
                .value();
            let (pan, balance) = expected
                .remove(&stan)
                .unwrap_or_else(|| panic!("STAN {stan} answered twice or never asked"));
            assert_eq!(text(&msg, 39).as_deref(), Some("00"), "STAN {stan}");
            assert_eq!(
                text(&msg, 2).as_deref(),
                Some(pan),
                "STAN {stan} answered for its own card"
            );
            let f54 = AdditionalAmount::parse_all(&msg.get(54).expect("field 54"))
                .expect("field 54 parses");
            let available = f54
                .iter()
                .find(|a| a.amount_type == AdditionalAmount::AVAILABLE)
                .expect("available");
            assert_eq!(
                available.amount.minor(),
                balance,
                "STAN {stan}: {pan}'s balance"
            );
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read_all)
        .await
        .expect("1,000 answers in time");
    assert!(
        expected.is_empty(),
        "{} requests unanswered",
        expected.len()
    );
    let _w = writer.await.expect("writer");
    stack.shutdown().await;
}

/// Acquirers 100001 and 100002, same terminal id, same STANs, same field 7, at the same time:
/// neither is a duplicate of the other and each gets its own answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_acquirers_with_the_same_stans() {
    const N: usize = 30;
    let stack = Stack::start().await;
    let frozen = ManualClock::new(SystemClock.now());
    let opts = || ClientOptions {
        clock: frozen.clone(),
        first_stan: Some(Stan::new(500).unwrap()),
        ..ClientOptions::default()
    };
    let a = stack.client_with("100001", "TERM0001", opts()).await;
    let b = stack.client_with("100002", "TERM0001", opts()).await;
    // Acquirer 100001 asks about the first three cards, 100002 about the other three.
    let ask = |c: switch::client::AcquirerClient, offset: usize| async move {
        let reqs = (0..N).map(|i| {
            let (pan, bal) = CARDS[offset + i % 3];
            let c = c.clone();
            async move { (pan, bal, c.balance(pan).await.expect("answered")) }
        });
        futures::future::join_all(reqs).await
    };
    let (ra, rb) = tokio::join!(ask(a.clone(), 0), ask(b.clone(), 3));
    let check = |results: Vec<(&str, &str, TxnResult)>, acquirer: &str| {
        let mut stans: Vec<u32> = Vec::new();
        for (pan, bal, r) in results {
            assert_code(&r, ResponseCode::Approved, pan);
            assert_eq!(text(&r.response, 32).as_deref(), Some(acquirer));
            assert_eq!(text(&r.response, 2).as_deref(), Some(pan));
            assert_eq!(balances_of(&r).0, minor(bal), "{acquirer} STAN {}", r.stan);
            stans.push(r.stan.value());
        }
        stans.sort();
        stans
    };
    let sa = check(ra, "100001");
    let sb = check(rb, "100002");
    assert_eq!(sa, (500..500 + N as u32).collect::<Vec<_>>());
    assert_eq!(sa, sb, "the same STANs on both sides");

    // Purchases under the same STAN again (both clients are at 530): both are carried out.
    let (pa, pb) = tokio::join!(
        a.purchase(EB_DEBIT, cny("11.11"), TxnOptions::new().expiry("3012")),
        b.purchase(EB_DEBIT, cny("22.22"), TxnOptions::new().expiry("3012")),
    );
    let (pa, pb) = (pa.expect("answered"), pb.expect("answered"));
    assert_eq!(pa.stan, pb.stan);
    assert_eq!(pa.transmission, pb.transmission);
    assert_code(&pa, ResponseCode::Approved, "100001's purchase");
    assert_code(&pb, ResponseCode::Approved, "100002's purchase");
    assert_eq!(pa.approved_amount, Some(cny("11.11")));
    assert_eq!(pb.approved_amount, Some(cny("22.22")));
    assert_ne!(pa.auth_code, pb.auth_code);
    assert_eq!(
        stack.host_balances(EAST, EB_DEBIT).0,
        minor("5000.00") - minor("33.33")
    );
    stack.shutdown().await;
}

/// Two terminals send the same STAN to North Bank (one link) while the first is in flight: the
/// second cannot share the link with it under that STAN, so the link holds it back until the
/// first is answered and then sends it under the same STAN (never another: after a crash only
/// the acquirer's STAN is one the issuer can recognise). Both are approved and posted once each,
/// no `Forwarded` record is written, and reversals of both, naming their originals by the
/// acquirer's STAN in field 90, find them at the issuer (else it would answer 25).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_stan_in_flight_twice_on_one_link_waits_and_keeps_its_stan() {
    let mut stack = Stack::builder()
        // Each request stays at the issuer long enough for the other to arrive.
        .faults(
            NORTH,
            Faults {
                delay_ms: 500,
                ..Faults::default()
            },
        )
        .start()
        .await;
    let opts = || ClientOptions {
        first_stan: Some(Stan::new(4242).unwrap()),
        ..ClientOptions::default()
    };
    let a = stack.client_with("100001", "TERM0001", opts()).await;
    let b = stack.client_with("100001", "TERM0002", opts()).await;
    let o = || TxnOptions::new().expiry("3012");
    let start = stack.host_balances(NORTH, NB_CREDIT).0;
    let (pa, pb) = tokio::join!(
        a.purchase(NB_CREDIT, cny("11.11"), o()),
        b.purchase(NB_CREDIT, cny("22.22"), o()),
    );
    let (pa, pb) = (pa.expect("answered"), pb.expect("answered"));
    assert_eq!((pa.stan.value(), pb.stan.value()), (4242, 4242));
    assert_code(&pa, ResponseCode::Approved, "TERM0001's purchase");
    assert_code(&pb, ResponseCode::Approved, "TERM0002's purchase");
    assert_eq!(text(&pa.response, 11).as_deref(), Some("004242"));
    assert_eq!(text(&pb.response, 11).as_deref(), Some("004242"));
    assert_ne!(pa.auth_code, pb.auth_code);
    assert_eq!(
        stack.host_balances(NORTH, NB_CREDIT).0,
        start - minor("33.33"),
        "both posted, once each"
    );

    for (c, p, amount) in [(&a, &pa, "11.11"), (&b, &pb, "22.22")] {
        let r = c.reverse(p, cny(amount), None).await.expect("answered");
        assert_code(&r, ResponseCode::Approved, &format!("reversal of {amount}"));
    }
    assert_eq!(
        stack.host_balances(NORTH, NB_CREDIT).0,
        start,
        "both reversed at the issuer"
    );

    let records = stack.shutdown_switch().await;
    let forwarded = records
        .iter()
        .filter(|r| matches!(r, switch::events::Record::Forwarded { .. }))
        .count();
    assert_eq!(
        forwarded, 0,
        "every request went out under the acquirer's STAN"
    );
    let purchases = records
        .iter()
        .filter(|r| matches!(r, switch::events::Record::Request(q) if q.mti == 200 && q.key.stan == 4242))
        .count();
    assert_eq!(purchases, 2);
    stack.shutdown().await;
}

fn same_answer(a: &TxnResult, b: &TxnResult) {
    assert_eq!(a.response_mti, b.response_mti);
    assert_eq!(a.response_code, b.response_code);
    assert_eq!(a.auth_code, b.auth_code);
    assert_eq!(a.rrn, b.rrn);
    assert_eq!(a.approved_amount, b.approved_amount);
    assert_eq!(a.additional_amounts, b.additional_amounts);
}

/// A request sent twice (same acquirer, terminal, STAN and field 7) gets the first answer again
/// and is carried out once, for a remote and an on-us issuer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_gets_the_same_answer_and_is_forwarded_once() {
    let stack = Stack::start().await;
    let c = stack.client().await;
    let p = c
        .prepare(
            TxnKind::Purchase,
            EB_DEBIT,
            Some(cny("10.00")),
            TxnOptions::new().expiry("3012"),
        )
        .expect("prepare");
    let first = c.send_prepared(&p).await.expect("answered");
    assert_code(&first, ResponseCode::Approved, "original");
    assert_eq!(stack.host(EAST).requests(), 1);
    let again = c.send_prepared(&p).await.expect("answered");
    same_answer(&first, &again);
    assert_eq!(
        stack.host(EAST).requests(),
        1,
        "the duplicate was not forwarded"
    );
    assert_eq!(
        stack.host_balances(EAST, EB_DEBIT).0,
        minor("4990.00"),
        "charged once"
    );

    let p = c
        .prepare(
            TxnKind::Purchase,
            MP_PREPAID,
            Some(cny("15.00")),
            TxnOptions::new().expiry("3012"),
        )
        .expect("prepare");
    let first = c.send_prepared(&p).await.expect("answered");
    assert_code(&first, ResponseCode::Approved, "on-us original");
    let again = c.send_prepared(&p).await.expect("answered");
    same_answer(&first, &again);
    assert_eq!(
        inquire(&c, MP_PREPAID).await.0,
        minor("185.00"),
        "on-us charged once"
    );

    // A declined request repeats its decline without asking again.
    let p = c
        .prepare(
            TxnKind::Purchase,
            EB_LOW,
            Some(cny("99.00")),
            TxnOptions::new().expiry("3012"),
        )
        .expect("prepare");
    let first = c.send_prepared(&p).await.expect("answered");
    assert_code(&first, ResponseCode::InsufficientFunds, "original decline");
    let again = c.send_prepared(&p).await.expect("answered");
    same_answer(&first, &again);
    assert_eq!(stack.host(EAST).requests(), 2);
    stack.shutdown().await;
}

/// A duplicate that arrives while the original is still at the issuer waits for, and gets, the
/// original's answer; the issuer sees one request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_while_the_original_is_in_flight() {
    let stack = Stack::builder()
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
    let p = c
        .prepare(
            TxnKind::Purchase,
            EB_DEBIT,
            Some(cny("42.00")),
            TxnOptions::new().expiry("3012"),
        )
        .expect("prepare");
    let (a, b) = tokio::join!(c.send_prepared(&p), c.send_prepared(&p));
    let (a, b) = (a.expect("answered"), b.expect("answered"));
    assert_code(&a, ResponseCode::Approved, "original");
    same_answer(&a, &b);
    assert_eq!(stack.host(EAST).requests(), 1, "forwarded once");
    assert_eq!(
        stack.host_balances(EAST, EB_DEBIT).0,
        minor("4958.00"),
        "charged once"
    );
    assert_eq!(c.unmatched_responses(), 0);
    stack.shutdown().await;
}

/// Reads one answer within a few seconds.
async fn answer_on(s: &mut TcpStream) -> switch::iso8583::Message {
    let payload = tokio::time::timeout(Duration::from_secs(5), read_frame(s))
        .await
        .expect("answer in time")
        .expect("answer");
    decode_lenient(&ISO87_ASCII, Bytes::from(payload)).expect("answer decodes")
}

/// Malformed input on connection A: a content error is answered 30 (echoing 11, 37, 41); a
/// truncated message and a response MTI are dropped and A stays usable; an impossible length
/// closes only its own connection. Connection B's traffic meanwhile all succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_do_not_hurt_other_connections() {
    let stack = Stack::start().await;
    let b = stack.client_as("100002", "TERMB001").await;
    let b_traffic = tokio::spawn(async move {
        for i in 0..40 {
            let (pan, bal) = CARDS[i % CARDS.len()];
            let r = b.balance(pan).await.expect("B's request answered");
            assert_code(&r, ResponseCode::Approved, pan);
            assert_eq!(balances_of(&r).0, minor(bal));
        }
        b
    });

    let builder = stack.client_as("100001", "TERMA001").await;
    let mut a = TcpStream::connect(stack.addr()).await.expect("connect A");

    // A non-digit in field 4: answered 30 with 11, 37 and 41 echoed.
    let p = builder
        .prepare(
            TxnKind::Purchase,
            NB_CREDIT,
            Some(cny("98765.43")),
            TxnOptions::new().expiry("3012"),
        )
        .expect("prepare");
    let mut bad = p.payload.to_vec();
    let at = bad
        .windows(12)
        .position(|w| w == b"000009876543")
        .expect("field 4 in the payload");
    bad[at + 11] = b'X';
    write_frame(&mut a, &bad).await;
    let ans = answer_on(&mut a).await;
    assert_eq!(ans.mti_digits(), *b"0210");
    assert_eq!(text(&ans, 39).as_deref(), Some("30"));
    assert_eq!(ans.get(11).as_deref(), Some(&p.stan.to_field()[..]));
    assert_eq!(text(&ans, 37), p.rrn);
    assert_eq!(text(&ans, 41).as_deref(), Some("TERMA001"));

    // A truncated message and a response MTI: dropped unanswered, A stays open. The next answer
    // on A is the one to the valid request that follows them.
    let t = builder
        .prepare(
            TxnKind::Purchase,
            NB_CREDIT,
            Some(cny("1.00")),
            TxnOptions::new().expiry("3012"),
        )
        .expect("prepare");
    write_frame(&mut a, &t.payload[..t.payload.len() - 10]).await;
    let mut resp = builder
        .prepare(
            TxnKind::Purchase,
            NB_CREDIT,
            Some(cny("1.00")),
            TxnOptions::new().expiry("3012"),
        )
        .expect("prepare")
        .payload
        .to_vec();
    resp[..4].copy_from_slice(b"0210");
    write_frame(&mut a, &resp).await;
    let ok = builder
        .prepare(TxnKind::Balance, MP_PREPAID, None, TxnOptions::new())
        .expect("prepare");
    write_frame(&mut a, &ok.payload).await;
    let ans = answer_on(&mut a).await;
    assert_eq!(
        ans.get(11).as_deref(),
        Some(&ok.stan.to_field()[..]),
        "the valid request's answer comes next"
    );
    assert_eq!(text(&ans, 39).as_deref(), Some("00"));

    // An impossible length closes that connection, and only that one.
    let mut a2 = TcpStream::connect(stack.addr()).await.expect("connect A2");
    a2.write_all(&[0xff, 0xff, b'g', b'a', b'r', b'b', b'a', b'g', b'e'])
        .await
        .expect("write");
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(5), a2.read(&mut buf))
        .await
        .expect("A2 is closed in time");
    assert!(
        matches!(closed, Ok(0) | Err(_)),
        "A2 closed without an answer: {closed:?}"
    );

    let b = b_traffic
        .await
        .expect("connection B's requests all succeeded");
    assert!(!b.is_closed());
    assert_eq!(b.unmatched_responses(), 0);
    let b_north = (0..40)
        .filter(|i| CARDS[i % CARDS.len()].0.starts_with("411111"))
        .count() as u64;
    assert_eq!(
        stack.host(NORTH).requests(),
        b_north,
        "only B's requests reached North Bank, nothing malformed"
    );
    // A is still usable after all that.
    let again = builder
        .prepare(TxnKind::Balance, EB_DEBIT, None, TxnOptions::new())
        .expect("prepare");
    write_frame(&mut a, &again.payload).await;
    let ans = answer_on(&mut a).await;
    assert_eq!(ans.get(11).as_deref(), Some(&again.stan.to_field()[..]));
    assert_eq!(text(&ans, 39).as_deref(), Some("00"));
    stack.shutdown().await;
}

/// Answers go back as they are ready: a quick on-us answer is not held behind a slow issuer's on
/// the same connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_on_one_connection_come_back_as_they_are_ready() {
    let stack = Stack::builder()
        .faults(
            EAST,
            Faults {
                delay_ms: 500,
                ..Faults::default()
            },
        )
        .start()
        .await;
    let c = stack.client().await;
    let slow = {
        let c = c.clone();
        tokio::spawn(async move {
            c.purchase(EB_DEBIT, cny("5.00"), TxnOptions::new().expiry("3012"))
                .await
        })
    };
    let host = stack.host(EAST);
    wait_for(
        "the slow request is at East Bank",
        &mut host.requests_watch(),
        |&n| n == 1,
    )
    .await;
    let quick = c.balance(MP_PREPAID).await.expect("answered");
    assert_code(&quick, ResponseCode::Approved, "on-us inquiry");
    assert!(!slow.is_finished(), "the on-us answer came first");
    let slow = slow.await.expect("task").expect("answered");
    assert_code(&slow, ResponseCode::Approved, "East Bank purchase");
    assert!(slow.latency >= Duration::from_millis(500));
    assert!(
        quick.latency < Duration::from_millis(500),
        "{:?}",
        quick.latency
    );
    stack.shutdown().await;
}

/// A frame started but never finished closes its connection after `read_timeout_ms`, and only
/// that one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_left_incomplete_closes_only_its_connection() {
    let stack = Stack::builder()
        .configure(|c| c.listener.read_timeout_ms = 300)
        .start()
        .await;
    let other = stack.client().await;
    let mut slow = TcpStream::connect(stack.addr()).await.expect("connect");
    // Announces 100 bytes and sends 3.
    slow.write_all(&[0x00, 100, b'0', b'2', b'0'])
        .await
        .expect("write");
    let started = tokio::time::Instant::now();
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(5), slow.read(&mut buf))
        .await
        .expect("closed in time");
    assert!(
        matches!(closed, Ok(0) | Err(_)),
        "closed without an answer: {closed:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "not before read_timeout_ms: {:?}",
        started.elapsed()
    );
    let r = other
        .balance(EB_DEBIT)
        .await
        .expect("the other connection still works");
    assert_code(&r, ResponseCode::Approved, "other connection");
    stack.shutdown().await;
}
