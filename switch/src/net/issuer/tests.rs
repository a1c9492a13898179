//! Issuer-link tests against a fake issuer host: a `TcpListener` on 127.0.0.1 speaking the same
//! framing, whose behaviour each test sets (answer, hold, refuse, ignore) and which reports every
//! message it receives on a channel. Tests wait on those reports and on the pool's own signals
//! (`wait_ready`, replies, `closed`), never on sleeps; the timeouts below are guards against a
//! hang, not synchronisation.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::clock::{Clock, ManualClock};
use crate::config::{IssuerConfig, IssuerKind};
use crate::domain::ResponseCode;
use crate::iso8583::views::response_builder;
use crate::iso8583::{ISO87_ASCII, MessageBuilder, decode, samples};
use crate::net::framing::{Frame, FrameCodec, FramingConfig};

/// Guard against a hung test; never reached when the code is right.
const GUARD: Duration = Duration::from_secs(10);

/// 2026-11-25 22:18:00 UTC.
fn fixed_clock() -> Arc<dyn Clock> {
    let at = chrono::NaiveDate::from_ymd_opt(2026, 11, 25)
        .and_then(|d| d.and_hms_opt(22, 18, 0))
        .expect("valid");
    ManualClock::new(at)
}

async fn guard<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(GUARD, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// How the fake answers one kind of message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// 0810/00, or 0110/00 echoing the request.
    Yes,
    /// 0810/91.
    Refuse,
    /// Keep it until `Ctl::ReleaseHeld`, then answer `Yes`.
    Hold,
    /// Never answer.
    Ignore,
    /// Answer a request under the wrong MTI (0210 for an 0100).
    WrongMti,
}

#[derive(Debug, Clone, Copy)]
struct Behaviour {
    sign_on: Answer,
    echo: Answer,
    requests: Answer,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            sign_on: Answer::Yes,
            echo: Answer::Yes,
            requests: Answer::Yes,
        }
    }
}

#[derive(Debug, Clone)]
enum Ctl {
    /// Answer everything held.
    ReleaseHeld,
    /// Close every connection.
    Close,
    /// Send this message to the link.
    Send(Bytes),
    /// Write these raw bytes (no framing) to the link.
    Raw(Bytes),
}

/// One message the fake received.
#[derive(Debug, Clone)]
struct Seen {
    conn: usize,
    mti: String,
    stan: String,
    /// Field 70, on network messages.
    code: String,
    /// Field 39.
    rc: String,
    msg: Message,
}

fn text(msg: &Message, n: u8) -> String {
    msg.get(n)
        .map(|v| String::from_utf8_lossy(&v).into_owned())
        .unwrap_or_default()
}

struct Fake {
    addr: SocketAddr,
    seen: mpsc::UnboundedReceiver<Seen>,
    ctl: broadcast::Sender<Ctl>,
    behaviour: Arc<Mutex<Behaviour>>,
    accept: JoinHandle<()>,
}

impl Fake {
    async fn start(behaviour: Behaviour) -> Fake {
        Fake::on(
            TcpListener::bind("127.0.0.1:0").await.expect("bind"),
            behaviour,
        )
    }

    fn on(listener: TcpListener, behaviour: Behaviour) -> Fake {
        let addr = listener.local_addr().expect("addr");
        let (seen_tx, seen) = mpsc::unbounded_channel();
        let (ctl, _) = broadcast::channel(64);
        let behaviour = Arc::new(Mutex::new(behaviour));
        let accept = {
            let ctl = ctl.clone();
            let behaviour = behaviour.clone();
            tokio::spawn(async move {
                let conns = AtomicUsize::new(0);
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    let conn = conns.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(serve(
                        conn,
                        stream,
                        behaviour.clone(),
                        seen_tx.clone(),
                        ctl.subscribe(),
                    ));
                }
            })
        };
        Fake {
            addr,
            seen,
            ctl,
            behaviour,
            accept,
        }
    }

    fn set(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut self.behaviour.lock().expect("lock"));
    }

    fn ctl(&self, c: Ctl) {
        let _ = self.ctl.send(c);
    }

    async fn next(&mut self) -> Seen {
        guard("a message at the fake issuer", self.seen.recv())
            .await
            .expect("fake issuer running")
    }

    /// Closes every connection and stops listening.
    async fn stop(self) {
        self.ctl(Ctl::Close);
        self.accept.abort();
        let _ = self.accept.await;
    }
}

fn answer(req: &Message, code: ResponseCode, mti: Option<[u8; 4]>) -> Bytes {
    let mut b = if &req.mti_digits() == b"0800" {
        let mut b = MessageBuilder::new(&ISO87_ASCII, *b"0810");
        b.copy_fields(req, &[7, 11, 70])
            .set(39, code.as_str().as_bytes());
        b
    } else {
        let mut b = response_builder(&ISO87_ASCII, req, code).expect("response");
        b.set(38, b"A12345");
        b
    };
    if let Some(mti) = mti {
        b.set_mti(mti);
    }
    b.to_bytes().expect("encode answer")
}

async fn serve(
    conn: usize,
    stream: TcpStream,
    behaviour: Arc<Mutex<Behaviour>>,
    seen: mpsc::UnboundedSender<Seen>,
    mut ctl: broadcast::Receiver<Ctl>,
) {
    let mut framed = Framed::new(stream, FrameCodec::new(FramingConfig::default()));
    let mut held: Vec<Message> = Vec::new();
    loop {
        tokio::select! {
            frame = framed.next() => {
                let Some(Ok(frame)) = frame else { return };
                // Take whatever else has already arrived, and answer the burst in reverse order
                // so replies come back out of order.
                let mut burst = vec![frame];
                while let Some(Some(Ok(more))) = futures::FutureExt::now_or_never(framed.next()) {
                    burst.push(more);
                }
                let mut out = Vec::new();
                for frame in burst {
                    let msg = decode(&ISO87_ASCII, frame.payload).expect("link sends valid messages");
                    let _ = seen.send(Seen {
                        conn,
                        mti: String::from_utf8_lossy(&msg.mti_digits()).into_owned(),
                        stan: text(&msg, 11),
                        code: text(&msg, 70),
                        rc: text(&msg, 39),
                        msg: msg.clone(),
                    });
                    let b = *behaviour.lock().expect("lock");
                    let how = match (&msg.mti_digits(), text(&msg, 70).as_str()) {
                        (b"0800", "001") => b.sign_on,
                        (b"0800", "301") => b.echo,
                        (b"0800", _) => Answer::Yes,
                        (b"0810", _) => Answer::Ignore,
                        _ => b.requests,
                    };
                    match how {
                        Answer::Yes => out.push(answer(&msg, ResponseCode::Approved, None)),
                        Answer::Refuse => {
                            out.push(answer(&msg, ResponseCode::IssuerInoperative, None))
                        }
                        Answer::Hold => held.push(msg),
                        Answer::Ignore => {}
                        Answer::WrongMti => {
                            out.push(answer(&msg, ResponseCode::Approved, Some(*b"0210")))
                        }
                    }
                }
                for payload in out.into_iter().rev() {
                    let _ = framed.feed(Frame { header: Bytes::new(), payload }).await;
                }
                let _ = framed.flush().await;
            }
            c = ctl.recv() => match c {
                Ok(Ctl::ReleaseHeld) => {
                    for msg in held.drain(..) {
                        let payload = answer(&msg, ResponseCode::Approved, None);
                        let _ = framed.feed(Frame { header: Bytes::new(), payload }).await;
                    }
                    let _ = framed.flush().await;
                }
                Ok(Ctl::Send(payload)) => {
                    let _ = framed.send(Frame { header: Bytes::new(), payload }).await;
                }
                Ok(Ctl::Raw(bytes)) => {
                    let _ = framed.get_mut().write_all(&bytes).await;
                }
                Ok(Ctl::Close) | Err(_) => return,
            },
        }
    }
}

fn config(endpoints: Vec<SocketAddr>) -> IssuerLinkConfig {
    IssuerLinkConfig {
        issuer_id: "test-bank".to_owned(),
        endpoints,
        connections_per_endpoint: 1,
        timeout_ms: 5_000,
        inflight_max: 1024,
        echo_idle_ms: 600_000,
        reconnect_backoff_min_ms: 5,
        reconnect_backoff_max_ms: 20,
        dialect: &ISO87_ASCII,
        framing: FramingConfig::default(),
        queue_max: 1024,
        mac: None,
        tls: None,
    }
}

fn start(cfg: IssuerLinkConfig) -> (IssuerPool, CancellationToken) {
    let token = CancellationToken::new();
    let pool = IssuerPool::start_with_clock(cfg, token.clone(), fixed_clock());
    (pool, token)
}

/// The sample 0100 with the acquirer's STAN and an amount that identifies it.
fn request_msg(stan: &[u8; 6], amount: u64) -> Message {
    let amount = format!("{amount:012}");
    let mut b = samples::auth_request(&ISO87_ASCII);
    b.set(11, stan).set(32, b"100001").set(4, amount.as_bytes());
    decode(&ISO87_ASCII, b.to_bytes().expect("encode")).expect("decode")
}

/// `msg` as it is, the link choosing its STAN, due `within` from now.
fn outbound(msg: Message, within: Duration) -> OutboundRequest {
    OutboundRequest {
        msg,
        deadline: Instant::now() + within,
        mti: None,
        stan: StanChoice::Any,
    }
}

fn request(amount: u64, within: Duration) -> OutboundRequest {
    outbound(request_msg(b"123456", amount), within)
}

/// A fake that holds requests, and one link to it, signed on (the sign-on already taken from
/// the fake's reports).
async fn holding_link() -> (Fake, IssuerPool, CancellationToken) {
    let mut fake = Fake::start(Behaviour {
        requests: Answer::Hold,
        ..Behaviour::default()
    })
    .await;
    let (pool, token) = start(config(vec![fake.addr]));
    ready(&pool, 1).await;
    assert_eq!(fake.next().await.code, "001");
    (fake, pool, token)
}

async fn ready(pool: &IssuerPool, n: usize) {
    guard("links ready", pool.wait_ready(n))
        .await
        .expect("pool running");
}

#[tokio::test]
async fn sign_on_comes_first_and_gates_traffic() {
    let mut fake = Fake::start(Behaviour {
        sign_on: Answer::Hold,
        ..Behaviour::default()
    })
    .await;
    let (pool, _token) = start(config(vec![fake.addr]));

    let first = fake.next().await;
    assert_eq!((first.mti.as_str(), first.code.as_str()), ("0800", "001"));
    assert_eq!(text(&first.msg, 7), "1125221800", "field 7 from the clock");
    assert_eq!(first.stan.len(), 6);
    assert_eq!(pool.states()[0].state, LinkState::SigningOn);
    assert_eq!(pool.ready_count(), 0);
    // Sign-on unanswered: the request is refused at once and never reaches the issuer.
    assert_eq!(
        pool.send(request(1, GUARD)).await.unwrap_err(),
        LinkError::NoLinkReady
    );

    fake.ctl(Ctl::ReleaseHeld);
    ready(&pool, 1).await;
    assert_eq!(pool.states()[0].state, LinkState::Ready);
    let reply = pool.send(request(2, GUARD)).await.expect("reply");
    assert_eq!(&reply.msg.mti_digits(), b"0110");
    let second = fake.next().await;
    assert_eq!(second.mti, "0100", "the first request follows the sign-on");
    assert_eq!(text(&second.msg, 4), "000000000002");
}

#[tokio::test]
async fn request_round_trip_rewrites_the_stan_and_copies_every_other_field() {
    let mut fake = Fake::start(Behaviour::default()).await;
    let (pool, _token) = start(config(vec![fake.addr]));
    ready(&pool, 1).await;
    let sign_on = fake.next().await;

    let original = request_msg(b"123456", 1234);
    let reply = pool
        .send(outbound(original.clone(), GUARD))
        .await
        .expect("reply");
    let sent = fake.next().await;
    assert_eq!(sent.mti, "0100");
    assert_ne!(sent.stan, "123456", "the link uses its own STAN");
    assert_ne!(sent.stan, sign_on.stan);
    for n in original.field_numbers().filter(|&n| n != 11) {
        assert_eq!(sent.msg.get(n), original.get(n), "field {n}");
    }
    assert_eq!(
        sent.msg.field_numbers().collect::<Vec<_>>(),
        original.field_numbers().collect::<Vec<_>>()
    );
    assert_eq!(&reply.msg.mti_digits(), b"0110");
    assert_eq!(
        text(&reply.msg, 11),
        sent.stan,
        "the reply carries the link's STAN"
    );
    assert_eq!(text(&reply.msg, 39), "00");
    assert!(reply.round_trip > Duration::ZERO);
    assert_eq!(pool.states()[0].inflight, 0);

    // An MTI override sends the same fields as another message type.
    let mut b = MessageBuilder::new(&ISO87_ASCII, *b"0420");
    b.copy_fields(&original, &[2, 3, 4, 7, 11, 32, 41, 49]);
    b.set(90, b"010012345611252218000000010000100000000000");
    let advice = decode(&ISO87_ASCII, b.to_bytes().expect("encode")).expect("decode");
    let reply = pool
        .send(OutboundRequest {
            mti: Some(*b"0421"),
            ..outbound(advice, GUARD)
        })
        .await
        .expect("reply");
    let sent = fake.next().await;
    assert_eq!(sent.mti, "0421");
    assert_eq!(&reply.msg.mti_digits(), b"0430");
}

/// A MAC covers one hop's bytes: the acquirer's field 64 (or 128) never reaches the issuer.
#[tokio::test]
async fn a_forwarded_mac_is_dropped() {
    let mut fake = Fake::start(Behaviour::default()).await;
    let (pool, _token) = start(config(vec![fake.addr]));
    ready(&pool, 1).await;
    let _sign_on = fake.next().await;
    let mut b = samples::auth_request(&ISO87_ASCII);
    b.set(32, b"100001").set(64, b"ACQ MAC!");
    let with_64 = decode(&ISO87_ASCII, b.to_bytes().expect("encode")).expect("decode");
    b.remove(64)
        .set(90, b"010012345611252218000000010000100000000000")
        .set(128, b"ACQ MAC!");
    let with_128 = decode(&ISO87_ASCII, b.to_bytes().expect("encode")).expect("decode");
    for (msg, n) in [(with_64, 64u8), (with_128, 128)] {
        pool.send(outbound(msg.clone(), GUARD))
            .await
            .expect("reply");
        let sent = fake.next().await;
        assert!(!sent.msg.has(n), "field {n} is not forwarded");
        assert_eq!(sent.msg.get(2), msg.get(2));
    }
}

#[tokio::test]
async fn a_thousand_concurrent_requests_are_all_matched() {
    let mut fake = Fake::start(Behaviour::default()).await;
    let mut cfg = config(vec![fake.addr]);
    cfg.connections_per_endpoint = 2;
    let (pool, _token) = start(cfg);
    ready(&pool, 2).await;

    let sends = (1..=1000u64).map(|amount| {
        let pool = pool.clone();
        async move { (amount, pool.send(request(amount, GUARD)).await) }
    });
    let results = guard("1000 replies", futures::future::join_all(sends)).await;
    for (amount, result) in results {
        let reply = result.unwrap_or_else(|e| panic!("request {amount}: {e}"));
        assert_eq!(
            text(&reply.msg, 4),
            format!("{amount:012}"),
            "matched by STAN"
        );
    }

    let mut per_conn: [HashSet<String>; 2] = Default::default();
    let mut requests = 0;
    while requests < 1000 {
        let seen = fake.next().await;
        if seen.mti == "0100" {
            requests += 1;
            assert!(
                per_conn[seen.conn].insert(seen.stan.clone()),
                "STAN {} reused on connection {}",
                seen.stan,
                seen.conn
            );
        }
    }
    assert!(pool.states().iter().all(|s| s.inflight == 0));
}

#[tokio::test]
async fn a_timeout_is_reported_and_the_late_reply_is_published() {
    let mut fake = Fake::start(Behaviour {
        requests: Answer::Hold,
        ..Behaviour::default()
    })
    .await;
    let (pool, _token) = start(config(vec![fake.addr]));
    ready(&pool, 1).await;
    let mut late = pool.late_replies();

    let err = guard(
        "the timeout",
        pool.send(request(77, Duration::from_millis(200))),
    )
    .await
    .unwrap_err();
    assert_eq!(err, LinkError::Timeout);
    assert_eq!(pool.states()[0].inflight, 0);

    let _sign_on = fake.next().await;
    let held = fake.next().await;
    assert_eq!(held.mti, "0100");
    fake.ctl(Ctl::ReleaseHeld);
    let reply = guard("the late reply", late.recv())
        .await
        .expect("late reply");
    assert_eq!(&*reply.issuer_id, "test-bank");
    assert_eq!(reply.endpoint, fake.addr);
    assert_eq!(&reply.msg.mti_digits(), b"0110");
    assert_eq!(text(&reply.msg, 11), held.stan);
    assert_eq!(text(&reply.msg, 39), "00");
    // The link is still up afterwards.
    fake.set(|b| b.requests = Answer::Yes);
    pool.send(request(78, GUARD)).await.expect("reply");
}

/// `msg` with field `n` set to `value`.
fn with_field(msg: &Message, n: u8, value: &[u8]) -> Message {
    let mut b = MessageBuilder::new(&ISO87_ASCII, msg.mti_digits());
    for f in msg.field_numbers().filter(|&f| f != n) {
        b.copy_from(msg, f);
    }
    b.set(n, value);
    decode(&ISO87_ASCII, b.to_bytes().expect("encode")).expect("decode")
}

fn exactly(stan: u32, msg: Message, within: Duration) -> OutboundRequest {
    OutboundRequest {
        stan: StanChoice::Exactly(Stan::new(stan).expect("stan")),
        ..outbound(msg, within)
    }
}

#[tokio::test]
async fn an_exact_stan_is_sent_as_asked_and_a_busy_one_waits_for_it() {
    let (mut fake, pool, _token) = holding_link().await;

    let mut first = Box::pin(pool.send(exactly(123_456, request_msg(b"000001", 1), GUARD)));
    assert!(futures::poll!(&mut first).is_pending());
    let sent = fake.next().await;
    assert_eq!(
        (sent.stan.as_str(), text(&sent.msg, 4).as_str()),
        ("123456", "000000000001"),
        "sent under exactly the STAN asked for, whatever field 11 said"
    );
    // The same STAN again while the first holds it (another terminal): held back, not sent.
    let other = with_field(&request_msg(b"123456", 2), 41, b"OTHER001");
    let mut second = Box::pin(pool.send(exactly(123_456, other, GUARD)));
    assert!(futures::poll!(&mut second).is_pending());
    // The link is unharmed, and the next thing the issuer sees is the next request.
    let mut third = Box::pin(pool.send(request(3, GUARD)));
    assert!(futures::poll!(&mut third).is_pending());
    let next = fake.next().await;
    assert_eq!(
        text(&next.msg, 4),
        "000000000003",
        "the busy one was not sent"
    );
    assert_ne!(
        next.stan, "123456",
        "the link's own STANs avoid one in flight"
    );

    // Once the first is answered, the held one goes out under the same STAN.
    fake.set(|b| b.requests = Answer::Yes);
    fake.ctl(Ctl::ReleaseHeld);
    let reply = guard("first reply", first).await.expect("first reply");
    assert_eq!(text(&reply.msg, 11), "123456");
    assert_eq!(text(&reply.msg, 4), "000000000001");
    let reply = guard("second reply", second).await.expect("second reply");
    assert_eq!(
        (text(&reply.msg, 11).as_str(), text(&reply.msg, 41).as_str()),
        ("123456", "OTHER001"),
        "sent after the first, under the same STAN"
    );
    guard("third reply", third).await.expect("third reply");
    // Free again once answered.
    let reply = guard(
        "reuse",
        pool.send(exactly(123_456, request_msg(b"123456", 4), GUARD)),
    )
    .await
    .expect("reply under the freed STAN");
    assert_eq!(text(&reply.msg, 4), "000000000004");
    assert_eq!(pool.states()[0].inflight, 0);
}

/// A request held back for its STAN whose deadline passes before the STAN is free was never
/// sent, and says so ([`LinkError::StanBusy`], not a timeout): the core must not reverse it.
#[tokio::test]
async fn a_request_held_back_past_its_deadline_is_refused_unsent() {
    let (mut fake, pool, _token) = holding_link().await;
    // The holder times out after the held one's deadline: the held one is released late.
    let mut first = Box::pin(pool.send(exactly(
        4242,
        request_msg(b"004242", 1),
        Duration::from_millis(600),
    )));
    assert!(futures::poll!(&mut first).is_pending());
    assert_eq!(text(&fake.next().await.msg, 4), "000000000001");
    let other = with_field(&request_msg(b"004242", 2), 41, b"OTHER001");
    let held = pool.send(exactly(4242, other, Duration::from_millis(300)));
    let (held, first) = tokio::join!(guard("the held request", held), guard("the holder", first));
    assert_eq!(held.unwrap_err(), LinkError::StanBusy);
    assert_eq!(first.unwrap_err(), LinkError::Timeout);
    // The next thing the issuer sees is a later request, not the held one.
    let mut third = Box::pin(pool.send(request(3, GUARD)));
    assert!(futures::poll!(&mut third).is_pending());
    assert_eq!(text(&fake.next().await.msg, 4), "000000000003");
    assert_eq!(pool.states()[0].inflight, 1);
}

/// A STAN a caller names may be used again soon after a timeout, by another terminal; the late
/// reply to the earlier request must not answer the newer one. Fields 32 and 41 tell them apart.
#[tokio::test]
async fn a_late_reply_to_an_earlier_use_of_a_stan_does_not_answer_the_newer_request() {
    let (mut fake, pool, _token) = holding_link().await;
    let mut late = pool.late_replies();

    // The timeouts are the test's subject, so they are short; the held request reaches the fake
    // whatever the scheduling, because the link writes it before its deadline can fire.
    let earlier = request_msg(b"000777", 1);
    let err = guard(
        "the earlier request's timeout",
        pool.send(exactly(777, earlier, Duration::from_millis(500))),
    )
    .await
    .unwrap_err();
    assert_eq!(err, LinkError::Timeout);
    assert_eq!(text(&fake.next().await.msg, 4), "000000000001");

    // Same STAN from another acquirer.
    let newer = with_field(&request_msg(b"000777", 2), 32, b"100002");
    let mut second = Box::pin(pool.send(exactly(777, newer.clone(), GUARD)));
    assert!(futures::poll!(&mut second).is_pending());
    assert_eq!(text(&fake.next().await.msg, 4), "000000000002");
    // The fake answers in the order it received: the earlier request's reply comes first.
    fake.ctl(Ctl::ReleaseHeld);
    let stale = guard("the late reply", late.recv()).await.expect("late");
    assert_eq!(
        (text(&stale.msg, 11).as_str(), text(&stale.msg, 4).as_str()),
        ("000777", "000000000001")
    );
    let reply = guard("the newer reply", second).await.expect("reply");
    assert_eq!(
        text(&reply.msg, 4),
        "000000000002",
        "its own reply, not the stale one"
    );

    fake.set(|b| b.requests = Answer::Hold);
    let other_terminal = with_field(&newer, 41, b"OTHER001");
    let err = guard(
        "a timeout",
        pool.send(exactly(778, newer.clone(), Duration::from_millis(500))),
    )
    .await
    .unwrap_err();
    assert_eq!(err, LinkError::Timeout);
    assert_eq!(text(&fake.next().await.msg, 41), text(&newer, 41));
    let mut third = Box::pin(pool.send(exactly(778, other_terminal, GUARD)));
    assert!(futures::poll!(&mut third).is_pending());
    assert_eq!(text(&fake.next().await.msg, 41), "OTHER001");
    fake.ctl(Ctl::ReleaseHeld);
    let stale = guard("the late reply", late.recv()).await.expect("late");
    assert_eq!(text(&stale.msg, 41), text(&newer, 41));
    let reply = guard("the other terminal's reply", third)
        .await
        .expect("reply");
    assert_eq!(text(&reply.msg, 41), "OTHER001");
}

#[tokio::test]
async fn a_reply_under_the_wrong_mti_is_not_delivered() {
    let fake = Fake::start(Behaviour {
        requests: Answer::WrongMti,
        ..Behaviour::default()
    })
    .await;
    let (pool, _token) = start(config(vec![fake.addr]));
    ready(&pool, 1).await;
    let err = guard(
        "the timeout",
        pool.send(request(1, Duration::from_millis(100))),
    )
    .await
    .unwrap_err();
    assert_eq!(err, LinkError::Timeout);
}

#[tokio::test]
async fn no_link_ready_when_the_issuer_is_down() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let (pool, token) = start(config(vec![addr]));
    assert_eq!(
        pool.send(request(1, GUARD)).await.unwrap_err(),
        LinkError::NoLinkReady
    );
    assert_eq!(pool.ready_count(), 0);
    assert_ne!(pool.states()[0].state, LinkState::Ready);
    token.cancel();
    assert_eq!(
        pool.send(request(1, GUARD)).await.unwrap_err(),
        LinkError::Shutdown
    );
    assert_eq!(
        guard("wait_ready at shutdown", pool.wait_ready(1)).await,
        Err(LinkError::Shutdown)
    );
    guard("links to stop", pool.closed()).await;
}

#[tokio::test]
async fn a_refused_sign_on_is_retried() {
    let mut fake = Fake::start(Behaviour {
        sign_on: Answer::Refuse,
        ..Behaviour::default()
    })
    .await;
    let (pool, _token) = start(config(vec![fake.addr]));
    let first = fake.next().await;
    let second = fake.next().await;
    assert_eq!((first.code.as_str(), first.conn), ("001", 0));
    assert_eq!(
        (second.code.as_str(), second.conn),
        ("001", 1),
        "a new connection after the refusal"
    );
    assert_eq!(pool.ready_count(), 0);
    fake.set(|b| b.sign_on = Answer::Yes);
    ready(&pool, 1).await;
}

#[tokio::test]
async fn reconnects_when_the_issuer_comes_back_on_the_same_port() {
    let mut fake = Fake::start(Behaviour::default()).await;
    let addr = fake.addr;
    let (pool, _token) = start(config(vec![addr]));
    ready(&pool, 1).await;
    assert_eq!(fake.next().await.code, "001");
    pool.send(request(1, GUARD)).await.expect("reply");
    fake.stop().await;

    let listener = TcpListener::bind(addr).await.expect("rebind the same port");
    let mut fake = Fake::on(listener, Behaviour::default());
    let again = fake.next().await;
    assert_eq!((again.mti.as_str(), again.code.as_str()), ("0800", "001"));
    ready(&pool, 1).await;
    let reply = pool.send(request(2, GUARD)).await.expect("reply");
    assert_eq!(text(&reply.msg, 4), "000000000002");
    assert_eq!(fake.next().await.mti, "0100");
}

#[tokio::test]
async fn an_echo_is_sent_when_the_link_is_idle() {
    let mut fake = Fake::start(Behaviour::default()).await;
    let mut cfg = config(vec![fake.addr]);
    cfg.echo_idle_ms = 30;
    let (pool, _token) = start(cfg);
    assert_eq!(fake.next().await.code, "001");
    let echo = fake.next().await;
    assert_eq!((echo.mti.as_str(), echo.code.as_str()), ("0800", "301"));
    assert_eq!(text(&echo.msg, 7), "1125221800");
    // Answered, so the link stays up, carries traffic, and echoes again when idle.
    let again = fake.next().await;
    assert_eq!((again.code.as_str(), again.conn), ("301", 0));
    assert_ne!(again.stan, echo.stan);
    ready(&pool, 1).await;
    pool.send(request(1, GUARD)).await.expect("reply");
}

#[tokio::test]
async fn an_unanswered_echo_takes_the_link_down_and_reconnects() {
    let mut fake = Fake::start(Behaviour {
        echo: Answer::Ignore,
        ..Behaviour::default()
    })
    .await;
    let mut cfg = config(vec![fake.addr]);
    cfg.echo_idle_ms = 20;
    cfg.timeout_ms = 100;
    let (_pool, _token) = start(cfg);
    let order: Vec<(String, usize)> = [fake.next().await, fake.next().await, fake.next().await]
        .into_iter()
        .map(|s| (s.code, s.conn))
        .collect();
    assert_eq!(
        order,
        [("001".into(), 0), ("301".into(), 0), ("001".into(), 1)]
    );
}

#[tokio::test]
async fn shutdown_waits_for_inflight_replies_then_signs_off() {
    let (mut fake, pool, token) = holding_link().await;

    let inflight = tokio::spawn({
        let pool = pool.clone();
        async move { pool.send(request(5, GUARD)).await }
    });
    assert_eq!(fake.next().await.mti, "0100");
    token.cancel();
    assert_eq!(
        pool.send(request(6, GUARD)).await.unwrap_err(),
        LinkError::Shutdown
    );
    fake.ctl(Ctl::ReleaseHeld);
    let reply = guard("the in-flight reply", inflight)
        .await
        .expect("task")
        .expect("the in-flight request is answered, not cut off");
    assert_eq!(text(&reply.msg, 4), "000000000005");

    let sign_off = fake.next().await;
    assert_eq!(
        (sign_off.mti.as_str(), sign_off.code.as_str()),
        ("0800", "002")
    );
    assert_eq!(text(&sign_off.msg, 7), "1125221800");
    guard("links to stop", pool.closed()).await;
    assert_eq!(pool.states()[0].state, LinkState::Down);
    assert_eq!(pool.ready_count(), 0);
}

#[tokio::test]
async fn inflight_requests_fail_fast_when_the_connection_drops() {
    let (mut fake, pool, _token) = holding_link().await;

    // The deadline is far away: LinkLost must come from the drop, not the clock.
    let inflight = tokio::spawn({
        let pool = pool.clone();
        async move { pool.send(request(1, Duration::from_secs(3600))).await }
    });
    assert_eq!(fake.next().await.mti, "0100");
    fake.ctl(Ctl::Close);
    let err = guard("LinkLost", inflight)
        .await
        .expect("task")
        .unwrap_err();
    assert_eq!(err, LinkError::LinkLost);

    // Same after a framing error: an impossible length closes the link.
    let again = fake.next().await;
    assert_eq!((again.code.as_str(), again.conn), ("001", 1));
    ready(&pool, 1).await;
    let inflight = tokio::spawn({
        let pool = pool.clone();
        async move { pool.send(request(2, Duration::from_secs(3600))).await }
    });
    assert_eq!(fake.next().await.mti, "0100");
    fake.ctl(Ctl::Raw(Bytes::from_static(&[0xFF, 0xFF, 0x00])));
    let err = guard("LinkLost", inflight)
        .await
        .expect("task")
        .unwrap_err();
    assert_eq!(err, LinkError::LinkLost);
}

#[tokio::test]
async fn backpressure_at_inflight_max_then_overload_when_the_queue_is_full() {
    let mut fake = Fake::start(Behaviour {
        requests: Answer::Hold,
        ..Behaviour::default()
    })
    .await;
    let mut cfg = config(vec![fake.addr]);
    cfg.inflight_max = 1;
    cfg.queue_max = 1;
    let (pool, _token) = start(cfg);
    ready(&pool, 1).await;
    assert_eq!(fake.next().await.code, "001");

    let mut first = Box::pin(pool.send(request(1, GUARD)));
    assert!(futures::poll!(&mut first).is_pending());
    assert_eq!(text(&fake.next().await.msg, 4), "000000000001");
    // The link is at its limit, so the second request stays in the queue...
    let mut second = Box::pin(pool.send(request(2, GUARD)));
    assert!(futures::poll!(&mut second).is_pending());
    // ...which is now full.
    assert_eq!(
        pool.send(request(3, GUARD)).await.unwrap_err(),
        LinkError::Overloaded
    );
    assert_eq!(pool.states()[0].inflight, 2);

    fake.set(|b| b.requests = Answer::Yes);
    fake.ctl(Ctl::ReleaseHeld);
    guard("first reply", first).await.expect("first reply");
    let reply = guard("second reply", second).await.expect("second reply");
    assert_eq!(text(&reply.msg, 4), "000000000002");
}

#[tokio::test]
async fn the_issuers_network_messages_are_answered_and_garbage_is_dropped() {
    let mut fake = Fake::start(Behaviour::default()).await;
    let (pool, _token) = start(config(vec![fake.addr]));
    ready(&pool, 1).await;
    assert_eq!(fake.next().await.code, "001");

    let mut b = MessageBuilder::new(&ISO87_ASCII, *b"0800");
    b.set(7, b"1125221900").set(11, b"777777").set(70, b"301");
    fake.ctl(Ctl::Send(b.to_bytes().expect("encode")));
    let answer = fake.next().await;
    assert_eq!(answer.mti, "0810");
    assert_eq!((answer.stan.as_str(), answer.rc.as_str()), ("777777", "00"));
    assert_eq!(answer.code, "301");
    assert_eq!(text(&answer.msg, 7), "1125221900");

    // A frame that is not a message is dropped; the link stays up.
    fake.ctl(Ctl::Send(Bytes::from_static(b"not iso")));
    pool.send(request(1, GUARD)).await.expect("reply");
    assert_eq!(pool.ready_count(), 1);
}

#[tokio::test]
async fn requests_that_cannot_be_sent_are_refused_without_harming_the_link() {
    let fake = Fake::start(Behaviour::default()).await;
    let mut cfg = config(vec![fake.addr]);
    cfg.framing.frame_bytes_max = 100;
    let (pool, _token) = start(cfg);
    ready(&pool, 1).await;

    // The sample 0100 is ~200 bytes: over this issuer's frame limit.
    let err = pool.send(request(1, GUARD)).await.unwrap_err();
    assert!(matches!(err, LinkError::Framing(_)), "{err:?}");
    assert!(err.to_string().starts_with("internal"), "{err}");

    let err = pool
        .send(OutboundRequest {
            mti: Some(*b"0110"),
            ..request(1, GUARD)
        })
        .await
        .unwrap_err();
    assert_eq!(
        err,
        LinkError::NotARequest {
            mti: Mti::AUTH_RESPONSE
        }
    );
    // A small request still goes through.
    let mut b = MessageBuilder::new(&ISO87_ASCII, *b"0800");
    b.set(7, b"1125221900").set(11, b"000001").set(70, b"301");
    let msg = decode(&ISO87_ASCII, b.to_bytes().expect("encode")).expect("decode");
    let reply = pool.send(outbound(msg, GUARD)).await.expect("reply");
    assert_eq!(&reply.msg.mti_digits(), b"0810");
}

#[tokio::test]
async fn requests_spread_over_ready_links() {
    let fake_a = Fake::start(Behaviour {
        requests: Answer::Hold,
        ..Behaviour::default()
    })
    .await;
    let fake_b = Fake::start(Behaviour {
        requests: Answer::Hold,
        ..Behaviour::default()
    })
    .await;
    let (pool, _token) = start(config(vec![fake_a.addr, fake_b.addr]));
    ready(&pool, 2).await;
    let mut pending = Vec::new();
    for amount in 0..4 {
        let mut f = Box::pin(pool.send(request(amount, GUARD)));
        assert!(futures::poll!(&mut f).is_pending());
        pending.push(f);
    }
    // Fewest in flight first: two each.
    let loads: Vec<usize> = pool.states().iter().map(|s| s.inflight).collect();
    assert_eq!(loads, [2, 2]);
    drop(pending);
    assert_eq!(
        pool.states().iter().map(|s| s.inflight).sum::<usize>(),
        0,
        "abandoned requests are no longer counted"
    );
}

#[test]
fn config_from_an_issuer_entry() {
    let mut issuer = IssuerConfig {
        id: "north-bank".into(),
        name: "North Bank".into(),
        kind: IssuerKind::Remote,
        endpoints: vec!["10.0.0.1:7000".into(), "10.0.0.2:7000".into()],
        connections_per_endpoint: 2,
        timeout_ms: 2000,
        inflight_max: 1000,
        echo_idle_ms: 30_000,
        reconnect_backoff_min_ms: 100,
        reconnect_backoff_max_ms: 5000,
        saf_retries_max: 10,
        saf_depth_max: 1_000_000,
        dialect: crate::config::DialectId::Iso87AsciiHexBitmap,
        framing: crate::config::FramingConfig {
            length_header: crate::config::LengthHeader::Ascii4,
            header_bytes: 5,
        },
        frame_bytes_max: 4096,
        cards: None,
        mac_key: None,
        pin_key: None,
        tls: None,
    };
    let cfg = IssuerLinkConfig::from_config(&issuer, &ISO87_ASCII, FramingConfig::default())
        .expect("valid");
    assert_eq!(cfg.endpoints.len(), 2);
    assert_eq!(cfg.endpoints[1], "10.0.0.2:7000".parse().unwrap());
    assert_eq!(
        cfg.inflight_max, 250,
        "the issuer-wide limit is shared by 4 links"
    );
    assert_eq!(cfg.queue_max, 250);
    assert_eq!(cfg.timeout_ms, 2000);
    assert!(format!("{cfg:?}").contains("iso87-ascii"));

    let own = IssuerLinkConfig::from_issuer(&issuer).expect("valid");
    assert_eq!(
        own.dialect.id,
        crate::config::DialectId::Iso87AsciiHexBitmap
    );
    assert_eq!(own.framing.header_bytes, 5);
    assert_eq!(own.framing.frame_bytes_max, 4096);

    issuer.endpoints.push("bank.example:7000".into());
    assert_eq!(
        IssuerLinkConfig::from_config(&issuer, &ISO87_ASCII, FramingConfig::default()).unwrap_err(),
        IssuerLinkConfigError::BadEndpoint {
            issuer: "north-bank".into(),
            endpoint: "bank.example:7000".into()
        }
    );
    issuer.kind = IssuerKind::OnUs;
    assert!(matches!(
        IssuerLinkConfig::from_config(&issuer, &ISO87_ASCII, FramingConfig::default()),
        Err(IssuerLinkConfigError::NotRemote { .. })
    ));
}

#[test]
fn errors_say_which_side_failed() {
    let errors = [
        LinkError::NoLinkReady,
        LinkError::Overloaded,
        LinkError::Timeout,
        LinkError::LinkLost,
        LinkError::Shutdown,
        LinkError::Encode(crate::iso8583::EncodeError::BadMti),
        LinkError::Framing("internal framing error: too large".into()),
        LinkError::NotARequest {
            mti: Mti::AUTH_RESPONSE,
        },
        LinkError::StanBusy,
    ];
    for e in errors {
        let s = e.to_string();
        assert!(
            s.starts_with("issuer") || s.starts_with("internal"),
            "{s:?}"
        );
    }
}
