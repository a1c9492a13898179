//! Connection limits, driven over in-memory pipes against an in-process on-us runtime, with
//! tokio's clock paused: time moves only when every task waits, so timeouts are exact and no test
//! sleeps to synchronise. The global connection cap needs a real listener and uses loopback TCP.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::NaiveDate;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::*;
use crate::clock::ManualClock;
use crate::config::Config;
use crate::events::Record;
use crate::iso8583::{ISO87_ASCII, MessageBuilder, decode};
use crate::journal::MemJournal;
use crate::net::memory;

/// Metro Pay's active prepaid card (on-us).
const CARD: &[u8] = b"6050010000000013";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The shipped configuration, on-us issuers only, with `edit` applied.
pub(crate) fn config(edit: impl FnOnce(&mut Config)) -> Config {
    let mut c = memory::on_us_only(
        Config::load(&root().join("config/switch.toml")).expect("config/switch.toml loads"),
    );
    for ic in &mut c.issuers {
        if let Some(cards) = &ic.cards {
            ic.cards = Some(root().join(cards));
        }
    }
    c.security.keys_file = root().join(&c.security.keys_file);
    // These tests are about admission, not MACs: no acquirer MACs here (tests/e2e_security.rs
    // covers MACing acquirers).
    for a in &mut c.acquirers {
        a.mac_key = None;
    }
    edit(&mut c);
    c.validate("test").expect("valid config");
    c
}

struct Harness {
    sessions: Arc<Sessions>,
    journal: Arc<MemJournal>,
}

fn harness(edit: impl FnOnce(&mut Config)) -> Harness {
    let c = config(edit);
    let journal = Arc::new(MemJournal::new());
    let at = NaiveDate::from_ymd_opt(2026, 6, 1)
        .and_then(|d| d.and_hms_opt(12, 0, 0))
        .expect("date");
    let rt = memory::runtime(&c, journal.clone(), ManualClock::new(at)).expect("runtime");
    let policies = Arc::new(ArcSwap::from_pointee(Policies::from_config(&c)));
    Harness {
        sessions: Sessions::new(rt, SessionLimits::from_config(&c.listener), policies),
        journal,
    }
}

/// The acquirer's end of one connection, and the switch's task serving the other end.
struct Peer {
    io: DuplexStream,
    task: JoinHandle<()>,
}

impl Harness {
    /// A connection from `from` (an IP address).
    fn connect(&self, from: &str) -> Peer {
        let (io, theirs) = tokio::io::duplex(64 * 1024);
        let (r, w) = tokio::io::split(theirs);
        let peer = SocketAddr::new(from.parse().expect("ip"), 40_000);
        let task = tokio::spawn(connection(
            r,
            w,
            peer,
            Arc::clone(&self.sessions),
            CancellationToken::new(),
        ));
        Peer { io, task }
    }

    /// STANs of the requests the journal holds.
    fn journaled_stans(&self) -> Vec<u32> {
        self.journal
            .records()
            .iter()
            .filter_map(|(_, b)| match Record::decode(b) {
                Ok(Record::Request(r)) => Some(r.key.stan),
                _ => None,
            })
            .collect()
    }
}

impl Harness {
    /// The reasons of the switch's own declines in the journal.
    fn journaled_reasons(&self) -> Vec<String> {
        self.journal
            .records()
            .iter()
            .filter_map(|(_, b)| match Record::decode(b) {
                Ok(Record::Decision(d)) => d.reason.map(String::from),
                _ => None,
            })
            .collect()
    }
}

/// A balance inquiry on [`CARD`] from `acquirer`, as a framed payload.
fn inquiry(stan: u32, acquirer: &str) -> Vec<u8> {
    let stan = format!("{stan:06}");
    let mut b = MessageBuilder::new(&ISO87_ASCII, *b"0100");
    b.set(2, CARD)
        .set(3, b"310000")
        .set(7, b"0601120000")
        .set(11, stan.as_bytes())
        .set(14, b"3012")
        .set(32, acquirer.as_bytes())
        .set(41, b"TERM0001")
        .set(42, b"MERCHANT0000001")
        .set(49, b"156");
    framed(&b.to_bytes().expect("encode"))
}

fn framed(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

impl Peer {
    async fn send(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.expect("write");
    }

    /// The next answer as (STAN, field 39), or `None` once the switch has closed.
    async fn answer(&mut self) -> Option<(u32, String)> {
        let mut len = [0u8; 2];
        self.io.read_exact(&mut len).await.ok()?;
        let mut payload = vec![0u8; usize::from(u16::from_be_bytes(len))];
        self.io.read_exact(&mut payload).await.ok()?;
        let msg = decode(&ISO87_ASCII, Bytes::from(payload)).expect("the answer decodes");
        let stan = std::str::from_utf8(&msg.get(11).expect("field 11"))
            .expect("ascii")
            .parse()
            .expect("digits");
        let code = String::from_utf8_lossy(&msg.get(39).expect("field 39")).into_owned();
        Some((stan, code))
    }

    /// `n` answers, by STAN.
    async fn answers(&mut self, n: usize) -> BTreeMap<u32, String> {
        let mut out = BTreeMap::new();
        for _ in 0..n {
            let (stan, code) = self.answer().await.expect("an answer");
            out.insert(stan, code);
        }
        out
    }

    /// Asks and returns field 39.
    async fn ask(&mut self, stan: u32, acquirer: &str) -> String {
        self.send(&inquiry(stan, acquirer)).await;
        let (got, code) = self.answer().await.expect("an answer");
        assert_eq!(got, stan);
        code
    }

    /// Waits for the switch to close the connection, asserts it took `lo..=hi` milliseconds of
    /// (paused) time, and that the connection's task has ended.
    async fn closes_within(mut self, lo: u64, hi: u64) {
        let t0 = Instant::now();
        self.closed().await;
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_millis(lo) && waited <= Duration::from_millis(hi),
            "closed after {waited:?}, expected {lo}..={hi} ms"
        );
        self.task.await.expect("the connection task ends");
    }

    /// Resolves when the switch has closed the connection (EOF, with nothing else sent).
    async fn closed(&mut self) {
        let mut buf = [0u8; 64];
        let n = self.io.read(&mut buf).await.unwrap_or(0);
        assert_eq!(n, 0, "closed without sending anything more");
    }
}

#[tokio::test(start_paused = true)]
async fn a_frame_left_incomplete_closes_after_read_timeout() {
    let h = harness(|c| c.listener.read_timeout_ms = 1000);
    let mut p = h.connect("127.0.0.1");
    // A request answered normally first: the connection works.
    assert_eq!(p.ask(1, "100001").await, "00");
    // Announces 100 bytes and sends 3.
    p.send(&[0x00, 100, b'0', b'1', b'0']).await;
    p.closes_within(1000, 1250).await;
}

#[tokio::test(start_paused = true)]
async fn a_frame_completed_slowly_within_read_timeout_is_answered() {
    let h = harness(|c| c.listener.read_timeout_ms = 1000);
    let mut p = h.connect("127.0.0.1");
    let frame = inquiry(7, "100001");
    let (head, tail) = frame.split_at(10);
    p.send(head).await;
    tokio::time::advance(Duration::from_millis(900)).await;
    p.send(tail).await;
    let (stan, code) = p.answer().await.expect("answered");
    assert_eq!((stan, code.as_str()), (7, "00"));
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_closes_after_idle_timeout_and_not_before() {
    let h = harness(|c| c.listener.idle_timeout_ms = 5000);
    let mut p = h.connect("127.0.0.1");
    tokio::time::advance(Duration::from_millis(4900)).await;
    assert_eq!(
        p.ask(1, "100001").await,
        "00",
        "still open before the timeout"
    );
    // Counted from the last request.
    p.closes_within(4990, 5010).await;
}

#[tokio::test(start_paused = true)]
async fn over_the_rate_ceiling_requests_are_answered_91_unprocessed() {
    let h = harness(|c| {
        c.listener.requests_per_s_max = 10;
        c.listener.requests_burst_max = 3;
    });
    let mut p = h.connect("127.0.0.1");
    let burst: Vec<u8> = (1..=5).flat_map(|s| inquiry(s, "100001")).collect();
    p.send(&burst).await;
    let got = p.answers(5).await;
    let want: BTreeMap<u32, String> = [(1, "00"), (2, "00"), (3, "00"), (4, "91"), (5, "91")]
        .into_iter()
        .map(|(s, c)| (s, c.to_owned()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(
        h.journaled_stans(),
        [1, 2, 3],
        "throttled requests did nothing"
    );
    // One interval later (100 ms) there is room for one more, and only one.
    tokio::time::advance(Duration::from_millis(100)).await;
    let two: Vec<u8> = (6..=7).flat_map(|s| inquiry(s, "100001")).collect();
    p.send(&two).await;
    let got = p.answers(2).await;
    assert_eq!(got.get(&6).map(String::as_str), Some("00"));
    assert_eq!(got.get(&7).map(String::as_str), Some("91"));
    // The ceiling is per connection: another one has its own burst.
    let mut q = h.connect("127.0.0.1");
    assert_eq!(q.ask(8, "100001").await, "00");
}

#[tokio::test(start_paused = true)]
async fn an_acquirer_over_its_connections_max_gets_91_and_is_closed() {
    let h = harness(|c| c.acquirers[0].connections_max = Some(1));
    let mut a = h.connect("127.0.0.1");
    assert_eq!(a.ask(1, "100001").await, "00");
    let mut b = h.connect("127.0.0.1");
    assert_eq!(b.ask(2, "100001").await, "91");
    b.closed().await;
    b.task.await.expect("the refused connection's task ends");
    // The first connection is unaffected, and another acquirer has no limit of its own.
    assert_eq!(a.ask(3, "100001").await, "00");
    let mut other = h.connect("127.0.0.1");
    assert_eq!(other.ask(4, "100002").await, "00");
    // Once the first connection is gone its seat is free again.
    drop(a.io);
    a.task.await.expect("the first connection's task ends");
    let mut c = h.connect("127.0.0.1");
    assert_eq!(c.ask(5, "100001").await, "00");
    assert_eq!(h.journaled_reasons(), ["connection_limit"]);
    assert_eq!(
        h.sessions
            .admission
            .open(&AcquirerId::parse("100001").expect("id")),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn an_acquirer_bound_to_sources_is_refused_63_elsewhere() {
    let h = harness(|c| c.acquirers[0].allowed_sources = Some(vec!["10.0.0.0/8".into()]));
    let mut outside = h.connect("192.168.1.9");
    assert_eq!(outside.ask(1, "100001").await, "63");
    // The connection stays open and bound to nobody: an acquirer without a list may use it.
    assert_eq!(outside.ask(2, "100002").await, "00");
    assert_eq!(
        outside.ask(3, "100001").await,
        "63",
        "now it belongs to 100002"
    );
    let mut inside = h.connect("10.1.2.3");
    assert_eq!(inside.ask(4, "100001").await, "00");
    assert_eq!(
        h.journaled_stans(),
        [2, 4],
        "refused requests reached no issuer"
    );
}

#[tokio::test(start_paused = true)]
async fn a_connection_speaks_for_one_acquirer_only() {
    let h = harness(|_| {});
    let mut p = h.connect("127.0.0.1");
    assert_eq!(p.ask(1, "100001").await, "00");
    assert_eq!(p.ask(2, "100002").await, "63");
    assert_eq!(
        p.ask(3, "100001").await,
        "00",
        "the connection stays usable"
    );
    // An id no [[acquirer]] names binds nothing and is screened as usual (03).
    assert_eq!(p.ask(4, "999999").await, "03");
    // A malformed request is answered 30 whatever it claims.
    let mut bad = inquiry(5, "100002");
    let at = bad.windows(3).position(|w| w == b"156").expect("field 49");
    bad[at] = b'X';
    p.send(&bad).await;
    assert_eq!(p.answer().await, Some((5, "30".to_owned())));
}

/// Over `[listener] connections_max` a connection is closed unread; the ones inside are served.
#[tokio::test]
async fn over_the_global_connections_max_a_connection_is_closed_at_once() {
    let h = harness(|c| c.listener.connections_max = 1);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    tokio::spawn(serve(
        listener,
        Arc::clone(&h.sessions),
        stop.clone(),
        tasks.clone(),
    ));
    let mut first = tokio::net::TcpStream::connect(addr).await.expect("connect");
    first.write_all(&inquiry(1, "100001")).await.expect("write");
    let mut len = [0u8; 2];
    first
        .read_exact(&mut len)
        .await
        .expect("the first is served");
    let mut payload = vec![0u8; usize::from(u16::from_be_bytes(len))];
    first.read_exact(&mut payload).await.expect("answer");
    let mut second = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let _ = second.write_all(&inquiry(2, "100001")).await;
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(10), second.read(&mut buf))
        .await
        .expect("closed in time");
    assert!(
        matches!(closed, Ok(0) | Err(_)),
        "closed unanswered: {closed:?}"
    );
    first.write_all(&inquiry(3, "100001")).await.expect("write");
    first
        .read_exact(&mut len)
        .await
        .expect("the first still works");
    stop.cancel();
    drop(first);
    tasks.close();
    tasks.wait().await;
}

/// The listener's backlog is `accept_backlog_max`, not the 128 `TcpListener::bind` asks for:
/// 300 clients complete their TCP handshakes against a listener that accepts none of them (the
/// kernel answers a connect only while the accept queue has room; with 128 the rest would wait
/// for SYN retransmissions, seconds apart, and the bound below fails instead of hanging).
#[tokio::test]
async fn the_listener_holds_its_backlog_of_unaccepted_connections() {
    // The kernel caps the backlog at net.core.somaxconn (4096 on current kernels, 128 on old
    // ones, per network namespace): below 300 this test cannot tell 512 from 128.
    let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    if somaxconn < 300 {
        eprintln!("skipped: net.core.somaxconn is {somaxconn}, below the 300 this test needs");
        return;
    }
    const CLIENTS: usize = 300;
    let listener = bind("127.0.0.1:0", 512).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let connects = (0..CLIENTS).map(|_| tokio::net::TcpStream::connect(addr));
    let streams = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        futures::future::try_join_all(connects),
    )
    .await
    .expect("every connect completes with nothing accepted")
    .expect("connect");
    assert_eq!(streams.len(), CLIENTS);
    // They are all waiting in the listener's queue.
    let (first, _) = listener.accept().await.expect("accept");
    drop(first);
}

/// An address that is not an `ip:port` literal is a clear error, not a panic.
#[tokio::test]
async fn a_listener_address_that_is_not_a_socket_address_is_an_error() {
    let e = bind("localhost:8583", 16).await.expect_err("a name");
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert!(bind("127.0.0.1", 16).await.is_err());
}
