//! Acquirer sessions: the listener and one task per TCP connection.
//!
//! A connection reads frames and hands each one to the [`Runtime`]; many requests may be in
//! flight on one connection, and each answer is written as soon as it is ready, so answers can
//! come back out of order (acquirers match them by STAN). Limits against abuse, from `[listener]`
//! and `[[acquirer]]`:
//! - `connections_max`: a connection over the limit is closed at once, unread;
//! - `[[acquirer]] connections_max`: a connection belongs to an acquirer from its first request
//!   naming a configured one ([`crate::net::admission`]); the request that would take that
//!   acquirer over its limit is answered 91 and the connection closed;
//! - `[[acquirer]] allowed_sources`: a request naming the acquirer from another address is
//!   answered 63 (security violation) and binds nothing; so is a request naming a different
//!   acquirer than the one the connection belongs to. Both are counted in
//!   `switchyard_security_failures_total` and journaled like any decline;
//! - `requests_per_s_max` / `requests_burst_max`: above the ceiling a request is answered 91 at
//!   once, without being processed, journaled or queued, and counted in
//!   `switchyard_requests_throttled_total`. Shedding must cost less than the work it sheds, and a
//!   throttled request has had no effect, so the acquirer may simply send it again;
//! - `inflight_per_connection_max`: at the limit the connection is simply not read (TCP
//!   backpressure); nobody gets an invented decline;
//! - `idle_timeout_ms`: a connection with nothing in flight and no frame received for this long
//!   is closed (zero-length keep-alives do not count as frames; an 0800 echo does);
//! - `read_timeout_ms`: a frame started but not completed within this long closes the
//!   connection (slowloris). It is checked every quarter of the timeout, so the close comes
//!   between 1 and 1.25 timeouts after the frame began.
//!
//! With `[listener.tls]`, each accepted connection first completes a TLS handshake within
//! `read_timeout_ms` (holding its `connections_max` slot meanwhile); a failed or late handshake
//! closes it, counted in `switchyard_tls_handshake_failures_total`. A verified client certificate
//! then pre-binds the connection's [`Gate`] (see [`crate::net::admission::Certified`]): a request
//! naming another acquirer is answered 63 (`certificate_mismatch`), and on a connection whose
//! certificate identifies no configured acquirer every request naming one is (`certificate_unknown`).
//!
//! The identity checks apply to well-formed requests only: a message that fails the format check
//! is answered 30 whatever it claims, and acts on nothing.
//!
//! A framing error closes only its own connection. When the acquirer goes away (EOF or a failed
//! write), answers still being worked on are undeliverable: approvals among them are reversed.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use futures::future::Either;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ListenerConfig;
use crate::decision::response::{Additions, answer_bytes};
use crate::domain::{AcquirerId, Decline, ResponseCode};
use crate::iso8583::views::mti_of;
use crate::iso8583::{Message, decode_lenient};
use crate::metrics as m;
use crate::net::admission::{Admission, Certified, Gate, Policies, RateLimiter, Verdict};
use crate::net::framing::{Frame, FrameCodec, FramingConfig, FramingError};
use crate::net::server::{Outgoing, Runtime};

/// Listener limits, from `[listener]`.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    pub framing: FramingConfig,
    pub connections_max: usize,
    pub inflight_per_connection_max: usize,
    pub idle_timeout: Duration,
    pub read_timeout: Duration,
    pub requests_per_s_max: u32,
    pub requests_burst_max: u32,
}

impl SessionLimits {
    /// The limits of `[listener]` (durations of 0 are taken as 1 ms; validation refuses them).
    pub fn from_config(l: &ListenerConfig) -> SessionLimits {
        SessionLimits {
            framing: FramingConfig {
                length_header: l.framing.length_header,
                header_bytes: l.framing.header_bytes as usize,
                frame_bytes_max: l.frame_bytes_max as usize,
            },
            connections_max: l.connections_max as usize,
            inflight_per_connection_max: l.inflight_per_connection_max as usize,
            idle_timeout: Duration::from_millis(l.idle_timeout_ms.max(1)),
            read_timeout: Duration::from_millis(l.read_timeout_ms.max(1)),
            requests_per_s_max: l.requests_per_s_max,
            requests_burst_max: l.requests_burst_max,
        }
    }
}

/// What every connection of one listener shares.
pub struct Sessions {
    pub rt: Arc<Runtime>,
    pub limits: SessionLimits,
    /// `[[acquirer]]` policies; swapped whole on a reload.
    pub policies: Arc<ArcSwap<Policies>>,
    pub admission: Arc<Admission>,
    /// `[listener.tls]`: connections are TLS when set.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// With `client_ca_file`: checks a resumed session's client certificate again.
    pub resumed_check: Option<crate::net::tls::ResumedCheck>,
}

impl Sessions {
    pub fn new(
        rt: Arc<Runtime>,
        limits: SessionLimits,
        policies: Arc<ArcSwap<Policies>>,
    ) -> Arc<Sessions> {
        Sessions::build(rt, limits, policies, None)
    }

    /// The same, accepting TLS with `tls`.
    pub fn with_tls(
        rt: Arc<Runtime>,
        limits: SessionLimits,
        policies: Arc<ArcSwap<Policies>>,
        tls: crate::net::tls::ListenerTls,
    ) -> Arc<Sessions> {
        Sessions::build(rt, limits, policies, Some(tls))
    }

    fn build(
        rt: Arc<Runtime>,
        limits: SessionLimits,
        policies: Arc<ArcSwap<Policies>>,
        tls: Option<crate::net::tls::ListenerTls>,
    ) -> Arc<Sessions> {
        let (tls, resumed_check) = match tls {
            Some(t) => (
                Some(tokio_rustls::TlsAcceptor::from(t.config)),
                t.resumed_check,
            ),
            None => (None, None),
        };
        Arc::new(Sessions {
            rt,
            limits,
            policies,
            admission: Admission::new(),
            tls,
            resumed_check,
        })
    }
}

/// The acquirer listener at `address` (an `ip:port` literal, as the config requires), with room
/// for `backlog` connections that completed their TCP handshake and wait to be accepted.
/// (`TcpListener::bind` asks for 128, the standard library's choice: a burst of terminals dialing
/// per transaction overflowed it, and each connection dropped so waited a second for its
/// retransmitted SYN.)
pub async fn bind(address: &str, backlog: u32) -> std::io::Result<TcpListener> {
    let addr: SocketAddr = address.parse().map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not an ip:port socket address",
        )
    })?;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As `TcpListener::bind` does: a restarted switch can bind while old connections linger.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Accepts connections until `stop` is cancelled. Each connection is tracked by `tasks` so that
/// shutdown can wait for in-flight answers.
pub async fn serve(
    listener: TcpListener,
    sessions: Arc<Sessions>,
    stop: CancellationToken,
    tasks: TaskTracker,
) {
    let limits = sessions.limits;
    let slots = Arc::new(Semaphore::new(limits.connections_max.max(1)));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = stop.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Usually EMFILE: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            metrics::counter!(m::CONNECTIONS_REFUSED_TOTAL, "limit" => "global").increment(1);
            tracing::warn!(%peer, limit = limits.connections_max, "connection refused: connections_max reached");
            drop(stream);
            continue;
        };
        metrics::counter!(m::CONNECTIONS_ACCEPTED_TOTAL).increment(1);
        let sessions = Arc::clone(&sessions);
        let stop = stop.clone();
        let span = tracing::info_span!("acquirer_conn", %peer);
        tasks.spawn(tracing::Instrument::instrument(
            async move {
                metrics::gauge!(m::CONNECTIONS_OPEN).increment(1.0);
                let _ = stream.set_nodelay(true);
                match sessions.tls.clone() {
                    None => {
                        let (r, w) = stream.into_split();
                        connection(r, w, peer, sessions, stop).await;
                    }
                    Some(acceptor) => tls_connection(acceptor, stream, peer, sessions, stop).await,
                }
                metrics::gauge!(m::CONNECTIONS_OPEN).decrement(1.0);
                drop(permit);
            },
            span,
        ));
    }
}

/// Completes the TLS handshake (within `read_timeout_ms`) and serves the connection over it,
/// pre-bound to the acquirer its client certificate identifies, if it presented one.
async fn tls_connection(
    acceptor: tokio_rustls::TlsAcceptor,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    sessions: Arc<Sessions>,
    stop: CancellationToken,
) {
    // A failed handshake is counted before its TCP connection is closed (the fallible accept
    // hands the socket back instead of dropping it inside the handshake), so a peer that sees the
    // connection closed can rely on the failure being counted already.
    let mut accept = acceptor.accept(stream).into_fallible();
    let handshake = tokio::time::timeout(sessions.limits.read_timeout, &mut accept).await;
    let tls = match handshake {
        Ok(Ok(tls)) => tls,
        Ok(Err((e, stream))) => {
            metrics::counter!(m::TLS_HANDSHAKE_FAILURES_TOTAL, "reason" => "error").increment(1);
            // rustls errors describe the protocol step, never key material.
            tracing::warn!(error = %e, "TLS handshake failed; closing the connection");
            drop(stream);
            return;
        }
        Err(_) => {
            metrics::counter!(m::TLS_HANDSHAKE_FAILURES_TOTAL, "reason" => "timeout").increment(1);
            tracing::warn!(
                read_timeout_ms = sessions.limits.read_timeout.as_millis() as u64,
                "TLS handshake not finished in time; closing the connection"
            );
            drop(accept);
            return;
        }
    };
    let resumed = tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    if resumed && let Some(check) = &sessions.resumed_check {
        // The system clock, as rustls's own check in a full handshake uses.
        let now = rustls_pki_types::UnixTime::now();
        if let Err(reason) = check.check(tls.get_ref().1.peer_certificates(), now) {
            metrics::counter!(m::TLS_HANDSHAKE_FAILURES_TOTAL, "reason" => "certificate")
                .increment(1);
            tracing::warn!(error = %reason, "a resumed TLS session's client certificate no longer verifies; closing the connection");
            return;
        }
    }
    let kind = if resumed { "resumed" } else { "full" };
    metrics::counter!(m::TLS_HANDSHAKES_TOTAL, "kind" => kind).increment(1);
    // The chain is verified against client_ca_file: by rustls in a full handshake, and above for
    // a resumed session (restored from its ticket). The leaf's names say who it is.
    let certified = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(<[_]>::first)
        .map(|leaf| {
            sessions
                .policies
                .load()
                .certified(&crate::net::tls::certificate_names(leaf))
        });
    // Per connection, so at debug: terminals that dial per transaction open thousands a second.
    if let Some(c) = certified {
        tracing::debug!(certified = ?c, kind, "TLS client certificate accepted");
    }
    let (r, w) = tokio::io::split(tls);
    connection_as(r, w, peer, certified, sessions, stop).await;
}

/// Starting size of a session's read and write buffers; a typical request or answer fits.
const SESSION_BUFFER_BYTES: usize = 512;

/// What to do with one frame, decided before any work is spent on it.
#[expect(
    clippy::large_enum_variant,
    reason = "`Decoded` is nearly every request's step: boxing it would add an allocation per \
              request to make the rare variants smaller"
)]
enum Step {
    /// The runtime handles it: a frame whose structure could not be read, which it drops and
    /// counts.
    Process(Bytes),
    /// The runtime handles it, as decoded here (decoding it again there was about 900
    /// instructions a request: docs/performance.md, "Instructions per answer"), timed from
    /// when it was taken off the connection.
    Decoded(Message, tokio::time::Instant),
    /// Answer these bytes (a throttled request's 91): nothing was processed or journaled.
    Answer(Bytes),
    /// The runtime declines it (journaled like any decline).
    Refuse(Box<Message>, Decline),
    /// Nothing to answer (a throttled message that has no answer).
    Drop,
}

/// One connection's admission state: its identity and its rate ceiling.
struct Admit {
    gate: Gate,
    limiter: RateLimiter,
    /// Set when the connection must close once its answers are out.
    close: bool,
}

impl Admit {
    fn step(&mut self, s: &Sessions, payload: Bytes) -> Step {
        let rt = &s.rt;
        let now = tokio::time::Instant::now();
        let within = self.limiter.admit(now);
        // A message whose structure cannot be read goes to the runtime, which drops and counts it
        // (unless it is over the ceiling: then it is dropped here, without a log line per frame).
        let Ok(msg) = decode_lenient(rt.dialect, payload.clone()) else {
            if within {
                return Step::Process(payload);
            }
            self.throttled();
            return Step::Drop;
        };
        if !within {
            self.throttled();
            return match answer_bytes(
                rt.dialect,
                &msg,
                ResponseCode::IssuerInoperative,
                &Additions::default(),
            ) {
                Ok(bytes) => Step::Answer(bytes),
                Err(_) => Step::Drop,
            };
        }
        let Some(claimed) = claimed_acquirer(&msg) else {
            return Step::Decoded(msg, now);
        };
        let verdict = self.gate.check(claimed, &s.policies.load(), &s.admission);
        match verdict {
            Verdict::Pass => Step::Decoded(msg, now),
            Verdict::SourceNotAllowed(a) => {
                metrics::counter!(m::SECURITY_VIOLATIONS_TOTAL, "party" => "acquirer", "reason" => "source_not_allowed")
                    .increment(1);
                tracing::warn!(acquirer = ?a, "request names an acquirer not allowed from this source; answered 63");
                Step::Refuse(Box::new(msg), Decline::SecurityViolation)
            }
            Verdict::AcquirerChanged { bound, claimed } => {
                metrics::counter!(m::SECURITY_VIOLATIONS_TOTAL, "party" => "acquirer", "reason" => "acquirer_changed")
                    .increment(1);
                tracing::warn!(bound = ?bound, claimed = ?claimed, "request names another acquirer than its connection's; answered 63");
                Step::Refuse(Box::new(msg), Decline::SecurityViolation)
            }
            Verdict::CertificateMismatch { certified, claimed } => {
                metrics::counter!(m::SECURITY_VIOLATIONS_TOTAL, "party" => "acquirer", "reason" => "certificate_mismatch")
                    .increment(1);
                tracing::warn!(certified = ?certified, claimed = ?claimed, "request names another acquirer than its client certificate; answered 63");
                Step::Refuse(Box::new(msg), Decline::SecurityViolation)
            }
            Verdict::CertificateUnknown(claimed) => {
                metrics::counter!(m::SECURITY_VIOLATIONS_TOTAL, "party" => "acquirer", "reason" => "certificate_unknown")
                    .increment(1);
                tracing::warn!(claimed = ?claimed, "request on a connection whose client certificate identifies no acquirer; answered 63");
                Step::Refuse(Box::new(msg), Decline::SecurityViolation)
            }
            Verdict::AcquirerFull(a) => {
                metrics::counter!(m::CONNECTIONS_REFUSED_TOTAL, "limit" => "acquirer", "acquirer" => a.as_str().to_owned())
                    .increment(1);
                tracing::warn!(acquirer = ?a, "acquirer at its connections_max; answered 91, closing");
                self.close = true;
                Step::Refuse(Box::new(msg), Decline::ConnectionLimit)
            }
        }
    }

    fn throttled(&self) {
        let acquirer = self
            .gate
            .acquirer()
            .map_or_else(|| "unidentified".to_owned(), |a| a.as_str().to_owned());
        metrics::counter!(m::REQUESTS_THROTTLED_TOTAL, "acquirer" => acquirer).increment(1);
    }
}

/// The acquirer a well-formed request names in field 32, if any. Responses and messages that fail
/// the format check claim nothing.
fn claimed_acquirer(msg: &Message) -> Option<AcquirerId> {
    if msg.content_error().is_some() || !mti_of(msg).is_ok_and(|m| m.is_request()) {
        return None;
    }
    AcquirerId::from_field(&msg.get(32)?).ok()
}

/// The answer to one admitted frame, with the frame's fixed header to send it back under.
///
/// This future is moved into the connection's `FuturesUnordered`, which copies it whole into its
/// task allocation, so it is kept small: the frame's header and a pointer to the request's
/// processing, boxed here (about 3.5 KiB of state). An `async fn` taking the step would hold the
/// step twice (as its argument and as a local, 368 bytes each) and the rare refusal's state
/// inline, 1,376 bytes in all, which mimalloc serves only on its slower path for blocks above
/// 1 KiB and which was copied three times on the way into the task (docs/performance.md,
/// "Smaller futures, again"). A throttled request's ready answer needs no box.
fn answer(
    rt: &Arc<Runtime>,
    header: Bytes,
    step: Step,
) -> impl Future<Output = (Bytes, Option<Outgoing>)> + Send + 'static {
    let work: Work = match step {
        Step::Decoded(msg, started) => Box::pin(Arc::clone(rt).handle_decoded(msg, started)),
        Step::Process(payload) => {
            let rt = Arc::clone(rt);
            Box::pin(async move { rt.handle(payload).await })
        }
        Step::Refuse(msg, d) => {
            let rt = Arc::clone(rt);
            Box::pin(async move { rt.switch_decline(&msg, d, None, 0, None).await })
        }
        Step::Answer(bytes) => {
            let out = Outgoing {
                bytes,
                if_undeliverable: None,
                issuer_time: Duration::ZERO,
            };
            return Either::Right(std::future::ready((header, Some(out))));
        }
        Step::Drop => return Either::Right(std::future::ready((header, None))),
    };
    Either::Left(work.map(move |out| (header, out)))
}

/// A request's processing, boxed (see [`answer`]).
type Work = Pin<Box<dyn Future<Output = Option<Outgoing>> + Send>>;

/// Serves one acquirer connection over its two halves until the peer goes, a limit closes it, or
/// `stop` is cancelled.
pub async fn connection<R, W>(
    r: R,
    w: W,
    peer: SocketAddr,
    sessions: Arc<Sessions>,
    stop: CancellationToken,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    connection_as(r, w, peer, None, sessions, stop).await;
}

/// [`connection`] for a connection whose client certificate says `certified` (`None`: no
/// certificate, the identity comes from the first request naming a configured acquirer).
pub async fn connection_as<R, W>(
    r: R,
    w: W,
    peer: SocketAddr,
    certified: Option<Certified>,
    sessions: Arc<Sessions>,
    stop: CancellationToken,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let limits = sessions.limits;
    let rt = &sessions.rt;
    // Small starting buffers: they grow with traffic, and an idle connection then costs a few
    // KiB instead of tokio-util's default 8 KiB each way (10k idle connections: see
    // docs/performance.md).
    let mut reader =
        FramedRead::with_capacity(r, FrameCodec::new(limits.framing), SESSION_BUFFER_BYTES);
    let mut writer =
        FramedWrite::with_capacity(w, FrameCodec::new(limits.framing), SESSION_BUFFER_BYTES);
    let mut inflight = FuturesUnordered::new();
    let max = limits.inflight_per_connection_max.max(1);
    let mut admit = Admit {
        gate: match certified {
            Some(c) => Gate::certified(peer.ip(), c),
            None => Gate::new(peer.ip()),
        },
        limiter: RateLimiter::new(limits.requests_per_s_max, limits.requests_burst_max),
        close: false,
    };
    let mut reading = true;
    let mut peer_gone = false;
    // Taken once per connection: the facade's macro looks the gauge up at every call
    // (crate::metrics::RequestMeters says why that matters on this path).
    let inflight_gauge = metrics::gauge!(m::ACQUIRER_INFLIGHT);
    let mut idle_deadline = tokio::time::Instant::now() + limits.idle_timeout;
    // When the current partial frame began, for the slowloris check.
    let mut partial_since: Option<tokio::time::Instant> = None;
    let mut tick = tokio::time::interval((limits.read_timeout / 4).max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // What to do with what the reader yields: shared by the read arm of the loop and by the
    // look for a close before answers are written.
    macro_rules! on_read {
        ($frame:expr) => {
        match $frame {
            Some(Ok(f)) => {
                idle_deadline = tokio::time::Instant::now() + limits.idle_timeout;
                inflight_gauge.increment(1.0);
                let Frame { header, payload } = f;
                let step = admit.step(&sessions, payload);
                inflight.push(answer(rt, header, step));
                if admit.close {
                    reading = false;
                }
            }
            None => {
                tracing::debug!("acquirer closed the connection");
                reading = false;
                peer_gone = true;
            }
            // A TLS peer that closes the socket without close_notify, between frames: nothing
            // was cut short, so it is an ordinary close, not a framing error.
            Some(Err(FramingError::Io(e)))
                if e.kind() == std::io::ErrorKind::UnexpectedEof
                    && reader.read_buffer().is_empty() =>
            {
                tracing::debug!("acquirer closed the TLS connection without close_notify");
                reading = false;
                peer_gone = true;
            }
            Some(Err(e)) => {
                metrics::counter!(m::DROPPED_TOTAL, "reason" => "framing").increment(1);
                tracing::warn!(error = %e, "framing error; closing the connection");
                reading = false;
            }
        }
        };
    }
    tracing::debug!("acquirer connected");
    loop {
        if !reading && inflight.is_empty() {
            break;
        }
        tokio::select! {
            biased;
            Some(first) = inflight.next(), if !inflight.is_empty() => {
                // A peer that closed while its answers were being prepared will not read them:
                // look for its close first, so they count as undeliverable (and are reversed)
                // instead of vanishing into a closed socket. Whatever else is already readable
                // is taken as the read arm would.
                if reading && inflight.len() < max && let Some(frame) = reader.next().now_or_never() {
                    on_read!(frame);
                }
                // Take every answer that is ready now and write them with one flush.
                let mut ready = vec![first];
                while let Some(Some(more)) = inflight.next().now_or_never() {
                    ready.push(more);
                }
                inflight_gauge.decrement(ready.len() as f64);
                let mut wrote = false;
                for (header, out) in ready {
                    let Some(out) = out else { continue };
                    if peer_gone {
                        rt.undeliverable(out).await;
                        continue;
                    }
                    let frame = Frame { header, payload: out.bytes.clone() };
                    match writer.feed(frame).await {
                        Ok(()) => wrote = true,
                        Err(e) => {
                            tracing::info!(error = %e, "write to acquirer failed; the connection is gone");
                            peer_gone = true;
                            reading = false;
                            rt.undeliverable(out).await;
                        }
                    }
                }
                if wrote && !peer_gone && let Err(e) = writer.flush().await {
                    tracing::info!(error = %e, "flush to acquirer failed; the connection is gone");
                    peer_gone = true;
                    reading = false;
                }
            }
            frame = reader.next(), if reading && inflight.len() < max => {
                partial_since = None;
                on_read!(frame);
            }
            _ = tick.tick(), if reading => {
                // Time spent at the in-flight limit is ours, not the peer's: only a partial frame
                // we are actually waiting to read counts.
                if reader.read_buffer().is_empty() || inflight.len() >= max {
                    partial_since = None;
                } else {
                    let now = tokio::time::Instant::now();
                    let since = *partial_since.get_or_insert(now);
                    if now.duration_since(since) >= limits.read_timeout {
                        metrics::counter!(m::DROPPED_TOTAL, "reason" => "slow_frame").increment(1);
                        tracing::warn!(read_timeout_ms = limits.read_timeout.as_millis() as u64, "frame not completed in time; closing the connection");
                        reading = false;
                    }
                }
            }
            () = tokio::time::sleep_until(idle_deadline), if reading && inflight.is_empty() => {
                tracing::info!(idle_ms = limits.idle_timeout.as_millis() as u64, "idle connection closed");
                reading = false;
            }
            () = stop.cancelled(), if reading => {
                reading = false;
            }
        }
    }
    let _ = writer.flush().await;
    tracing::debug!(%peer, "acquirer connection ended");
}

#[cfg(test)]
pub(crate) mod tests;
