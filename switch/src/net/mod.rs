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

/// A background job's timer: ticks every `every` (the first one interval from now), until its
/// `stop` is cancelled. A tick the job was too busy to take is not made up for in a burst.
pub(crate) struct Periodic {
    tick: tokio::time::Interval,
    stop: tokio_util::sync::CancellationToken,
}

impl Periodic {
    pub(crate) fn new(
        every: std::time::Duration,
        stop: tokio_util::sync::CancellationToken,
    ) -> Periodic {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Periodic { tick, stop }
    }

    /// Waits for the next tick: `true`, or `false` once stopped.
    pub(crate) async fn next(&mut self) -> bool {
        tokio::select! {
            _ = self.tick.tick() => true,
            () = self.stop.cancelled() => false,
        }
    }
}
