//! The network edge: everything between a TCP socket and the synchronous codec and decision code.
//!
//! [`framing`] cuts the byte stream into frames and puts the length header back on replies. Any
//! error while reading frames closes the connection, because after a bad length the stream cannot
//! be trusted. Errors inside a well-formed frame are answered by the layers above, and the
//! connection stays open.
pub mod acquirer;
pub mod admission;
pub mod checkpoint;
pub mod duplicates;
pub mod framing;
pub mod issuer;
pub mod memory;
pub mod saf;
pub mod server;
pub mod start;
pub mod tls;

/// Runs an issuing engine's sweeps every `every` until `stop`, for the switch's on-us issuers
/// (`start`) and the issuer host (`crate::host`) alike. `pass` makes one pass and returns how
/// many events it journaled; it visits every account, so it runs on a blocking thread. `done`
/// hears each pass's count. The first pass is one interval after start: recovery has just
/// brought every account up to date.
///
/// A pass queues its events without tickets, and they are written only with an append someone
/// waits on: each pass is flushed, or a quiet journal would keep them queued, pass after pass,
/// until its queue refused every request. A pass that used its whole allowance
/// ([`crate::issuing::SWEEP_EVENTS_MAX`]) left work behind, and the next follows at once, so that
/// a backlog (after a long stop, or near `records_max`) drains at the journal's pace with at most
/// one allowance in its queue.
pub(crate) async fn sweep_every(
    every: std::time::Duration,
    stop: tokio_util::sync::CancellationToken,
    journal: std::sync::Arc<dyn crate::journal::Journal>,
    pass: std::sync::Arc<dyn Fn() -> usize + Send + Sync>,
    mut done: impl FnMut(usize),
) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    // A tick missed while a pass ran is not made up for in a burst.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        loop {
            let p = std::sync::Arc::clone(&pass);
            let events = match tokio::task::spawn_blocking(move || p()).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(error = %e, "sweep failed");
                    break;
                }
            };
            done(events);
            if events == 0 || journal.flush().await.is_err() {
                break;
            }
            if events < crate::issuing::SWEEP_EVENTS_MAX || stop.is_cancelled() {
                break;
            }
        }
    }
}
