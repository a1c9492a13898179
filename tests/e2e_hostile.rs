//! Hostile traffic over TCP: 10,000 mutated frames mixed with valid requests, against the real
//! switch and issuer hosts, over many connections. It runs in CI (`cargo test --workspace`).
//!
//! Traffic comes in sessions, each on its own connection: a random mix of valid requests and
//! message-level mutations (bit flips, truncations, bad bitmaps, non-digits in numeric fields,
//! huge LLVAR lengths, trailing or random bytes, spoilt MTIs), all correctly framed, and in some
//! sessions a last frame-level mutation (a wrong length, an impossible length, a frame cut short,
//! keep-alives and garbage) after which the stream cannot be trusted and the switch closes the
//! connection. Nothing is sent after a frame-level mutation, so everything before it must still be
//! answered.
//!
//! What each mutated message should get is worked out here, with the codec's own lenient decode of
//! the bytes sent: a message whose structure decodes but whose content breaks a field's rules, on
//! a request MTI the switch serves, must be answered 30. Everything else mutated may be answered
//! with any code or dropped. Valid requests must get their expected code, matched by STAN.
//!
//! Asserted: no panic anywhere in the process (a panic hook counts them, switch and issuer hosts
//! included); every valid request answered correctly; every decodable-but-invalid message answered
//! 30; the switch still answers afterwards; and the process's resident memory grew by less than
//! 64 MiB. The generator is seeded, so every run sends the same bytes.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use switch::config::JournalSync;
use switch::iso8583::views::{mti_of, rule_for};
use switch::iso8583::{ISO87_ASCII, Message, MessageBuilder, decode_lenient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SEED: u64 = 0x7057_11e5;
/// Mutated frames in the whole run.
const MUTATED: usize = 10_000;
/// Concurrent connections sending sessions.
const WORKERS: usize = 4;
/// Largest growth of the process's resident memory allowed over the run.
const RSS_GROWTH_MAX: u64 = 64 << 20;
/// Every answer a session is owed must arrive within this.
const SESSION_WAIT: Duration = Duration::from_secs(15);

static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Transmission time and terminal of valid requests, and of mutation templates: different, so a
/// mutated STAN can never make a template a duplicate of a valid request.
const VALID_F7: &[u8] = b"0601120000";
const VALID_TERMINAL: &[u8] = b"TERM0001";
const HOSTILE_F7: &[u8] = b"0601130000";
const HOSTILE_TERMINAL: &[u8] = b"HOST0001";

/// A valid request: its fields (without 7, 11, 41) and the code it must get.
struct Valid {
    mti: [u8; 4],
    fields: Vec<(u8, &'static [u8])>,
    code: &'static str,
}

fn common_fields(f7: &'static [u8], terminal: &'static [u8]) -> Vec<(u8, &'static [u8])> {
    vec![
        (7, f7),
        (32, b"100001"),
        (41, terminal),
        (42, b"MERCHANT0000001"),
        (49, b"156"),
    ]
}

/// Requests whose answers are known and do not change with what else happens: balance
/// inquiries, screening declines, echoes. Their cards are never used by the mutation templates.
fn valid_kinds() -> Vec<Valid> {
    let inquiry = |pan: &'static str| -> Vec<(u8, &'static [u8])> {
        vec![(2, pan.as_bytes()), (3, b"310000"), (14, b"3012")]
    };
    vec![
        Valid {
            mti: *b"0100",
            fields: inquiry(MP_PREPAID),
            code: "00",
        },
        Valid {
            mti: *b"0100",
            fields: inquiry(EB_DEBIT),
            code: "00",
        },
        Valid {
            mti: *b"0200",
            fields: vec![
                (2, NO_ISSUER.as_bytes()),
                (3, b"000000"),
                (4, b"000000000100"),
                (14, b"3012"),
            ],
            code: "15",
        },
        Valid {
            mti: *b"0100",
            fields: vec![
                (2, NB_EXPIRED.as_bytes()),
                (3, b"000000"),
                (4, b"000000000100"),
                (14, b"2401"),
            ],
            code: "54",
        },
        Valid {
            mti: *b"0800",
            fields: vec![(70, b"301")],
            code: "00",
        },
    ]
}

/// Field 90 naming an 0100 of STAN 000001.
const ORIGINAL: &[u8] = b"010000000106011300000000010000100000000000";

/// An MTI and its fields.
type Template = ([u8; 4], Vec<(u8, &'static [u8])>);

/// The messages mutations start from, on cards whose balances nothing else depends on.
fn templates() -> Vec<Template> {
    let track2: &'static [u8] = b"4111110000000047=30121011234567890123";
    vec![
        (
            *b"0100",
            vec![
                (2, NB_LOW_LIMIT.as_bytes()),
                (3, b"000000"),
                (4, b"000000000100"),
                (12, b"130000"),
                (13, b"0601"),
                (14, b"3012"),
                (18, b"5411"),
                (22, b"021"),
                (25, b"00"),
                (35, track2),
                (37, b"633001000001"),
                (43, b"Harbor Grocery        Shanghai     CN156"),
            ],
        ),
        (
            *b"0200",
            vec![
                (2, EB_LOW.as_bytes()),
                (3, b"000000"),
                (4, b"000000000100"),
                (14, b"3012"),
            ],
        ),
        (
            *b"0200",
            vec![
                (2, MP_EMPTY.as_bytes()),
                (3, b"000000"),
                (4, b"000000000100"),
                (14, b"3012"),
            ],
        ),
        (
            *b"0100",
            vec![(2, NB_LOST.as_bytes()), (3, b"310000"), (14, b"3012")],
        ),
        (
            *b"0400",
            vec![
                (2, EB_STOLEN.as_bytes()),
                (3, b"000000"),
                (4, b"000000000100"),
                (90, ORIGINAL),
            ],
        ),
        (
            *b"0220",
            vec![
                (2, MP_EMPTY.as_bytes()),
                (3, b"000000"),
                (4, b"000000000100"),
                (37, b"633001000001"),
                (38, b"M00001"),
                (90, ORIGINAL),
            ],
        ),
        (*b"0800", vec![(70, b"301")]),
    ]
}

fn build(
    mti: [u8; 4],
    fields: &[(u8, &'static [u8])],
    stan: u32,
    f7: &'static [u8],
    terminal: &'static [u8],
) -> Vec<u8> {
    let stan = format!("{stan:06}");
    let mut b = MessageBuilder::new(&ISO87_ASCII, mti);
    for (n, v) in common_fields(f7, terminal) {
        if mti == *b"0800" && n != 7 && n != 32 {
            continue;
        }
        b.set(n, v);
    }
    for &(n, v) in fields {
        b.set(n, v);
    }
    b.set(11, stan.as_bytes());
    b.to_bytes().expect("template encodes").to_vec()
}

/// Where field `n`'s content starts in `msg`.
fn offset(msg: &Message, n: u8) -> Option<usize> {
    let f = msg.field(n)?;
    Some(f.wire().as_ptr() as usize - msg.as_bytes().as_ptr() as usize)
}

const NUMERIC: [u8; 12] = [3, 4, 7, 11, 12, 13, 14, 18, 22, 25, 49, 90];
const LLVAR: [u8; 3] = [2, 32, 35];

/// One message-level mutation of `clean` (the encoded template).
fn mutate(rng: &mut fastrand::Rng, clean: &[u8]) -> Vec<u8> {
    let msg = decode_lenient(&ISO87_ASCII, Bytes::copy_from_slice(clean)).expect("template");
    let mut v = clean.to_vec();
    match rng.u8(0..9) {
        0 | 1 => {
            for _ in 0..rng.usize(1..=3) {
                let i = rng.usize(0..v.len());
                v[i] ^= 1 << rng.u8(0..8);
            }
        }
        2 => v.truncate(rng.usize(0..v.len())),
        3 => {
            // The bitmap is bytes 4..12 (binary); a secondary one follows when bit 1 is set.
            let i = 4 + rng.usize(0..8);
            v[i] ^= 1 << rng.u8(0..8);
            if rng.bool() {
                v[4] |= 0x80;
            }
        }
        4 | 5 => {
            let present: Vec<u8> = NUMERIC.into_iter().filter(|&n| msg.has(n)).collect();
            if let Some(&n) = present.get(rng.usize(0..present.len().max(1))) {
                let at = offset(&msg, n).expect("present");
                let len = msg.field(n).map_or(1, |f| f.wire().len()).max(1);
                v[at + rng.usize(0..len)] = *b"A :/xZ-".get(rng.usize(0..7)).unwrap_or(&b'A');
            }
        }
        6 => {
            let present: Vec<u8> = LLVAR.into_iter().filter(|&n| msg.has(n)).collect();
            if let Some(&n) = present.get(rng.usize(0..present.len().max(1))) {
                let at = offset(&msg, n).expect("present") - 2;
                let huge: &[u8] = [&b"99"[..], b"98", b"9A", b"00"][rng.usize(0..4)];
                v[at..at + 2].copy_from_slice(huge);
            }
        }
        7 => {
            if rng.bool() {
                let extra = rng.usize(1..40);
                v.extend((0..extra).map(|_| rng.u8(..)));
            } else {
                let mti: &[u8] =
                    [&b"0110"[..], b"9999", b"01A0", b"0300", b"    "][rng.usize(0..5)];
                v[..4].copy_from_slice(mti);
            }
        }
        _ => {
            let len = rng.usize(1..300);
            v = (0..len).map(|_| rng.u8(..)).collect();
            if rng.bool() {
                v[..4.min(len)].copy_from_slice(&b"0100"[..4.min(len)]);
            }
        }
    }
    if v.is_empty() {
        // An empty frame would be a keep-alive, not a message.
        v.push(b'0');
    }
    v
}

/// A frame-level mutation of `clean`: the stream is out of sync after it. True when the length
/// is impossible (over `frame_bytes_max`), so the switch must close at once.
fn mutate_frame(rng: &mut fastrand::Rng, clean: &[u8]) -> (Vec<u8>, bool) {
    let len = clean.len() as u16;
    let impossible = rng.u8(0..5) == 1;
    let out = match if impossible { 1 } else { rng.u8(0..5) } {
        0 => {
            let wrong = if rng.bool() {
                len + rng.u16(1..20)
            } else {
                len - rng.u16(1..20).min(len - 1)
            };
            let mut out = wrong.to_be_bytes().to_vec();
            out.extend_from_slice(clean);
            out
        }
        1 => {
            // Over frame_bytes_max, or the whole 16-bit range.
            let huge: u16 = if rng.bool() {
                0xffff
            } else {
                8193 + rng.u16(0..1000)
            };
            let mut out = huge.to_be_bytes().to_vec();
            out.extend_from_slice(clean);
            out
        }
        2 => {
            let mut out = frame(clean);
            out.truncate(rng.usize(1..out.len()));
            out
        }
        3 => {
            let mut out = vec![0u8; 2 * rng.usize(1..4)];
            out.extend((0..rng.usize(1..60)).map(|_| rng.u8(..)));
            out
        }
        _ => {
            // A TLS client hello where a frame should be.
            let mut out = vec![
                0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
            ];
            out.extend((0..rng.usize(0..64)).map(|_| rng.u8(..)));
            out
        }
    };
    (out, impossible)
}

/// Whether the codec's lenient decode says `bytes` must be answered 30 (its structure decodes,
/// its content breaks a field's rules, and its MTI is a request the switch serves), and the STAN
/// an answer would carry.
fn classify(bytes: &[u8]) -> (bool, Option<u32>) {
    let Ok(msg) = decode_lenient(&ISO87_ASCII, Bytes::copy_from_slice(bytes)) else {
        return (false, None);
    };
    let stan = msg
        .is_valid(11)
        .then(|| msg.get(11))
        .flatten()
        .and_then(|s| std::str::from_utf8(&s).ok()?.parse().ok());
    let served = mti_of(&msg).is_ok_and(|m| m.is_request() && rule_for(m).is_some());
    (served && msg.content_error().is_some(), stan)
}

/// One session: frames to write and what each owes.
struct Session {
    bytes: Vec<u8>,
    /// STAN → expected code (valid requests and format errors with a readable STAN).
    owed: BTreeMap<u32, &'static str>,
    /// Format errors whose STAN is unreadable: their 30s come back without field 11.
    owed_stanless: usize,
    valid: usize,
    format_errors: usize,
    mutated: usize,
    /// Ends with an impossible length: the switch must close the connection.
    must_close: bool,
}

struct Generator {
    rng: fastrand::Rng,
    next_stan: u32,
    valid: Vec<Valid>,
    templates: Vec<Template>,
}

impl Generator {
    /// A fresh STAN that no message of the session can be answered on yet.
    fn stan(&mut self, taken: &BTreeSet<u32>) -> u32 {
        loop {
            self.next_stan += 1;
            if !taken.contains(&self.next_stan) {
                return self.next_stan;
            }
        }
    }

    fn session(&mut self, budget: usize) -> Session {
        let mut s = Session {
            bytes: Vec::new(),
            owed: BTreeMap::new(),
            owed_stanless: 0,
            valid: 0,
            format_errors: 0,
            mutated: 0,
            must_close: false,
        };
        // Every STAN an answer may come back on, so that no two messages share one.
        let mut stans = BTreeSet::new();
        let n = self.rng.usize(4..40);
        while s.bytes.is_empty() || (s.mutated + s.valid < n && s.mutated < budget) {
            if self.rng.u8(0..4) == 0 {
                let k = self.rng.usize(0..self.valid.len());
                let stan = self.stan(&stans);
                let v = &self.valid[k];
                let msg = build(v.mti, &v.fields, stan, VALID_F7, VALID_TERMINAL);
                s.bytes.extend(frame(&msg));
                s.owed.insert(stan, v.code);
                stans.insert(stan);
                s.valid += 1;
            } else {
                let k = self.rng.usize(0..self.templates.len());
                let stan = self.stan(&stans);
                let (mti, fields) = &self.templates[k];
                let clean = build(*mti, fields, stan, HOSTILE_F7, HOSTILE_TERMINAL);
                let (bytes, format_error, got_stan) = loop {
                    let bytes = mutate(&mut self.rng, &clean);
                    let (format_error, got) = classify(&bytes);
                    if got.is_none_or(|g| !stans.contains(&g)) {
                        break (bytes, format_error, got);
                    }
                };
                if let Some(g) = got_stan {
                    stans.insert(g);
                }
                if format_error {
                    s.format_errors += 1;
                    match got_stan {
                        Some(g) => {
                            s.owed.insert(g, "30");
                        }
                        None => s.owed_stanless += 1,
                    }
                }
                s.bytes.extend(frame(&bytes));
                s.mutated += 1;
            }
        }
        if s.mutated < budget && self.rng.u8(0..3) == 0 {
            let k = self.rng.usize(0..self.templates.len());
            let stan = self.stan(&stans);
            let (mti, fields) = &self.templates[k];
            let clean = build(*mti, fields, stan, HOSTILE_F7, HOSTILE_TERMINAL);
            let (bytes, impossible) = mutate_frame(&mut self.rng, &clean);
            s.bytes.extend(bytes);
            s.must_close = impossible;
            s.mutated += 1;
        }
        s
    }
}

/// What the whole run saw.
#[derive(Debug, Default)]
struct Tally {
    sessions: usize,
    valid: usize,
    format_errors: usize,
    mutated: usize,
    answers: usize,
    closed_by_switch: usize,
}

/// Sends one session and checks every answer it is owed.
async fn run_session(addr: std::net::SocketAddr, s: Session, t: &mut Tally) {
    let mut conn = TcpStream::connect(addr).await.expect("connect");
    conn.write_all(&s.bytes).await.expect("write");
    let mut owed = s.owed.clone();
    let mut stanless = s.owed_stanless;
    let deadline = tokio::time::Instant::now() + SESSION_WAIT;
    while !owed.is_empty() || stanless > 0 {
        let read = tokio::time::timeout_at(deadline, read_frame(&mut conn)).await;
        let payload = match read {
            Err(_) => panic!(
                "answers still owed after {SESSION_WAIT:?}: {} by STAN, {stanless} without",
                owed.len()
            ),
            Ok(Err(e)) => panic!(
                "the switch closed with {} answers owed by STAN and {stanless} without: {e}",
                owed.len()
            ),
            Ok(Ok(p)) => p,
        };
        t.answers += 1;
        let msg = decode_lenient(&ISO87_ASCII, Bytes::from(payload)).expect("answers decode");
        let code = msg
            .get(39)
            .map(|c| String::from_utf8_lossy(&c).into_owned())
            .expect("answers carry field 39");
        let stan = msg
            .get(11)
            .and_then(|s| std::str::from_utf8(&s).ok()?.parse::<u32>().ok());
        match stan {
            Some(stan) => {
                if let Some(want) = owed.remove(&stan) {
                    assert_eq!(code, want, "STAN {stan}");
                }
            }
            None if code == "30" && stanless > 0 => stanless -= 1,
            None => {}
        }
    }
    t.sessions += 1;
    t.valid += s.valid;
    t.format_errors += s.format_errors;
    t.mutated += s.mutated;
    if s.must_close {
        // Answers nobody is owed may come first; then the switch closes.
        let mut buf = [0u8; 4096];
        loop {
            match tokio::time::timeout_at(deadline, conn.read(&mut buf)).await {
                Err(_) => panic!("the switch kept a connection open after an impossible length"),
                Ok(Ok(0) | Err(_)) => break,
                Ok(Ok(_)) => {}
            }
        }
        t.closed_by_switch += 1;
    }
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS")
        * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_traffic_never_takes_the_switch_down() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        default_hook(info);
    }));
    let stack = Stack::builder()
        // A slow debug build under load must not turn a valid request into a 91.
        .timeout_ms(NORTH, 10_000)
        .timeout_ms(EAST, 10_000)
        .configure(|c| {
            // Durability is not what is tested; fsyncs would only slow the run.
            c.journal.sync = JournalSync::None;
            // One acquirer: a mutated field 32 can never name another configured one.
            c.acquirers.retain(|a| a.id == "100001");
        })
        .start()
        .await;
    let addr = stack.addr();
    let started = std::time::Instant::now();

    // Warm up (connection pools, the engine's tables), then measure from here.
    let mut warm = Generator {
        rng: fastrand::Rng::with_seed(SEED ^ 0xffff),
        next_stan: 900_000,
        valid: valid_kinds(),
        templates: templates(),
    };
    let mut t = Tally::default();
    for _ in 0..20 {
        let s = warm.session(20);
        run_session(addr, s, &mut t).await;
    }
    let rss_before = rss_bytes();

    let mut workers = Vec::new();
    for w in 0..WORKERS {
        workers.push(tokio::spawn(async move {
            let mut g = Generator {
                rng: fastrand::Rng::with_seed(SEED + w as u64),
                next_stan: 100_000 * (w as u32 + 1),
                valid: valid_kinds(),
                templates: templates(),
            };
            let mut t = Tally::default();
            let quota = MUTATED / WORKERS;
            while t.mutated < quota {
                let s = g.session(quota - t.mutated);
                run_session(addr, s, &mut t).await;
            }
            t
        }));
    }
    let mut total = Tally::default();
    for w in workers {
        let t = w.await.expect("worker");
        total.sessions += t.sessions;
        total.valid += t.valid;
        total.format_errors += t.format_errors;
        total.mutated += t.mutated;
        total.answers += t.answers;
        total.closed_by_switch += t.closed_by_switch;
    }
    let rss_after = rss_bytes();

    // Still serving, on a fresh connection.
    let c = stack.client().await;
    assert_eq!(
        c.echo().await.expect("answered").response_code.as_str(),
        "00"
    );
    assert_eq!(
        c.balance(MP_PREPAID)
            .await
            .expect("answered")
            .response_code
            .as_str(),
        "00"
    );
    eprintln!(
        "hostile traffic: {total:?}, RSS {} -> {} KiB, {:.1} s",
        rss_before / 1024,
        rss_after / 1024,
        started.elapsed().as_secs_f64()
    );
    assert_eq!(total.mutated, MUTATED);
    assert!(total.valid > 1_000, "{total:?}");
    assert!(total.format_errors > 1_000, "{total:?}");
    assert!(total.closed_by_switch > 20, "{total:?}");
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "panics");
    assert!(
        rss_after.saturating_sub(rss_before) < RSS_GROWTH_MAX,
        "resident memory grew from {rss_before} to {rss_after} bytes"
    );
    drop(c);
    stack.shutdown().await;
}
