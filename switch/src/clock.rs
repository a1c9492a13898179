//! The injected clock. Decision code never reads the time itself: the runtime reads it here, once
//! per request, and passes `now` down. Tests and the month-in-seconds demo swap in a
//! [`ManualClock`].
//!
//! Wall-clock time (business dates, field 7, journal timestamps) comes from here. Timeouts and
//! deadlines use tokio's monotonic `Instant` instead, which this module does not touch.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// A source of UTC wall-clock time.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch, UTC.
    fn now_ms(&self) -> i64;

    /// Now, as a UTC date and time.
    fn now(&self) -> NaiveDateTime {
        DateTime::<Utc>::from_timestamp_millis(self.now_ms())
            .map(|d| d.naive_utc())
            .unwrap_or_default()
    }

    /// Today's UTC date.
    fn today(&self) -> NaiveDate {
        self.now().date()
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        // The one place the switch reads the wall clock.
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => d.as_millis() as i64,
            Err(e) => -(e.duration().as_millis() as i64),
        }
    }
}

/// A clock that moves only when told to.
#[derive(Debug, Default)]
pub struct ManualClock {
    ms: AtomicI64,
}

impl ManualClock {
    pub fn new(at: NaiveDateTime) -> Arc<ManualClock> {
        Arc::new(ManualClock {
            ms: AtomicI64::new(at.and_utc().timestamp_millis()),
        })
    }

    pub fn set(&self, at: NaiveDateTime) {
        self.ms
            .store(at.and_utc().timestamp_millis(), Ordering::SeqCst);
    }

    pub fn advance_ms(&self, ms: i64) {
        self.ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.ms.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let t = NaiveDate::from_ymd_opt(2026, 11, 25)
            .and_then(|d| d.and_hms_opt(23, 59, 59))
            .expect("t");
        let c = ManualClock::new(t);
        assert_eq!(c.now(), t);
        c.advance_ms(1000);
        assert_eq!(c.today(), NaiveDate::from_ymd_opt(2026, 11, 26).expect("d"));
        assert!(SystemClock.now_ms() > 1_700_000_000_000);
    }
}
