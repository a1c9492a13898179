//! The switch's checkpoint: what lets a restart read the journal from a replay point instead of
//! from its first record (docs/reliability.md, "Switch restart").
//!
//! The switch never stops to take it. Requests keep changing memory a little before or after
//! their records are appended, so the checkpoint does not claim to be the state *at* an LSN. It
//! holds state taken *after* a replay point `R`, and recovery ([`super::start`]) restores it and
//! then replays every record after `R` on top. That is exact because each part takes a record
//! it already holds without change:
//! - the on-us engines' snapshots: each account skips events at or below its `last_seq`;
//! - the next transaction and advice numbers: recovery takes the maximum;
//! - the owed advices: a set by `saf_id`, which the replayed `SafQueued`, `SafDelivered` and
//!   `SafParked` records update in journal order;
//! - the issuers' STANs: a map whose last write wins.
//!
//! The duplicate window and today's stand-in charges are not in it: `R` lies at least
//! `duplicate_window_s` plus a minute back, and before every record of the current business day,
//! so replaying from `R` rebuilds them as a full replay would.
//!
//! `R` comes from samples of the journal's LSN taken on the injected clock ([`Samples`]). The
//! day-start LSN is stored in the checkpoint with its business date, because samples taken
//! before a restart are gone after it. This module owns the file and the samples; when a
//! checkpoint is due, and the restore, are [`super::start`]'s.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::events::{AdviceRecord, KeyRecord};
use crate::journal::{Background, FileJournal, Journal, Lsn, WritePace, in_background};
use crate::net::saf::Saf;
use crate::net::server::{OnUs, Runtime, key_record};

/// The checkpoint file in the switch's journal directory.
pub const CHECKPOINT_FILE: &str = "switch-checkpoint.bin";

/// How much further back than the duplicate window a checkpoint's replay point lies, so that
/// the answers of requests still in flight at the window's edge are replayed too.
const MARGIN_MS: i64 = 60_000;

/// How far back a replay point must lie for a duplicate window of `duplicate_window_s`.
pub fn horizon_ms(duplicate_window_s: u64) -> i64 {
    i64::try_from(duplicate_window_s)
        .unwrap_or(i64::MAX / 2_000)
        .saturating_mul(1_000)
        .saturating_add(MARGIN_MS)
}

/// The file's layout version: a file of another version is not used (the whole journal is read).
/// Format 3 holds the on-us engines' snapshots as they are, not each encoded into bytes first,
/// and its CRC comes last, so that the whole file can be encoded straight into its paced write.
const FORMAT: u32 = 3;

/// What a checkpoint holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SwitchCheckpoint {
    pub format: u32,
    /// Recovery replays the records after this LSN on top of the state below.
    pub replay_from: Lsn,
    /// The journal's written LSN when the state below was taken: a journal that does not reach
    /// it is not the one this checkpoint belongs to.
    pub taken_lsn: Lsn,
    /// When it was taken (the injected clock), and what the replay point was chosen for: a
    /// restart whose clock is earlier, whose duplicate window reaches further back, or whose
    /// cutover differs cannot trust it, and reads the whole journal instead.
    pub taken_at_ms: i64,
    pub horizon_ms: i64,
    pub cutover_minutes: u16,
    /// The business day the checkpoint was taken on, and an LSN below all of its records.
    pub day: NaiveDate,
    pub day_start: Lsn,
    /// The next transaction and advice numbers the switch would have handed out.
    pub next_txn: u64,
    pub next_saf: u64,
    /// Advices owed to issuers, every issuer's queue, oldest first.
    pub owed: Vec<AdviceRecord>,
    /// The STANs under which requests reached their issuers when not their own, oldest first.
    pub issuer_stans: Vec<(KeyRecord, u32)>,
    /// Each on-us issuer's engine snapshot, by issuer id.
    pub engines: Vec<(String, crate::issuing::Snapshot)>,
}

impl SwitchCheckpoint {
    pub fn new(replay_from: Lsn, day: NaiveDate, day_start: Lsn) -> SwitchCheckpoint {
        SwitchCheckpoint {
            format: FORMAT,
            replay_from,
            taken_lsn: 0,
            taken_at_ms: 0,
            horizon_ms: 0,
            cutover_minutes: 0,
            day,
            day_start,
            next_txn: 0,
            next_saf: 0,
            owed: Vec::new(),
            issuer_stans: Vec::new(),
            engines: Vec::new(),
        }
    }
}

/// Writes `cp` into `dir` (atomically: a crash leaves the old checkpoint or the new one);
/// returns its size in bytes. The file is the body, then a CRC-32 of it (little-endian): the
/// checkpoint decides which segments are never read, so a flipped bit that still decodes must
/// not pass. The file is written at no more than `pace` ([`WritePace`]), and the body is encoded
/// straight into that write ([`crate::journal::DurableFile`]): an on-us issuer of millions of
/// idempotency records makes a file of hundreds of megabytes, which is never held in memory
/// whole (until format 2 it was held twice, each engine's snapshot encoded apart first).
pub fn write(dir: &Path, cp: &SwitchCheckpoint, pace: WritePace) -> std::io::Result<u64> {
    let file = crate::journal::DurableFile::create(dir, CHECKPOINT_FILE, pace)?;
    let mut file = postcard::to_extend(cp, file).map_err(std::io::Error::other)?;
    let crc = file.crc32().to_le_bytes();
    file.write_slice(&crc);
    file.commit()
}

/// The checkpoint in `dir`: `Ok(None)` when there is none, `Err` when there is one that cannot
/// be used (it does not decode, or is of another format); the caller then reads the whole
/// journal.
pub fn read(dir: &Path) -> Result<Option<SwitchCheckpoint>, String> {
    let bytes = match std::fs::read(dir.join(CHECKPOINT_FILE)) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {CHECKPOINT_FILE}: {e}")),
    };
    let (body, crc) = bytes
        .split_last_chunk::<4>()
        .ok_or_else(|| format!("{CHECKPOINT_FILE} is too short"))?;
    if u32::from_le_bytes(*crc) != crc32fast::hash(body) {
        // Until format 2 the CRC came first: such a file is whole, only older.
        return match bytes.split_first_chunk::<4>() {
            Some((crc, body)) if u32::from_le_bytes(*crc) == crc32fast::hash(body) => {
                read_format_2(body).map(Some)
            }
            _ => Err(format!("{CHECKPOINT_FILE} fails its CRC")),
        };
    }
    let cp: SwitchCheckpoint = postcard::from_bytes(body)
        .map_err(|e| format!("{CHECKPOINT_FILE} does not decode: {e}"))?;
    if cp.format != FORMAT {
        return Err(format!(
            "{CHECKPOINT_FILE} is of format {}, not {FORMAT}",
            cp.format
        ));
    }
    Ok(Some(cp))
}

/// Format 2, as a switch before format 3 wrote it: the same fields, each engine's snapshot
/// encoded into bytes of its own. Read so that the first start after an upgrade restores it
/// rather than reading the whole journal (which needs every segment, archived ones included).
#[derive(Deserialize)]
struct Format2 {
    format: u32,
    replay_from: Lsn,
    taken_lsn: Lsn,
    taken_at_ms: i64,
    horizon_ms: i64,
    cutover_minutes: u16,
    day: NaiveDate,
    day_start: Lsn,
    next_txn: u64,
    next_saf: u64,
    owed: Vec<AdviceRecord>,
    issuer_stans: Vec<(KeyRecord, u32)>,
    engines: Vec<(String, Vec<u8>)>,
}

/// A format-2 body (its CRC already checked) as a checkpoint of today's layout.
fn read_format_2(body: &[u8]) -> Result<SwitchCheckpoint, String> {
    let old: Format2 = postcard::from_bytes(body)
        .map_err(|e| format!("{CHECKPOINT_FILE} (format 2) does not decode: {e}"))?;
    if old.format != 2 {
        return Err(format!(
            "{CHECKPOINT_FILE} is of format {}, not {FORMAT}",
            old.format
        ));
    }
    let engines = old
        .engines
        .into_iter()
        .map(|(id, bytes)| {
            postcard::from_bytes(&bytes)
                .map(|snapshot| (id.clone(), snapshot))
                .map_err(|e| {
                    format!(
                        "{CHECKPOINT_FILE} (format 2): the snapshot of {id} does not decode: {e}"
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SwitchCheckpoint {
        format: FORMAT,
        replay_from: old.replay_from,
        taken_lsn: old.taken_lsn,
        taken_at_ms: old.taken_at_ms,
        horizon_ms: old.horizon_ms,
        cutover_minutes: old.cutover_minutes,
        day: old.day,
        day_start: old.day_start,
        next_txn: old.next_txn,
        next_saf: old.next_saf,
        owed: old.owed,
        issuer_stans: old.issuer_stans,
        engines,
    })
}

/// The journal's LSN over time, on the injected clock, and the LSN below the current business
/// day's records: what the replay point of the next checkpoint is chosen from.
#[derive(Debug)]
pub struct Samples {
    /// `(now_ms, LSN)`, oldest first; kept back to the newest sample older than the horizon.
    taken: VecDeque<(i64, Lsn)>,
    /// How far back the replay point must lie: the duplicate window plus a minute.
    horizon_ms: i64,
    day: NaiveDate,
    day_start: Lsn,
    /// The cutover the day was dated with.
    cutover_minutes: u16,
}

impl Samples {
    /// Starts with the journal at `lsn` at `now_ms`, on business day `day`, whose records all
    /// lie after `day_start`.
    pub fn new(
        horizon_ms: i64,
        now_ms: i64,
        lsn: Lsn,
        (day, cutover_minutes): (NaiveDate, u16),
        day_start: Lsn,
    ) -> Samples {
        Samples {
            taken: VecDeque::from([(now_ms, lsn)]),
            horizon_ms,
            day,
            day_start,
            cutover_minutes,
        }
    }

    /// Records the journal at `lsn` at `now_ms` on business day `day` (dated with
    /// `cutover_minutes`). When the day has moved on, the previous sample's LSN is below every
    /// record of the new day: each was made after the cutover, and so appended after that sample
    /// was read. A cutover changed by a reload moves the day's start to a point no sample saw:
    /// then no LSN is known to lie below the day's records until the next day begins.
    pub fn take(&mut self, now_ms: i64, lsn: Lsn, (day, cutover_minutes): (NaiveDate, u16)) {
        if cutover_minutes != self.cutover_minutes {
            self.day_start = 0;
            self.cutover_minutes = cutover_minutes;
            self.day = day;
        } else if day != self.day {
            self.day_start = self.taken.back().map_or(lsn, |s| s.1);
            self.day = day;
        }
        self.taken.push_back((now_ms, lsn));
        let cutoff = now_ms.saturating_sub(self.horizon_ms);
        // Keep the newest sample at or before the cutoff: it is the one the replay point needs.
        while self.taken.len() > 1 && self.taken[1].0 <= cutoff {
            self.taken.pop_front();
        }
    }

    /// The replay point for a checkpoint taken at `now_ms`: the smaller of the LSN sampled at
    /// least the horizon ago and the day-start LSN. `None` until such a sample exists.
    pub fn replay_point(&self, now_ms: i64) -> Option<Lsn> {
        let cutoff = now_ms.saturating_sub(self.horizon_ms);
        let (_, lsn) = self.taken.iter().rev().find(|s| s.0 <= cutoff)?;
        Some((*lsn).min(self.day_start))
    }

    pub fn day(&self) -> (NaiveDate, Lsn) {
        (self.day, self.day_start)
    }

    pub fn horizon_ms(&self) -> i64 {
        self.horizon_ms
    }
}

/// Takes the samples and writes the checkpoints of a running switch.
pub struct Checkpointer {
    dir: PathBuf,
    clock: Arc<dyn Clock>,
    journal: Arc<FileJournal>,
    /// Also where the current cutover is read (a reload may change it).
    runtime: Arc<Runtime>,
    /// The on-us issuers' engines, by issuer id.
    engines: Vec<(String, Arc<dyn OnUs>)>,
    safs: Vec<Arc<Saf>>,
    samples: Mutex<Samples>,
    /// How fast the checkpoint file is written (`[journal] checkpoint_write_mib_per_s`).
    pace: WritePace,
    /// One checkpoint at a time: both write the same temporary file.
    one_at_a_time: tokio::sync::Mutex<()>,
    /// The periodic checkpoint waits until the journal reaches this LSN ([`Checkpointer::run`]).
    next_due: std::sync::atomic::AtomicU64,
    /// The journal's LSN and the business day at the last checkpoint written.
    last: Mutex<(Lsn, Option<NaiveDate>)>,
    /// A test's signals of attempts, and its hold on a checkpoint that has its replay point
    /// ([`Hold`]).
    #[cfg(test)]
    hold: Option<Arc<Hold>>,
}

/// A test's view of the checkpoints taken: `attempted` is signalled when one starts (whether or
/// not it goes on to write), `reached` when one has chosen its replay point, which then waits for
/// `release`. So a test can stop the checkpoint task between checkpoints, or while one is surely
/// being taken.
#[cfg(test)]
#[derive(Debug, Default)]
struct Hold {
    attempted: tokio::sync::Notify,
    reached: tokio::sync::Notify,
    release: tokio::sync::Notify,
}

impl Checkpointer {
    /// A checkpointer writing into `dir` from the journal, runtime, on-us engines and
    /// store-and-forward queues of a switch that has just recovered. `restored` is the journal's
    /// LSN and the checkpoint's business day when recovery started from a checkpoint: it counts
    /// as the last one, so the next waits for the journal to grow or the day to change instead
    /// of rewriting the same state after a restart.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        dir: PathBuf,
        clock: Arc<dyn Clock>,
        journal: Arc<FileJournal>,
        runtime: Arc<Runtime>,
        engines: Vec<(String, Arc<dyn OnUs>)>,
        safs: Vec<Arc<Saf>>,
        samples: Samples,
        restored: Option<(Lsn, NaiveDate)>,
        pace: WritePace,
    ) -> Checkpointer {
        Checkpointer {
            dir,
            clock,
            journal,
            runtime,
            engines,
            safs,
            samples: Mutex::new(samples),
            pace,
            one_at_a_time: tokio::sync::Mutex::new(()),
            next_due: std::sync::atomic::AtomicU64::new(0),
            last: Mutex::new(restored.map_or((0, None), |(lsn, day)| (lsn, Some(day)))),
            #[cfg(test)]
            hold: None,
        }
    }

    #[cfg(test)]
    fn holding(mut self, hold: Arc<Hold>) -> Checkpointer {
        self.hold = Some(hold);
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Samples> {
        self.samples.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the journal's LSN now. The LSN is read before the clock, and all readings are
    /// made under the samples' lock, so that samples are taken in order.
    pub fn sample(&self) {
        let mut samples = self.lock();
        let lsn = *self.journal.progress().borrow();
        let cutover = self.runtime.live.load().cutover_minutes;
        let day = crate::clearing::business_date(self.clock.now(), cutover);
        let now_ms = self.clock.now_ms();
        samples.take(now_ms, lsn, (day, cutover));
    }

    /// Takes a sample and writes a checkpoint; `Ok(None)` when none is worth writing yet (no
    /// sample is old enough for the duplicate window, or the replay point would still be the
    /// journal's start, as it is through a fresh journal's first business day), else its
    /// replay point.
    pub async fn checkpoint(&self) -> Result<Option<Lsn>, String> {
        let _one = self.one_at_a_time.lock().await;
        #[cfg(test)]
        if let Some(hold) = &self.hold {
            hold.attempted.notify_one();
        }
        let started = std::time::Instant::now();
        self.sample();
        let now_ms = self.clock.now_ms();
        let (replay_from, (day, day_start), horizon_ms, cutover_minutes) = {
            let s = self.lock();
            (
                s.replay_point(now_ms),
                s.day(),
                s.horizon_ms(),
                s.cutover_minutes,
            )
        };
        let Some(replay_from) = replay_from.filter(|r| *r > 0) else {
            return Ok(None);
        };
        #[cfg(test)]
        if let Some(hold) = &self.hold {
            hold.reached.notify_one();
            hold.release.notified().await;
        }
        // Everything below is taken after the sample the replay point comes from.
        let mut cp = SwitchCheckpoint::new(replay_from, day, day_start);
        cp.taken_lsn = *self.journal.progress().borrow();
        cp.taken_at_ms = now_ms;
        cp.horizon_ms = horizon_ms;
        cp.cutover_minutes = cutover_minutes;
        (cp.next_txn, cp.next_saf) = self.runtime.next_numbers();
        // Off the tokio workers: the STAN map and the engines can hold millions of entries.
        let engines = self.engines.clone();
        let safs = self.safs.clone();
        let runtime = Arc::clone(&self.runtime);
        let snap_pace = self.pace.clone();
        // The queues' and the accounts' locks are taken here: nice 19, not the idle policy.
        let (cp, records) = in_background(Background::Low, move || {
            cp.owed = safs.iter().flat_map(|s| s.pending()).collect();
            cp.issuer_stans = runtime
                .issuer_stans
                .entries()
                .iter()
                .map(|(k, stan)| (key_record(k), *stan))
                .collect();
            // Paused as the issuer hosts' are, until a shutdown hurries the pace.
            let pausing = || !snap_pace.hurried();
            cp.engines = engines
                .iter()
                .map(|(id, e)| e.snapshot(&pausing).map(|s| (id.clone(), s)))
                .collect::<Option<Vec<_>>>()?;
            let records: usize = cp.engines.iter().map(|(_, s)| s.record_count()).sum();
            Some((cp, records))
        })
        .await?
        .ok_or("an on-us issuer cannot be checkpointed")?;
        // The snapshots may hold ledger events whose appends are still queued: every one of
        // them is durable before the file exists.
        self.journal
            .flush()
            .await
            .map_err(|e| format!("journal flush before the checkpoint failed: {e}"))?;
        let (dir, pace) = (self.dir.clone(), self.pace.clone());
        let bytes = in_background(Background::Idle, move || write(&dir, &cp, pace))
            .await?
            .map_err(|e| format!("checkpoint not written: {e}"))?;
        // The next periodic one waits for at least as many journal records as this one held
        // idempotency records: the on-us engines' snapshots hold every record of their retry
        // window (30 days by default), and at a fixed interval their cost per transaction
        // would grow with the engines' state, as the issuer hosts' did (`crate::host`).
        let lsn = *self.journal.progress().borrow();
        self.next_due.store(
            lsn.saturating_add(u64::try_from(records).unwrap_or(u64::MAX)),
            std::sync::atomic::Ordering::Relaxed,
        );
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = (lsn, Some(day));
        tracing::info!(
            replay_from,
            bytes,
            idempotency_records = records,
            ms = started.elapsed().as_millis() as u64,
            "switch checkpoint written"
        );
        Ok(Some(replay_from))
    }

    /// Samples every few seconds and checkpoints every `every`, until `stop`, when the journal
    /// has grown since the last one: by as many records as the last checkpoint's engines held,
    /// or by any at all once the business day has changed (so that a restart replays about one
    /// business day, however large the engines).
    pub async fn run(self: Arc<Self>, every: Duration, stop: CancellationToken) {
        let sample_every = every.clamp(Duration::from_millis(100), Duration::from_secs(5));
        let mut tick = tokio::time::interval(sample_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_try = tokio::time::Instant::now();
        loop {
            tokio::select! {
                biased;
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            self.sample();
            let lsn = *self.journal.progress().borrow();
            let (last_lsn, last_day) = *self.last.lock().unwrap_or_else(|p| p.into_inner());
            let new_day = last_day != Some(self.lock().day().0);
            let grown = lsn >= self.next_due.load(std::sync::atomic::Ordering::Relaxed);
            if last_try.elapsed() < every || lsn <= last_lsn || !(grown || new_day) {
                continue;
            }
            last_try = tokio::time::Instant::now();
            let checkpoint = self.checkpoint();
            tokio::pin!(checkpoint);
            // A stop during a paced write lets it finish without pauses, so shutdown does not
            // wait out its pace (the checkpoint itself is still worth having whole), within the
            // shutdown's wait for background work.
            let written = tokio::select! {
                r = &mut checkpoint => r,
                () = stop.cancelled() => {
                    self.pace.hurry();
                    checkpoint.await
                }
            };
            match written {
                Ok(Some(_)) => {}
                Ok(None) => {
                    tracing::debug!(
                        "no switch checkpoint yet: no sample is older than the duplicate window, \
                         or the replay point would still be the journal's start"
                    )
                }
                Err(e) => tracing::error!(error = %e, "switch checkpoint failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::journal::JournalOptions;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 6, d).expect("date")
    }

    /// Waits for `signal`. On paused time a run's ticks come at once, so a run that never gets as
    /// far as the signal fails the test here instead of hanging it.
    async fn within(what: &str, signal: &tokio::sync::Notify) {
        tokio::time::timeout(Duration::from_secs(60), signal.notified())
            .await
            .unwrap_or_else(|_| panic!("no {what} within a minute of paused time"));
    }

    /// A stop that comes while a periodic checkpoint is being taken lifts the pace of its write
    /// (shutdown must not wait it out), and the run still finishes that checkpoint before it
    /// returns. A stop while the run waits between attempts leaves the pace as it is.
    ///
    /// The checkpoint here is a few hundred bytes, less than one chunk, so its write never pauses
    /// whatever the pace; what is checked is the switch that every pause reads
    /// (`WritePace::hurried`). That is also why a rate the config refuses (1 MiB/s) does no harm.
    #[tokio::test(start_paused = true)]
    async fn a_stop_during_a_periodic_checkpoint_lifts_its_pace_and_waits_for_it() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let journal = Arc::new(
            FileJournal::open(dir.path(), JournalOptions::default())
                .expect("journal")
                .0,
        );
        let clock = ManualClock::new(day(1).and_hms_opt(12, 0, 0).expect("time"));
        let config = crate::net::acquirer::tests::config(|_| {});
        let runtime =
            crate::net::memory::runtime(&config, journal.clone(), clock.clone()).expect("runtime");
        journal.append(b"a record").await.expect("appended");
        let lsn = journal.flush().await.expect("flushed");
        let cutover = runtime.live.load().cutover_minutes;
        let today = crate::clearing::business_date(clock.now(), cutover);
        let horizon_ms = 60_000;
        let checkpointer = |pace: &WritePace, hold: &Arc<Hold>| {
            let samples = Samples::new(horizon_ms, clock.now_ms(), lsn, (today, cutover), lsn);
            Arc::new(
                Checkpointer::new(
                    dir.path().to_path_buf(),
                    clock.clone(),
                    journal.clone(),
                    Arc::clone(&runtime),
                    Vec::new(),
                    Vec::new(),
                    samples,
                    None,
                    pace.clone(),
                )
                .holding(Arc::clone(hold)),
            )
        };
        // Between attempts: the first attempt finds no sample a horizon old, writes nothing, and
        // the run goes back to waiting for its next tick, where the stop finds it.
        let (pace, hold) = (WritePace::mib_per_s(1), Arc::new(Hold::default()));
        let stop = CancellationToken::new();
        let run =
            tokio::spawn(checkpointer(&pace, &hold).run(Duration::from_millis(100), stop.clone()));
        within("first attempt", &hold.attempted).await;
        stop.cancel();
        run.await.expect("the run ends");
        assert!(!pace.hurried(), "no checkpoint was in progress to hurry");
        assert!(read(dir.path()).expect("readable").is_none());

        // During one: the first sample is now a horizon old, so a checkpoint is due.
        let (pace, hold) = (WritePace::mib_per_s(1), Arc::new(Hold::default()));
        let cp = checkpointer(&pace, &hold);
        clock.advance_ms(horizon_ms + 1);
        let stop = CancellationToken::new();
        let run = tokio::spawn(cp.run(Duration::from_millis(100), stop.clone()));
        within("checkpoint with its replay point", &hold.reached).await;
        assert!(!pace.hurried(), "paced until the stop");
        stop.cancel();
        hold.release.notify_one();
        run.await.expect("the run ends");
        assert!(
            pace.hurried(),
            "the stop lifted the pace of the checkpoint in progress"
        );
        let written = read(dir.path())
            .expect("readable")
            .expect("the checkpoint in progress was finished, not dropped");
        assert_eq!(written.replay_from, lsn);
    }

    #[test]
    fn the_replay_point_lies_a_horizon_back_and_before_the_day() {
        // A minute of horizon; the journal starts at LSN 100 on June 1, whose records begin
        // after LSN 40.
        let mut s = Samples::new(60_000, 0, 100, (day(1), 1380), 40);
        assert_eq!(s.replay_point(30_000), None, "no sample a minute old yet");
        s.take(30_000, 150, (day(1), 1380));
        s.take(70_000, 200, (day(1), 1380));
        // The newest sample a minute old is the first (0 ms), but the day began before it.
        assert_eq!(s.replay_point(70_000), Some(40));
        // The day changes between two samples: the earlier one's LSN is below the new day.
        s.take(100_000, 260, (day(2), 1380));
        assert_eq!(s.day(), (day(2), 200));
        // At 100 s the newest sample a minute old is the one at 30 s (LSN 150).
        assert_eq!(s.replay_point(100_000), Some(150));
        s.take(200_000, 400, (day(2), 1380));
        // At 200 s: the sample at 100 s (260) is a minute old, the day began at 200.
        assert_eq!(s.replay_point(200_000), Some(200));
        // Old samples are let go, all but the newest one past the horizon.
        assert!(s.taken.len() <= 2, "{:?}", s.taken);
        // A reload moves the cutover: no LSN is known below the day's records any more, until
        // the next day begins.
        s.take(300_000, 500, (day(2), 1320));
        assert_eq!(s.replay_point(300_000), Some(0));
        s.take(400_000, 600, (day(3), 1320));
        assert_eq!(s.day(), (day(3), 500));
    }

    #[test]
    fn a_checkpoint_round_trips_and_a_foreign_one_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(read(dir.path()).expect("no file is fine").is_none());
        let mut cp = SwitchCheckpoint::new(7, day(3), 5);
        cp.next_txn = 42;
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../config/issuers/metro-pay.toml");
        let engine = crate::onus::load_engine(&path).expect("Metro Pay");
        let t0 = day(3).and_hms_opt(10, 0, 0).expect("time");
        let pan = crate::domain::Pan::parse(b"6050010000000013").expect("pan");
        assert!(
            engine
                .process(&crate::onus::sample_purchase(pan, 1), t0, t0.date())
                .result
                .is_ok()
        );
        cp.engines.push(("metro-pay".to_owned(), engine.snapshot()));
        assert_eq!(cp.engines[0].1.record_count(), 1);
        let bytes = write(dir.path(), &cp, WritePace::unpaced()).expect("written");
        assert!(bytes > 0);
        let back = read(dir.path()).expect("reads").expect("there");
        assert_eq!(
            (back.replay_from, back.day, back.day_start, back.next_txn),
            (7, day(3), 5, 42)
        );
        assert_eq!(back.engines, cp.engines);
        cp.format = FORMAT + 1;
        write(dir.path(), &cp, WritePace::unpaced()).expect("written");
        assert!(read(dir.path()).unwrap_err().contains("format"));
        std::fs::write(dir.path().join(CHECKPOINT_FILE), b"garbage").expect("write");
        assert!(read(dir.path()).unwrap_err().contains("CRC"));
        // A flipped bit in a file that would still decode.
        cp.format = FORMAT;
        write(dir.path(), &cp, WritePace::unpaced()).expect("written");
        let path = dir.path().join(CHECKPOINT_FILE);
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[5] ^= 1;
        std::fs::write(&path, &bytes).expect("write");
        assert!(read(dir.path()).unwrap_err().contains("CRC"));
    }

    /// A file as format 2 wrote it (CRC first, each engine's snapshot encoded apart) still
    /// restores, so an upgrade does not read the whole journal; a damaged one fails its CRC.
    #[test]
    fn a_format_2_checkpoint_is_still_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../config/issuers/metro-pay.toml");
        let engine = crate::onus::load_engine(&path).expect("Metro Pay");
        let t0 = day(3).and_hms_opt(10, 0, 0).expect("time");
        let pan = crate::domain::Pan::parse(b"6050010000000013").expect("pan");
        let hold = crate::onus::sample_purchase(pan, 1);
        assert!(engine.process(&hold, t0, t0.date()).result.is_ok());
        let snapshot = engine.snapshot();
        let key = KeyRecord {
            acquirer: "100001".into(),
            terminal: "TERM0001".into(),
            stan: 9,
            transmission: "0603100000".into(),
        };
        // Format 2's fields in order, as the format-2 code encoded its struct.
        let body = postcard::to_allocvec(&(
            2u32,
            7u64,
            90u64,
            1_000_i64,
            61_000_i64,
            1380u16,
            day(3),
            5u64,
            42u64,
            3u64,
            Vec::<AdviceRecord>::new(),
            vec![(key.clone(), 123_456u32)],
            vec![(
                "metro-pay".to_owned(),
                postcard::to_allocvec(&snapshot).expect("snapshot"),
            )],
        ))
        .expect("body");
        let mut file = crc32fast::hash(&body).to_le_bytes().to_vec();
        file.extend_from_slice(&body);
        std::fs::write(dir.path().join(CHECKPOINT_FILE), &file).expect("write");
        let cp = read(dir.path()).expect("reads").expect("there");
        assert_eq!(
            (
                cp.format,
                cp.replay_from,
                cp.taken_lsn,
                cp.taken_at_ms,
                cp.horizon_ms
            ),
            (FORMAT, 7, 90, 1_000, 61_000)
        );
        assert_eq!(
            (
                cp.cutover_minutes,
                cp.day,
                cp.day_start,
                cp.next_txn,
                cp.next_saf
            ),
            (1380, day(3), 5, 42, 3)
        );
        assert_eq!(cp.issuer_stans, vec![(key, 123_456)]);
        assert_eq!(cp.engines, vec![("metro-pay".to_owned(), snapshot)]);

        file[6] ^= 1;
        std::fs::write(dir.path().join(CHECKPOINT_FILE), &file).expect("write");
        assert!(read(dir.path()).unwrap_err().contains("CRC"));
    }
}
