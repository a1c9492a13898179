//! Acquirer sessions: the listener and one task per TCP connection.
//!
//! A connection reads frames and hands each one to the [`Runtime`]; many requests may be in
//! flight on one connection, and each answer is written as soon as it is ready, so answers can
//! come back out of order (acquirers match them by STAN). Limits, each from `[listener]`:
//! - `connections_max`: a connection over the limit is closed at once;
//! - `inflight_per_connection_max`: at the limit the connection is simply not read (TCP
//!   backpressure); nobody gets an invented decline;
//! - `idle_timeout_ms`: a connection with nothing in flight and nothing received for this long is
//!   closed;
//! - `read_timeout_ms`: a frame started but not completed within this long closes the
//!   connection (slowloris).
//!
//! A framing error closes only its own connection. When the acquirer goes away (EOF or a failed
//! write), answers still being worked on are undeliverable: approvals among them are reversed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::{FutureExt, SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics as m;
use crate::net::framing::{Frame, FrameCodec, FramingConfig};
use crate::net::server::Runtime;

/// Listener limits, from `[listener]`.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    pub framing: FramingConfig,
    pub connections_max: usize,
    pub inflight_per_connection_max: usize,
    pub idle_timeout: Duration,
    pub read_timeout: Duration,
}

/// Accepts connections until `stop` is cancelled. Each connection is tracked by `tasks` so that
/// shutdown can wait for in-flight answers.
pub async fn serve(
    listener: TcpListener,
    rt: Arc<Runtime>,
    limits: SessionLimits,
    stop: CancellationToken,
    tasks: TaskTracker,
) {
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
            metrics::counter!(m::CONNECTIONS_REFUSED_TOTAL).increment(1);
            tracing::warn!(%peer, limit = limits.connections_max, "connection refused: connections_max reached");
            drop(stream);
            continue;
        };
        metrics::counter!(m::CONNECTIONS_ACCEPTED_TOTAL).increment(1);
        let rt = Arc::clone(&rt);
        let stop = stop.clone();
        let span = tracing::info_span!("acquirer_conn", %peer);
        tasks.spawn(tracing::Instrument::instrument(
            async move {
                metrics::gauge!(m::CONNECTIONS_OPEN).increment(1.0);
                connection(stream, peer, rt, limits, stop).await;
                metrics::gauge!(m::CONNECTIONS_OPEN).decrement(1.0);
                drop(permit);
            },
            span,
        ));
    }
}

/// Starting size of a session's read and write buffers; a typical request or answer fits.
const SESSION_BUFFER_BYTES: usize = 512;

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    rt: Arc<Runtime>,
    limits: SessionLimits,
    stop: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let (r, w) = stream.into_split();
    // Small starting buffers: they grow with traffic, and an idle connection then costs a few
    // KiB instead of tokio-util's default 8 KiB each way (10k idle connections: see
    // docs/performance.md).
    let mut reader =
        FramedRead::with_capacity(r, FrameCodec::new(limits.framing), SESSION_BUFFER_BYTES);
    let mut writer =
        FramedWrite::with_capacity(w, FrameCodec::new(limits.framing), SESSION_BUFFER_BYTES);
    let mut inflight = FuturesUnordered::new();
    let max = limits.inflight_per_connection_max.max(1);
    let mut reading = true;
    let mut peer_gone = false;
    let mut idle_deadline = tokio::time::Instant::now() + limits.idle_timeout;
    // When the current partial frame began, for the slowloris check.
    let mut partial_since: Option<tokio::time::Instant> = None;
    let mut tick = tokio::time::interval((limits.read_timeout / 4).max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::debug!("acquirer connected");
    loop {
        if !reading && inflight.is_empty() {
            break;
        }
        tokio::select! {
            biased;
            Some(first) = inflight.next(), if !inflight.is_empty() => {
                // Take every answer that is ready now and write them with one flush.
                let mut ready = vec![first];
                while let Some(Some(more)) = inflight.next().now_or_never() {
                    ready.push(more);
                }
                metrics::gauge!(m::ACQUIRER_INFLIGHT).decrement(ready.len() as f64);
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
                match frame {
                    Some(Ok(f)) => {
                        idle_deadline = tokio::time::Instant::now() + limits.idle_timeout;
                        metrics::gauge!(m::ACQUIRER_INFLIGHT).increment(1.0);
                        let rt = Arc::clone(&rt);
                        let Frame { header, payload } = f;
                        inflight.push(async move { (header, rt.handle(payload).await) });
                    }
                    None => {
                        tracing::debug!("acquirer closed the connection");
                        reading = false;
                        peer_gone = true;
                    }
                    Some(Err(e)) => {
                        metrics::counter!(m::DROPPED_TOTAL, "reason" => "framing").increment(1);
                        tracing::warn!(error = %e, "framing error; closing the connection");
                        reading = false;
                    }
                }
            }
            _ = tick.tick(), if reading => {
                if reader.read_buffer().is_empty() {
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
