//! End to end over TCP: MACs and PIN blocks with the default configuration and keys. Acquirer
//! 100002 MACs with X9.19; both acquirers encipher PINs under their zone PIN keys, and 100001
//! also has TDES and AES DUKPT PIN pads; North Bank and East Bank verify PINs under their own
//! zone PIN keys, and East Bank's link is MACed with AES-CMAC; Metro Pay's PINs are verified
//! inside the switch.

mod common;

use std::sync::Arc;

use common::*;
use switch::client::{ClientError, ClientOptions, PinSetup, PreparedRequest, TxnKind, TxnOptions};
use switch::decision::security::check_mac;
use switch::domain::ResponseCode;
use switch::host::Faults;
use switch::iso8583::Message;
use switch::security::KeyId;
use switch::terminal::{TEST_AES_KSN, TEST_TDES_KSN, TerminalKeys};

/// `switchyard_security_violations_total` for `party` and `reason` so far (every test of this
/// binary counts into it, so tests compare before and after).
fn violations(party: &str, reason: &str) -> u64 {
    let text = metrics().render();
    text.lines()
        .filter(|l| l.starts_with("switchyard_security_violations_total{"))
        .filter(|l| l.contains(&format!("party=\"{party}\"")))
        .filter(|l| l.contains(&format!("reason=\"{reason}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

async fn stack() -> Stack {
    metrics();
    Stack::start().await
}

fn key(id: &str) -> KeyId {
    id.parse().expect("key id")
}

fn opts() -> TxnOptions {
    TxnOptions::new().expiry("3012")
}

fn pin(p: &str) -> TxnOptions {
    opts().pin(p)
}

/// Asserts that `msg`, an answer of the switch, carries a valid MAC under acquirer 100002's key.
#[track_caller]
fn assert_maced_for_100002(stack: &Stack, msg: &Message) {
    let module = &stack.server().runtime.security.module;
    assert_eq!(
        check_mac(&**module, &key("acquirer:100002:mac"), msg),
        Ok(()),
        "answer MACed under acquirer:100002:mac: {msg:?}"
    );
}

/// `p` with one byte flipped at `at` (counted from the end when negative).
fn tampered(p: &PreparedRequest, at: isize) -> PreparedRequest {
    let mut bytes = p.payload.to_vec();
    let i = if at < 0 {
        bytes.len() - at.unsigned_abs()
    } else {
        at as usize
    };
    bytes[i] ^= 0x01;
    let mut out = p.clone();
    out.payload = bytes.into();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_macing_acquirer_is_served_and_every_answer_is_maced() {
    let stack = stack().await;
    let c = stack.client_as("100002", "TERMMAC1").await;
    // The client checks every answer's MAC and fails the request if it is missing or wrong.
    let r = c
        .purchase(NB_CREDIT, cny("12.34"), opts())
        .await
        .expect("answered, MAC verified");
    assert_code(&r, ResponseCode::Approved, "MACed purchase");
    assert_maced_for_100002(&stack, &r.response);
    assert!(r.response.has(64) && !r.response.has(1));

    // East Bank's link is MACed too (AES-CMAC), each hop under its own key.
    let r = c
        .purchase(EB_DEBIT, cny("2.00"), opts())
        .await
        .expect("answered");
    assert_code(&r, ResponseCode::Approved, "over the MACed issuer link");

    // A reversal has field 90, so a secondary bitmap: its MAC is in 128. Its answer echoes no
    // field above 64, so that MAC is in 64.
    let p = c
        .prepare_reversal(&r, cny("2.00"), None, false)
        .expect("prepared");
    let m = p.message().expect("request");
    assert!(m.has(128) && !m.has(64), "request MAC in 128");
    let rev = c.send_prepared(&p).await.expect("answered");
    assert_code(&rev, ResponseCode::Approved, "reversal");
    assert!(rev.response.has(64) && !rev.response.has(1));
    assert_maced_for_100002(&stack, &rev.response);

    // The switch's own declines, network management and the on-us engine's answers too.
    let r = c
        .purchase(NO_ISSUER, cny("1.00"), opts())
        .await
        .expect("answered");
    assert_code(&r, ResponseCode::NoSuchIssuer, "no BIN range");
    let r = c
        .purchase(MP_PREPAID, cny("1.00"), opts())
        .await
        .expect("answered");
    assert_code(&r, ResponseCode::Approved, "on-us");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_mac_gets_63_maced_and_counted() {
    let stack = stack().await;
    let before = violations("acquirer", "mac_missing");
    let bare = stack
        .client_bare("100002", "TERMMAC2", ClientOptions::default())
        .await;
    let r = bare
        .purchase(NB_CREDIT, cny("5.00"), opts())
        .await
        .expect("answered");
    assert_code(&r, ResponseCode::SecurityViolation, "no MAC");
    assert_maced_for_100002(&stack, &r.response);
    assert_eq!(stack.host(NORTH).requests(), 0, "never forwarded");
    assert!(violations("acquirer", "mac_missing") > before, "counted");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_mac_gets_63_and_is_counted() {
    let stack = stack().await;
    let before = violations("acquirer", "mac_invalid");
    let c = stack.client_as("100002", "TERMMAC3").await;
    let p = c
        .prepare(TxnKind::Purchase, NB_CREDIT, Some(cny("5.00")), opts())
        .expect("prepared");
    // The MAC itself altered, then a covered byte (a digit of field 4) altered.
    for at in [-1isize, 40] {
        let r = c
            .send_prepared(&tampered(&p, at))
            .await
            .expect("answered, MAC verified");
        assert_code(&r, ResponseCode::SecurityViolation, "wrong MAC");
    }
    assert_eq!(stack.host(NORTH).requests(), 0, "never forwarded");
    assert!(
        violations("acquirer", "mac_invalid") >= before + 2,
        "both counted"
    );
    // The untouched request still goes through.
    let r = c.send_prepared(&p).await.expect("answered");
    assert_code(&r, ResponseCode::Approved, "the original request");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acquirer_without_a_mac_key_is_unaffected() {
    let stack = stack().await;
    let c = stack
        .client_bare("100001", "TERMPLN1", ClientOptions::default())
        .await;
    let r = c
        .purchase(NB_CREDIT, cny("3.00"), opts())
        .await
        .expect("answered");
    assert_code(&r, ResponseCode::Approved, "no MAC needed");
    assert!(!r.response.has(64) && !r.response.has(128), "none added");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pin_under_the_acquirer_zpk_reaches_remote_issuers_translated() {
    let stack = stack().await;
    // 100002 MACs and enciphers under acquirer:100002:zpk; the hosts verify under their own.
    let c = stack.client_as("100002", "TERMPIN1").await;
    let right = c
        .prepare(
            TxnKind::Purchase,
            NB_CREDIT,
            Some(cny("10.00")),
            pin("1234"),
        )
        .expect("prepared");
    let block = right
        .message()
        .expect("request")
        .get(52)
        .expect("field 52")
        .to_vec();
    let r = c.send_prepared(&right).await.expect("answered");
    assert_code(&r, ResponseCode::Approved, "right PIN, North Bank");
    let r = c
        .purchase(NB_CREDIT, cny("10.00"), pin("9999"))
        .await
        .expect("answered");
    assert_code(&r, ResponseCode::IncorrectPin, "wrong PIN, North Bank");
    let r = c
        .purchase(EB_DEBIT, cny("10.00"), pin("1234"))
        .await
        .expect("answered");
    assert_code(
        &r,
        ResponseCode::Approved,
        "right PIN, East Bank (MACed link)",
    );
    let r = c
        .purchase(EB_DEBIT, cny("10.00"), pin("4321"))
        .await
        .expect("answered");
    assert_code(&r, ResponseCode::IncorrectPin, "wrong PIN, East Bank");

    // The PIN block appears nowhere in the journal.
    let dir = stack.journal_dir();
    let mut stack = stack;
    stack.shutdown_switch().await;
    for (_, rec) in switch::journal::read_all(&dir).expect("journal") {
        assert!(
            !rec.windows(block.len()).any(|w| w == block),
            "a journal record holds the PIN block"
        );
    }
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_on_us_pin_is_verified_inside_the_switch() {
    let stack = stack().await;
    let c = stack.client().await;
    let r = c
        .purchase(MP_PREPAID, cny("1.00"), pin("1234"))
        .await
        .expect("answered");
    assert_code(&r, ResponseCode::Approved, "right PIN, on-us");
    let r = c
        .purchase(MP_PREPAID, cny("1.00"), pin("1111"))
        .await
        .expect("answered");
    assert_code(&r, ResponseCode::IncorrectPin, "wrong PIN, on-us");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dukpt_pin_pads_tdes_and_aes() {
    let stack = stack().await;
    let tdes = stack
        .client_with(
            "100001",
            "TERMDKT1",
            ClientOptions {
                keys: stack.terminal_keys(
                    "100001",
                    PinSetup::TdesDukpt {
                        bdk: key("bdk:test-tdes"),
                        ksn: TEST_TDES_KSN,
                    },
                ),
                ..ClientOptions::default()
            },
        )
        .await;
    let aes = stack
        .client_with(
            "100001",
            "TERMDKT2",
            ClientOptions {
                keys: stack.terminal_keys(
                    "100001",
                    PinSetup::AesDukpt {
                        bdk: key("bdk:test-aes"),
                        ksn: TEST_AES_KSN,
                    },
                ),
                ..ClientOptions::default()
            },
        )
        .await;
    // A new KSN (and key) for every PIN: the switch derives each from the BDK.
    for (card, issuer) in [
        (NB_CREDIT, "North Bank"),
        (EB_DEBIT, "East Bank"),
        (MP_PREPAID, "Metro Pay"),
    ] {
        for (client, kind) in [(&tdes, "TDES"), (&aes, "AES")] {
            let p = client
                .prepare(TxnKind::Purchase, card, Some(cny("1.00")), pin("1234"))
                .expect("prepared");
            let m = p.message().expect("request");
            assert!(m.has(62), "KSN in field 62");
            assert_eq!(m.has(63), kind == "AES", "format 4 in field 63 for AES");
            let r = client.send_prepared(&p).await.expect("answered");
            assert_code(
                &r,
                ResponseCode::Approved,
                &format!("{kind} DUKPT, {issuer}"),
            );
        }
    }
    let r = aes
        .purchase(NB_CREDIT, cny("1.00"), pin("0000"))
        .await
        .expect("answered");
    assert_code(
        &r,
        ResponseCode::IncorrectPin,
        "wrong PIN from an AES DUKPT pad",
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pin_block_that_does_not_decipher_gets_55() {
    let stack = stack().await;
    let before = violations("acquirer", "pin_block_invalid");
    // No PIN pad: the block goes in clear, which under 100001's zone PIN key is garbage.
    let c = stack
        .client_bare("100001", "TERMCLR1", ClientOptions::default())
        .await;
    for card in [NB_CREDIT, MP_PREPAID] {
        let r = c
            .purchase(card, cny("1.00"), pin("1234"))
            .await
            .expect("answered");
        assert_code(&r, ResponseCode::IncorrectPin, "not 30, not 96");
    }
    assert_eq!(stack.host(NORTH).requests(), 0, "never forwarded");
    assert!(violations("acquirer", "pin_block_invalid") >= before + 2);
    // Not a PIN try: the card still takes its right PIN (three wrong ones would block it).
    let right = stack.client().await;
    for _ in 0..3 {
        let _ = c.purchase(MP_PREPAID, cny("1.00"), pin("1234")).await;
    }
    let r = right
        .purchase(MP_PREPAID, cny("1.00"), pin("1234"))
        .await
        .expect("answered");
    assert_code(&r, ResponseCode::Approved, "no try was counted");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pin_data_from_an_acquirer_without_pin_keys_gets_63() {
    metrics();
    let stack = Stack::builder()
        .configure(|c| {
            for a in c.acquirers.iter_mut().filter(|a| a.id == "100001") {
                a.pin_key = None;
                a.bdk.clear();
            }
        })
        .start()
        .await;
    let before = violations("acquirer", "pin_key_missing");
    let c = stack.client().await;
    let r = c
        .purchase(NB_CREDIT, cny("1.00"), pin("1234"))
        .await
        .expect("answered");
    assert_code(&r, ResponseCode::SecurityViolation, "no key to read it");
    assert!(violations("acquirer", "pin_key_missing") > before);
    let r = c
        .purchase(NB_CREDIT, cny("1.00"), opts())
        .await
        .expect("answered");
    assert_code(&r, ResponseCode::Approved, "without a PIN");
    stack.shutdown().await;
}

/// East Bank's host answers with MACs that do not verify: the switch does not trust the
/// answer, so the acquirer gets 91 (East Bank has no stand-in) and the request is reversed
/// through store-and-forward, as after a timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_answer_with_a_bad_mac_is_not_trusted() {
    metrics();
    let mut stack = Stack::builder()
        .faults(
            EAST,
            Faults {
                garble_mac: true,
                ..Faults::default()
            },
        )
        .start()
        .await;
    let before = violations("issuer", "mac_invalid");
    let start = stack.host_balances(EAST, EB_DEBIT);
    let c = stack.client().await;
    let r = c
        .purchase(EB_DEBIT, cny("7.00"), opts())
        .await
        .expect("answered");
    assert_code(&r, ResponseCode::IssuerInoperative, "answer not trusted");
    assert!(violations("issuer", "mac_invalid") > before, "counted");
    let saf = stack.saf(EAST);
    wait_for("the reversal is queued", &mut saf.depth_watch(), |&d| d > 0).await;

    // With good MACs again, the reversal is delivered and the hold released.
    stack.stop_host(EAST).await;
    stack.restart_host(EAST, Faults::default()).await;
    wait_drained("the reversal is delivered", &saf).await;
    assert_eq!(stack.host_balances(EAST, EB_DEBIT), start);
    let r = c
        .purchase(EB_DEBIT, cny("7.00"), opts())
        .await
        .expect("answered");
    assert_code(&r, ResponseCode::Approved, "trusted again");
    stack.shutdown().await;
}

/// The client refuses an answer whose MAC it cannot verify (here: a MAC key the switch does not
/// share), rather than report its response code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_checks_the_answer_mac() {
    let stack = stack().await;
    let wrong =
        TerminalKeys::from_keys_file(&keys(), Some(&key("issuer:east-bank:mac")), &PinSetup::None)
            .expect("keys");
    let c = stack
        .client_bare(
            "100002",
            "TERMMAC4",
            ClientOptions {
                keys: Arc::new(wrong),
                ..ClientOptions::default()
            },
        )
        .await;
    match c.purchase(NB_CREDIT, cny("1.00"), opts()).await {
        Err(ClientError::BadResponse { field: 64, .. }) => {}
        other => panic!("expected a MAC error, got {other:?}"),
    }
    stack.shutdown().await;
}
