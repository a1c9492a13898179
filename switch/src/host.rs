//! An issuer host: the server end of the switch's issuer links, deciding with the issuing engine.
//! `issuer-sim` is this module behind a command line, and `switch demo` runs it in-process on its
//! own TCP ports so that traffic really crosses TCP.
//!
//! It answers network management (0800 → 0810/00), authorizations and financial requests
//! (0100/0200 and their advices 0120/0220 → +10), and reversals (0400/0420 → +10). Each ledger
//! change is journaled (the same record format as the switch's journal) before the answer, and a
//! restart replays the journal to the same balances.
//!
//! For tests it can misbehave on purpose ([`Faults`]): answer late, drop answers at random, close
//! connections after N requests, or stop answering requests after N (while still answering
//! network management, so links stay up and requests time out).
//!
//! Security ([`HostSecurity`], from the issuer file's `[security]`): PIN blocks arrive under the
//! issuer's zone PIN key (the switch translates them); the host's security module deciphers
//! each and lends the clear block to the engine for the PVV check. A block that does not
//! decipher is answered 55 without a PIN try; PIN data without a zone PIN key too. With a MAC
//! key, every message from the switch must carry a valid MAC (else 63, or no 0810 to an 0800)
//! and every answer carries one.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::Clock;
use crate::decision::response::{Additions, with_answer};
use crate::decision::security::{PartyMac, pin_block, verify_pin};
use crate::domain::{Mti, ResponseCode};
use crate::events::Record;
use crate::iso8583::views::{AuthorizationRequest, ReversalRequest, mti_of};
use crate::iso8583::{Dialect, Message, MessageBuilder, decode_lenient};
use crate::issuing::{
    Engine, IssuerFile, IssuingRequest, LedgerEvent, Outcome, PinCheck, SNAPSHOT_SLICE,
};
use crate::journal::{
    AppendTicket, Background, FileJournal, Journal, JournalOptions, WritePace, in_background,
};
use crate::net::framing::{Frame, FrameCodec, FramingConfig};
use crate::onus::{sweep_journaled, with_ledger_record};
use crate::security::{
    KeyId, KeyPurpose, KeysFile, PinSource, SecurityModule, SoftwareSecurityModule,
};

/// Deliberate misbehaviour, for tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Wait this long before answering each request (not network management).
    pub delay_ms: u64,
    /// Leave this fraction of requests unanswered (0.0–1.0).
    pub drop_rate: f64,
    /// Close each connection after it has carried this many requests.
    pub close_after: Option<u64>,
    /// After this many requests in total, answer no more requests (network management still
    /// gets answers, so the links stay up).
    pub stop_answering_after: Option<u64>,
    /// Answer requests with a MAC that does not verify (network management keeps good MACs, so
    /// the links stay up). Only with a MAC key.
    pub garble_mac: bool,
}

/// How the host listens and speaks.
#[derive(Debug, Clone)]
pub struct HostConfig {
    pub address: String,
    pub dialect: &'static Dialect,
    pub framing: FramingConfig,
    pub faults: Faults,
    /// Write a checkpoint into this journal directory every `checkpoint_every` ledger events and
    /// at shutdown, so that a restart replays only the journal's tail.
    pub checkpoint_dir: Option<std::path::PathBuf>,
    /// Ledger events between checkpoints, at least; once the engine holds more idempotency
    /// records than this, the gap grows to the number of records the last checkpoint held (see
    /// `maybe_checkpoint`).
    pub checkpoint_every: u64,
    /// How fast a periodic checkpoint's file is written ([`WritePace`]); the one at shutdown is
    /// written as fast as the disk takes it. The host keeps a copy of its own
    /// ([`WritePace::detached`]): hurrying it at shutdown leaves this one as it is.
    pub checkpoint_pace: WritePace,
    /// Zone PIN key and link MAC key; `None`: PIN blocks are not accepted (55) and nothing is
    /// MACed.
    pub security: Option<HostSecurity>,
    /// Accept the switch's links over TLS with this configuration (see
    /// [`crate::net::tls::server_config`]). `None`: plain TCP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Most connections open at once (connections); one more is closed unread.
    pub connections_max: usize,
    /// Most requests being answered at once on one connection (requests). At it the host stops
    /// reading that connection until an answer goes out, so a stalled host pushes back on the
    /// switch through TCP instead of piling up work.
    pub inflight_per_connection_max: usize,
}

/// Default [`HostConfig::connections_max`]: a switch opens a few links per issuer.
pub const HOST_CONNECTIONS_MAX_DEFAULT: usize = 64;
/// Default [`HostConfig::inflight_per_connection_max`]: the switch's default in-flight limit per
/// link.
pub const HOST_INFLIGHT_PER_CONNECTION_MAX_DEFAULT: usize = 4096;

/// The issuer host's keys in its security module: the zone PIN key the switch sends PIN
/// blocks under, and the link's MAC key.
#[derive(Clone)]
pub struct HostSecurity {
    pub module: Arc<dyn SecurityModule>,
    pub pin_key: Option<KeyId>,
    pub mac_key: Option<KeyId>,
}

impl std::fmt::Debug for HostSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostSecurity")
            .field("pin_key", &self.pin_key)
            .field("mac_key", &self.mac_key)
            .finish_non_exhaustive()
    }
}

impl HostSecurity {
    /// The keys the issuer file's `[security]` names, held by a module built from `keys`;
    /// `None` when it names none. Errors name the key id, never a key.
    pub fn from_keys(file: &IssuerFile, keys: &KeysFile) -> Result<Option<HostSecurity>, String> {
        let sec = &file.security;
        if sec.pin_key.is_none() && sec.mac_key.is_none() {
            return Ok(None);
        }
        let module = SoftwareSecurityModule::from_keys(keys).map_err(|e| e.to_string())?;
        let id = |text: &Option<String>, purpose: KeyPurpose| -> Result<Option<KeyId>, String> {
            let Some(text) = text else { return Ok(None) };
            let id: KeyId = text.parse().map_err(|e| format!("{text:?}: {e}"))?;
            match module.key_kind(&id) {
                Some(kind) if kind.purpose() == purpose => Ok(Some(id)),
                Some(_) => Err(format!("security: {id} is not {purpose}")),
                None => Err(format!("security: {id} is not in the keys file")),
            }
        };
        let pin_key = id(&sec.pin_key, KeyPurpose::Zpk)?;
        let mac_key = id(&sec.mac_key, KeyPurpose::Mac)?;
        Ok(Some(HostSecurity {
            module: Arc::new(module),
            pin_key,
            mac_key,
        }))
    }

    /// [`HostSecurity::from_keys`] with the keys file at `keys_path`, or the one the issuer
    /// file names (`[security] keys_file`, relative to the working directory).
    pub fn load(
        file: &IssuerFile,
        keys_path: Option<&Path>,
    ) -> Result<Option<HostSecurity>, String> {
        let sec = &file.security;
        if sec.pin_key.is_none() && sec.mac_key.is_none() {
            return Ok(None);
        }
        let path = match (keys_path, &sec.keys_file) {
            (Some(p), _) => p.to_owned(),
            (None, Some(p)) => std::path::PathBuf::from(p),
            (None, None) => {
                return Err("security: keys_file is required with pin_key or mac_key".into());
            }
        };
        let keys = KeysFile::load(&path).map_err(|e| e.to_string())?;
        HostSecurity::from_keys(file, &keys)
    }

    fn mac(&self) -> Option<PartyMac> {
        self.mac_key
            .clone()
            .map(|k| PartyMac::new(self.module.clone(), k))
    }
}

/// Why the host did not start.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("issuer host: cannot listen on {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
    #[error("issuer host: journal: {0}")]
    Journal(#[from] crate::journal::JournalError),
}

struct Shared {
    engine: Arc<Engine>,
    journal: Arc<dyn Journal>,
    clock: Arc<dyn Clock>,
    dialect: &'static Dialect,
    faults: Faults,
    /// Requests received (not network management). A watch rather than a counter so that tests
    /// and the demo can wait for the host to have seen N requests without polling.
    requests: watch::Sender<u64>,
    issuer: String,
    checkpoint_dir: Option<std::path::PathBuf>,
    checkpoint_every: u64,
    checkpoint_pace: WritePace,
    events: AtomicU64,
    /// The event count at which the next checkpoint is due.
    next_checkpoint: Arc<AtomicU64>,
    /// Held across a checkpoint's snapshot and write, periodic or at shutdown: both write the
    /// same temporary file, and a shutdown during a periodic checkpoint must wait for it
    /// instead of truncating the file under it. A periodic checkpoint due while it is held is
    /// not taken.
    checkpoint_lock: Arc<tokio::sync::Mutex<()>>,
    /// Checkpoints written since start (periodic and at shutdown).
    checkpoints: Arc<watch::Sender<u64>>,
    security: Option<HostSecurity>,
    /// The link's MAC key, when it has one.
    mac: Option<PartyMac>,
}

/// A running issuer host.
pub struct IssuerHost {
    local_addr: SocketAddr,
    stop: CancellationToken,
    tasks: TaskTracker,
    shared: Arc<Shared>,
    file_journal: Option<Arc<FileJournal>>,
}

/// The checkpoint file in an issuer's journal directory.
pub const CHECKPOINT_FILE: &str = "checkpoint.bin";

/// A checkpoint: the engine's state after every ledger event up to journal LSN `lsn`.
#[derive(serde::Serialize, serde::Deserialize)]
struct Checkpoint {
    lsn: u64,
    snapshot: crate::issuing::Snapshot,
}

/// What [`open_journal`] found.
#[derive(Debug, Clone, Copy, Default)]
pub struct Replayed {
    /// Ledger events applied from the journal.
    pub events: usize,
    /// The checkpoint's LSN, if one was restored.
    pub checkpoint_lsn: Option<u64>,
    /// Journal records recovered after the checkpoint (segments the checkpoint covers wholly are
    /// not read at all).
    pub records: usize,
}

/// Writes a checkpoint of `engine` covering the journal up to `lsn`: to a temporary file,
/// fsynced, then renamed over the old one, so a crash leaves either checkpoint whole. As fast as
/// the disk takes it: for shutdown and tools, where nothing waits behind it.
pub fn write_checkpoint(dir: &Path, lsn: u64, engine: &Engine) -> std::io::Result<()> {
    write_snapshot(dir, lsn, engine.snapshot(), WritePace::unpaced()).map(|_| ())
}

/// Writes a snapshot taken earlier. Every event in it must already be durable in the journal:
/// the checkpoint must never hold a change whose answer a crash could still lose.
/// The file is written at no more than `pace` ([`WritePace`]); returns its size in bytes.
pub fn write_snapshot(
    dir: &Path,
    lsn: u64,
    snapshot: crate::issuing::Snapshot,
    pace: WritePace,
) -> std::io::Result<u64> {
    let cp = Checkpoint { lsn, snapshot };
    // Encoded straight into the paced file, not into one buffer first: see `DurableFile`.
    let file = crate::journal::DurableFile::create(dir, CHECKPOINT_FILE, pace)?;
    let file = postcard::to_extend(&cp, file).map_err(std::io::Error::other)?;
    file.commit()
}

/// Opens the issuer's journal in `dir`, restores the checkpoint if there is one, and replays the
/// ledger events the checkpoint does not cover. A checkpoint that does not belong to this issuer
/// file (or does not decode) is ignored and the whole journal replayed. `opts` is the host's
/// `sync` alone (the rest default) or whole [`JournalOptions`].
pub fn open_journal(
    dir: &Path,
    opts: impl Into<JournalOptions>,
    engine: &Engine,
) -> Result<(Arc<FileJournal>, Replayed), HostError> {
    let opts = opts.into();
    // The checkpoint is restored first so the journal need not read the segments it covers.
    let mut from = 0u64;
    let mut checkpoint_lsn = None;
    if let Ok(bytes) = std::fs::read(dir.join(CHECKPOINT_FILE)) {
        match postcard::from_bytes::<Checkpoint>(&bytes) {
            Ok(cp) => match engine.restore(&cp.snapshot) {
                Ok(()) => {
                    from = cp.lsn;
                    checkpoint_lsn = Some(cp.lsn);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "checkpoint belongs to another issuer file; replaying the whole journal")
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "checkpoint does not decode; replaying the whole journal")
            }
        }
    }
    let (journal, recovered) = FileJournal::open_after(dir, opts, from)?;
    let mut replayed = Replayed {
        records: recovered.records.len(),
        checkpoint_lsn,
        ..Replayed::default()
    };
    let mut events = Vec::new();
    for (lsn, bytes) in &recovered.records {
        if *lsn <= from {
            continue;
        }
        if let Ok(Record::Ledger { event, .. }) = Record::decode(bytes) {
            match LedgerEvent::decode(&event) {
                Ok(ev) => events.push(ev),
                Err(e) => {
                    tracing::error!(error = %e, "journaled ledger event does not decode; skipped")
                }
            }
        }
    }
    replayed.events = match engine.replay(events) {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(error = %e, "journal replay stopped at an event that does not apply");
            0
        }
    };
    Ok((Arc::new(journal), replayed))
}

impl IssuerHost {
    /// Binds and starts serving. `journal` receives every ledger change; pass the journal from
    /// [`open_journal`] (its `FileJournal` is flushed at shutdown when given as `file_journal`).
    pub async fn start(
        cfg: HostConfig,
        engine: Arc<Engine>,
        journal: Arc<dyn Journal>,
        file_journal: Option<Arc<FileJournal>>,
        clock: Arc<dyn Clock>,
    ) -> Result<IssuerHost, HostError> {
        let listener = TcpListener::bind(&cfg.address)
            .await
            .map_err(|source| HostError::Bind {
                address: cfg.address.clone(),
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| HostError::Bind {
            address: cfg.address.clone(),
            source,
        })?;
        let shared = Arc::new(Shared {
            issuer: engine.issuer().to_owned(),
            engine,
            journal,
            clock,
            dialect: cfg.dialect,
            faults: cfg.faults,
            requests: watch::Sender::new(0),
            checkpoint_dir: cfg.checkpoint_dir.clone(),
            checkpoint_every: cfg.checkpoint_every.max(1),
            checkpoint_pace: cfg.checkpoint_pace.detached(),
            events: AtomicU64::new(0),
            next_checkpoint: Arc::new(AtomicU64::new(cfg.checkpoint_every.max(1))),
            checkpoint_lock: Arc::new(tokio::sync::Mutex::new(())),
            checkpoints: Arc::new(watch::Sender::new(0)),
            mac: cfg.security.as_ref().and_then(HostSecurity::mac),
            security: cfg.security.clone(),
        });
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        {
            let shared = Arc::clone(&shared);
            let stop = stop.clone();
            let tasks2 = tasks.clone();
            let framing = cfg.framing;
            let tls = cfg.tls.clone().map(tokio_rustls::TlsAcceptor::from);
            let (connections_max, inflight_max) = (
                cfg.connections_max.max(1),
                cfg.inflight_per_connection_max.max(1),
            );
            let slots = Arc::new(tokio::sync::Semaphore::new(connections_max));
            tasks.spawn(async move {
                loop {
                    let accepted = tokio::select! {
                        a = listener.accept() => a,
                        () = stop.cancelled() => return,
                    };
                    match accepted {
                        Ok((stream, peer)) => {
                            // Held by the connection's task until it ends.
                            let Ok(seat) = Arc::clone(&slots).try_acquire_owned() else {
                                tracing::warn!(issuer = %shared.issuer, %peer, connections_max, "connection refused: connections_max reached");
                                drop(stream);
                                continue;
                            };
                            tracing::info!(issuer = %shared.issuer, %peer, "switch connected");
                            let _ = stream.set_nodelay(true);
                            let shared = Arc::clone(&shared);
                            let stop = stop.clone();
                            let tls = tls.clone();
                            tasks2.spawn(async move {
                                let _seat = seat;
                                match tls {
                                    None => {
                                        let (r, w) = stream.into_split();
                                        connection(r, w, shared, framing, inflight_max, stop)
                                            .await;
                                    }
                                    Some(acceptor) => match acceptor.accept(stream).await {
                                        Ok(s) => {
                                            let (r, w) = tokio::io::split(s);
                                            connection(r, w, shared, framing, inflight_max, stop)
                                                .await;
                                        }
                                        Err(e) => tracing::warn!(
                                            error = %e,
                                            "TLS handshake with the switch failed"
                                        ),
                                    },
                                }
                            });
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            });
        }
        if shared.engine.sweep_interval_s() > 0 {
            tasks.spawn(sweeps(Arc::clone(&shared), stop.clone()));
        }
        tracing::info!(issuer = %shared.issuer, %local_addr, "issuer host listening");
        Ok(IssuerHost {
            local_addr,
            stop,
            tasks,
            shared,
            file_journal,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.shared.engine
    }

    /// Requests received so far (not network management).
    pub fn requests(&self) -> u64 {
        *self.shared.requests.borrow()
    }

    /// [`IssuerHost::requests`] as it changes, to wait for the host to have seen some.
    pub fn requests_watch(&self) -> watch::Receiver<u64> {
        self.shared.requests.subscribe()
    }

    /// Checkpoints written since start as the count changes; a new value means the checkpoint
    /// file was just replaced whole.
    pub fn checkpoints_watch(&self) -> watch::Receiver<u64> {
        self.shared.checkpoints.subscribe()
    }

    /// Stops listening, closes connections, flushes the journal, and writes a checkpoint at full
    /// speed (a periodic one still being written first finishes without pauses).
    pub async fn shutdown(self) {
        self.stop.cancel();
        self.shared.checkpoint_pace.hurry();
        self.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.tasks.wait()).await;
        if let Some(j) = &self.file_journal {
            match j.flush().await {
                Ok(lsn) => {
                    if let Some(dir) = &self.shared.checkpoint_dir
                        && lsn > 0
                    {
                        // After a periodic checkpoint still running, never beside it.
                        let _one_at_a_time = self.shared.checkpoint_lock.lock().await;
                        // Off the runtime's workers: other hosts and the switch may share them,
                        // and the copy, the write and the fsync take tens of milliseconds.
                        let (dir, engine) = (dir.clone(), Arc::clone(&self.shared.engine));
                        let written = tokio::task::spawn_blocking(move || {
                            write_checkpoint(&dir, lsn, &engine)
                        })
                        .await;
                        match written {
                            Ok(Ok(())) => {
                                self.shared.checkpoints.send_modify(|n| *n += 1);
                            }
                            Ok(Err(e)) => {
                                tracing::error!(error = %e, "checkpoint at shutdown failed")
                            }
                            Err(e) => {
                                tracing::error!(error = %e, "checkpoint task at shutdown failed")
                            }
                        }
                    }
                }
                Err(e) => tracing::error!(error = %e, "issuer journal flush failed"),
            }
            j.close();
        }
    }
}

async fn connection<R, W>(
    r: R,
    w: W,
    shared: Arc<Shared>,
    framing: FramingConfig,
    inflight_max: usize,
    stop: CancellationToken,
) where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut reader = FramedRead::new(r, FrameCodec::new(framing));
    let mut writer = FramedWrite::new(w, FrameCodec::new(framing));
    let mut inflight = FuturesUnordered::new();
    let mut carried = 0u64;
    let mut reading = true;
    loop {
        if !reading && inflight.is_empty() {
            break;
        }
        tokio::select! {
            Some(first) = inflight.next(), if !inflight.is_empty() => {
                // Every answer that is ready now goes out with one flush: a write system call
                // per answer was most of this task's time under load.
                let mut next = Some(first);
                let mut wrote = false;
                while let Some((header, answer)) = next.take() {
                    if let Some(payload) = answer {
                        if writer.feed(Frame { header, payload }).await.is_err() {
                            return;
                        }
                        wrote = true;
                    }
                    next = inflight.next().now_or_never().flatten();
                }
                if wrote && writer.flush().await.is_err() {
                    break;
                }
            }
            frame = reader.next(), if reading && inflight.len() < inflight_max => match frame {
                Some(Ok(Frame { header, payload })) => {
                    let task_shared = Arc::clone(&shared);
                    let is_request = !payload.get(..4).is_some_and(|m| m.starts_with(b"08"));
                    if is_request {
                        carried += 1;
                    }
                    // Boxed, and the header carried beside the box: the connection's
                    // `FuturesUnordered` copies what it is given into its task allocation,
                    // and a request's whole state (1,008 bytes) made that allocation one
                    // that mimalloc serves only on its slower path (above 1 KiB), copied three
                    // times on the way in (as the switch's acquirer loop, `net::acquirer`).
                    let work = Box::pin(async move { handle(&task_shared, payload).await });
                    inflight.push(work.map(move |answer| (header, answer)));
                    if let Some(n) = shared.faults.close_after
                        && carried >= n
                    {
                        tracing::info!(issuer = %shared.issuer, after = n, "fault injection: closing the connection");
                        return;
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "framing error from the switch; closing");
                    reading = false;
                }
                None => reading = false,
            },
            () = stop.cancelled(), if reading => reading = false,
        }
    }
}

async fn handle(shared: &Shared, payload: Bytes) -> Option<Bytes> {
    let msg = match decode_lenient(shared.dialect, payload) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "unreadable message from the switch; dropped");
            return None;
        }
    };
    let mti = mti_of(&msg).ok()?;
    if let Some(mac) = &shared.mac
        && let Err(v) = mac.check(&msg)
    {
        tracing::warn!(issuer = %shared.issuer, mti = %mti, violation = %v, "message from the switch refused: MAC");
        if mti.class() == 8 {
            // No 0810: the switch's link treats the 0800 as unanswered.
            return None;
        }
        return answer(shared, &msg, ResponseCode::SecurityViolation, None);
    }
    if mti.class() == 8 {
        return network(shared, &msg, mti);
    }
    let mut n = 0;
    shared.requests.send_modify(|count| {
        *count += 1;
        n = *count;
    });
    let f = &shared.faults;
    if f.stop_answering_after.is_some_and(|limit| n > limit) {
        tracing::info!(issuer = %shared.issuer, "fault injection: not answering");
        return None;
    }
    if f.drop_rate > 0.0 && fastrand::f64() < f.drop_rate {
        tracing::info!(issuer = %shared.issuer, "fault injection: dropping an answer");
        return None;
    }
    if f.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(f.delay_ms)).await;
    }
    let now = shared.clock.now();
    let base = mti.original();
    let (outcome, ticket) = if base == Mti::REVERSAL_REQUEST || base == Mti::REVERSAL_ADVICE {
        match ReversalRequest::from_message(&msg) {
            Ok(r) => process(shared, &IssuingRequest::from_reversal(&r), now),
            Err(e) => return answer(shared, &msg, e.response_code(), None),
        }
    } else {
        let req = match AuthorizationRequest::from_message(&msg) {
            Ok(r) => r,
            Err(e) => return answer(shared, &msg, e.response_code(), None),
        };
        let pin = match pin_check(shared, &req) {
            Ok(p) => p,
            Err(code) => return answer(shared, &msg, code, None),
        };
        match IssuingRequest::from_authorization(&req, pin) {
            Ok(ir) => process(shared, &ir, now),
            Err(d) => return answer(shared, &msg, d.response_code(), None),
        }
    };
    if let Some(t) = ticket {
        match t.await {
            Ok(lsn) => maybe_checkpoint(shared, lsn),
            Err(e) => {
                tracing::error!(error = %e, "issuer journal failed; answering 96");
                return answer(shared, &msg, ResponseCode::SystemMalfunction, None);
            }
        }
    }
    answer(shared, &msg, outcome.response_code(), Some(&outcome))
}

/// When a checkpoint is due, writes one covering the journal up to `lsn` on a low-priority
/// thread ([`in_background`]). One at a time, the shutdown checkpoint included: a checkpoint
/// due while one is running waits for the next event after it.
///
/// Due every `checkpoint_every` events at first, then every as many events as the last
/// checkpoint held idempotency records, whichever is more. A checkpoint writes every record the
/// engine holds (30 days of them), so at a fixed interval its cost per event would grow with the
/// engine's state: in a 10-minute soak the files grew to 188 MB, written every 24 s, and each one
/// stalled the host and the disk for seconds. With the gap at least the size of the last
/// checkpoint, checkpoints write about one record per event at most, as the journal does, and a
/// restart replays a tail no longer than the checkpoint it starts from.
fn maybe_checkpoint(shared: &Shared, lsn: u64) {
    let n = shared.events.fetch_add(1, Ordering::Relaxed) + 1;
    let Some(dir) = &shared.checkpoint_dir else {
        return;
    };
    if n < shared.next_checkpoint.load(Ordering::Acquire) {
        return;
    }
    let Ok(one_at_a_time) = Arc::clone(&shared.checkpoint_lock).try_lock_owned() else {
        return;
    };
    let every = shared.checkpoint_every;
    let pace = shared.checkpoint_pace.clone();
    let next = Arc::clone(&shared.next_checkpoint);
    let dir = dir.clone();
    let engine = Arc::clone(&shared.engine);
    let journal = Arc::clone(&shared.journal);
    let written_tx = Arc::clone(&shared.checkpoints);
    tokio::spawn(async move {
        let _one_at_a_time = one_at_a_time;
        let started = std::time::Instant::now();
        // The snapshot may hold events applied after `lsn` whose appends are still queued;
        // flushing after taking it makes every one of them durable before the file exists.
        // Freezing takes each account's lock: nice 19, not the idle policy (`Background`).
        let snap_pace = pace.clone();
        let snap = match in_background(Background::Low, move || {
            engine.snapshot_with_pauses(SNAPSHOT_SLICE, || !snap_pace.hurried())
        })
        .await
        {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "checkpoint snapshot failed");
                return;
            }
        };
        if let Err(e) = journal.flush().await {
            tracing::error!(error = %e, "journal flush before a checkpoint failed; no checkpoint written");
            return;
        }
        let records = u64::try_from(snap.record_count()).unwrap_or(u64::MAX);
        let written = in_background(Background::Idle, move || {
            write_snapshot(&dir, lsn, snap, pace)
        })
        .await;
        let gap = match written {
            Ok(Ok(bytes)) => {
                tracing::info!(
                    lsn,
                    records,
                    bytes,
                    ms = started.elapsed().as_millis() as u64,
                    "checkpoint written"
                );
                written_tx.send_modify(|n| *n += 1);
                every.max(records)
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "checkpoint failed");
                every
            }
            Err(e) => {
                tracing::error!(error = %e, "checkpoint task failed");
                every
            }
        };
        next.store(n.saturating_add(gap), Ordering::Release);
    });
}

/// Sweeps the engine every `[ledger] sweep_interval_s` until `stop` ([`crate::net::sweep_every`]):
/// expired holds released and idempotency records past their window forgotten on accounts with
/// no requests of their own. Each change is journaled before it is made, as a request's is.
async fn sweeps(shared: Arc<Shared>, stop: CancellationToken) {
    let every = Duration::from_secs(u64::from(shared.engine.sweep_interval_s()));
    let s = Arc::clone(&shared);
    let pass = Arc::new(move || {
        sweep_journaled(&s.engine, &s.issuer, &*s.clock, &*s.journal, s.clock.now())
    });
    let journal = Arc::clone(&shared.journal);
    crate::net::sweep_every(every, stop, journal, pass, |events| {
        if events > 0 {
            tracing::debug!(issuer = %shared.issuer, events, "sweep");
        }
    })
    .await;
}

fn process(
    shared: &Shared,
    req: &IssuingRequest,
    now: chrono::NaiveDateTime,
) -> (Outcome, Option<AppendTicket>) {
    let mut ticket = None;
    let outcome = shared
        .engine
        .process_with(req, now, now.date(), |ev: &LedgerEvent| {
            // Refused at once, the engine leaves the account unchanged and answers 96.
            let queued =
                with_ledger_record(&shared.issuer, shared.clock.now_ms(), ev, |payload| {
                    shared.journal.append(payload).queued()
                })?;
            ticket = Some(queued.map_err(|_| ())?);
            Ok::<(), ()>(())
        });
    (outcome, ticket)
}

/// The engine's verdict on the request's PIN, or the answer when the PIN block cannot be read.
fn pin_check(shared: &Shared, req: &AuthorizationRequest<'_>) -> Result<PinCheck, ResponseCode> {
    let Some(block) = pin_block(req) else {
        return Ok(PinCheck::Absent);
    };
    let Some((sec, key)) = shared
        .security
        .as_ref()
        .and_then(|s| s.pin_key.as_ref().map(|k| (s, k)))
    else {
        tracing::warn!(issuer = %shared.issuer, "PIN block received but no zone PIN key is configured; 55");
        return Err(ResponseCode::IncorrectPin);
    };
    verify_pin(
        &*sec.module,
        PinSource::Zone(key),
        &req.pan,
        &block,
        |clear| shared.engine.verify_pin_block(&req.pan, clear),
    )
    .map_err(|refusal| {
        tracing::warn!(issuer = %shared.issuer, %refusal, "PIN block refused");
        refusal.decline().response_code()
    })
}

/// `b` encoded, with a MAC when the link has a MAC key.
fn encode(shared: &Shared, b: &mut MessageBuilder<'_>) -> Option<Bytes> {
    let garble = shared.faults.garble_mac && !b.mti().starts_with(b"08");
    let bytes = match &shared.mac {
        None => b.to_bytes().map_err(|e| e.to_string()),
        Some(mac) => mac
            .to_bytes(b)
            .map(|bytes| {
                if !garble {
                    return bytes;
                }
                tracing::info!(issuer = %shared.issuer, "fault injection: a MAC that does not verify");
                let mut v = bytes.to_vec();
                if let Some(last) = v.last_mut() {
                    *last ^= 0x5A;
                }
                Bytes::from(v)
            })
            .map_err(|e| e.to_string()),
    };
    bytes
        .map_err(|e| tracing::error!(issuer = %shared.issuer, error = %e, "answer does not encode; dropped"))
        .ok()
}

fn network(shared: &Shared, msg: &Message, mti: Mti) -> Option<Bytes> {
    if mti != Mti::NETWORK_REQUEST {
        return None;
    }
    let mut b = MessageBuilder::new(shared.dialect, Mti::NETWORK_RESPONSE.to_digits());
    b.copy_fields(msg, &[7, 11, 70]);
    b.set(39, b"00");
    encode(shared, &mut b)
}

fn answer(
    shared: &Shared,
    msg: &Message,
    code: ResponseCode,
    outcome: Option<&Outcome>,
) -> Option<Bytes> {
    let approval = outcome.and_then(|o| o.result.as_ref().ok());
    let auth = approval.map(|a| a.auth_code);
    let approved = approval
        .filter(|a| a.code == ResponseCode::ApprovedPartial)
        .and_then(|a| a.approved.to_field().ok());
    // Balances go to the cardholder's terminal only when they are the answer's point: on an
    // approval (and balance inquiry) or an insufficient-funds decline, never on a lost, stolen or
    // blocked card.
    let show_balances = code.is_approval() || code == ResponseCode::InsufficientFunds;
    let f54 = outcome
        .filter(|_| show_balances)
        .and_then(|o| o.balances)
        .and_then(|b| b.to_field54().ok());
    let add = Additions {
        auth_code: auth.as_ref().map(|a| a.as_bytes()),
        approved_amount: approved.as_ref().map(|a| &a[..]),
        additional_amounts: f54.as_ref().map(|f| &f[..]),
    };
    with_answer(shared.dialect, msg, code, &add, |b| encode(shared, b))
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::iso8583::{ISO87_ASCII, samples};
    use crate::journal::MemJournal;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// North Bank's host on a free port, journaling in memory, checkpointing into `dir` after
    /// every ledger event.
    async fn north_bank(dir: &Path) -> IssuerHost {
        north_bank_on(dir, Arc::new(MemJournal::new()), north_bank_engine()).await
    }

    fn north_bank_engine() -> Arc<Engine> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/issuers/north-bank.toml");
        let file = IssuerFile::load(&path).expect("issuer file loads");
        Arc::new(Engine::from_file(&file).expect("engine builds"))
    }

    async fn north_bank_on(
        dir: &Path,
        journal: Arc<dyn Journal>,
        engine: Arc<Engine>,
    ) -> IssuerHost {
        north_bank_at(dir, journal, engine, Arc::new(SystemClock)).await
    }

    async fn north_bank_at(
        dir: &Path,
        journal: Arc<dyn Journal>,
        engine: Arc<Engine>,
        clock: Arc<dyn Clock>,
    ) -> IssuerHost {
        north_bank_with(dir, journal, engine, clock, |_| {}).await
    }

    async fn north_bank_with(
        dir: &Path,
        journal: Arc<dyn Journal>,
        engine: Arc<Engine>,
        clock: Arc<dyn Clock>,
        tweak: impl FnOnce(&mut HostConfig),
    ) -> IssuerHost {
        let mut cfg = HostConfig {
            address: "127.0.0.1:0".into(),
            dialect: &ISO87_ASCII,
            framing: FramingConfig::default(),
            faults: Faults::default(),
            checkpoint_dir: Some(dir.to_owned()),
            checkpoint_every: 1,
            checkpoint_pace: WritePace::unpaced(),
            security: None,
            tls: None,
            connections_max: crate::host::HOST_CONNECTIONS_MAX_DEFAULT,
            inflight_per_connection_max: crate::host::HOST_INFLIGHT_PER_CONNECTION_MAX_DEFAULT,
        };
        tweak(&mut cfg);
        IssuerHost::start(cfg, engine, journal, None, clock)
            .await
            .expect("host starts")
    }

    #[tokio::test]
    async fn a_connection_over_connections_max_is_closed_unread() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let host = north_bank_with(
            dir.path(),
            Arc::new(MemJournal::new()),
            north_bank_engine(),
            Arc::new(SystemClock),
            |c| c.connections_max = 1,
        )
        .await;
        let mut first = tokio::net::TcpStream::connect(host.local_addr())
            .await
            .expect("connect");
        assert_eq!(purchase(&mut first, b"000001").await, "00");
        let mut second = tokio::net::TcpStream::connect(host.local_addr())
            .await
            .expect("the kernel accepts");
        let mut byte = [0u8; 1];
        let read = guard("the refused connection closes", second.read(&mut byte)).await;
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "closed, not served: {read:?}"
        );
        // The first is still served.
        assert_eq!(purchase(&mut first, b"000002").await, "00");
        host.shutdown().await;
    }

    /// The snapshot with pauses copies exactly what the plain one does, whether it pauses or is
    /// told not to (with a zero slice every pause point asks `pausing`).
    #[test]
    fn a_snapshot_with_pauses_is_the_plain_snapshot() {
        let engine = north_bank_engine();
        let t0 = chrono::NaiveDate::from_ymd_opt(2026, 6, 2)
            .and_then(|d| d.and_hms_opt(10, 0, 0))
            .expect("time");
        let pan = crate::domain::Pan::parse(b"4111110000000013").expect("pan");
        for i in 0..3 {
            let hold = crate::onus::sample_purchase(pan, i);
            assert!(engine.process(&hold, t0, t0.date()).result.is_ok());
        }
        let plain = engine.snapshot();
        assert!(plain.record_count() >= 3);
        // With a zero slice every 64th account is a pause point: `pausing` is asked there.
        let asked = std::cell::Cell::new(0u32);
        let pausing = || {
            asked.set(asked.get() + 1);
            true
        };
        assert_eq!(engine.snapshot_with_pauses(Duration::ZERO, pausing), plain);
        assert!(
            asked.get() >= 1,
            "the snapshot never asked whether to pause"
        );
        assert_eq!(engine.snapshot_with_pauses(SNAPSHOT_SLICE, || true), plain);
        // Told not to pause (a hurried shutdown), it copies the same.
        let declined = std::cell::Cell::new(0u32);
        let hurried = || {
            declined.set(declined.get() + 1);
            false
        };
        assert_eq!(engine.snapshot_with_pauses(Duration::ZERO, hurried), plain);
        assert_eq!(declined.get(), asked.get());
    }

    /// Shutdown hurries the host's periodic checkpoint pace, so one still being written finishes
    /// without pauses instead of holding up the shutdown checkpoint behind its pace.
    #[tokio::test]
    async fn shutdown_lifts_the_pace_of_a_checkpoint_in_progress() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let pace = WritePace::mib_per_s(4);
        let mib = 1 << 20;
        let paced = Duration::from_millis(250);
        assert_eq!(pace.next_due(Duration::ZERO, Duration::ZERO, mib), paced);
        let host = north_bank_with(
            dir.path(),
            Arc::new(MemJournal::new()),
            north_bank_engine(),
            Arc::new(SystemClock),
            |c| c.checkpoint_pace = pace.clone(),
        )
        .await;
        let own = host.shared.checkpoint_pace.clone();
        assert_eq!(own.next_due(Duration::ZERO, Duration::ZERO, mib), paced);
        host.shutdown().await;
        assert_eq!(
            own.next_due(Duration::ZERO, Duration::ZERO, mib),
            Duration::ZERO
        );
        // The configuration's pace is the caller's, and stays as it was: a host started again
        // from it paces its checkpoints.
        assert_eq!(pace.next_due(Duration::ZERO, Duration::ZERO, mib), paced);
    }

    /// On tokio's paused clock: each answer waits a second (`delay_ms`), so two requests read at
    /// once are answered after one second, and one at a time after two.
    #[tokio::test(start_paused = true)]
    async fn at_inflight_per_connection_max_the_host_stops_reading() {
        let dir = tempfile::tempdir().expect("temporary directory");
        for (max, seconds) in [(1, 2), (2, 1)] {
            let host = north_bank_with(
                dir.path(),
                Arc::new(MemJournal::new()),
                north_bank_engine(),
                Arc::new(SystemClock),
                |c| {
                    c.inflight_per_connection_max = max;
                    c.faults.delay_ms = 1_000;
                },
            )
            .await;
            let mut s = tokio::net::TcpStream::connect(host.local_addr())
                .await
                .expect("connect");
            let started = tokio::time::Instant::now();
            let mut out = Vec::new();
            for stan in [b"000001", b"000002"] {
                let mut b = samples::auth_request(&ISO87_ASCII);
                b.set(11, stan).set(32, b"100001");
                let payload = b.to_bytes().expect("encode");
                out.extend_from_slice(&u16::try_from(payload.len()).expect("fits").to_be_bytes());
                out.extend_from_slice(&payload);
            }
            s.write_all(&out).await.expect("write both");
            for _ in 0..2 {
                let mut len = [0u8; 2];
                s.read_exact(&mut len).await.expect("answer header");
                let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
                s.read_exact(&mut answer).await.expect("answer");
            }
            assert_eq!(
                started.elapsed().as_secs(),
                seconds,
                "in flight at most {max}"
            );
            drop(s);
            host.shutdown().await;
        }
    }

    /// Sends the sample 0100 (North Bank's active credit card) under `stan`; the answer's field 39.
    async fn purchase(s: &mut tokio::net::TcpStream, stan: &[u8; 6]) -> String {
        let mut b = samples::auth_request(&ISO87_ASCII);
        b.set(11, stan).set(32, b"100001");
        let payload = b.to_bytes().expect("encode");
        let mut out = u16::try_from(payload.len())
            .expect("fits")
            .to_be_bytes()
            .to_vec();
        out.extend_from_slice(&payload);
        s.write_all(&out).await.expect("write");
        let mut len = [0u8; 2];
        s.read_exact(&mut len).await.expect("answer header");
        let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut answer).await.expect("answer");
        let msg = crate::iso8583::decode(&ISO87_ASCII, Bytes::from(answer)).expect("decodes");
        String::from_utf8_lossy(&msg.get(39).expect("field 39")).into_owned()
    }

    async fn guard<F: std::future::Future>(what: &str, f: F) -> F::Output {
        tokio::time::timeout(Duration::from_secs(10), f)
            .await
            .unwrap_or_else(|_| panic!("timed out: {what}"))
    }

    #[tokio::test]
    async fn request_and_checkpoint_watches_move_with_the_host() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let host = north_bank(dir.path()).await;
        let mut requests = host.requests_watch();
        let mut checkpoints = host.checkpoints_watch();
        assert_eq!((*requests.borrow_and_update(), host.requests()), (0, 0));
        assert_eq!(*checkpoints.borrow_and_update(), 0);

        let mut s = tokio::net::TcpStream::connect(host.local_addr())
            .await
            .expect("connect");
        assert_eq!(purchase(&mut s, b"000001").await, "00");
        assert!(requests.has_changed().expect("host alive"));
        assert_eq!((*requests.borrow_and_update(), host.requests()), (1, 1));

        // The checkpoint is written in the background after the answer; its watch says when.
        guard("a checkpoint", checkpoints.wait_for(|&n| n >= 1))
            .await
            .expect("host alive");
        assert!(dir.path().join(CHECKPOINT_FILE).exists());

        assert_eq!(purchase(&mut s, b"000002").await, "00");
        assert_eq!(*requests.borrow_and_update(), 2);
        drop(s);
        host.shutdown().await;
    }

    /// Runs on tokio's paused clock: the sweep's 60-second timer fires as the test waits, and
    /// the engine's time is a manual clock the test moves past the hold's expiry.
    #[tokio::test(start_paused = true)]
    async fn the_host_sweeps_a_quiet_accounts_expired_hold_and_journals_it() {
        let dir = tempfile::tempdir().expect("temporary directory");
        // Holds covered records back until a flush, as the file journal does.
        let journal = Arc::new(crate::journal::CoveringJournal::new());
        let engine = north_bank_engine();
        let t0 = chrono::NaiveDate::from_ymd_opt(2026, 11, 25)
            .and_then(|d| d.and_hms_opt(22, 18, 0))
            .expect("time");
        let clock = crate::clock::ManualClock::new(t0);
        let host = north_bank_at(dir.path(), journal.clone(), engine.clone(), clock.clone()).await;
        assert_eq!(engine.sweep_interval_s(), 60);
        let card = crate::domain::Pan::parse(b"4111110000000013").expect("pan");
        let before = engine.balances(&card).expect("balances");

        let mut s = tokio::net::TcpStream::connect(host.local_addr())
            .await
            .expect("connect");
        assert_eq!(purchase(&mut s, b"000001").await, "00");
        drop(s);
        let held = engine.balances(&card).expect("balances");
        assert_ne!(held.available, before.available);
        let journaled = journal.written().len();

        // A week and an hour later (North Bank holds expire after 168 h), with no request on
        // the account, the next sweeps give the money back and journal it.
        // The paused clock runs to the sweep's tick while the test waits for its event to be
        // written; the guard fails the test if it never is.
        clock.advance_ms(169 * 3_600_000);
        let mut written = journal.written_watch();
        tokio::time::timeout(
            Duration::from_secs(3_600),
            written.wait_for(|&n| n > journaled),
        )
        .await
        .expect("the sweep's event is written within the hour")
        .expect("journal alive");
        assert_eq!(
            engine.balances(&card).expect("balances").available,
            before.available
        );
        assert_eq!(
            journal.written().len(),
            journaled + 1,
            "the sweep's event, written (flushed, not left queued)"
        );
        host.shutdown().await;
    }

    #[tokio::test]
    async fn a_ledger_event_the_journal_refuses_is_answered_96_and_changes_nothing() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let journal = Arc::new(MemJournal::new());
        let engine = north_bank_engine();
        let host = north_bank_on(dir.path(), journal.clone(), engine.clone()).await;
        let f2 = samples::AUTH_REQUEST_FIELDS
            .iter()
            .find(|(n, _)| *n == 2)
            .map(|(_, v)| *v)
            .expect("the sample has a PAN");
        let pan = crate::domain::Pan::parse(f2).expect("sample PAN");
        let before = engine.balances(&pan).expect("North Bank's card");

        journal.close();
        let mut s = tokio::net::TcpStream::connect(host.local_addr())
            .await
            .expect("connect");
        assert_eq!(purchase(&mut s, b"000001").await, "96");
        assert_eq!(engine.balances(&pan).expect("card"), before);
        assert!(journal.records().is_empty());
        drop(s);
        host.shutdown().await;
    }
}
