//! Card data never reaches a log line, a metric or a file in clear.
//!
//! One representative run of the whole stack (switch, issuer hosts, client, all in this process)
//! with every log event and span at TRACE captured, in the text and the JSON format, and every
//! metric recorded: approvals on every issuer kind, declines of every sort, a PIN, track 2, a
//! completion, reversals, a duplicate, stand-in with its advice delivered later, a malformed
//! message, an unreadable one, a response MTI from an acquirer, and framing errors that close a
//! connection (an impossible length followed by a real message, a frame cut short). Then the logs,
//! the Prometheus rendering and every file the run wrote (journals, checkpoints) are searched for
//! each test card number as digits, as hex of its ASCII digits and (in files) as packed BCD, and
//! for the PIN block. The masked form (411111******0013) is what may appear.
//!
//! This file is its own test binary with one test, because the subscriber and the metrics
//! recorder it installs are process-wide.

mod common;

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::*;
use switch::client::{TxnKind, TxnOptions, pin_block_format0};
use switch::domain::ResponseCode;
use switch::iso8583::{ISO87_ASCII, MessageBuilder, decode_lenient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::SubscriberExt;

/// Every card number the run uses: the README's test set, and one that fails the Luhn check.
const CARDS: [&str; 11] = [
    NB_CREDIT,
    NB_LOST,
    NB_EXPIRED,
    NB_LOW_LIMIT,
    EB_DEBIT,
    EB_STOLEN,
    EB_LOW,
    MP_PREPAID,
    MP_EMPTY,
    NO_ISSUER,
    BAD_LUHN,
];
const BAD_LUHN: &str = "4111110000000014";

/// Everything the subscriber writes.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

fn packed_bcd(digits: &str) -> Vec<u8> {
    let d = digits.as_bytes();
    d.chunks(2)
        .map(|p| ((p[0] - b'0') << 4) | p.get(1).map_or(0x0f, |c| c - b'0'))
        .collect()
}

/// What must not appear: (description, bytes). Descriptions never spell out the card number.
fn forbidden(binary: bool, pin_block: &[u8; 8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for pan in CARDS {
        let masked = switch::iso8583::decode::mask_pan(pan.as_bytes());
        out.push((format!("card {masked} in clear"), pan.as_bytes().to_vec()));
        // ASCII digits are 0x30-0x39: their hex has no letters, so one case covers both.
        out.push((
            format!("card {masked} as hex"),
            hex::encode(pan.as_bytes()).into_bytes(),
        ));
        if binary {
            out.push((format!("card {masked} as packed BCD"), packed_bcd(pan)));
        }
    }
    let hex = hex::encode(pin_block);
    out.push(("the PIN block as hex".into(), hex.clone().into_bytes()));
    out.push((
        "the PIN block as HEX".into(),
        hex.to_uppercase().into_bytes(),
    ));
    if binary {
        out.push(("the PIN block".into(), pin_block.to_vec()));
    }
    out
}

/// Each forbidden pattern found in `hay`, with the line (masked) it was found on.
fn leaks(what: &str, hay: &[u8], patterns: &[(String, Vec<u8>)]) -> Vec<String> {
    let mut found = Vec::new();
    for (name, p) in patterns {
        if let Some(at) = hay.windows(p.len()).position(|w| w == &p[..]) {
            let start = hay[..at]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            let end = hay[at..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(hay.len(), |i| at + i);
            let mut line = String::from_utf8_lossy(&hay[start..end.min(start + 300)]).into_owned();
            for (_, q) in patterns {
                if let Ok(q) = std::str::from_utf8(q) {
                    line = line.replace(q, "<CARD DATA>");
                }
            }
            found.push(format!("{what}: {name}: {line}"));
        }
    }
    found
}

/// One past the last non-zero byte (0 for all zeros), comparing 4 KiB blocks with `memcmp`.
fn nonzero_len(bytes: &[u8]) -> usize {
    const BLOCK: usize = 4096;
    static ZEROS: [u8; BLOCK] = [0; BLOCK];
    let mut end = bytes.len();
    while end > 0 {
        let start = end.saturating_sub(BLOCK);
        let block = &bytes[start..end];
        if block != &ZEROS[..block.len()] {
            return start + block.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        }
        end = start;
    }
    0
}

fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// A purchase of 1.00 on `pan` with field 35 (track 2) added, as a raw message.
fn with_track2(c: &switch::client::AcquirerClient, pan: &str) -> Bytes {
    let p = c
        .prepare(
            TxnKind::Purchase,
            pan,
            Some(cny("1.00")),
            TxnOptions::new().expiry("3012"),
        )
        .expect("prepare");
    let m = decode_lenient(&ISO87_ASCII, p.payload.clone()).expect("decodes");
    let mut b = MessageBuilder::new(&ISO87_ASCII, m.mti_digits());
    for n in m.field_numbers() {
        b.copy_from(&m, n);
    }
    let track2 = format!("{pan}=30121011234567890123");
    b.set(35, track2.as_bytes());
    b.to_bytes().expect("encodes")
}

/// `msg` with the first occurrence of `what` replaced by `with` (same length).
fn spoil(msg: &[u8], what: &[u8], with: &[u8]) -> Vec<u8> {
    let mut v = msg.to_vec();
    let at = v
        .windows(what.len())
        .position(|w| w == what)
        .expect("pattern in message");
    v[at..at + with.len()].copy_from_slice(with);
    v
}

/// Writes `bytes` on a new connection and waits until the switch closes it.
async fn closed_after(addr: std::net::SocketAddr, bytes: &[u8], then_close: bool) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    if then_close {
        let _ = s.shutdown().await;
    }
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(WAIT, s.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return,
            Ok(Ok(_)) => continue,
            Err(_) => panic!("the switch did not close the connection"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_card_data_in_logs_metrics_or_files() {
    let text = Capture::default();
    let json = Capture::default();
    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_span_events(FmtSpan::NEW | FmtSpan::CLOSE)
                .with_writer({
                    let t = text.clone();
                    move || t.clone()
                }),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_span_events(FmtSpan::NEW | FmtSpan::CLOSE)
                .with_writer({
                    let j = json.clone();
                    move || j.clone()
                }),
        )
        .with(LevelFilter::TRACE);
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
    let metrics = switch::metrics::builder()
        .expect("the switch's bucket bounds are valid")
        .install_recorder()
        .expect("the only recorder");

    let mut stack = Stack::start().await;
    let c = stack.client().await;
    let o = || TxnOptions::new().expiry("3012");
    let code = |r: Result<switch::client::TxnResult, _>| {
        r.expect("answered").response_code.as_str().to_owned()
    };

    // Approvals: remote credit, remote debit with a PIN, on-us prepaid, a balance inquiry.
    assert_eq!(code(c.purchase(NB_CREDIT, cny("12.34"), o()).await), "00");
    assert_eq!(
        code(c.purchase(EB_DEBIT, cny("5.00"), o().pin("1234")).await),
        "00"
    );
    assert_eq!(code(c.purchase(MP_PREPAID, cny("10.00"), o()).await), "00");
    assert_eq!(code(c.balance(MP_PREPAID).await), "00");
    // Declines: card rules, the switch's screening, a wrong PIN.
    for (pan, amount, expiry, want) in [
        (NB_LOST, "10.00", "3012", "41"),
        (EB_STOLEN, "10.00", "3012", "43"),
        (NB_EXPIRED, "10.00", "2401", "54"),
        (NB_LOW_LIMIT, "500.00", "3012", "51"),
        (EB_LOW, "50.00", "3012", "51"),
        (MP_EMPTY, "1.00", "3012", "51"),
        (NO_ISSUER, "1.00", "3012", "15"),
        (BAD_LUHN, "1.00", "3012", "14"),
    ] {
        let r = c
            .purchase(pan, cny(amount), TxnOptions::new().expiry(expiry))
            .await;
        assert_eq!(code(r), want, "{}", &pan[..6]);
    }
    assert_eq!(
        code(c.purchase(EB_DEBIT, cny("1.00"), o().pin("9999")).await),
        "55"
    );
    // A completion, reversals, an advice, a duplicate.
    let auth = c
        .preauth(NB_CREDIT, cny("80.00"), o())
        .await
        .expect("answered");
    assert_code(&auth, ResponseCode::Approved, "preauth");
    assert_eq!(code(c.complete(&auth, cny("64.50")).await), "00");
    let auth = c
        .preauth(EB_DEBIT, cny("80.00"), o())
        .await
        .expect("answered");
    assert_eq!(code(c.reverse(&auth, cny("80.00"), None).await), "00");
    let auth = c
        .preauth(MP_PREPAID, cny("20.00"), o())
        .await
        .expect("answered");
    assert_eq!(
        code(c.reverse_advice(&auth, cny("20.00"), None).await),
        "00"
    );
    let p = c
        .prepare(TxnKind::Purchase, MP_PREPAID, Some(cny("2.00")), o())
        .expect("prepare");
    assert_eq!(code(c.send_prepared(&p).await), "00");
    assert_eq!(code(c.send_prepared(&p).await), "00", "the duplicate");
    // Track 2.
    let raw = c
        .send_raw(with_track2(&c, NB_CREDIT))
        .await
        .expect("answered");
    assert_eq!(raw.get(39).as_deref(), Some(&b"00"[..]));

    // A malformed message (a letter in the amount) is answered 30; an unreadable one (cut in the
    // middle of field 35) and a response MTI from the acquirer are dropped.
    let good = with_track2(&c, NB_CREDIT);
    let bad = spoil(&good, b"000000000100", b"00000000010X");
    let answer = c.send_raw(Bytes::from(bad)).await.expect("answered");
    assert_eq!(answer.get(39).as_deref(), Some(&b"30"[..]));
    let good = with_track2(&c, EB_DEBIT);
    c.send_payload(&good[..good.len() - 60])
        .await
        .expect("written");
    let resp = spoil(&with_track2(&c, MP_PREPAID), b"0200", b"0210");
    c.send_payload(&resp).await.expect("written");
    assert_eq!(code(c.echo().await), "00", "the connection is still up");

    // Framing errors: an impossible length followed by a real message; a frame cut short.
    let msg = with_track2(&c, NB_CREDIT);
    let mut impossible = vec![0xff, 0xff];
    impossible.extend_from_slice(&msg);
    closed_after(stack.addr(), &impossible, false).await;
    let mut cut = frame(&msg);
    cut.truncate(cut.len() - 30);
    closed_after(stack.addr(), &cut, true).await;

    // Stand-in while North Bank is away, then its advice delivered once it is back.
    stack.stop_host(NORTH).await;
    let r = c
        .purchase(NB_CREDIT, cny("45.00"), o())
        .await
        .expect("answered");
    assert_code(&r, ResponseCode::Approved, "stand-in");
    assert!(r.auth_code.as_deref().is_some_and(|a| a.starts_with("ST")));
    assert_eq!(code(c.purchase(NB_LOST, cny("5.00"), o()).await), "41");
    stack.restart_host(NORTH, Default::default()).await;
    let saf = stack.saf(NORTH);
    wait_drained("the stand-in advice is delivered", &saf).await;

    drop(c);
    if let Some(server) = stack.server.take() {
        server.shutdown().await;
    }
    for slot in stack.hosts.values_mut() {
        if let Some(h) = slot.host.take() {
            h.shutdown().await;
        }
    }

    let pin_block = pin_block_format0("1234", EB_DEBIT).expect("PIN block");
    let text_patterns = forbidden(false, &pin_block);
    let mut found = Vec::new();
    let logs = text.text();
    let json_logs = json.text();
    found.extend(leaks("text log", logs.as_bytes(), &text_patterns));
    found.extend(leaks("JSON log", json_logs.as_bytes(), &text_patterns));
    let rendered = metrics.render();
    found.extend(leaks("metrics", rendered.as_bytes(), &text_patterns));
    let mut files = Vec::new();
    files_under(stack.dir.path(), &mut files);
    let binary_patterns = forbidden(true, &pin_block);
    for f in &files {
        let mut bytes = std::fs::read(f).expect("read file");
        // A pre-written journal segment ends in megabytes of zeros, which hold no card data:
        // searched to its last non-zero byte (the search is a byte loop in this debug build).
        // (A margin keeps a pattern that itself ends in zero bytes whole.)
        bytes.truncate((nonzero_len(&bytes) + 64).min(bytes.len()));
        found.extend(leaks(&f.display().to_string(), &bytes, &binary_patterns));
    }
    // The search itself works: the run did log, count and journal, and masked card numbers are
    // in the logs.
    assert!(logs.contains("411111******0013"), "masked PANs are logged");
    assert!(json_logs.contains("411111******0013"));
    assert!(rendered.contains("switchyard_requests_total"));
    assert!(files.iter().any(|f| f.starts_with(stack.journal_dir())));
    assert!(
        logs.lines().count() > 100,
        "the run logged {} lines",
        logs.lines().count()
    );
    assert!(found.is_empty(), "card data found:\n{}", found.join("\n"));
}
