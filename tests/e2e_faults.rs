//! End to end over TCP when issuers or acquirers misbehave: timeouts (with and without stand-in),
//! an issuer down at start, issuer restarts, late replies, an acquirer that goes away with its
//! answer in flight, and stand-in with its advices delivered once the issuer is back.

mod common;

use std::time::Duration;

use common::*;
use switch::client::{TxnKind, TxnOptions};
use switch::domain::ResponseCode;
use switch::events::Record;
use switch::host::Faults;
use tokio::net::TcpStream;

fn silent() -> Faults {
    Faults {
        stop_answering_after: Some(0),
        ..Faults::default()
    }
}

fn delayed(ms: u64) -> Faults {
    Faults {
        delay_ms: ms,
        ..Faults::default()
    }
}

/// North Bank signed on but silent: stand-in approves a small purchase (ST auth code) and sends
/// the issuer an 0120; a purchase above the stand-in maximum gets 91 and an 0420.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuer_timeout_with_stand_in() {
    let stack = Stack::builder()
        .timeout_ms(NORTH, 300)
        .faults(NORTH, silent())
        .start()
        .await;
    let c = stack.client().await;

    let r = c
        .purchase(NB_CREDIT, cny("45.00"), TxnOptions::new().expiry("3012"))
        .await
        .expect("answered");
    assert_code(&r, ResponseCode::Approved, "small purchase in stand-in");
    let auth = r.auth_code.clone().expect("auth code");
    assert!(auth.starts_with("ST"), "stand-in auth code {auth:?}");

    let r = c
        .purchase(NB_CREDIT, cny("600.00"), TxnOptions::new().expiry("3012"))
        .await
        .expect("answered");
    assert_code(
        &r,
        ResponseCode::IssuerInoperative,
        "600.00 is above the stand-in maximum",
    );
    assert!(r.auth_code.is_none());

    // Both reached the host (which kept quiet), so it is owed an advice for each (which it may
    // already have been sent, unanswered, by store-and-forward).
    assert!(stack.host(NORTH).requests() >= 2);
    let pending = stack.saf(NORTH).pending();
    let mut got: Vec<(u16, &str, i64, Option<&str>)> = pending
        .iter()
        .map(|a| {
            (
                a.mti,
                a.reason.as_str(),
                a.amount_minor,
                a.response_code.as_deref(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            (120, "stand_in", 4500, Some("00")),
            (420, "timeout", 60000, None)
        ]
    );
    assert_eq!(
        pending
            .iter()
            .find(|a| a.mti == 120)
            .and_then(|a| a.auth_code.as_deref().map(str::to_owned)),
        Some(auth)
    );
    stack.shutdown().await;
}

/// East Bank (no stand-in) signed on but silent: 91, and a reversal advice that is delivered once
/// the host is back, leaving the balance intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuer_timeout_gets_91_and_the_reversal_advice_is_delivered_later() {
    let mut stack = Stack::builder()
        .timeout_ms(EAST, 300)
        .faults(EAST, silent())
        .start()
        .await;
    let c = stack.client().await;
    let r = c
        .purchase(EB_DEBIT, cny("25.00"), TxnOptions::new().expiry("3012"))
        .await
        .expect("answered");
    assert_code(
        &r,
        ResponseCode::IssuerInoperative,
        "no reply within timeout_ms",
    );
    assert!(
        r.latency >= Duration::from_millis(300),
        "answered only at the timeout: {:?}",
        r.latency
    );

    let pending = stack.saf(EAST).pending();
    assert_eq!(pending.len(), 1, "{pending:?}");
    let advice = &pending[0];
    assert_eq!(
        (advice.mti, advice.reason.as_str(), advice.amount_minor),
        (420, "timeout", 2500)
    );
    let saf_id = advice.saf_id;

    stack.stop_host(EAST).await;
    stack.restart_host(EAST, Faults::default()).await;
    let saf = stack.saf(EAST);
    wait_drained("East Bank's advice is delivered", &saf).await;
    assert!(
        stack.host(EAST).requests() >= 1,
        "the restarted host saw the 0420"
    );
    assert_eq!(
        stack.host_balances(EAST, EB_DEBIT),
        (minor("5000.00"), minor("5000.00"))
    );

    let records = stack.shutdown_switch().await;
    assert!(
        records.iter().any(|r| matches!(r, Record::Timeout { .. })),
        "timeout journaled"
    );
    assert!(
        records.iter().any(|r| matches!(r, Record::SafDelivered { saf_id: id, response_code: Some(_), .. } if *id == saf_id)),
        "delivery of advice {saf_id} journaled"
    );
    stack.shutdown().await;
}

/// The switch starts before East Bank's host exists: 91 at once (nothing sent, so nothing to
/// reverse); once the host is up the link signs on by itself and the same card is approved. Then
/// the host restarts and the link reconnects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuer_down_at_start_then_reconnects_after_restarts() {
    let mut stack = Stack::builder().host_down(EAST).start().await;
    let c = stack.client().await;
    assert_eq!(stack.pool(EAST).ready_count(), 0);
    let r = c
        .purchase(EB_DEBIT, cny("10.00"), TxnOptions::new().expiry("3012"))
        .await
        .expect("answered");
    assert_code(
        &r,
        ResponseCode::IssuerInoperative,
        "East Bank down at start",
    );
    assert_eq!(
        stack.saf(EAST).depth(),
        0,
        "nothing was sent, so nothing is reversed"
    );
    // Other issuers are unaffected.
    let r = c
        .purchase(NB_CREDIT, cny("10.00"), TxnOptions::new().expiry("3012"))
        .await
        .expect("answered");
    assert_code(&r, ResponseCode::Approved, "North Bank is up");

    stack.restart_host(EAST, Faults::default()).await;
    let r = c
        .purchase(EB_DEBIT, cny("10.00"), TxnOptions::new().expiry("3012"))
        .await
        .expect("answered");
    assert_code(&r, ResponseCode::Approved, "East Bank once up");

    stack.stop_host(EAST).await;
    let r = c
        .purchase(EB_DEBIT, cny("20.00"), TxnOptions::new().expiry("3012"))
        .await
        .expect("answered");
    assert_code(&r, ResponseCode::IssuerInoperative, "East Bank stopped");

    stack.restart_host(EAST, Faults::default()).await;
    let r = c
        .purchase(EB_DEBIT, cny("30.00"), TxnOptions::new().expiry("3012"))
        .await
        .expect("answered");
    assert_code(&r, ResponseCode::Approved, "East Bank restarted");
    // The restarted host replayed its journal: both approvals are on the books, nothing else.
    assert_eq!(stack.host_balances(EAST, EB_DEBIT).0, minor("4960.00"));
    assert!(!c.is_closed());
    stack.shutdown().await;
}

/// A reply after the switch's timeout: the acquirer already got 91; the late reply is published
/// and journaled, and the reversal advice undoes the issuer's approval once it can be delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_reply_is_journaled_and_reversed() {
    let mut stack = Stack::builder()
        .timeout_ms(EAST, 300)
        .faults(EAST, delayed(600))
        .start()
        .await;
    let mut late = stack.pool(EAST).late_replies();
    let c = stack.client().await;
    let r = c
        .purchase(EB_DEBIT, cny("30.00"), TxnOptions::new().expiry("3012"))
        .await
        .expect("answered");
    assert_code(
        &r,
        ResponseCode::IssuerInoperative,
        "reply later than timeout_ms",
    );

    let l = tokio::time::timeout(WAIT, late.recv())
        .await
        .expect("a late reply comes")
        .expect("late reply");
    assert_eq!(l.msg.mti_digits(), *b"0210");
    assert_eq!(
        text(&l.msg, 39).as_deref(),
        Some("00"),
        "the issuer approved, late"
    );
    assert_eq!(text(&l.msg, 2).as_deref(), Some(EB_DEBIT));

    // The 0420 also comes back too late while the host is slow; once it answers in time the
    // advice is delivered and the approval the acquirer never got is undone.
    stack.stop_host(EAST).await;
    stack.restart_host(EAST, Faults::default()).await;
    let saf = stack.saf(EAST);
    wait_drained("the reversal advice is delivered", &saf).await;
    assert_eq!(
        stack.host_balances(EAST, EB_DEBIT),
        (minor("5000.00"), minor("5000.00"))
    );

    let records = stack.shutdown_switch().await;
    let late_records: Vec<_> = records
        .iter()
        .filter_map(|r| match r {
            Record::LateReply {
                issuer,
                response_code,
                masked_pan,
                ..
            } => Some((issuer.clone(), response_code.clone(), masked_pan.clone())),
            _ => None,
        })
        .collect();
    assert!(
        late_records.iter().any(|(i, code, pan)| i == EAST
            && code.as_deref() == Some("00")
            && pan.as_deref().is_some_and(|p| p.starts_with("622202")
                && p.ends_with("0015")
                && !p.contains(EB_DEBIT))),
        "the late approval is journaled with the PAN masked: {late_records:?}"
    );
    assert!(
        records
            .iter()
            .any(|r| matches!(r, Record::SafQueued(a) if a.reason == "timeout" && a.mti == 420))
    );
    stack.shutdown().await;
}

/// Writes one request on a fresh connection and closes it at once.
async fn send_and_vanish(addr: std::net::SocketAddr, payload: &[u8]) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    write_frame(&mut s, payload).await;
    drop(s);
}

/// The acquirer is gone when East Bank's approval comes back: the switch reverses it with an
/// 0420 ("undeliverable") and the issuer's balance ends intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquirer_gone_before_a_remote_approval_is_reversed() {
    let stack = Stack::builder().faults(EAST, delayed(300)).start().await;
    let c = stack.client().await;
    let p = c
        .prepare(
            TxnKind::Purchase,
            EB_DEBIT,
            Some(cny("40.00")),
            TxnOptions::new().expiry("3012"),
        )
        .expect("prepare");
    send_and_vanish(stack.addr(), &p.payload).await;

    let host = stack.host(EAST);
    let saf = stack.saf(EAST);
    wait_for(
        "purchase and its reversal advice reach East Bank",
        &mut host.requests_watch(),
        |&n| n >= 2,
    )
    .await;
    wait_drained("East Bank acknowledges the reversal advice", &saf).await;
    assert_eq!(host.requests(), 2, "one purchase, one 0420");
    assert_eq!(
        stack.host_balances(EAST, EB_DEBIT),
        (minor("5000.00"), minor("5000.00"))
    );

    let mut stack = stack;
    let records = stack.shutdown_switch().await;
    let txn = records
        .iter()
        .find_map(|r| match r {
            Record::Decision(d) if d.key.as_ref().is_some_and(|k| k.stan == p.stan.value()) => {
                assert_eq!(d.response_code, "00", "the issuer approved");
                Some(d.txn)
            }
            _ => None,
        })
        .expect("decision journaled");
    assert!(
        records
            .iter()
            .any(|r| matches!(r, Record::Undeliverable { txn: t, .. } if *t == txn))
    );
    let saf_id = records
        .iter()
        .find_map(|r| match r {
            Record::SafQueued(a) if a.txn == Some(txn) => {
                assert_eq!(
                    (a.mti, a.reason.as_str(), a.amount_minor),
                    (420, "undeliverable", 4000)
                );
                Some(a.saf_id)
            }
            _ => None,
        })
        .expect("reversal advice queued");
    assert!(
        records
            .iter()
            .any(|r| matches!(r, Record::SafDelivered { saf_id: id, .. } if *id == saf_id))
    );
    stack.shutdown().await;
}

/// Resolves once the switch has journaled an undeliverable approval's replacement decision. The
/// switch journals it after the on-us engine has voided the hold (and journaled the void), so the
/// card's balance is already restored when it appears.
async fn wait_voided(stack: &Stack) {
    stack
        .wait_journal("the undeliverable on-us approval is voided", |r| {
            matches!(r, Record::Decision(d) if d.reason.as_deref() == Some("undeliverable_reversed"))
        })
        .await;
}

/// The acquirer is gone when an on-us approval is ready: the hold is voided at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquirer_gone_before_an_on_us_approval_is_voided() {
    let mut stack = Stack::start().await;
    let c = stack.client_as("100001", "TERM0002").await;
    let p = c
        .prepare(
            TxnKind::Purchase,
            MP_PREPAID,
            Some(cny("50.00")),
            TxnOptions::new().expiry("3012"),
        )
        .expect("prepare");
    send_and_vanish(stack.addr(), &p.payload).await;

    wait_voided(&stack).await;
    let observer = stack.client().await;
    assert_eq!(
        inquire(&observer, MP_PREPAID).await,
        (minor("200.00"), minor("200.00")),
        "the hold is released"
    );

    let records = stack.shutdown_switch().await;
    let d = records
        .iter()
        .find_map(|r| match r {
            Record::Decision(d)
                if d.key
                    .as_ref()
                    .is_some_and(|k| k.stan == p.stan.value() && k.terminal == "TERM0002") =>
            {
                Some(d.clone())
            }
            _ => None,
        })
        .expect("decision journaled");
    assert_eq!(d.response_code, "00", "Metro Pay approved it");
    assert!(
        records
            .iter()
            .any(|r| matches!(r, Record::Undeliverable { txn, .. } if *txn == d.txn))
    );
    stack.shutdown().await;
}

/// Stand-in end to end: North Bank's host stopped; stand-in approves within its limits (ST),
/// declines the negative-file card with 41 and amounts beyond its limits with 91; the host comes
/// back, the 0120 advices are applied, and North Bank's ledger shows the stand-in amounts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stand_in_while_the_issuer_is_down_then_advices_applied() {
    let mut stack = Stack::start().await;
    stack.stop_host(NORTH).await;
    let c = stack.client().await;
    let cases: &[(&str, &str, ResponseCode, &str)] = &[
        (NB_CREDIT, "45.00", ResponseCode::Approved, "within limits"),
        (
            NB_CREDIT,
            "600.00",
            ResponseCode::IssuerInoperative,
            "above the 500.00 maximum",
        ),
        (NB_LOST, "10.00", ResponseCode::LostCard, "negative file"),
        (NB_CREDIT, "30.00", ResponseCode::Approved, "within limits"),
        (NB_CREDIT, "480.00", ResponseCode::Approved, "555.00 today"),
        (
            NB_CREDIT,
            "480.00",
            ResponseCode::IssuerInoperative,
            "would be 1035.00 today, above 1000.00",
        ),
        (NB_CREDIT, "10.00", ResponseCode::Approved, "4th today"),
        (NB_CREDIT, "10.00", ResponseCode::Approved, "5th today"),
        (
            NB_CREDIT,
            "10.00",
            ResponseCode::IssuerInoperative,
            "a 6th is above 5 a day",
        ),
    ];
    for &(pan, amount, code, why) in cases {
        let r = c
            .purchase(pan, cny(amount), TxnOptions::new().expiry("3012"))
            .await
            .expect("answered");
        assert_code(&r, code, &format!("{amount} on {pan}: {why}"));
        if code == ResponseCode::Approved {
            let auth = r.auth_code.as_deref().expect("auth code");
            assert!(auth.starts_with("ST"), "stand-in auth code {auth:?}");
        }
    }
    // Never a PIN transaction, whatever the amount.
    let r = c
        .purchase(
            NB_CREDIT,
            cny("1.00"),
            TxnOptions::new().expiry("3012").pin("1234"),
        )
        .await
        .expect("answered");
    assert_code(
        &r,
        ResponseCode::IssuerInoperative,
        "PIN transaction in stand-in",
    );
    let saf = stack.saf(NORTH);
    let amounts: Vec<(u16, i64)> = saf
        .pending()
        .iter()
        .map(|a| (a.mti, a.amount_minor))
        .collect();
    assert_eq!(
        amounts,
        vec![
            (120, 4500),
            (120, 3000),
            (120, 48000),
            (120, 1000),
            (120, 1000)
        ],
        "one 0120 per stand-in approval"
    );

    stack.restart_host(NORTH, Faults::default()).await;
    wait_drained("the stand-in advices are delivered", &saf).await;
    assert_eq!(stack.host(NORTH).requests(), 5);
    let (available, _) = stack.host_balances(NORTH, NB_CREDIT);
    assert_eq!(
        available,
        minor("10000.00") - minor("575.00"),
        "North Bank's books hold the stand-in approvals"
    );
    assert_eq!(
        inquire(&c, NB_CREDIT).await.0,
        available,
        "and answers for them"
    );
    stack.shutdown().await;
}

/// The acquirer went away before East Bank's approval reached it, so the switch reversed the
/// approval at the issuer. The terminal then repeats the same request (same acquirer, terminal,
/// STAN and field 7), as terminals do after losing the connection: the answer it gets must agree
/// with the issuer's books. An approval for money the issuer no longer holds is not acceptable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeat_after_an_undeliverable_remote_approval_agrees_with_the_issuer() {
    let stack = Stack::builder().faults(EAST, delayed(300)).start().await;
    let c = stack.client().await;
    let p = c
        .prepare(
            TxnKind::Purchase,
            EB_DEBIT,
            Some(cny("40.00")),
            TxnOptions::new().expiry("3012"),
        )
        .expect("prepare");
    send_and_vanish(stack.addr(), &p.payload).await;
    let host = stack.host(EAST);
    let saf = stack.saf(EAST);
    wait_for(
        "purchase and its reversal advice reach East Bank",
        &mut host.requests_watch(),
        |&n| n >= 2,
    )
    .await;
    wait_drained("East Bank acknowledges the reversal advice", &saf).await;
    assert_eq!(
        stack.host_balances(EAST, EB_DEBIT).0,
        minor("5000.00"),
        "the approval was reversed"
    );

    let repeat = c.send_prepared(&p).await.expect("the repeat is answered");
    let charged = stack.host_balances(EAST, EB_DEBIT).0 == minor("5000.00") - minor("40.00");
    assert_eq!(
        repeat.is_approved(),
        charged,
        "the repeat got {} while East Bank's balance is {} (purchase {})",
        repeat.response_code.as_str(),
        stack.host_balances(EAST, EB_DEBIT).0,
        if charged { "charged" } else { "not charged" }
    );
    stack.shutdown().await;
}

/// The same for an on-us approval: voided because undeliverable, then repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeat_after_an_undeliverable_on_us_approval_agrees_with_the_books() {
    let stack = Stack::start().await;
    let c = stack.client_as("100001", "TERM0002").await;
    let p = c
        .prepare(
            TxnKind::Purchase,
            MP_PREPAID,
            Some(cny("50.00")),
            TxnOptions::new().expiry("3012"),
        )
        .expect("prepare");
    send_and_vanish(stack.addr(), &p.payload).await;
    wait_voided(&stack).await;
    let observer = stack.client().await;
    assert_eq!(
        inquire(&observer, MP_PREPAID).await.0,
        minor("200.00"),
        "the hold is released"
    );

    let repeat = c.send_prepared(&p).await.expect("the repeat is answered");
    let available = inquire(&observer, MP_PREPAID).await.0;
    assert_eq!(
        repeat.is_approved(),
        available == minor("150.00"),
        "the repeat got {} while the card's available balance is {available}",
        repeat.response_code.as_str()
    );
    stack.shutdown().await;
}

/// A purchase (0200, posted at once when the issuer decides it online) approved in stand-in must
/// end up posted at the issuer too once the advice is delivered, not as an authorization hold
/// that expires after `hold_expiry_h` and leaves the purchase unbilled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stand_in_purchase_is_posted_by_the_issuer_like_an_online_one() {
    let mut stack = Stack::start().await;
    let c = stack.client().await;
    let pan = switch::domain::Pan::parse(NB_CREDIT.as_bytes()).expect("pan");
    let r = c
        .purchase(NB_CREDIT, cny("12.34"), TxnOptions::new().expiry("3012"))
        .await
        .expect("answered");
    assert_code(&r, ResponseCode::Approved, "online purchase");
    let online = stack.host(NORTH).engine().ledger(&pan).expect("card");
    assert_eq!(
        (online.posted.minor(), online.held.minor()),
        (-1234, 0),
        "an online purchase is posted at once"
    );

    stack.stop_host(NORTH).await;
    let r = c
        .purchase(NB_CREDIT, cny("45.00"), TxnOptions::new().expiry("3012"))
        .await
        .expect("answered");
    assert_code(&r, ResponseCode::Approved, "stand-in purchase");
    stack.restart_host(NORTH, Faults::default()).await;
    let saf = stack.saf(NORTH);
    wait_drained("the stand-in advice is delivered", &saf).await;
    let after = stack.host(NORTH).engine().ledger(&pan).expect("card");
    assert_eq!(
        (after.posted.minor(), after.held.minor(), after.open_holds),
        (-1234 - 4500, 0, 0),
        "the stand-in purchase is posted like the online one"
    );
    stack.shutdown().await;
}

/// North Bank approves a purchase but answers after the switch's timeout, so the switch approves
/// it in stand-in and sends an 0120 that, per `Runtime::authorize`, "stands for any copy of the
/// request the issuer may have seen before the timeout". The card must be charged once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stand_in_after_a_timeout_charges_the_card_once() {
    // The first request (the purchase) is approved late; nothing after it is answered or
    // applied until the host restarts, so the 0120 is applied exactly once.
    let faults = Faults {
        delay_ms: 500,
        stop_answering_after: Some(1),
        ..Faults::default()
    };
    let mut stack = Stack::builder()
        .timeout_ms(NORTH, 300)
        .faults(NORTH, faults)
        .start()
        .await;
    let mut late = stack.pool(NORTH).late_replies();
    let c = stack.client().await;
    let r = c
        .purchase(NB_CREDIT, cny("45.00"), TxnOptions::new().expiry("3012"))
        .await
        .expect("answered");
    assert_code(&r, ResponseCode::Approved, "stand-in after the timeout");
    assert!(r.auth_code.as_deref().is_some_and(|a| a.starts_with("ST")));
    let l = tokio::time::timeout(WAIT, late.recv())
        .await
        .expect("late reply")
        .expect("late reply");
    assert_eq!(
        text(&l.msg, 39).as_deref(),
        Some("00"),
        "the issuer approved the original, late"
    );

    stack.stop_host(NORTH).await;
    stack.restart_host(NORTH, Faults::default()).await;
    let saf = stack.saf(NORTH);
    wait_drained("the 0120 is delivered", &saf).await;
    assert_eq!(
        stack.host_balances(NORTH, NB_CREDIT).0,
        minor("10000.00") - minor("45.00"),
        "one purchase of 45.00, charged once"
    );
    stack.shutdown().await;
}

/// A stand-in advice whose first delivery attempts reached North Bank but were acknowledged too
/// late is sent again; the issuer must be able to tell the resend from a new advice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_stand_in_advice_is_applied_once() {
    let mut stack = Stack::builder().timeout_ms(NORTH, 300).start().await;
    stack.stop_host(NORTH).await;
    let c = stack.client().await;
    let r = c
        .purchase(NB_CREDIT, cny("45.00"), TxnOptions::new().expiry("3012"))
        .await
        .expect("answered");
    assert_code(&r, ResponseCode::Approved, "stand-in");

    // Back, but slower than the switch's timeout: attempts arrive and are applied, acks are late.
    stack.restart_host(NORTH, delayed(500)).await;
    let host = stack.host(NORTH);
    wait_for(
        "the advice was attempted twice",
        &mut host.requests_watch(),
        |&n| n >= 2,
    )
    .await;
    stack.stop_host(NORTH).await;
    stack.restart_host(NORTH, Faults::default()).await;
    let saf = stack.saf(NORTH);
    wait_drained("the 0120 is delivered", &saf).await;
    assert_eq!(
        stack.host_balances(NORTH, NB_CREDIT).0,
        minor("10000.00") - minor("45.00"),
        "one stand-in approval of 45.00, applied once"
    );
    stack.shutdown().await;
}

/// The acquirer reverses a purchase approved in stand-in while North Bank is still down. Once
/// North Bank is back and every advice delivered, nothing is left on the card.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reversed_stand_in_approval_leaves_nothing_at_the_issuer() {
    let mut stack = Stack::start().await;
    stack.stop_host(NORTH).await;
    let c = stack.client().await;
    let r = c
        .purchase(NB_CREDIT, cny("45.00"), TxnOptions::new().expiry("3012"))
        .await
        .expect("answered");
    assert_code(&r, ResponseCode::Approved, "stand-in");
    let rev = c.reverse(&r, cny("45.00"), None).await.expect("answered");
    assert_eq!(rev.response_mti.to_digits(), *b"0410");
    let advices: Vec<u16> = stack.saf(NORTH).pending().iter().map(|a| a.mti).collect();
    assert_eq!(
        advices,
        vec![120, 420],
        "the 0120, then the reversal to follow it"
    );

    stack.restart_host(NORTH, Faults::default()).await;
    let saf = stack.saf(NORTH);
    wait_for("both advices are delivered", &mut saf.depth_watch(), |&d| {
        d == 0
    })
    .await;
    let l = stack
        .host(NORTH)
        .engine()
        .ledger(&switch::domain::Pan::parse(NB_CREDIT.as_bytes()).unwrap())
        .unwrap();
    assert_eq!(
        (l.available.minor(), l.held.minor(), l.posted.minor()),
        (minor("10000.00"), 0, 0),
        "the reversal undid the stand-in approval"
    );
    stack.shutdown().await;
}
