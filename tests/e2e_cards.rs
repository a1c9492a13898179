//! End to end over TCP: the published test cards and the switch's own declines (README, "The
//! published test set" and "Response codes the switch itself gives"), balance inquiries,
//! reversals, completions and partial approvals on remote (North Bank, East Bank) and on-us
//! (Metro Pay) cards.

mod common;

use common::*;
use switch::client::TxnOptions;
use switch::domain::ResponseCode;
use switch::iso8583::{ISO87_ASCII, MessageBuilder};

/// Every row of the README's test-card table, plus the other side of each limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_test_card_answers_as_published() {
    let stack = Stack::start().await;
    let c = stack.client().await;
    use ResponseCode::*;
    let table: &[(&str, &str, &str, ResponseCode)] = &[
        (NB_CREDIT, "3012", "10.00", Approved),
        (NB_LOST, "3012", "10.00", LostCard),
        (NB_EXPIRED, "2401", "10.00", ExpiredCard),
        (NB_LOW_LIMIT, "3012", "100.01", InsufficientFunds),
        (EB_DEBIT, "3012", "10.00", Approved),
        (EB_STOLEN, "3012", "10.00", StolenCard),
        (EB_LOW, "3012", "10.01", InsufficientFunds),
        (MP_PREPAID, "3012", "10.00", Approved),
        (MP_EMPTY, "3012", "5.00", InsufficientFunds),
        (NO_ISSUER, "3012", "1.00", NoSuchIssuer),
        // The limits are inclusive: the whole limit or balance can be spent.
        (NB_LOW_LIMIT, "3012", "100.00", Approved),
        (EB_LOW, "3012", "10.00", Approved),
    ];
    for &(pan, expiry, amount, code) in table {
        let r = c
            .purchase(pan, cny(amount), TxnOptions::new().expiry(expiry))
            .await
            .expect("answered");
        assert_code(&r, code, &format!("purchase {amount} on {pan}"));
        assert_eq!(r.response_mti.to_digits(), *b"0210", "{pan}");
        assert_eq!(text(&r.response, 2).as_deref(), Some(pan), "field 2 echoed");
        assert_eq!(
            r.response.get(11).as_deref(),
            Some(&r.stan.to_field()[..]),
            "field 11 echoed"
        );
        if code == Approved {
            let auth = r
                .auth_code
                .as_deref()
                .expect("an approval carries an auth code");
            assert_eq!(auth.len(), 6, "auth code {auth:?}");
        }
    }
    stack.shutdown().await;
}

/// 03 unknown acquirer, 14 Luhn, 13 zero amount, 12 on 0310 for an unsupported MTI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_declines_before_routing() {
    let stack = Stack::start().await;

    let stranger = stack.client_as("999999", "TERM0001").await;
    let r = stranger
        .purchase(NB_CREDIT, cny("1.00"), TxnOptions::new().expiry("3012"))
        .await
        .expect("answered");
    assert_code(&r, ResponseCode::InvalidMerchant, "field 32 = 999999");

    let c = stack.client().await;
    let r = c
        .purchase(
            "4111110000000012",
            cny("1.00"),
            TxnOptions::new().expiry("3012"),
        )
        .await
        .expect("answered");
    assert_code(&r, ResponseCode::InvalidCardNumber, "Luhn failure");
    let r = c
        .purchase(NB_CREDIT, cny("0.00"), TxnOptions::new().expiry("3012"))
        .await
        .expect("answered");
    assert_code(&r, ResponseCode::InvalidAmount, "zero amount");
    let r = c
        .purchase(MP_PREPAID, cny("0.00"), TxnOptions::new())
        .await
        .expect("answered");
    assert_code(&r, ResponseCode::InvalidAmount, "zero amount, on-us");

    let mut b = MessageBuilder::new(&ISO87_ASCII, *b"0300");
    b.set(2, NB_CREDIT.as_bytes())
        .set(3, b"000000")
        .set(4, b"000000000100")
        .set(7, b"0101120000")
        .set(11, b"424242")
        .set(32, b"100001")
        .set(41, b"TERM0001")
        .set(42, b"MERCHANT0000001")
        .set(49, b"156");
    let answer = c
        .send_raw(b.to_bytes().expect("encode"))
        .await
        .expect("0300 answered");
    assert_eq!(answer.mti_digits(), *b"0310");
    assert_eq!(text(&answer, 39).as_deref(), Some("12"));
    assert_eq!(text(&answer, 11).as_deref(), Some("424242"));
    // None of these reached an issuer.
    assert_eq!(stack.host(NORTH).requests(), 0);
    stack.shutdown().await;
}

/// Field 54 carries available and ledger balances, as each issuer keeps them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balance_inquiry_answers_available_and_ledger() {
    let stack = Stack::start().await;
    let c = stack.client().await;
    // Published balances: credit shows its open-to-buy and owes nothing.
    assert_eq!(inquire(&c, NB_CREDIT).await, (minor("10000.00"), 0));
    assert_eq!(
        inquire(&c, EB_DEBIT).await,
        (minor("5000.00"), minor("5000.00"))
    );
    assert_eq!(
        inquire(&c, MP_PREPAID).await,
        (minor("200.00"), minor("200.00"))
    );
    assert_eq!(inquire(&c, MP_EMPTY).await, (0, 0));

    // A purchase moves the available balance by its amount, on every kind of issuer.
    for pan in [NB_CREDIT, EB_DEBIT, MP_PREPAID] {
        let (before, _) = inquire(&c, pan).await;
        let r = c
            .purchase(pan, cny("12.34"), TxnOptions::new().expiry("3012"))
            .await
            .expect("answered");
        assert_code(&r, ResponseCode::Approved, pan);
        let (after, _) = inquire(&c, pan).await;
        assert_eq!(after, before - 1234, "available of {pan}");
    }
    // The remote answers are the hosts' own books.
    assert_eq!(
        inquire(&c, NB_CREDIT).await,
        stack.host_balances(NORTH, NB_CREDIT)
    );
    assert_eq!(
        inquire(&c, EB_DEBIT).await,
        stack.host_balances(EAST, EB_DEBIT)
    );
    stack.shutdown().await;
}

/// Preauthorization then reversal leaves the open-to-buy where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reversal_restores_the_open_to_buy() {
    let stack = Stack::start().await;
    let c = stack.client().await;
    for pan in [NB_CREDIT, EB_DEBIT, MP_PREPAID] {
        let before = inquire(&c, pan).await;
        let auth = c
            .preauth(pan, cny("80.00"), TxnOptions::new().expiry("3012"))
            .await
            .expect("answered");
        assert_code(&auth, ResponseCode::Approved, &format!("preauth on {pan}"));
        let held = inquire(&c, pan).await;
        assert_eq!(
            held.0,
            before.0 - 8000,
            "the hold reduces the available balance of {pan}"
        );
        let rev = c
            .reverse(&auth, cny("80.00"), None)
            .await
            .expect("answered");
        assert_code(&rev, ResponseCode::Approved, &format!("reversal on {pan}"));
        assert_eq!(rev.response_mti.to_digits(), *b"0410");
        assert_eq!(
            inquire(&c, pan).await,
            before,
            "balances of {pan} after preauth + reversal"
        );
    }
    for (id, pan) in [(NORTH, NB_CREDIT), (EAST, EB_DEBIT)] {
        let l = stack
            .host(id)
            .engine()
            .ledger(&switch::domain::Pan::parse(pan.as_bytes()).unwrap())
            .unwrap();
        assert_eq!(
            (l.held.minor(), l.open_holds),
            (0, 0),
            "{pan}: no hold left at {id}"
        );
    }
    stack.shutdown().await;
}

/// A completion for less than its preauthorization posts the completed amount.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_for_less_posts_the_completed_amount() {
    let stack = Stack::start().await;
    let c = stack.client().await;
    for pan in [NB_CREDIT, EB_DEBIT, MP_PREPAID] {
        let (before, _) = inquire(&c, pan).await;
        let auth = c
            .preauth(pan, cny("80.00"), TxnOptions::new().expiry("3012"))
            .await
            .expect("answered");
        assert_code(&auth, ResponseCode::Approved, &format!("preauth on {pan}"));
        let done = c.complete(&auth, cny("64.50")).await.expect("answered");
        assert_code(
            &done,
            ResponseCode::Approved,
            &format!("completion on {pan}"),
        );
        assert_eq!(done.response_mti.to_digits(), *b"0230");
        let (after, _) = inquire(&c, pan).await;
        assert_eq!(
            after,
            before - 6450,
            "{pan}: available drops by the completed amount, not the hold"
        );
    }
    for (id, pan) in [(NORTH, NB_CREDIT), (EAST, EB_DEBIT)] {
        let l = stack
            .host(id)
            .engine()
            .ledger(&switch::domain::Pan::parse(pan.as_bytes()).unwrap())
            .unwrap();
        assert_eq!(
            (l.held.minor(), l.open_holds),
            (0, 0),
            "{pan}: the hold is gone at {id}"
        );
    }
    assert_eq!(
        stack.host_balances(EAST, EB_DEBIT),
        (minor("4935.50"), minor("4935.50"))
    );
    stack.shutdown().await;
}

/// A prepaid purchase above the balance: 51 without partial support, 10 for the balance with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepaid_partial_approval() {
    let stack = Stack::start().await;
    let c = stack.client().await;
    let r = c
        .purchase(MP_PREPAID, cny("250.00"), TxnOptions::new().expiry("3012"))
        .await
        .expect("answered");
    assert_code(&r, ResponseCode::InsufficientFunds, "no partial support");
    assert_eq!(
        inquire(&c, MP_PREPAID).await.0,
        minor("200.00"),
        "a decline takes nothing"
    );

    let r = c
        .purchase(
            MP_PREPAID,
            cny("250.00"),
            TxnOptions::new().expiry("3012").partial(),
        )
        .await
        .expect("answered");
    assert_code(&r, ResponseCode::ApprovedPartial, "field 60 = 1");
    assert_eq!(
        r.approved_amount,
        Some(cny("200.00")),
        "field 4 is the balance"
    );
    assert!(r.auth_code.is_some());
    assert_eq!(
        inquire(&c, MP_PREPAID).await.0,
        0,
        "the whole balance is taken"
    );

    // A card with nothing on it gets 51 even with partial support.
    let r = c
        .purchase(
            MP_EMPTY,
            cny("3.00"),
            TxnOptions::new().expiry("3012").partial(),
        )
        .await
        .expect("answered");
    assert_code(
        &r,
        ResponseCode::InsufficientFunds,
        "empty card, partial allowed",
    );
    stack.shutdown().await;
}

/// The switch answers an acquirer's own network management itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_on_and_echo_from_an_acquirer() {
    let stack = Stack::start().await;
    let c = stack.client().await;
    for (r, code) in [(c.sign_on().await, "001"), (c.echo().await, "301")] {
        let r = r.expect("answered");
        assert_eq!(r.response_mti.to_digits(), *b"0810");
        assert_code(&r, ResponseCode::Approved, code);
        assert_eq!(
            text(&r.response, 70).as_deref(),
            Some(code),
            "field 70 echoed"
        );
        assert_eq!(r.response.get(11).as_deref(), Some(&r.stan.to_field()[..]));
    }
    // Answered by the switch: no issuer saw them.
    assert_eq!(
        stack.host(NORTH).requests() + stack.host(EAST).requests(),
        0
    );
    stack.shutdown().await;
}
