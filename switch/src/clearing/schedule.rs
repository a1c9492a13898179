//! The running switch's automatic cutover (`[clearing] auto_cutover = true`): wait until the
//! current business day's cutover time (plus `cutover_delay_s`) by the injected clock, then close
//! and settle the day on a blocking thread, and wait for the next one.
//!
//! The wait re-reads the clock at least every minute instead of trusting one long sleep, so a
//! clock that is stepped (or a [`crate::clock::ManualClock`] in a test) is followed. Failures are
//! logged and the next day tries again: [`super::files::cutover`] catches up every day not closed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::day::{business_date, cutover_instant};
use super::fees::FeeSchedule;
use super::files::{Job, cutover, settle};
use crate::clock::Clock;

/// Longest single sleep before the clock is read again.
const RECHECK: Duration = Duration::from_secs(60);

/// Runs until `stop` is cancelled.
pub async fn run(
    clock: Arc<dyn Clock>,
    job: Job,
    fees_file: PathBuf,
    delay: Duration,
    stop: CancellationToken,
) {
    let minutes = job.rules.cutover_minutes;
    let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
    loop {
        let day = business_date(clock.now(), minutes);
        let due_ms = cutover_instant(day, minutes)
            .and_utc()
            .timestamp_millis()
            .saturating_add(delay_ms);
        loop {
            let left = due_ms.saturating_sub(clock.now_ms());
            if left <= 0 {
                break;
            }
            let nap = Duration::from_millis(left as u64).min(RECHECK);
            tokio::select! {
                () = tokio::time::sleep(nap) => {}
                () = stop.cancelled() => return,
            }
        }
        let (job, fees_file, now) = (job.clone(), fees_file.clone(), clock.now());
        let outcome = tokio::task::spawn_blocking(move || {
            cutover(&job, day, now).map_err(|e| e.to_string())?;
            let schedule = FeeSchedule::load(&fees_file).map_err(|e| e.to_string())?;
            settle(&job, &schedule, day, now).map_err(|e| e.to_string())
        })
        .await;
        match outcome {
            Ok(Ok(_)) => tracing::info!(business_date = %day, "automatic cutover done"),
            Ok(Err(e)) => {
                tracing::error!(business_date = %day, error = %e, "automatic cutover failed")
            }
            Err(e) => {
                tracing::error!(business_date = %day, error = %e, "automatic cutover task failed")
            }
        }
    }
}
