//! The raw relay baseline: what the network path alone costs, without any ISO 8583 work.
//!
//! # `loadgen relay --listen ADDR --backend ADDR [--pool N]`
//!
//! Exactly this, and nothing more:
//!
//! 1. Accepts any number of client connections on `ADDR`. Both sides use the switch's framing
//!    (`switch::net::framing::FrameCodec`): a 2-byte big-endian length, no fixed header, frames up
//!    to 65,535 bytes. A zero-length frame (keep-alive) is consumed and not forwarded. A length
//!    the codec refuses closes that client connection.
//! 2. Opens a pool of `N` TCP connections (default 1, like the switch's one link per issuer
//!    endpoint) to the backend at start, and fails to start if it cannot.
//! 3. Hands each client frame, **unchanged** (not parsed, not rewritten), to the next backend
//!    connection in round-robin order. The backend connection's writer task appends the client's
//!    return path to that connection's FIFO and writes the frame; frames are written in batches
//!    (up to 64 KiB per write) when several are waiting.
//! 4. Matches answers **by order**: the n-th frame read from a backend connection is the answer
//!    to the n-th frame written to it, and goes back, unchanged, to the client that sent that
//!    frame (its relay-assigned tag is its position in the FIFO). This is correct only for a
//!    backend that answers every frame, in order, on the connection it came in on, as
//!    `loadgen echo-backend` does. The relay never looks at field 11.
//! 5. With [`RelayOptions::work`] other than raw (the grid's floor ladder, [`super::ladder`]),
//!    each frame is decoded and re-encoded on its way (and journaled); a frame that does not
//!    decode is dropped and counted. Raw is what `loadgen relay` and the grid's baseline run.
//! 6. A frame from a backend with nothing in its FIFO is counted and dropped. When a backend
//!    connection breaks, the frames in its FIFO are lost (their clients time out) and it
//!    reconnects after 100 ms; frames queued for it meanwhile wait. An answer for a client that
//!    has gone is dropped and counted.
//!
//! # `loadgen echo-backend --listen ADDR`
//!
//! Answers every frame at once, in order, on the same connection: the same bytes with the MTI's
//! third digit raised by one when it is even (0100 → 0110, 0200 → 0210, 0400 → 0410); everything
//! else, bitmap included, is copied, so the answer has no field 39. Answers to frames read
//! together are written together.
//!
//! Against this pair, `loadgen run --target RELAY --expect echo` checks that every answer is the
//! echo of its own request (matched by STAN in the client, byte for byte), so a relay that mixed
//! up answers would show as mismatches.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures::{FutureExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::ladder::{self, Leg, RelayWork};
use super::model::flip_mti;
use switch::net::framing::{FrameCodec, FramingConfig, LengthHeader};

/// The most bytes gathered into one write.
const WRITE_BATCH_BYTES: usize = 64 * 1024;
/// Frames waiting for one backend connection before client readers wait (backpressure).
const BACKEND_QUEUE: usize = 8192;
/// Delay before reconnecting a broken backend connection.
const RECONNECT_DELAY: Duration = Duration::from_millis(100);

/// The framing of both sides: 2-byte big-endian length, no fixed header, up to 65,535 bytes.
pub fn framing() -> FramingConfig {
    FramingConfig {
        length_header: LengthHeader::Binary2Be,
        header_bytes: 0,
        frame_bytes_max: usize::from(u16::MAX),
    }
}

/// Why the relay or the echo backend did not start.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
    #[error("cannot connect to the backend {address}: {source}")]
    Connect {
        address: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Options(String),
}

/// Appends `payload` with its 2-byte length to `buf`. Payloads come from the codec, which
/// refuses anything longer than 65,535 bytes.
fn put_frame(buf: &mut BytesMut, payload: &[u8]) {
    let len = u16::try_from(payload.len()).unwrap_or(u16::MAX);
    buf.put_u16(len);
    buf.extend_from_slice(&payload[..usize::from(len)]);
}

async fn write_batches(mut half: OwnedWriteHalf, mut rx: mpsc::UnboundedReceiver<Bytes>) {
    let mut buf = BytesMut::with_capacity(WRITE_BATCH_BYTES);
    while let Some(first) = rx.recv().await {
        put_frame(&mut buf, &first);
        while buf.len() < WRITE_BATCH_BYTES {
            match rx.try_recv() {
                Ok(f) => put_frame(&mut buf, &f),
                Err(_) => break,
            }
        }
        if half.write_all(&buf).await.is_err() {
            return;
        }
        buf.clear();
    }
    let _ = half.shutdown().await;
}

/// Counters of a running relay.
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Frames read from clients.
    pub requests: AtomicU64,
    /// Frames written back to clients.
    pub answers: AtomicU64,
    /// Backend frames with no request waiting for them.
    pub unsolicited: AtomicU64,
    /// Answers for clients that had gone.
    pub client_gone: AtomicU64,
    /// Backend connections re-established.
    pub reconnects: AtomicU64,
    /// Frames the ladder step refused (undecodable, or the journal would not take the record).
    pub refused: AtomicU64,
}

/// A frame on its way to the backend, with the way back to its client.
struct Job {
    frame: Bytes,
    reply: mpsc::UnboundedSender<Bytes>,
}

/// How to run the relay.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    pub listen: String,
    pub backend: String,
    /// Backend connections, 1..=1024.
    pub pool: usize,
    /// What is done to each frame on its way: nothing, for the baseline.
    pub work: RelayWork,
}

/// A running relay.
pub struct Relay {
    local_addr: SocketAddr,
    stop: CancellationToken,
    tasks: TaskTracker,
    stats: Arc<RelayStats>,
}

impl Relay {
    /// Connects the backend pool, binds the listener and starts relaying.
    pub async fn start(opts: &RelayOptions) -> Result<Relay, RelayError> {
        if !(1..=1024).contains(&opts.pool) {
            return Err(RelayError::Options(
                "the backend pool must have 1 to 1024 connections".into(),
            ));
        }
        let backend: SocketAddr = tokio::net::lookup_host(&opts.backend)
            .await
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| RelayError::Connect {
                address: opts.backend.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "not an address (expected ip:port)",
                ),
            })?;
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        let stats = Arc::new(RelayStats::default());
        let mut senders = Vec::with_capacity(opts.pool);
        for _ in 0..opts.pool {
            let stream = connect(backend)
                .await
                .map_err(|source| RelayError::Connect {
                    address: opts.backend.clone(),
                    source,
                })?;
            let (tx, rx) = mpsc::channel(BACKEND_QUEUE);
            senders.push(tx);
            tasks.spawn(backend_loop(
                backend,
                rx,
                Some(stream),
                stop.clone(),
                Arc::clone(&stats),
                opts.work.clone(),
            ));
        }
        let listener =
            TcpListener::bind(&opts.listen)
                .await
                .map_err(|source| RelayError::Bind {
                    address: opts.listen.clone(),
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| RelayError::Bind {
            address: opts.listen.clone(),
            source,
        })?;
        let backends: Arc<[mpsc::Sender<Job>]> = senders.into();
        let next = Arc::new(AtomicUsize::new(0));
        {
            let (stop, tasks2, stats) = (stop.clone(), tasks.clone(), Arc::clone(&stats));
            let work = opts.work.clone();
            tasks.spawn(async move {
                loop {
                    let accepted = tokio::select! {
                        a = listener.accept() => a,
                        () = stop.cancelled() => return,
                    };
                    match accepted {
                        Ok((stream, _)) => {
                            tasks2.spawn(client_loop(
                                stream,
                                Arc::clone(&backends),
                                Arc::clone(&next),
                                stop.clone(),
                                Arc::clone(&stats),
                                work.clone(),
                            ));
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "relay: accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            });
        }
        Ok(Relay {
            local_addr,
            stop,
            tasks,
            stats,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn stats(&self) -> &RelayStats {
        &self.stats
    }

    /// Stops accepting, closes every connection.
    pub async fn shutdown(self) {
        self.stop.cancel();
        self.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.tasks.wait()).await;
    }
}

async fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let s = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no connection in 5 s"))??;
    s.set_nodelay(true)?;
    Ok(s)
}

/// One client connection: frames in, round-robin to the backends; answers out in batches.
async fn client_loop(
    stream: TcpStream,
    backends: Arc<[mpsc::Sender<Job>]>,
    next: Arc<AtomicUsize>,
    stop: CancellationToken,
    stats: Arc<RelayStats>,
    work: RelayWork,
) {
    let _ = stream.set_nodelay(true);
    let (r, w) = stream.into_split();
    let (tx, rx) = mpsc::unbounded_channel();
    // The writer ends when every copy of `tx` is gone: this loop's, and those in backend FIFOs
    // still waiting for answers.
    tokio::spawn(write_batches(w, rx));
    let mut reader = FramedRead::new(r, FrameCodec::new(framing()));
    loop {
        let frame = tokio::select! {
            f = reader.next() => f,
            () = stop.cancelled() => break,
        };
        let frame = match frame {
            Some(Ok(f)) => f,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "relay: client framing error; closing");
                break;
            }
            None => break,
        };
        stats.requests.fetch_add(1, Ordering::Relaxed);
        let frame = match ladder::step(&work, frame.payload, Leg::Request) {
            Ok((f, _)) => f,
            Err(e) => {
                tracing::debug!(error = %e, "relay: request refused by the ladder step");
                stats.refused.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        let i = next.fetch_add(1, Ordering::Relaxed) % backends.len();
        let job = Job {
            frame,
            reply: tx.clone(),
        };
        if backends[i].send(job).await.is_err() {
            break;
        }
    }
}

enum Ended {
    Stop,
    Lost,
}

/// One backend connection, reconnected when it breaks.
async fn backend_loop(
    addr: SocketAddr,
    mut jobs: mpsc::Receiver<Job>,
    first: Option<TcpStream>,
    stop: CancellationToken,
    stats: Arc<RelayStats>,
    work: RelayWork,
) {
    let mut stream = first;
    loop {
        let s = match stream.take() {
            Some(s) => s,
            None => {
                tokio::select! {
                    () = tokio::time::sleep(RECONNECT_DELAY) => {}
                    () = stop.cancelled() => return,
                }
                match connect(addr).await {
                    Ok(s) => {
                        stats.reconnects.fetch_add(1, Ordering::Relaxed);
                        s
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, %addr, "relay: backend reconnect failed");
                        continue;
                    }
                }
            }
        };
        match serve_backend(s, &mut jobs, &stop, &stats, &work).await {
            Ended::Stop => return,
            Ended::Lost => tracing::warn!(%addr, "relay: backend connection lost; reconnecting"),
        }
    }
}

type Fifo = Arc<Mutex<VecDeque<mpsc::UnboundedSender<Bytes>>>>;

fn lock(f: &Fifo) -> std::sync::MutexGuard<'_, VecDeque<mpsc::UnboundedSender<Bytes>>> {
    // Every operation under this lock is one push or pop: a poisoned lock is still consistent.
    f.lock().unwrap_or_else(|p| p.into_inner())
}

async fn serve_backend(
    stream: TcpStream,
    jobs: &mut mpsc::Receiver<Job>,
    stop: &CancellationToken,
    stats: &Arc<RelayStats>,
    work: &RelayWork,
) -> Ended {
    let (r, mut w) = stream.into_split();
    let fifo: Fifo = Arc::default();
    let mut reader = {
        let fifo = Arc::clone(&fifo);
        let stats = Arc::clone(stats);
        let work = work.clone();
        tokio::spawn(async move {
            // Answers waiting for their journal records, in order (tickets resolve in LSN
            // order, so the first pending one is the only one worth waiting for).
            let (durable_tx, durable_rx) = mpsc::unbounded_channel();
            let completer = tokio::spawn(answer_when_durable(durable_rx, Arc::clone(&stats)));
            let mut frames = FramedRead::new(r, FrameCodec::new(framing()));
            while let Some(Ok(frame)) = frames.next().await {
                let waiting = lock(&fifo).pop_front();
                let Some(reply) = waiting else {
                    stats.unsolicited.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                match ladder::step(&work, frame.payload, Leg::Answer) {
                    Ok((answer, None)) => deliver(&stats, &reply, answer),
                    Ok((answer, Some(ticket))) => {
                        let _ = durable_tx.send((ticket, reply, answer));
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "relay: answer refused by the ladder step");
                        stats.refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            drop(durable_tx);
            let _ = completer.await;
        })
    };
    let mut buf = BytesMut::with_capacity(WRITE_BATCH_BYTES);
    let ended = loop {
        let job = tokio::select! {
            j = jobs.recv() => j,
            _ = &mut reader => break Ended::Lost,
            () = stop.cancelled() => break Ended::Stop,
        };
        let Some(job) = job else { break Ended::Stop };
        {
            let mut q = lock(&fifo);
            put_frame(&mut buf, &job.frame);
            q.push_back(job.reply);
            while buf.len() < WRITE_BATCH_BYTES {
                match jobs.try_recv() {
                    Ok(j) => {
                        put_frame(&mut buf, &j.frame);
                        q.push_back(j.reply);
                    }
                    Err(_) => break,
                }
            }
        }
        if w.write_all(&buf).await.is_err() {
            break Ended::Lost;
        }
        buf.clear();
    };
    reader.abort();
    ended
}

fn deliver(stats: &RelayStats, reply: &mpsc::UnboundedSender<Bytes>, answer: Bytes) {
    if reply.send(answer).is_ok() {
        stats.answers.fetch_add(1, Ordering::Relaxed);
    } else {
        stats.client_gone.fetch_add(1, Ordering::Relaxed);
    }
}

type Durable = (
    switch::journal::AppendTicket,
    mpsc::UnboundedSender<Bytes>,
    Bytes,
);

/// Sends each answer once its journal record is durable; an answer whose record failed is
/// dropped and counted (its client times out), as the switch answers nothing it has not
/// journaled.
async fn answer_when_durable(mut rx: mpsc::UnboundedReceiver<Durable>, stats: Arc<RelayStats>) {
    while let Some((ticket, reply, answer)) = rx.recv().await {
        match ticket.await {
            Ok(_) => deliver(&stats, &reply, answer),
            Err(e) => {
                tracing::debug!(error = %e, "relay: answer's journal record failed");
                stats.refused.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A running echo backend.
pub struct EchoBackend {
    local_addr: SocketAddr,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl EchoBackend {
    /// Binds `listen` and answers every frame with its echo.
    pub async fn start(listen: &str) -> Result<EchoBackend, RelayError> {
        Self::start_with(listen, RelayWork::Raw).await
    }

    /// [`EchoBackend::start`], carrying each echo through a ladder step first: with
    /// [`RelayWork::Durable`] every answer is journaled and sent once its record is durable, as
    /// an issuer host answers (the floor ladder's second journal).
    pub async fn start_with(listen: &str, work: RelayWork) -> Result<EchoBackend, RelayError> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| RelayError::Bind {
                address: listen.to_owned(),
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| RelayError::Bind {
            address: listen.to_owned(),
            source,
        })?;
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        {
            let (stop, tasks2) = (stop.clone(), tasks.clone());
            tasks.spawn(async move {
                loop {
                    let accepted = tokio::select! {
                        a = listener.accept() => a,
                        () = stop.cancelled() => return,
                    };
                    match accepted {
                        Ok((stream, _)) => {
                            match &work {
                                RelayWork::Raw => tasks2.spawn(echo_loop(stream, stop.clone())),
                                w => tasks2.spawn(echo_step_loop(stream, stop.clone(), w.clone())),
                            };
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "echo backend: accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            });
        }
        Ok(EchoBackend {
            local_addr,
            stop,
            tasks,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, closes every connection.
    pub async fn shutdown(self) {
        self.stop.cancel();
        self.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.tasks.wait()).await;
    }
}

fn put_echo(buf: &mut BytesMut, payload: &[u8]) {
    let at = buf.len() + 2;
    put_frame(buf, payload);
    flip_mti(&mut buf[at..]);
}

async fn echo_loop(stream: TcpStream, stop: CancellationToken) {
    let _ = stream.set_nodelay(true);
    let (r, mut w) = stream.into_split();
    let mut reader = FramedRead::new(r, FrameCodec::new(framing()));
    let mut buf = BytesMut::with_capacity(WRITE_BATCH_BYTES);
    loop {
        let first = tokio::select! {
            f = reader.next() => f,
            () = stop.cancelled() => break,
        };
        let Some(Ok(frame)) = first else { break };
        put_echo(&mut buf, &frame.payload);
        let mut open = true;
        // Frames already read: answer them in the same write.
        while buf.len() < WRITE_BATCH_BYTES {
            match reader.next().now_or_never() {
                Some(Some(Ok(f))) => put_echo(&mut buf, &f.payload),
                Some(_) => {
                    open = false;
                    break;
                }
                None => break,
            }
        }
        if w.write_all(&buf).await.is_err() {
            break;
        }
        buf.clear();
        if !open {
            break;
        }
    }
    let _ = w.shutdown().await;
}

/// The echo through a ladder step: answers go out in order, each once its record (if any) is
/// durable, those already durable written together. An answer that cannot be carried (the step
/// refused it, or its record failed) closes the connection instead of being skipped: the relay
/// matches answers by their order, so a gap would hand every later answer to the wrong client.
/// Closed, the relay drops what was waiting (those clients time out) and reconnects.
async fn echo_step_loop(stream: TcpStream, stop: CancellationToken, work: RelayWork) {
    let _ = stream.set_nodelay(true);
    let (r, w) = stream.into_split();
    let (tx, rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write_when_durable(w, rx));
    let mut reader = FramedRead::new(r, FrameCodec::new(framing()));
    loop {
        let next = tokio::select! {
            f = reader.next() => f,
            () = stop.cancelled() => break,
        };
        let Some(Ok(frame)) = next else { break };
        let mut echo = BytesMut::from(frame.payload.as_ref());
        flip_mti(&mut echo);
        match ladder::step(&work, echo.freeze(), Leg::Only) {
            Ok(carried) => {
                if tx.send(carried).is_err() {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "echo backend: frame refused by the ladder step; closing");
                break;
            }
        }
    }
    drop(tx);
    let _ = writer.await;
}

type Carried = (Bytes, Option<switch::journal::AppendTicket>);

async fn write_when_durable(mut w: OwnedWriteHalf, mut rx: mpsc::UnboundedReceiver<Carried>) {
    let mut buf = BytesMut::with_capacity(WRITE_BATCH_BYTES);
    let mut next = rx.recv().await;
    while let Some((out, ticket)) = next.take() {
        // Nothing is buffered here, so waiting holds nothing back.
        if let Some(t) = ticket
            && let Err(e) = t.await
        {
            tracing::warn!(error = %e, "echo backend: an answer's record failed; closing");
            return;
        }
        put_frame(&mut buf, &out);
        // Add the answers behind it that need no waiting.
        let mut failed = false;
        while buf.len() < WRITE_BATCH_BYTES {
            match rx.try_recv() {
                Ok((o, None)) => put_frame(&mut buf, &o),
                Ok((o, Some(mut t))) => match (&mut t).now_or_never() {
                    Some(Ok(_)) => put_frame(&mut buf, &o),
                    // Send what came before it, then close.
                    Some(Err(_)) => {
                        failed = true;
                        break;
                    }
                    None => {
                        next = Some((o, Some(t)));
                        break;
                    }
                },
                Err(_) => break,
            }
        }
        if w.write_all(&buf).await.is_err() || failed {
            return;
        }
        buf.clear();
        if next.is_none() {
            next = rx.recv().await;
        }
    }
    let _ = w.shutdown().await;
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    async fn read_frame(s: &mut TcpStream) -> Vec<u8> {
        let mut len = [0u8; 2];
        s.read_exact(&mut len).await.expect("length");
        let mut v = vec![0u8; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut v).await.expect("payload");
        v
    }

    #[tokio::test]
    async fn relay_and_echo_answer_each_client_in_order() {
        let echo = EchoBackend::start("127.0.0.1:0").await.expect("echo");
        let relay = Relay::start(&RelayOptions {
            listen: "127.0.0.1:0".into(),
            backend: echo.local_addr().to_string(),
            pool: 2,
            work: Default::default(),
        })
        .await
        .expect("relay");
        let mut a = TcpStream::connect(relay.local_addr()).await.expect("a");
        let mut b = TcpStream::connect(relay.local_addr()).await.expect("b");
        let mut out = BytesMut::new();
        for i in 0..50 {
            put_frame(&mut out, format!("0200A{i:03}").as_bytes());
        }
        // A keep-alive in the middle is consumed, not forwarded.
        out.put_u16(0);
        put_frame(&mut out, b"0100A-last");
        a.write_all(&out).await.expect("write a");
        let mut out_b = BytesMut::new();
        put_frame(&mut out_b, b"0400B");
        b.write_all(&out_b).await.expect("write b");
        assert_eq!(read_frame(&mut b).await, b"0410B".to_vec());
        // Two backend connections: each client's answers come back complete, in any order.
        let mut got = Vec::new();
        for _ in 0..51 {
            got.push(read_frame(&mut a).await);
        }
        got.sort();
        let mut want: Vec<Vec<u8>> = (0..50)
            .map(|i| format!("0210A{i:03}").into_bytes())
            .collect();
        want.push(b"0110A-last".to_vec());
        want.sort();
        assert_eq!(got, want);
        assert_eq!(relay.stats().requests.load(Ordering::Relaxed), 52);
        assert_eq!(relay.stats().answers.load(Ordering::Relaxed), 52);
        relay.shutdown().await;
        echo.shutdown().await;
    }

    #[tokio::test]
    async fn a_relay_without_its_backend_does_not_start() {
        let free = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = free.local_addr().expect("addr");
        drop(free);
        let e = Relay::start(&RelayOptions {
            listen: "127.0.0.1:0".into(),
            backend: addr.to_string(),
            pool: 1,
            work: Default::default(),
        })
        .await
        .err()
        .expect("no backend");
        assert!(matches!(e, RelayError::Connect { .. }), "{e}");
        let e = Relay::start(&RelayOptions {
            listen: "127.0.0.1:0".into(),
            backend: "not an address".into(),
            pool: 1,
            work: Default::default(),
        })
        .await
        .err()
        .expect("bad address");
        assert!(e.to_string().contains("not an address"), "{e}");
    }
}
