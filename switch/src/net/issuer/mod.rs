//! Links from the switch to one issuer's hosts: connect, sign on, keep alive, forward requests,
//! match replies, time out, reconnect, sign off.
//!
//! # What this module owns
//!
//! - An [`IssuerPool`]: the group of links to one issuer (every endpoint × `connections_per_endpoint`).
//!   Each link is one tokio task that owns its socket outright; nothing else reads or writes it.
//! - The link's session protocol: sign-on (0800/001) before any traffic, echo (0800/301) when the
//!   issuer has been quiet, sign-off (0800/002) at shutdown, and 0810/00 answers to the issuer's
//!   own network messages.
//! - Request/reply matching: each link rewrites field 11 with a STAN of its own or exactly the one
//!   the caller names ([`StanChoice`]; never one already in flight on the link: such a request
//!   waits until the STAN is free), keeps a bounded map of requests in flight keyed by that STAN,
//!   checks the reply MTI and that the reply's fields 32 and 41 (when both sides carry them) are
//!   the request's, and completes each request exactly once: with the reply,
//!   [`LinkError::Timeout`] at its deadline, or [`LinkError::LinkLost`] as soon as the connection
//!   drops.
//! - Late replies (no request in flight for their STAN, or one whose fields 32/41 differ: a reply
//!   to an earlier use of the STAN): counted, logged with the PAN masked, and published on
//!   [`IssuerPool::late_replies`] so the core can reverse a late approval.
//! - Link state ([`IssuerPool::states`], [`IssuerPool::wait_ready`]) and the issuer-link metrics.
//!
//! # What it leaves to others
//!
//! - What a reply *means* (approve, decline, stand in, reverse): the authorization core. The caller
//!   gets the issuer's decoded reply untouched, with the STAN it went out under in field 11;
//!   restoring the acquirer's STAN is the caller's job when it builds the acquirer response.
//! - Building reversals and store-and-forward: the core and the SAF queue. This module only forwards
//!   whatever fully formed request it is handed ([`OutboundRequest::mti`] lets it send an 0420).
//! - Bytes ↔ fields ([`crate::iso8583`]) and the length header ([`crate::net::framing`]).
//!
//! # Why it is built this way
//!
//! One task per socket means no locks on the hot path: callers hand a request to a link over a
//! bounded channel with a `oneshot` for the answer, and the link alone touches its in-flight map,
//! its STAN counter and its write buffer. Bounds are everywhere, so an issuer that slows down turns
//! into [`LinkError::Overloaded`] for the caller instead of unbounded memory: the queue is
//! `queue_max` long, and a link at `inflight_max` stops taking from its queue rather than drop
//! anything. Requests are encoded straight into the connection's write buffer and written in
//! batches (one flush per burst), so a few connections can carry a high request rate.
//!
//! Error kinds are chosen for what the caller must do next: [`LinkError::NoLinkReady`] (and
//! [`LinkError::StanBusy`]) means the request never reached the issuer (answer 91 or stand in),
//! [`LinkError::Timeout`] and [`LinkError::LinkLost`] mean it may have (the core queues a
//! reversal).

pub mod inflight;
mod link;

#[cfg(test)]
mod tests;

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::clock::{Clock, SystemClock};
use crate::config::{IssuerConfig, IssuerKind};
use crate::decision::security::{MacViolation, PartyMac};
use crate::domain::{Mti, Stan};
use crate::iso8583::{Dialect, EncodeError, Message};
use crate::metrics as names;
use crate::net::framing::FramingConfig;

use link::{Job, Link, LinkShared};

/// The most requests one link keeps in flight, whatever the configuration says. STANs are six
/// digits; keeping the in-flight set far below a million means a STAN is not reused while a late
/// reply to its previous use could still plausibly arrive.
pub const INFLIGHT_PER_LINK_CAP: usize = 100_000;

/// Late replies buffered for a slow [`IssuerPool::late_replies`] subscriber before it sees
/// `RecvError::Lagged`.
const LATE_REPLY_BUFFER: usize = 1024;

/// Settings for one issuer's links.
#[derive(Clone)]
pub struct IssuerLinkConfig {
    /// The issuer's id, as in `[[issuer]].id`: labels metrics and logs.
    pub issuer_id: String,
    /// The issuer's hosts.
    pub endpoints: Vec<SocketAddr>,
    /// Links to open to each endpoint (at least 1).
    pub connections_per_endpoint: usize,
    /// How long a sign-on, echo or sign-off may go unanswered, and the connect timeout
    /// (milliseconds). Request deadlines come from [`OutboundRequest::deadline`] instead.
    pub timeout_ms: u64,
    /// Requests in flight on ONE link (capped at [`INFLIGHT_PER_LINK_CAP`]). At the limit the link
    /// stops taking from its queue. [`IssuerLinkConfig::from_config`] divides the issuer-wide
    /// `[[issuer]].inflight_max` between the links.
    pub inflight_max: usize,
    /// Send an echo after the issuer has sent nothing for this long (milliseconds).
    pub echo_idle_ms: u64,
    /// First reconnect delay (milliseconds); jitter of up to a quarter is added.
    pub reconnect_backoff_min_ms: u64,
    /// The reconnect delay doubles up to this (milliseconds).
    pub reconnect_backoff_max_ms: u64,
    /// The issuer's wire dialect; requests in another (or needing a change) are re-encoded
    /// into it.
    pub dialect: &'static Dialect,
    /// The issuer's framing. A fixed header (`header_bytes > 0`) is sent as zero bytes.
    pub framing: FramingConfig,
    /// Requests waiting for ONE link (the bounded channel in front of it). Full means
    /// [`LinkError::Overloaded`].
    pub queue_max: usize,
    /// The link's MAC key (`[[issuer]].mac_key`): when set, every message the link sends is
    /// MACed and every message it receives must carry a valid MAC. Any field 64 or 128 of a
    /// forwarded request is dropped either way: a MAC covers one hop's bytes.
    pub mac: Option<PartyMac>,
    /// `[issuer.tls]`: connect with TLS. Default: none (plain TCP).
    pub tls: Option<LinkTls>,
}

/// TLS for an issuer's links.
#[derive(Clone)]
pub struct LinkTls {
    pub connector: tokio_rustls::TlsConnector,
    /// The name the host's certificate must carry; `None`: the endpoint's IP address.
    pub server_name: Option<rustls_pki_types::ServerName<'static>>,
}

impl LinkTls {
    /// From `[issuer.tls]`; the error names the key and file, never the contents.
    pub fn from_config(
        tls: &crate::config::IssuerTlsConfig,
    ) -> Result<LinkTls, crate::net::tls::TlsError> {
        let identity = tls.cert_file.as_deref().zip(tls.key_file.as_deref());
        let config = crate::net::tls::client_config(&tls.ca_file, identity)?;
        let server_name = match &tls.server_name {
            None => None,
            Some(n) => Some(
                rustls_pki_types::ServerName::try_from(n.clone())
                    .map_err(|e| crate::net::tls::TlsError::Rustls(e.to_string()))?,
            ),
        };
        Ok(LinkTls {
            connector: tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)),
            server_name,
        })
    }
}

// The dialect table is large; show which one it is.
impl fmt::Debug for IssuerLinkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuerLinkConfig")
            .field("issuer_id", &self.issuer_id)
            .field("endpoints", &self.endpoints)
            .field("connections_per_endpoint", &self.connections_per_endpoint)
            .field("timeout_ms", &self.timeout_ms)
            .field("inflight_max", &self.inflight_max)
            .field("echo_idle_ms", &self.echo_idle_ms)
            .field("reconnect_backoff_min_ms", &self.reconnect_backoff_min_ms)
            .field("reconnect_backoff_max_ms", &self.reconnect_backoff_max_ms)
            .field("dialect", &self.dialect.id.name())
            .field("framing", &self.framing)
            .field("queue_max", &self.queue_max)
            .field("mac", &self.mac)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// Why an `[[issuer]]` entry cannot become link settings. Configuration errors: the operator's
/// file, not the issuer, is at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssuerLinkConfigError {
    #[error("internal config error: issuer {issuer:?} is on-us and has no links")]
    NotRemote { issuer: String },
    #[error("internal config error: issuer {issuer:?} has no endpoints")]
    NoEndpoints { issuer: String },
    #[error(
        "internal config error: issuer {issuer:?} endpoint {endpoint:?} is not an ip:port socket address"
    )]
    BadEndpoint { issuer: String, endpoint: String },
    #[error("internal config error: issuer {issuer:?} has connections_per_endpoint = 0")]
    NoConnections { issuer: String },
}

impl IssuerLinkConfig {
    /// Link settings for a remote `[[issuer]]`, in `dialect` and `framing`.
    ///
    /// `[[issuer]].inflight_max` counts across all of the issuer's links, so each link gets an
    /// equal share (rounded up); each link's queue is as long as its share.
    pub fn from_config(
        issuer: &IssuerConfig,
        dialect: &'static Dialect,
        framing: FramingConfig,
    ) -> Result<IssuerLinkConfig, IssuerLinkConfigError> {
        let id = || issuer.id.clone();
        if issuer.kind != IssuerKind::Remote {
            return Err(IssuerLinkConfigError::NotRemote { issuer: id() });
        }
        if issuer.endpoints.is_empty() {
            return Err(IssuerLinkConfigError::NoEndpoints { issuer: id() });
        }
        if issuer.connections_per_endpoint == 0 {
            return Err(IssuerLinkConfigError::NoConnections { issuer: id() });
        }
        let endpoints = issuer
            .endpoints
            .iter()
            .map(|e| {
                e.trim()
                    .parse::<SocketAddr>()
                    .map_err(|_| IssuerLinkConfigError::BadEndpoint {
                        issuer: id(),
                        endpoint: e.clone(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let connections_per_endpoint = issuer.connections_per_endpoint as usize;
        let links = endpoints.len() * connections_per_endpoint;
        let per_link = (issuer.inflight_max as usize).div_ceil(links).max(1);
        Ok(IssuerLinkConfig {
            issuer_id: issuer.id.clone(),
            endpoints,
            connections_per_endpoint,
            timeout_ms: issuer.timeout_ms,
            inflight_max: per_link,
            echo_idle_ms: issuer.echo_idle_ms,
            reconnect_backoff_min_ms: issuer.reconnect_backoff_min_ms,
            reconnect_backoff_max_ms: issuer.reconnect_backoff_max_ms,
            dialect,
            framing,
            queue_max: per_link,
            mac: None,
            tls: None,
        })
    }

    /// Link settings for a remote `[[issuer]]` in the dialect and framing its own entry names
    /// (`dialect`, `[issuer.framing]`, `frame_bytes_max`).
    pub fn from_issuer(issuer: &IssuerConfig) -> Result<IssuerLinkConfig, IssuerLinkConfigError> {
        let framing = FramingConfig {
            length_header: issuer.framing.length_header,
            header_bytes: issuer.framing.header_bytes as usize,
            frame_bytes_max: issuer.frame_bytes_max as usize,
        };
        IssuerLinkConfig::from_config(issuer, issuer.dialect.dialect(), framing)
    }

    /// The same settings with every limit made usable (no zero timeouts, queues or links; the
    /// backoff range ordered; in-flight capped), so the link tasks need no special cases.
    fn normalized(mut self) -> IssuerLinkConfig {
        self.connections_per_endpoint = self.connections_per_endpoint.max(1);
        self.timeout_ms = self.timeout_ms.max(1);
        self.inflight_max = self.inflight_max.clamp(1, INFLIGHT_PER_LINK_CAP);
        self.echo_idle_ms = self.echo_idle_ms.max(1);
        self.reconnect_backoff_min_ms = self.reconnect_backoff_min_ms.max(1);
        self.reconnect_backoff_max_ms = self
            .reconnect_backoff_max_ms
            .max(self.reconnect_backoff_min_ms);
        self.queue_max = self.queue_max.max(1);
        self
    }
}

/// Why a request got no reply from the issuer. Each message says which side failed: `issuer …`
/// (the host or the path to it) or `internal …` (this switch).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// No link is signed on. The request was not sent.
    #[error("issuer unavailable: no link to the issuer is signed on; the request was not sent")]
    NoLinkReady,
    /// The chosen link's queue is full. The request was not sent.
    #[error("internal overload: the issuer link's request queue is full; the request was not sent")]
    Overloaded,
    /// No reply before the request's deadline. The issuer may have acted on it.
    #[error("issuer timeout: no reply before the request's deadline")]
    Timeout,
    /// The connection dropped while the request was in flight. The issuer may have acted on it.
    #[error("issuer link lost while the request was in flight; its outcome is unknown")]
    LinkLost,
    /// The links are shutting down. The request was not sent.
    #[error("internal shutdown: the issuer links take no new requests")]
    Shutdown,
    /// The request cannot be encoded in the issuer's dialect. It was not sent.
    #[error("internal encode error for the issuer's dialect: {0}")]
    Encode(#[from] EncodeError),
    /// The request cannot be framed for the issuer (e.g. it is larger than the framing allows).
    /// It was not sent. Carries the framing error's text, which starts with `internal`.
    #[error("{0}")]
    Framing(String),
    /// The MTI is not a request or advice, so no reply could ever be matched. It was not sent.
    #[error("internal error: MTI {mti} expects no reply and cannot be sent to the issuer")]
    NotARequest { mti: Mti },
    /// The request could not be MACed for the issuer. It was not sent.
    #[error("internal error: the request cannot be MACed for the issuer: {0}")]
    Mac(String),
    /// The issuer's reply came without a valid MAC, so it cannot be trusted. The issuer may have
    /// acted on the request.
    #[error("issuer reply refused: {0}")]
    BadMac(MacViolation),
    /// [`StanChoice::Exactly`] named a STAN that another request held on the chosen link until
    /// past this request's deadline (or the link went down while it waited). The request was
    /// not sent.
    #[error(
        "internal: the STAN asked for stayed in use on the issuer link; the request was not sent"
    )]
    StanBusy,
}

/// Which STAN (field 11) a request goes out under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StanChoice {
    /// The link allocates the next STAN it has not in flight (network messages, advices).
    #[default]
    Any,
    /// Exactly this STAN. If another request holds it on the chosen link, this one waits (not
    /// sent) until that one is answered or times out; if its own deadline has passed by then it
    /// is answered [`LinkError::StanBusy`], never sent. The core uses it with the acquirer's
    /// STAN so that, after a crash, a retry goes out under the STAN the issuer already saw and
    /// the issuer's own idempotency answers it.
    Exactly(Stan),
}

/// A request to forward to the issuer.
#[derive(Debug, Clone)]
pub struct OutboundRequest {
    /// The message to forward, e.g. the acquirer's decoded request. Every field is copied except
    /// field 11, which the link replaces with the STAN [`OutboundRequest::stan`] says.
    pub msg: Message,
    /// When the caller stops waiting. The link answers [`LinkError::Timeout`] at this instant.
    pub deadline: Instant,
    /// Send under this MTI instead of the message's own (e.g. an 0420 built from an 0100).
    pub mti: Option<[u8; 4]>,
    /// The STAN to send under: the link's choice, or exactly one the caller names.
    pub stan: StanChoice,
}

/// The issuer's answer.
#[derive(Debug, Clone)]
pub struct IssuerReply {
    /// The reply as the issuer sent it, decoded leniently: a content error is left in
    /// [`Message::content_error`] for the caller to judge. Field 11 is the STAN it went out under.
    pub msg: Message,
    /// From the moment the request was written into the link's buffer to the matched reply.
    pub round_trip: Duration,
}

/// A reply that matched nothing in flight: it came after its request timed out, after its caller
/// stopped waiting, or for a STAN this link never used.
#[derive(Debug, Clone)]
pub struct LateReply {
    pub issuer_id: Arc<str>,
    pub endpoint: SocketAddr,
    pub msg: Message,
}

/// Where a link is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum LinkState {
    /// Opening the TCP connection.
    Connecting = 0,
    /// Connected; the sign-on is unanswered.
    SigningOn = 1,
    /// Signed on: takes requests.
    Ready = 2,
    /// Not connected (waiting to reconnect, or stopped).
    Down = 3,
}

impl LinkState {
    const ALL: [LinkState; 4] = [
        LinkState::Connecting,
        LinkState::SigningOn,
        LinkState::Ready,
        LinkState::Down,
    ];

    fn from_u8(v: u8) -> LinkState {
        match v {
            0 => LinkState::Connecting,
            1 => LinkState::SigningOn,
            2 => LinkState::Ready,
            _ => LinkState::Down,
        }
    }

    /// The metric label: `connecting`, `signing_on`, `ready`, `down`.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Connecting => "connecting",
            LinkState::SigningOn => "signing_on",
            LinkState::Ready => "ready",
            LinkState::Down => "down",
        }
    }
}

impl fmt::Display for LinkState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One link as [`IssuerPool::states`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkStatus {
    pub endpoint: SocketAddr,
    pub state: LinkState,
    /// Requests handed to this link and not yet answered (queued or on the wire).
    pub inflight: usize,
}

/// Metric handles, registered once per pool so the hot path does no key lookups.
struct LinkMetrics {
    round_trip: Histogram,
    inflight: Gauge,
    links_ready: Gauge,
    timeouts: Counter,
    late: Counter,
    /// Indexed by `LinkState as usize`.
    state_changes: [Counter; 4],
    dropped_structure: Counter,
    dropped_unexpected: Counter,
}

impl LinkMetrics {
    fn new(issuer: &Arc<str>) -> LinkMetrics {
        let id = issuer.to_string();
        LinkMetrics {
            round_trip: metrics::histogram!(names::ISSUER_ROUND_TRIP_SECONDS, "issuer" => id.clone()),
            inflight: metrics::gauge!(names::ISSUER_INFLIGHT, "issuer" => id.clone()),
            links_ready: metrics::gauge!(names::LINKS_READY, "issuer" => id.clone()),
            timeouts: metrics::counter!(names::ISSUER_TIMEOUTS_TOTAL, "issuer" => id.clone()),
            late: metrics::counter!(names::LATE_REPLIES_TOTAL, "issuer" => id.clone()),
            state_changes: LinkState::ALL.map(|s| {
                metrics::counter!(
                    names::LINK_STATE_CHANGES_TOTAL,
                    "issuer" => id.clone(),
                    "state" => s.as_str()
                )
            }),
            dropped_structure: metrics::counter!(names::DROPPED_TOTAL, "reason" => "structure"),
            dropped_unexpected: metrics::counter!(
                names::DROPPED_TOTAL,
                "reason" => "unexpected_response"
            ),
        }
    }
}

/// What the pool and its link tasks share.
struct PoolShared {
    issuer_id: Arc<str>,
    /// Links currently ready.
    ready: watch::Sender<usize>,
    /// Link tasks still running.
    live: watch::Sender<usize>,
    late: broadcast::Sender<LateReply>,
    metrics: LinkMetrics,
}

impl PoolShared {
    /// Records `link`'s move to `to`: the state word, the ready count, metrics and the log.
    fn set_state(&self, link: &LinkShared, to: LinkState) {
        let from = LinkState::from_u8(link.state.swap(to as u8, Ordering::AcqRel));
        if from == to {
            return;
        }
        self.metrics.state_changes[to as usize].increment(1);
        if from == LinkState::Ready || to == LinkState::Ready {
            self.ready.send_modify(|n| {
                if to == LinkState::Ready {
                    *n += 1;
                } else {
                    *n = n.saturating_sub(1);
                }
            });
            self.metrics.links_ready.set(*self.ready.borrow() as f64);
        }
        tracing::info!(
            issuer = %self.issuer_id,
            endpoint = %link.endpoint,
            from = from.as_str(),
            to = to.as_str(),
            "issuer link state change"
        );
    }
}

/// Where a caller waits for its link's answer.
type ReplyRx = oneshot::Receiver<Result<IssuerReply, LinkError>>;

/// The caller's side of one link.
struct LinkHandle {
    shared: Arc<LinkShared>,
    tx: mpsc::Sender<Job>,
}

struct PoolInner {
    links: Box<[LinkHandle]>,
    shared: Arc<PoolShared>,
    shutdown: CancellationToken,
}

/// One issuer's group of links. Cloning is cheap (an `Arc`); every clone drives the same links.
/// When the last clone is dropped the links shut down as if [`IssuerPool::shutdown`] was called.
#[derive(Clone)]
pub struct IssuerPool {
    inner: Arc<PoolInner>,
}

impl fmt::Debug for IssuerPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuerPool")
            .field("issuer_id", &self.inner.shared.issuer_id)
            .field("links", &self.states())
            .finish()
    }
}

/// Keeps a link's load count and the in-flight gauge right however `send` ends (including the
/// caller dropping its future).
struct LoadGuard<'a> {
    link: &'a LinkShared,
    gauge: &'a Gauge,
}

impl<'a> LoadGuard<'a> {
    fn new(link: &'a LinkShared, gauge: &'a Gauge) -> LoadGuard<'a> {
        link.load.fetch_add(1, Ordering::Relaxed);
        gauge.increment(1.0);
        LoadGuard { link, gauge }
    }
}

impl Drop for LoadGuard<'_> {
    fn drop(&mut self) {
        self.link.load.fetch_sub(1, Ordering::Relaxed);
        self.gauge.decrement(1.0);
    }
}

impl IssuerPool {
    /// Starts one task per link (endpoints × connections per endpoint); each connects, signs on and
    /// then serves requests, reconnecting with backoff until `shutdown` is cancelled. Must be called
    /// inside a tokio runtime.
    ///
    /// Metric handles are registered here, so install the metrics recorder first.
    pub fn start(cfg: IssuerLinkConfig, shutdown: CancellationToken) -> IssuerPool {
        IssuerPool::start_with_clock(cfg, shutdown, Arc::new(SystemClock))
    }

    /// [`IssuerPool::start`] with the clock that fills field 7 (transmission date and time, UTC)
    /// of the network messages the links originate: the only wall-clock time they read.
    pub fn start_with_clock(
        cfg: IssuerLinkConfig,
        shutdown: CancellationToken,
        clock: Arc<dyn Clock>,
    ) -> IssuerPool {
        let cfg = Arc::new(cfg.normalized());
        let shutdown = shutdown.child_token();
        let issuer_id: Arc<str> = Arc::from(cfg.issuer_id.as_str());
        let (late, _) = broadcast::channel(LATE_REPLY_BUFFER);
        let shared = Arc::new(PoolShared {
            metrics: LinkMetrics::new(&issuer_id),
            issuer_id,
            ready: watch::Sender::new(0),
            live: watch::Sender::new(0),
            late,
        });
        shared.metrics.links_ready.set(0.0);
        let mut links = Vec::with_capacity(cfg.endpoints.len() * cfg.connections_per_endpoint);
        for &endpoint in &cfg.endpoints {
            for index in 0..cfg.connections_per_endpoint {
                let (tx, rx) = mpsc::channel(cfg.queue_max);
                let link_shared = Arc::new(LinkShared::new(endpoint));
                shared.live.send_modify(|n| *n += 1);
                let span = tracing::info_span!(
                    "issuer_link",
                    issuer = %shared.issuer_id,
                    endpoint = %endpoint,
                    connection = index
                );
                let link = Link::new(
                    cfg.clone(),
                    link_shared.clone(),
                    shared.clone(),
                    rx,
                    shutdown.clone(),
                    clock.clone(),
                );
                tokio::spawn(link.run().instrument(span));
                links.push(LinkHandle {
                    shared: link_shared,
                    tx,
                });
            }
        }
        IssuerPool {
            inner: Arc::new(PoolInner {
                links: links.into_boxed_slice(),
                shared,
                shutdown,
            }),
        }
    }

    /// The issuer's id.
    pub fn issuer_id(&self) -> &str {
        &self.inner.shared.issuer_id
    }

    /// Forwards `req` on the ready link with the fewest requests in flight and waits for the
    /// issuer's reply.
    ///
    /// The request is handed to a link when `send` is called, not when the future is first
    /// polled, and the failures that need no issuer come back at once: [`LinkError::NoLinkReady`]
    /// when no link is signed on, [`LinkError::Overloaded`] when the chosen link's queue is full,
    /// [`LinkError::Shutdown`] after shutdown. Otherwise the link answers by the deadline.
    /// Dropping the future abandons the request: it is not sent if it is still queued, and a
    /// reply that arrives anyway is a late reply.
    pub fn send(
        &self,
        req: OutboundRequest,
    ) -> impl Future<Output = Result<IssuerReply, LinkError>> + Send + '_ {
        // Done eagerly so the returned future stays small: it holds the reply channel and the
        // load guard, not the request.
        let queued = self.enqueue(req);
        async move {
            let (reply, _load) = queued?;
            // The link completes every job it takes; a dropped sender means the task ended with
            // the request on its hands.
            reply.await.unwrap_or(Err(LinkError::LinkLost))
        }
    }

    /// Picks a link and hands it the request.
    fn enqueue(&self, req: OutboundRequest) -> Result<(ReplyRx, LoadGuard<'_>), LinkError> {
        let inner = &*self.inner;
        if inner.shutdown.is_cancelled() {
            return Err(LinkError::Shutdown);
        }
        let digits = req.mti.unwrap_or_else(|| req.msg.mti_digits());
        let mti = Mti::from_digits(&digits).map_err(|_| EncodeError::BadMti)?;
        let expect = mti.response().ok_or(LinkError::NotARequest { mti })?;
        let link = self.pick().ok_or(LinkError::NoLinkReady)?;
        let load = LoadGuard::new(&link.shared, &inner.shared.metrics.inflight);
        let (tx, rx) = oneshot::channel();
        let job = Job {
            msg: req.msg,
            deadline: req.deadline,
            mti,
            expect,
            tx,
            stan: req.stan,
        };
        link.tx.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => LinkError::Overloaded,
            mpsc::error::TrySendError::Closed(_) if inner.shutdown.is_cancelled() => {
                LinkError::Shutdown
            }
            mpsc::error::TrySendError::Closed(_) => LinkError::NoLinkReady,
        })?;
        Ok((rx, load))
    }

    /// The ready link with the fewest requests in flight. Ties go to whichever comes first from a
    /// random starting point, so an idle pool still spreads its traffic.
    fn pick(&self) -> Option<&LinkHandle> {
        let links = &self.inner.links;
        let n = links.len();
        if n == 0 {
            return None;
        }
        let start = fastrand::usize(..n);
        let mut best: Option<(&LinkHandle, usize)> = None;
        for i in 0..n {
            let link = &links[(start + i) % n];
            if link.shared.state() != LinkState::Ready {
                continue;
            }
            let load = link.shared.load.load(Ordering::Relaxed);
            if best.is_none_or(|(_, b)| load < b) {
                best = Some((link, load));
                if load == 0 {
                    break;
                }
            }
        }
        best.map(|(link, _)| link)
    }

    /// Every link's endpoint, state and load, in start order (endpoint by endpoint).
    pub fn states(&self) -> Vec<LinkStatus> {
        self.inner
            .links
            .iter()
            .map(|l| LinkStatus {
                endpoint: l.shared.endpoint,
                state: l.shared.state(),
                inflight: l.shared.load.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Links currently ready.
    pub fn ready_count(&self) -> usize {
        *self.inner.shared.ready.borrow()
    }

    /// [`IssuerPool::ready_count`] as it changes, e.g. to wait for the links to notice that the
    /// issuer went away (`ready_watch().wait_for(|&n| n == 0)`).
    pub fn ready_watch(&self) -> watch::Receiver<usize> {
        self.inner.shared.ready.subscribe()
    }

    /// Resolves once at least `n` links are ready, or with [`LinkError::Shutdown`] if the pool
    /// shuts down first. The future owns what it needs, so it can be spawned.
    pub fn wait_ready(
        &self,
        n: usize,
    ) -> impl Future<Output = Result<(), LinkError>> + Send + 'static {
        let mut ready = self.inner.shared.ready.subscribe();
        let shutdown = self.inner.shutdown.clone();
        async move {
            tokio::select! {
                r = ready.wait_for(|&count| count >= n) => r.map(|_| ()).map_err(|_| LinkError::Shutdown),
                () = shutdown.cancelled() => Err(LinkError::Shutdown),
            }
        }
    }

    /// Replies that matched no request in flight, from now on. Every late reply is also counted
    /// (`switchyard_late_replies_total`) and logged; a subscriber that falls more than 1024 behind
    /// is told how many it missed (`RecvError::Lagged`). Network (08xx) replies are not published.
    pub fn late_replies(&self) -> broadcast::Receiver<LateReply> {
        self.inner.shared.late.subscribe()
    }

    /// Stops taking requests and closes every link gracefully: in-flight requests get their reply
    /// or their deadline, then each link signs off. The token given to `start` does the same.
    pub fn shutdown(&self) {
        self.inner.shutdown.cancel();
    }

    /// Resolves when every link task has finished (after [`IssuerPool::shutdown`]).
    pub fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut live = self.inner.shared.live.subscribe();
        async move {
            // The sender lives in the shared state this receiver's pool keeps alive; if it is
            // gone, so are the tasks.
            let _ = live.wait_for(|&n| n == 0).await;
        }
    }
}
