//! One issuer link: the task that owns one TCP connection to one issuer endpoint, for its whole
//! life, across reconnects.
//!
//! It owns the socket, the link's STAN counter (and the check that a STAN a caller names is
//! free), the in-flight map and its deadlines, and the session protocol (sign-on, echo, sign-off,
//! answering the issuer's 0800s). It leaves choosing a link and counting a link's load to the
//! pool ([`super::IssuerPool`]), and what replies mean to the core.
//!
//! Why a single task with one `select!` loop: the socket, the map and the write buffer have one
//! owner, so nothing is locked and every request is completed exactly once (reply, deadline or
//! connection loss). Reads and writes are separate halves polled by the same loop, so a peer that
//! stops reading cannot stop us from reading its replies. Writes go straight into the
//! `FramedWrite` buffer and are flushed once per burst.
//!
//! With `[issuer.tls]` the connection is TLS: the handshake follows the TCP connect within the
//! same `timeout_ms`, and a failed one counts as a failed connect (backoff, then retry). The halves
//! are boxed so that one loop serves both kinds; the cost is a virtual call per read or write.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, Sleep};
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::inflight::InFlight;
use super::{
    IssuerLinkConfig, IssuerReply, LateReply, LinkError, LinkState, PoolShared, StanChoice,
};
use crate::clock::Clock;
use crate::decision::security::{MacViolation, SealError};
use crate::domain::{Mti, Stan, TransmissionDateTime};
use crate::iso8583::decode::mask_pan;
use crate::iso8583::views::NetworkCode;
use crate::iso8583::{Dialect, Message, MessageBuilder, decode_lenient};
use crate::net::framing::{Frame, FrameCodec, FramingError};

/// Stop taking requests while this much is waiting to be written; the flush drains it first.
const WRITE_HIGH_WATER: usize = 64 * 1024;
/// Most requests taken from the queue in one go before the loop looks at anything else.
const BATCH_MAX: usize = 256;
/// A deadline far enough away to mean "not armed".
const FAR: Duration = Duration::from_secs(86_400 * 365);

/// A request handed from a caller to a link.
pub(super) struct Job {
    pub(super) msg: Message,
    pub(super) deadline: Instant,
    /// The MTI to send under.
    pub(super) mti: Mti,
    /// The reply MTI that completes it.
    pub(super) expect: Mti,
    pub(super) tx: oneshot::Sender<Result<IssuerReply, LinkError>>,
    /// The STAN to send under.
    pub(super) stan: StanChoice,
}

impl Job {
    fn reply(self, r: Result<IssuerReply, LinkError>) {
        // The caller may have stopped waiting; nothing to do then.
        let _ = self.tx.send(r);
    }
}

/// A request as a link sends it: every field but the secondary bitmap (1), the STAN and a MAC
/// (64, 128), which covered another hop's bytes, then the STAN it goes under, in the link's
/// dialect.
fn rebuilt<'m>(
    dialect: &'static Dialect,
    msg: &'m Message,
    mti: Mti,
    stan_field: &'m [u8],
) -> MessageBuilder<'m> {
    let mut b = MessageBuilder::new(dialect, mti.to_digits());
    // Walk the bitmap directly rather than all 128 field numbers.
    let mut bits = msg.bitmap() & !(1u128 << 127 | 1u128 << 64 | 1);
    while bits != 0 {
        let lz = bits.leading_zeros();
        bits &= !(1u128 << (127 - lz));
        let n = (lz + 1) as u8;
        if n != 11 {
            b.copy_from(msg, n);
        }
    }
    b.set(11, stan_field);
    b
}

/// The request's own bytes, when they are exactly what [`rebuilt`] would write: a link without
/// a MAC of its own (`mac`), the link's dialect, the MTI and the STAN it goes under, no MAC of
/// another hop to strip, and a clean decode. A clean decode re-encodes to its own bytes: the
/// codec writes one form of each field and bitmap and reads no other (the fuzz target
/// `switch/fuzz/fuzz_targets/decode.rs` asserts the round trip), and every `Message` is a
/// decode of its whole buffer, rewritten requests (a translated PIN block, a new field 90)
/// included, which are encoded and decoded again. The secondary bitmap's check follows from the
/// clean decode (an empty one is a content error, and no field above 64 is read without it); it
/// stays as a guard of the one field the rebuild writes by rule rather than by copy. Forwarding
/// the bytes as received skips a field-by-field copy and encode: about 2,200 fewer instructions
/// per remote request in a callgrind count (docs/performance.md).
fn as_received<'m>(
    dialect: &'static Dialect,
    mac: bool,
    msg: &'m Message,
    mti: Mti,
    stan_field: &[u8],
) -> Option<&'m [u8]> {
    let above_64 = msg.bitmap() & u128::from(u64::MAX) != 0;
    let same = !mac
        && std::ptr::eq(msg.dialect(), dialect)
        && msg.content_error().is_none()
        && msg.mti_digits() == mti.to_digits()
        && !msg.has(64)
        && !msg.has(128)
        && msg.has(1) == above_64
        && msg.field(11).is_some_and(|f| f.content_is(stan_field));
    same.then(|| &msg.as_bytes()[..])
}

/// What the pool sees of a link.
pub(super) struct LinkShared {
    pub(super) endpoint: SocketAddr,
    pub(super) state: AtomicU8,
    /// Requests handed to this link and not yet answered; kept by the pool's `send`.
    pub(super) load: AtomicUsize,
}

impl LinkShared {
    pub(super) fn new(endpoint: SocketAddr) -> LinkShared {
        LinkShared {
            endpoint,
            state: AtomicU8::new(LinkState::Down as u8),
            load: AtomicUsize::new(0),
        }
    }

    pub(super) fn state(&self) -> LinkState {
        LinkState::from_u8(self.state.load(Ordering::Acquire))
    }
}

/// Who is waiting for a reply.
enum Waiter {
    /// A caller of `IssuerPool::send`.
    Caller(oneshot::Sender<Result<IssuerReply, LinkError>>),
    /// The link itself, for a network message it sent.
    Network(NetworkCode),
}

struct Pending {
    sent_at: Instant,
    mti: Mti,
    expect: Mti,
    echo: Echo,
    waiter: Waiter,
}

/// A request's fields 32 and 41, kept to tell its reply from a late reply to an earlier request
/// under the same STAN from another terminal: a STAN the caller names
/// ([`StanChoice::Exactly`]) is the acquirer's, and two terminals may use one STAN within a
/// timeout of each other. Field 7 is not compared: some networks put their own time in a
/// response's field 7, and a late reply from the same terminal under the same STAN answers the
/// same transaction anyway (a terminal's STANs do not come round within seconds). Fixed arrays,
/// so keeping them allocates nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Echo {
    /// Field 32 (LLVAR n..11): its digits and how many.
    acquirer: Option<([u8; 11], u8)>,
    terminal: Option<[u8; 8]>,
}

impl Echo {
    fn of(msg: &Message) -> Echo {
        Echo {
            acquirer: msg.get(32).and_then(|v| {
                let mut a = [0u8; 11];
                let n = v.len();
                a.get_mut(..n)?.copy_from_slice(&v);
                Some((a, u8::try_from(n).ok()?))
            }),
            terminal: fixed(msg, 41),
        }
    }

    /// Whether `reply` may answer the request: fields 32 and 41 each equal wherever both the
    /// request and the reply carry them (an issuer that does not echo them is not penalised).
    fn admits(&self, reply: &Message) -> bool {
        let same = |ours: Option<&[u8]>, n: u8| match (ours, reply.get(n)) {
            (Some(a), Some(b)) => a == &b[..],
            _ => true,
        };
        same(
            self.acquirer.as_ref().map(|(a, n)| &a[..usize::from(*n)]),
            32,
        ) && same(self.terminal.as_ref().map(|a| &a[..]), 41)
    }
}

/// Field `n` of `msg` if it is present and exactly `N` bytes long.
fn fixed<const N: usize>(msg: &Message, n: u8) -> Option<[u8; N]> {
    msg.get(n).and_then(|v| <[u8; N]>::try_from(&v[..]).ok())
}

/// Field 7 for the clock's now: `MMDDhhmmss` in UTC.
pub(super) fn transmission_field(clock: &dyn Clock) -> [u8; 10] {
    let mut out = [0u8; 10];
    out.copy_from_slice(TransmissionDateTime::from_datetime(clock.now()).as_bytes());
    out
}

/// The delay before reconnect attempt: `backoff` plus up to a quarter of it at random, so links
/// dropped together do not reconnect in lockstep.
pub(super) fn jittered(backoff: Duration) -> Duration {
    let ms = backoff.as_millis() as u64;
    Duration::from_millis(ms + fastrand::u64(0..=ms / 4))
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Signed off (or never signed on) at shutdown.
    Closed,
    /// The connection failed or was abandoned; reconnect.
    Lost(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    SigningOn,
    Ready,
    /// Shutting down: no new requests; waiting for the in-flight ones.
    Draining,
    /// Sign-off sent; waiting for its 0810.
    SigningOff,
    /// Sign-off answered (or timed out).
    Done,
}

/// One connection's state.
struct Conn {
    reader: FramedRead<ReadHalf, FrameCodec>,
    writer: FramedWrite<WriteHalf, FrameCodec>,
    codec: FrameCodec,
    inflight: InFlight<Pending>,
    /// Entries of `inflight` that belong to callers (network messages excluded), plus the
    /// callers' requests parked in `parked`: both count against `inflight_max`.
    callers: usize,
    /// Requests whose STAN ([`StanChoice::Exactly`]) another request holds on this link, by STAN,
    /// in arrival order. Each is sent when the holder's entry leaves `inflight` (reply, timeout),
    /// which happens by the holder's deadline, no later than theirs. Why wait rather than send
    /// under another STAN: after a switch crash the issuer may already know this request under
    /// its own STAN, and only that STAN lets the issuer's idempotency recognise it.
    parked: HashMap<u32, VecDeque<Job>>,
    phase: Phase,
    echo_pending: bool,
    /// Set when the link must close once its write buffer is out (the issuer signed off).
    closing: Option<&'static str>,
    deadline_sleep: Pin<Box<Sleep>>,
    armed: Option<Instant>,
    idle_sleep: Pin<Box<Sleep>>,
    last_rx: Instant,
}

impl Conn {
    fn insert(&mut self, stan: Stan, deadline: Instant, p: Pending) {
        if matches!(p.waiter, Waiter::Caller(_)) {
            self.callers += 1;
        }
        self.inflight.insert(stan, deadline, p);
        if self.armed.is_none_or(|a| deadline < a) {
            self.deadline_sleep.as_mut().reset(deadline);
            self.armed = Some(deadline);
        }
    }

    fn remove(&mut self, stan: u32) -> Option<Pending> {
        let p = self.inflight.remove(stan)?;
        Some(self.forget(p))
    }

    fn pop_expired(&mut self, now: Instant) -> Option<(u32, Pending)> {
        let (stan, p) = self.inflight.pop_expired(now)?;
        Some((stan, self.forget(p)))
    }

    /// Keeps `job` until its STAN is free on this link.
    fn park(&mut self, stan: Stan, job: Job) {
        self.callers += 1;
        self.parked.entry(stan.value()).or_default().push_back(job);
    }

    /// The next request waiting for `stan`, if any.
    fn unpark(&mut self, stan: u32) -> Option<Job> {
        let queue = self.parked.get_mut(&stan)?;
        let job = queue.pop_front();
        if queue.is_empty() {
            self.parked.remove(&stan);
        }
        if job.is_some() {
            self.callers -= 1;
        }
        job
    }

    fn forget(&mut self, p: Pending) -> Pending {
        if matches!(p.waiter, Waiter::Caller(_)) {
            self.callers -= 1;
        }
        p
    }

    /// Points the deadline timer at the earliest remaining deadline.
    fn rearm(&mut self) {
        self.armed = self.inflight.earliest_deadline();
        if let Some(t) = self.armed {
            self.deadline_sleep.as_mut().reset(t);
        }
    }

    fn pending_writes(&self) -> bool {
        !self.writer.write_buffer().is_empty()
    }
}

/// A connection's halves: plain TCP or TLS (`[issuer.tls]`).
type ReadHalf = Box<dyn tokio::io::AsyncRead + Send + Unpin>;
type WriteHalf = Box<dyn tokio::io::AsyncWrite + Send + Unpin>;

pub(super) struct Link {
    cfg: Arc<IssuerLinkConfig>,
    shared: Arc<LinkShared>,
    pool: Arc<PoolShared>,
    rx: mpsc::Receiver<Job>,
    shutdown: CancellationToken,
    clock: Arc<dyn Clock>,
    /// The last STAN this link used; it carries on across reconnects.
    stan: Stan,
    /// The fixed frame header sent with every message (zeros; empty without one).
    header: Bytes,
    /// Set once the link takes no more requests (shutdown, or every pool handle dropped).
    closing: bool,
}

/// Marks the link down and uncounts it when its task ends, however it ends.
struct TaskGuard {
    shared: Arc<LinkShared>,
    pool: Arc<PoolShared>,
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.pool.set_state(&self.shared, LinkState::Down);
        self.pool.live.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl Link {
    pub(super) fn new(
        cfg: Arc<IssuerLinkConfig>,
        shared: Arc<LinkShared>,
        pool: Arc<PoolShared>,
        rx: mpsc::Receiver<Job>,
        shutdown: CancellationToken,
        clock: Arc<dyn Clock>,
    ) -> Link {
        let header = Bytes::from(vec![0u8; cfg.framing.header_bytes]);
        // A random start keeps links (and restarts of the switch) from repeating each other's
        // STANs at the issuer.
        let stan = Stan::new(fastrand::u32(..=Stan::MAX))
            .unwrap_or_else(|_| Stan::new(1).expect("in range"));
        Link {
            cfg,
            shared,
            pool,
            rx,
            shutdown,
            clock,
            stan,
            header,
            closing: false,
        }
    }

    fn set_state(&self, to: LinkState) {
        self.pool.set_state(&self.shared, to);
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.cfg.timeout_ms)
    }

    /// Connects, serves, and reconnects with backoff until shutdown.
    pub(super) async fn run(mut self) {
        let _guard = TaskGuard {
            shared: self.shared.clone(),
            pool: self.pool.clone(),
        };
        let min = Duration::from_millis(self.cfg.reconnect_backoff_min_ms);
        let max = Duration::from_millis(self.cfg.reconnect_backoff_max_ms);
        let mut backoff = min;
        let endpoint = self.shared.endpoint;
        let connect_timeout = self.timeout();
        'run: loop {
            if self.closing || self.shutdown.is_cancelled() {
                break;
            }
            self.set_state(LinkState::Connecting);
            let connect = tokio::time::timeout(connect_timeout, TcpStream::connect(endpoint));
            let Some(attempt) = self.wait_or_reject(connect).await else {
                break;
            };
            match attempt {
                Ok(Ok(stream)) => 'connected: {
                    if let Err(e) = stream.set_nodelay(true) {
                        debug!(error = %e, "cannot set TCP_NODELAY");
                    }
                    let halves = match self.cfg.tls.clone() {
                        None => {
                            let (r, w) = stream.into_split();
                            (Box::new(r) as ReadHalf, Box::new(w) as WriteHalf)
                        }
                        Some(tls) => {
                            let name = tls
                                .server_name
                                .clone()
                                .unwrap_or_else(|| endpoint.ip().into());
                            let handshake = tokio::time::timeout(
                                connect_timeout,
                                tls.connector.connect(name, stream),
                            );
                            match self.wait_or_reject(handshake).await {
                                None => break 'run,
                                Some(Ok(Ok(s))) => {
                                    let (r, w) = tokio::io::split(s);
                                    (Box::new(r) as ReadHalf, Box::new(w) as WriteHalf)
                                }
                                Some(Ok(Err(e))) => {
                                    warn!(error = %e, "TLS handshake with the issuer failed");
                                    break 'connected;
                                }
                                Some(Err(_)) => {
                                    warn!(
                                        timeout_ms = self.cfg.timeout_ms,
                                        "TLS handshake with the issuer timed out"
                                    );
                                    break 'connected;
                                }
                            }
                        }
                    };
                    let (end, was_ready) = self.session(halves).await;
                    if was_ready {
                        backoff = min;
                    }
                    match end {
                        End::Closed => break 'run,
                        End::Lost(reason) => {
                            warn!(reason, "issuer link lost; reconnecting after backoff");
                        }
                    }
                }
                Ok(Err(e)) => warn!(error = %e, "cannot connect to the issuer"),
                Err(_) => warn!(
                    timeout_ms = self.cfg.timeout_ms,
                    "connecting to the issuer timed out"
                ),
            }
            self.set_state(LinkState::Down);
            if self.closing || self.shutdown.is_cancelled() {
                break;
            }
            let delay = jittered(backoff);
            debug!(delay_ms = delay.as_millis() as u64, "reconnect backoff");
            if self
                .wait_or_reject(tokio::time::sleep(delay))
                .await
                .is_none()
            {
                break;
            }
            backoff = (backoff * 2).min(max);
        }
        self.set_state(LinkState::Down);
        self.rx.close();
        while let Ok(job) = self.rx.try_recv() {
            job.reply(Err(LinkError::Shutdown));
        }
        info!("issuer link stopped");
    }

    /// Waits for `fut` while no connection is up, answering any request that reaches the queue
    /// with [`LinkError::NoLinkReady`] (it was handed over just as the link went down). `None`
    /// at shutdown.
    async fn wait_or_reject<F: Future>(&mut self, fut: F) -> Option<F::Output> {
        tokio::pin!(fut);
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => return None,
                out = &mut fut => return Some(out),
                job = self.rx.recv() => match job {
                    Some(job) => job.reply(Err(LinkError::NoLinkReady)),
                    None => {
                        self.closing = true;
                        return None;
                    }
                },
            }
        }
    }

    /// Serves one connection: sign on, carry traffic, and end it. Returns why it ended and
    /// whether it ever became ready. Every request still in flight gets [`LinkError::LinkLost`].
    async fn session(&mut self, (read, write): (ReadHalf, WriteHalf)) -> (End, bool) {
        let codec = FrameCodec::new(self.cfg.framing);
        let now = Instant::now();
        let mut c = Conn {
            reader: FramedRead::new(read, codec.clone()),
            writer: FramedWrite::new(write, codec.clone()),
            codec,
            inflight: InFlight::new(),
            callers: 0,
            parked: HashMap::new(),
            phase: Phase::SigningOn,
            echo_pending: false,
            closing: None,
            deadline_sleep: Box::pin(tokio::time::sleep_until(now + FAR)),
            armed: None,
            idle_sleep: Box::pin(tokio::time::sleep_until(now + FAR)),
            last_rx: now,
        };
        self.set_state(LinkState::SigningOn);
        let end = match self.send_network(&mut c, NetworkCode::SignOn, now) {
            Ok(()) => self.drive(&mut c).await,
            Err(end) => end,
        };
        let was_ready = c.phase != Phase::SigningOn;
        let mut lost = 0usize;
        for (_, p) in c.inflight.drain() {
            if let Waiter::Caller(tx) = p.waiter {
                lost += 1;
                let _ = tx.send(Err(LinkError::LinkLost));
            }
        }
        // Parked requests never left: not sent, so nothing for the core to reverse.
        for (_, queue) in c.parked.drain() {
            for job in queue {
                job.reply(Err(LinkError::StanBusy));
            }
        }
        if lost > 0 {
            warn!(requests = lost, "requests in flight failed with the link");
        }
        if end == End::Closed {
            // Best effort: the sign-off exchange is over, say goodbye properly.
            let close = SinkExt::<Frame>::close(&mut c.writer);
            if tokio::time::timeout(self.timeout(), close).await.is_err() {
                debug!("closing the issuer connection timed out");
            }
        }
        (end, was_ready)
    }

    /// The connection's event loop.
    async fn drive(&mut self, c: &mut Conn) -> End {
        let idle = Duration::from_millis(self.cfg.echo_idle_ms);
        loop {
            let active = matches!(c.phase, Phase::SigningOn | Phase::Ready);
            let take_jobs = match c.phase {
                // Only strays reach a link that is signing on; they are turned away.
                Phase::SigningOn => !self.closing,
                Phase::Ready => {
                    !self.closing
                        && c.closing.is_none()
                        && c.callers < self.cfg.inflight_max
                        && c.writer.write_buffer().len() < WRITE_HIGH_WATER
                }
                _ => false,
            };
            let watch_idle = c.phase == Phase::Ready && !c.echo_pending;
            let deadlines = c.armed.is_some();
            let flush = c.pending_writes();
            let step = tokio::select! {
                () = self.shutdown.cancelled(), if active => self.begin_drain(c),
                frame = c.reader.next() => match frame {
                    Some(Ok(frame)) => self.on_frame(c, frame),
                    Some(Err(e)) => {
                        warn!(error = %e, "framing error from the issuer; closing the link");
                        Err(End::Lost("framing error"))
                    }
                    None => Err(End::Lost("connection closed by the issuer")),
                },
                () = c.deadline_sleep.as_mut(), if deadlines => self.on_deadlines(c),
                () = c.idle_sleep.as_mut(), if watch_idle => self.on_idle(c, idle),
                res = SinkExt::<Frame>::flush(&mut c.writer), if flush => res.map_err(|e| {
                    warn!(error = %e, "writing to the issuer failed");
                    End::Lost("write failed")
                }),
                job = self.rx.recv(), if take_jobs => match job {
                    Some(job) => self.on_jobs(c, job),
                    None => self.begin_drain(c),
                },
            };
            if let Err(end) = step {
                return end;
            }
            if c.phase == Phase::Draining && c.callers == 0 {
                if let Err(end) = self.send_network(c, NetworkCode::SignOff, Instant::now()) {
                    return end;
                }
                c.phase = Phase::SigningOff;
                info!("signing off from the issuer");
            }
            if c.phase == Phase::Done {
                return End::Closed;
            }
            if let Some(reason) = c.closing
                && !c.pending_writes()
            {
                return End::Lost(reason);
            }
        }
    }

    /// Stops taking requests: the queue is closed and whatever is in it answered
    /// [`LinkError::Shutdown`]. A link that never signed on just closes; a ready one drains.
    fn begin_drain(&mut self, c: &mut Conn) -> Result<(), End> {
        self.closing = true;
        self.rx.close();
        while let Ok(job) = self.rx.try_recv() {
            job.reply(Err(LinkError::Shutdown));
        }
        match c.phase {
            Phase::SigningOn => Err(End::Closed),
            Phase::Ready => {
                info!(inflight = c.callers, "issuer link draining before sign-off");
                c.phase = Phase::Draining;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Takes `first` and whatever else is queued (within the in-flight and buffer limits) and
    /// encodes them all into the write buffer; the flush comes once the burst is over.
    fn on_jobs(&mut self, c: &mut Conn, first: Job) -> Result<(), End> {
        if c.phase != Phase::Ready {
            first.reply(Err(LinkError::NoLinkReady));
            while let Ok(job) = self.rx.try_recv() {
                job.reply(Err(LinkError::NoLinkReady));
            }
            return Ok(());
        }
        let now = Instant::now();
        self.send_job(c, first, now);
        let mut taken = 1;
        while taken < BATCH_MAX
            && c.callers < self.cfg.inflight_max
            && c.writer.write_buffer().len() < WRITE_HIGH_WATER
        {
            match self.rx.try_recv() {
                Ok(job) => {
                    self.send_job(c, job, now);
                    taken += 1;
                }
                Err(_) => break,
            }
        }
        Ok(())
    }

    fn send_job(&mut self, c: &mut Conn, job: Job, now: Instant) {
        if job.tx.is_closed() {
            // The caller gave up before the request left: don't send it at all.
            return;
        }
        if job.deadline <= now {
            self.pool.metrics.timeouts.increment(1);
            job.reply(Err(LinkError::Timeout));
            return;
        }
        let stan = match job.stan {
            StanChoice::Any => c.inflight.next_free_stan(&mut self.stan),
            // One request per STAN on a link, so that a reply matches exactly one: wait for it.
            StanChoice::Exactly(s) if c.inflight.get(s.value()).is_some() => {
                debug!(mti = %job.mti, stan = %s, "STAN asked for is in flight; parked until it is free");
                c.park(s, job);
                return;
            }
            StanChoice::Exactly(s) => s,
        };
        let stan_field = stan.to_field();
        let dialect = self.cfg.dialect;
        let mac = self.cfg.mac.is_some();
        let written = match as_received(dialect, mac, &job.msg, job.mti, &stan_field) {
            Some(raw) => {
                // Every debug-build test that forwards a request checks the shortcut's premise.
                debug_assert_eq!(
                    Some(raw),
                    rebuilt(dialect, &job.msg, job.mti, &stan_field)
                        .to_bytes()
                        .ok()
                        .as_deref(),
                    "a request forwarded as received must be what rebuilding it writes"
                );
                self.write_raw(c, raw)
            }
            None => self.write_message(c, &mut rebuilt(dialect, &job.msg, job.mti, &stan_field)),
        };
        if let Err(e) = written {
            warn!(mti = %job.mti, error = %e, "request cannot be sent to the issuer");
            job.reply(Err(e));
            return;
        }
        c.insert(
            stan,
            job.deadline,
            Pending {
                sent_at: now,
                mti: job.mti,
                expect: job.expect,
                echo: Echo::of(&job.msg),
                waiter: Waiter::Caller(job.tx),
            },
        );
    }

    /// `stan` has just left `inflight`: sends the next request parked for it. One whose deadline
    /// passed while parked was never sent, which [`LinkError::StanBusy`] says.
    fn release(&mut self, c: &mut Conn, stan: u32, now: Instant) {
        if let Some(job) = c.unpark(stan) {
            if job.deadline <= now {
                job.reply(Err(LinkError::StanBusy));
            } else {
                self.send_job(c, job, now);
            }
        }
    }

    /// Encodes an 0800 with `code` and waits for its 0810 (for `timeout_ms`).
    fn send_network(&mut self, c: &mut Conn, code: NetworkCode, now: Instant) -> Result<(), End> {
        let stan = c.inflight.next_free_stan(&mut self.stan);
        let stan_field = stan.to_field();
        let when = transmission_field(&*self.clock);
        let mut b = MessageBuilder::new(self.cfg.dialect, Mti::NETWORK_REQUEST.to_digits());
        b.set(7, &when).set(11, &stan_field).set(70, code.code());
        if let Err(e) = self.write_message(c, &mut b) {
            warn!(code = ?code, error = %e, "cannot encode a network message for the issuer");
            return Err(End::Lost("network message cannot be encoded"));
        }
        debug!(code = ?code, stan = %stan, "network message sent");
        c.insert(
            stan,
            now + self.timeout(),
            Pending {
                sent_at: now,
                mti: Mti::NETWORK_REQUEST,
                expect: Mti::NETWORK_RESPONSE,
                echo: Echo::default(),
                waiter: Waiter::Network(code),
            },
        );
        Ok(())
    }

    /// Frames `payload`, a request already encoded as this link sends it (see [`as_received`]),
    /// into the write buffer. On error the buffer is left as it was.
    fn write_raw(&self, c: &mut Conn, payload: &[u8]) -> Result<(), LinkError> {
        // A link with a MAC key seals what it sends; bytes passed through carry no seal.
        debug_assert!(
            self.cfg.mac.is_none(),
            "a MACing link sent a request as received"
        );
        let dst = c.writer.write_buffer_mut();
        let mark = c.codec.begin_frame(dst, &self.header).map_err(framing)?;
        dst.extend_from_slice(payload);
        // finish_frame truncates back to the mark itself on error.
        c.codec.finish_frame(dst, mark).map_err(framing)
    }

    /// Frames `b` into the write buffer, with a MAC when the link has a MAC key. On error the
    /// buffer is left as it was.
    fn write_message(&self, c: &mut Conn, b: &mut MessageBuilder<'_>) -> Result<(), LinkError> {
        let dst = c.writer.write_buffer_mut();
        let start = dst.len();
        let mark = c.codec.begin_frame(dst, &self.header).map_err(framing)?;
        let encoded = match &self.cfg.mac {
            None => b.encode(dst).map_err(LinkError::from),
            Some(mac) => mac.encode(b, dst).map_err(|e| match e {
                SealError::Encode(e) => LinkError::Encode(e),
                other => LinkError::Mac(other.to_string()),
            }),
        };
        if let Err(e) = encoded {
            dst.truncate(start);
            return Err(e);
        }
        // finish_frame truncates back to the mark itself on error.
        c.codec.finish_frame(dst, mark).map_err(framing)
    }

    fn on_frame(&mut self, c: &mut Conn, frame: Frame) -> Result<(), End> {
        let now = Instant::now();
        c.last_rx = now;
        let msg = match decode_lenient(self.cfg.dialect, frame.payload) {
            Ok(msg) => msg,
            Err(e) => {
                self.pool.metrics.dropped_structure.increment(1);
                warn!(error = %e, "undecodable message from the issuer dropped");
                return Ok(());
            }
        };
        // A decoded MTI is four digits by construction.
        let Ok(mti) = Mti::from_digits(&msg.mti_digits()) else {
            return Ok(());
        };
        if let Some(mac) = &self.cfg.mac
            && let Err(v) = mac.check(&msg)
        {
            self.on_bad_mac(c, &msg, mti, v);
            return Ok(());
        }
        if mti == Mti::NETWORK_REQUEST {
            return self.on_issuer_network(c, &msg);
        }
        if !mti.is_response() {
            self.pool.metrics.dropped_unexpected.increment(1);
            warn!(mti = %mti, "the issuer sent a request this link does not serve; dropped");
            return Ok(());
        }
        let Some(stan) = msg.get(11).and_then(|v| Stan::from_field(&v).ok()) else {
            self.pool.metrics.dropped_unexpected.increment(1);
            warn!(mti = %mti, "reply without a valid STAN dropped");
            return Ok(());
        };
        let expect = match c.inflight.get(stan.value()) {
            None => {
                self.on_late(msg, mti, stan, "no request in flight with this STAN");
                return Ok(());
            }
            Some(p) if !p.echo.admits(&msg) => {
                self.on_late(
                    msg,
                    mti,
                    stan,
                    "fields 32/41 differ from the request in flight with this STAN",
                );
                return Ok(());
            }
            Some(p) => (p.mti, p.expect),
        };
        if expect.1 != mti {
            self.pool.metrics.dropped_unexpected.increment(1);
            warn!(
                mti = %mti,
                stan = %stan,
                request_mti = %expect.0,
                expected_mti = %expect.1,
                response_code = response_code(&msg),
                "reply MTI does not match the request; not delivered"
            );
            return Ok(());
        }
        let Some(p) = c.remove(stan.value()) else {
            return Ok(());
        };
        self.release(c, stan.value(), now);
        match p.waiter {
            Waiter::Caller(tx) => {
                let round_trip = now.saturating_duration_since(p.sent_at);
                self.pool
                    .metrics
                    .round_trip
                    .record(round_trip.as_secs_f64());
                if let Err(Ok(reply)) = tx.send(Ok(IssuerReply { msg, round_trip })) {
                    self.on_late(reply.msg, mti, stan, "the caller stopped waiting");
                }
                Ok(())
            }
            Waiter::Network(code) => self.on_network_reply(c, code, &msg, stan, now),
        }
    }

    /// The 0810 to one of our own 0800s.
    fn on_network_reply(
        &mut self,
        c: &mut Conn,
        code: NetworkCode,
        msg: &Message,
        stan: Stan,
        now: Instant,
    ) -> Result<(), End> {
        let approved = msg.get(39).is_some_and(|v| &v[..] == b"00");
        match code {
            NetworkCode::SignOn if approved => {
                c.phase = Phase::Ready;
                c.last_rx = now;
                c.idle_sleep
                    .as_mut()
                    .reset(now + Duration::from_millis(self.cfg.echo_idle_ms));
                self.set_state(LinkState::Ready);
                Ok(())
            }
            NetworkCode::SignOn => {
                warn!(
                    stan = %stan,
                    response_code = response_code(msg),
                    "the issuer refused the sign-on"
                );
                Err(End::Lost("sign-on refused"))
            }
            NetworkCode::Echo => {
                c.echo_pending = false;
                c.idle_sleep
                    .as_mut()
                    .reset(now + Duration::from_millis(self.cfg.echo_idle_ms));
                if approved {
                    debug!(stan = %stan, "echo answered");
                } else {
                    warn!(
                        stan = %stan,
                        response_code = response_code(msg),
                        "echo answered with a non-00 code"
                    );
                }
                Ok(())
            }
            NetworkCode::SignOff => {
                info!(
                    stan = %stan,
                    response_code = response_code(msg),
                    "sign-off answered"
                );
                c.phase = Phase::Done;
                Ok(())
            }
        }
    }

    /// Answers the issuer's own 0800 with 0810/00.
    fn on_issuer_network(&mut self, c: &mut Conn, msg: &Message) -> Result<(), End> {
        let code = msg.get(70).and_then(|v| NetworkCode::from_field(&v).ok());
        let stan = msg.get(11).and_then(|v| Stan::from_field(&v).ok());
        let mut b = MessageBuilder::new(self.cfg.dialect, Mti::NETWORK_RESPONSE.to_digits());
        b.copy_fields(msg, &[7, 11, 32, 33, 70]).set(39, b"00");
        if let Err(e) = self.write_message(c, &mut b) {
            warn!(error = %e, "cannot answer the issuer's network message");
            return Ok(());
        }
        match code {
            Some(NetworkCode::SignOff) => {
                warn!(stan = ?stan, "the issuer signed off; closing the link to sign on again");
                c.closing = Some("issuer signed off");
            }
            Some(NetworkCode::SignOn) => info!(stan = ?stan, "the issuer signed on"),
            _ => debug!(stan = ?stan, code = ?code, "answered the issuer's network message"),
        }
        Ok(())
    }

    /// Completes every request whose deadline has passed with [`LinkError::Timeout`]. An
    /// unanswered sign-on or echo ends the connection.
    fn on_deadlines(&mut self, c: &mut Conn) -> Result<(), End> {
        let now = Instant::now();
        while let Some((stan, p)) = c.pop_expired(now) {
            self.release(c, stan, now);
            match p.waiter {
                Waiter::Caller(tx) => {
                    self.pool.metrics.timeouts.increment(1);
                    debug!(mti = %p.mti, stan = stan, "issuer request timed out");
                    let _ = tx.send(Err(LinkError::Timeout));
                }
                Waiter::Network(NetworkCode::SignOn) => {
                    warn!(
                        timeout_ms = self.cfg.timeout_ms,
                        "the issuer did not answer the sign-on"
                    );
                    return Err(End::Lost("sign-on unanswered"));
                }
                Waiter::Network(NetworkCode::Echo) => {
                    warn!(
                        timeout_ms = self.cfg.timeout_ms,
                        "the issuer did not answer the echo; link down"
                    );
                    return Err(End::Lost("echo unanswered"));
                }
                Waiter::Network(NetworkCode::SignOff) => {
                    info!("the issuer did not answer the sign-off; closing anyway");
                    c.phase = Phase::Done;
                }
            }
        }
        c.rearm();
        Ok(())
    }

    /// Sends an echo if the issuer has been quiet for `idle`; otherwise re-aims the timer.
    fn on_idle(&mut self, c: &mut Conn, idle: Duration) -> Result<(), End> {
        let now = Instant::now();
        let due = c.last_rx + idle;
        if due > now {
            c.idle_sleep.as_mut().reset(due);
            return Ok(());
        }
        self.send_network(c, NetworkCode::Echo, now)?;
        c.echo_pending = true;
        Ok(())
    }

    /// A message from the issuer without a valid MAC: counted and logged, otherwise treated as
    /// never received, except that a caller waiting for it learns at once
    /// ([`LinkError::BadMac`]) instead of at its deadline. Network messages are left to their
    /// deadlines (an unanswered sign-on or echo ends the connection).
    fn on_bad_mac(&self, c: &mut Conn, msg: &Message, mti: Mti, v: MacViolation) {
        metrics::counter!(
            crate::metrics::SECURITY_VIOLATIONS_TOTAL,
            "party" => "issuer",
            "reason" => v.reason()
        )
        .increment(1);
        let stan = msg.get(11).and_then(|s| Stan::from_field(&s).ok());
        warn!(mti = %mti, stan = ?stan, violation = %v, "message from the issuer refused: MAC");
        let Some(stan) = stan else { return };
        let waiting = c.inflight.get(stan.value()).is_some_and(|p| {
            p.expect == mti && p.echo.admits(msg) && matches!(p.waiter, Waiter::Caller(_))
        });
        if waiting
            && let Some(p) = c.remove(stan.value())
            && let Waiter::Caller(tx) = p.waiter
        {
            let _ = tx.send(Err(LinkError::BadMac(v)));
        }
    }

    /// Counts, logs and publishes a reply nobody is waiting for.
    fn on_late(&self, msg: Message, mti: Mti, stan: Stan, why: &'static str) {
        self.pool.metrics.late.increment(1);
        // Cold path: allocating the masked PAN is fine here.
        let pan = msg.get(2).map(|v| mask_pan(&v));
        warn!(
            mti = %mti,
            stan = %stan,
            response_code = response_code(&msg),
            pan = pan.as_deref().unwrap_or("-"),
            why,
            "late reply from the issuer"
        );
        if mti.class() != 8 {
            // No subscriber is not an error: the log and the counter are the record.
            let _ = self.pool.late.send(LateReply {
                issuer_id: self.pool.issuer_id.clone(),
                endpoint: self.shared.endpoint,
                msg,
            });
        }
    }
}

/// Field 39 for a log line, if it looks like a response code (two alphanumerics), else `-`.
fn response_code(msg: &Message) -> &str {
    match msg.field(39).map(|f| f.wire()) {
        Some(v) if v.len() == 2 && v.iter().all(u8::is_ascii_alphanumeric) => {
            std::str::from_utf8(v).unwrap_or("-")
        }
        _ => "-",
    }
}

/// A framing error on the way out is ours: the message does not fit the issuer's framing.
fn framing(e: FramingError) -> LinkError {
    LinkError::Framing(e.to_string())
}

#[cfg(test)]
mod unit {
    use super::*;
    use crate::clock::ManualClock;
    use crate::iso8583::{DialectId, ISO87_ASCII, ISO87_BCD, decode, samples};

    /// A request is forwarded as received exactly when its bytes are what rebuilding it writes,
    /// in every dialect, with fields above 64 or without; and every condition that makes the
    /// rebuild differ (or a MAC be needed) sends it through the rebuild.
    #[test]
    fn a_request_goes_out_as_received_only_when_rebuilding_would_write_the_same() {
        let stan = *b"000001";
        let other_stan = *b"000002";
        let mti = Mti::AUTH_REQUEST;
        for id in DialectId::ALL {
            let d = id.dialect();
            let mut with_90 = samples::auth_request(d);
            with_90.set(90, b"010000000111252218000000001234560000000000");
            for b in [samples::auth_request(d), with_90] {
                let bytes = b.to_bytes().expect("encode");
                let msg = decode(d, bytes.clone()).expect("decode");
                let rebuilt_bytes = rebuilt(d, &msg, mti, &stan).to_bytes().expect("encode");
                assert_eq!(rebuilt_bytes, bytes, "{id}: the premise");
                assert_eq!(
                    as_received(d, false, &msg, mti, &stan),
                    Some(&bytes[..]),
                    "{id}"
                );
                // A link that MACs, another dialect, MTI or STAN: rebuilt.
                assert_eq!(as_received(d, true, &msg, mti, &stan), None, "{id}");
                let other = if d.id == ISO87_BCD.id {
                    &ISO87_ASCII
                } else {
                    &ISO87_BCD
                };
                assert_eq!(as_received(other, false, &msg, mti, &stan), None, "{id}");
                assert_eq!(
                    as_received(d, false, &msg, Mti::FINANCIAL_REQUEST, &stan),
                    None,
                    "{id}"
                );
                assert_eq!(as_received(d, false, &msg, mti, &other_stan), None, "{id}");
                assert_ne!(
                    rebuilt(d, &msg, mti, &other_stan)
                        .to_bytes()
                        .expect("encode"),
                    bytes
                );
            }
            // Another hop's MAC, which the rebuild strips.
            for mac_field in [64u8, 128] {
                let mut b = samples::auth_request(d);
                b.set(mac_field, b"\x01\x02\x03\x04\x05\x06\x07\x08");
                let bytes = b.to_bytes().expect("encode");
                let msg = decode(d, bytes.clone()).expect("decode");
                assert_eq!(
                    as_received(d, false, &msg, mti, &stan),
                    None,
                    "{id} {mac_field}"
                );
                let out = rebuilt(d, &msg, mti, &stan).to_bytes().expect("encode");
                assert_ne!(out, bytes, "{id} {mac_field}");
                let out = decode(d, out).expect("decode");
                assert!(!out.has(64) && !out.has(128), "{id} {mac_field}");
            }
        }
        // A secondary bitmap with nothing above 64 in it, which the rebuild leaves out: only a
        // lenient decode takes it, as a content error.
        let mut bytes = samples::auth_request(&ISO87_ASCII)
            .to_bytes()
            .expect("encode")
            .to_vec();
        bytes[4] |= 0x80;
        bytes.splice(12..12, [0u8; 8]);
        assert!(decode(&ISO87_ASCII, bytes.clone().into()).is_err());
        let msg = decode_lenient(&ISO87_ASCII, bytes.clone().into()).expect("lenient");
        assert!(msg.has(1) && msg.content_error().is_some());
        assert_ne!(
            rebuilt(&ISO87_ASCII, &msg, mti, &stan)
                .to_bytes()
                .expect("encode"),
            bytes
        );
        assert_eq!(as_received(&ISO87_ASCII, false, &msg, mti, &stan), None);
        // A message with a content error (a lenient decode): rebuilt, never passed on.
        let mut bytes = samples::auth_request(&ISO87_ASCII)
            .to_bytes()
            .expect("encode")
            .to_vec();
        // Field 4's last digit: after the MTI (4), the bitmap (8), field 2 (2 + 16) and 3 (6).
        assert_eq!(&bytes[36..48], b"000000001234");
        bytes[47] = b'X';
        let msg = decode_lenient(&ISO87_ASCII, bytes.into()).expect("lenient");
        assert!(msg.content_error().is_some());
        assert_eq!(as_received(&ISO87_ASCII, false, &msg, mti, &stan), None);
    }

    #[test]
    fn transmission_field_is_utc_mmddhhmmss() {
        let at = |y, mo, d, h, mi, s| {
            chrono::NaiveDate::from_ymd_opt(y, mo, d)
                .and_then(|d| d.and_hms_opt(h, mi, s))
                .expect("valid")
        };
        let clock = ManualClock::new(at(2026, 11, 25, 22, 18, 0));
        assert_eq!(&transmission_field(&*clock), b"1125221800");
        clock.set(at(2027, 1, 2, 3, 4, 5));
        assert_eq!(&transmission_field(&*clock), b"0102030405");
    }

    fn msg(fields: &[(u8, &[u8])]) -> Message {
        let mut b = MessageBuilder::new(&crate::iso8583::ISO87_ASCII, *b"0110");
        for (n, v) in fields {
            b.set(*n, v);
        }
        crate::iso8583::decode(&crate::iso8583::ISO87_ASCII, b.to_bytes().expect("encode"))
            .expect("decode")
    }

    #[test]
    fn a_reply_is_admitted_only_with_the_requests_fields_32_and_41() {
        let req = msg(&[
            (7, b"1125221800"),
            (11, b"000777"),
            (32, b"100001"),
            (41, b"TERM0001"),
        ]);
        let echo = Echo::of(&req);
        assert_eq!(echo.terminal, Some(*b"TERM0001"));
        assert!(echo.admits(&req));
        // An issuer that writes its own time into field 7 is still heard.
        let other_time = msg(&[
            (7, b"1125221801"),
            (11, b"000777"),
            (32, b"100001"),
            (41, b"TERM0001"),
        ]);
        assert!(echo.admits(&other_time), "field 7 is not compared");
        let other_terminal = msg(&[(11, b"000777"), (32, b"100001"), (41, b"TERM0002")]);
        assert!(!echo.admits(&other_terminal), "another terminal");
        let other_acquirer = msg(&[(11, b"000777"), (32, b"100002"), (41, b"TERM0001")]);
        assert!(!echo.admits(&other_acquirer), "another acquirer");
        let longer_acquirer = msg(&[(11, b"000777"), (32, b"1000011"), (41, b"TERM0001")]);
        assert!(
            !echo.admits(&longer_acquirer),
            "field 32 compared at its length"
        );
        // An issuer that does not echo them is not penalised, nor a request without them.
        assert!(echo.admits(&msg(&[(11, b"000777")])));
        assert!(Echo::of(&msg(&[(11, b"000777")])).admits(&other_terminal));
    }

    #[test]
    fn jitter_adds_at_most_a_quarter() {
        for _ in 0..100 {
            let d = jittered(Duration::from_millis(400));
            assert!((400..=500).contains(&(d.as_millis() as u64)), "{d:?}");
        }
        assert_eq!(jittered(Duration::from_millis(1)), Duration::from_millis(1));
    }
}
