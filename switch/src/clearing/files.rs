//! The thin shell around clearing and settlement: read the journal and the previous day's
//! carry-over, run the pure functions, write the reports. Used by `switch cutover`,
//! `switch settle` and the running switch's automatic cutover alike.
//!
//! Layout under the reports folder, one subfolder per business date:
//!
//! ```text
//! reports/2026-11-25/clearing.{txt,csv,json}      what cleared, what is carried, what expired
//! reports/2026-11-25/carry-over.json              open holds and recent approvals, for the next day
//! reports/2026-11-25/settlement.{txt,csv,json}    per institution and currency: gross, fees, net
//! reports/2026-11-25/merchants/<acquirer>/<merchant>.{txt,csv,json}
//! ```
//!
//! A merchant id (field 42) is the acquirer's own numbering, so statements sit under their
//! acquirer. Characters other than `A-Z a-z 0-9 - _ .` in an id become `_` in a file name.
//!
//! Closing a day needs the day before closed: [`cutover`] starts from the latest carry-over it
//! finds before the requested day (or, if there is none, from the journal's first business day)
//! and closes every day up to the requested one in order. It reads the journal from the LSN that
//! carry-over names (`resume_lsn`: no request of a later day lies before it), once the record
//! before it matches the carry-over's CRC, one segment at a time, keeping only the days it
//! closes, so a cutover's time and memory do not grow with the journal's age. Running it again
//! for a closed day recomputes the same figures from the same inputs and rewrites them.

use std::path::{Path, PathBuf};

use chrono::{NaiveDate, NaiveDateTime};
use serde::de::DeserializeOwned;

use super::clear::{CarryOver, Clearing, ClearingError, ClearingRules, clear_day};
use super::day::business_date;
use super::fees::FeeSchedule;
use super::report::{self, RenderError, Rendered};
use super::settle::{MerchantStatement, SettleError, Settlement, settle as settle_day};
use crate::config::Config;
use crate::events::Record;

/// Why a cutover or settlement did not complete.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("journal: {0}")]
    Journal(#[from] crate::journal::JournalError),
    #[error("journal record {lsn} does not decode: {source}")]
    Record {
        lsn: u64,
        #[source]
        source: crate::events::RecordError,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("business day {day} has not ended yet (the current business day is {current})")]
    NotEnded { day: NaiveDate, current: NaiveDate },
    #[error("business day {day} is not cleared: run `switch cutover --date {day}` first")]
    NotCleared { day: NaiveDate },
    #[error("{0}")]
    Clearing(#[from] ClearingError),
    #[error("{0}")]
    Settle(#[from] SettleError),
    #[error("{0}")]
    Render(#[from] RenderError),
    #[error("configuration: {0}")]
    Config(String),
}

/// What a cutover or settlement works with.
#[derive(Debug, Clone)]
pub struct Job {
    pub journal_dir: PathBuf,
    pub reports_dir: PathBuf,
    pub rules: ClearingRules,
    /// `[[acquirer]]` and `[[issuer]]` display names, for the settlement report.
    pub names: Vec<(String, String)>,
}

impl Job {
    /// The job a configuration describes; `reports_dir` overrides `[clearing] reports_dir`.
    pub fn from_config(config: &Config, reports_dir: Option<&Path>) -> Result<Job, FilesError> {
        let cutover_minutes = config
            .switch
            .business_date_cutover_minutes()
            .ok_or_else(|| {
                FilesError::Config("switch.business_date_cutover is not HH:MM".into())
            })?;
        let names = config
            .acquirers
            .iter()
            .map(|a| (a.id.clone(), a.name.clone()))
            .chain(
                config
                    .issuers
                    .iter()
                    .map(|i| (i.id.clone(), i.name.clone())),
            )
            .collect();
        Ok(Job {
            journal_dir: config.journal.dir.clone(),
            reports_dir: reports_dir
                .map_or_else(|| config.clearing.reports_dir.clone(), Path::to_owned),
            rules: ClearingRules {
                cutover_minutes,
                hold_expiry_h: config.clearing.hold_expiry_h,
                lookback_days: config.clearing.lookback_days,
                carried_closed_max: usize::try_from(config.clearing.carried_closed_max)
                    .unwrap_or(usize::MAX),
            },
            names,
        })
    }

    /// The folder of business day `day`.
    pub fn day_dir(&self, day: NaiveDate) -> PathBuf {
        self.reports_dir.join(day.to_string())
    }
}

const CARRY_OVER: &str = "carry-over.json";
const CLEARING: &str = "clearing";
const SETTLEMENT: &str = "settlement";

/// Closes every business day up to and including `through` that needs it (see the module
/// documentation), at `now`. Returns the clearing of each day closed, in order.
pub fn cutover(
    job: &Job,
    through: NaiveDate,
    now: NaiveDateTime,
) -> Result<Vec<Clearing>, FilesError> {
    let current = business_date(now, job.rules.cutover_minutes);
    if through >= current {
        return Err(FilesError::NotEnded {
            day: through,
            current,
        });
    }
    let previous = latest_carry_over(job, through)?;
    let after = previous.as_ref().map(|p| p.business_date);
    let resume = previous
        .as_ref()
        .and_then(|p| Some((p.resume_lsn?, p.resume_check?)));
    let mut read = read_days(&job.journal_dir, after, resume, through)?;
    if !read.point_held {
        tracing::warn!(
            resume_lsn = resume.map(|(lsn, _)| lsn),
            "the last carry-over's resume point does not match the journal (a crash cut its \
             unsynced tail, or it is another journal): reading the whole journal"
        );
        read = read_days(&job.journal_dir, after, None, through)?;
    }
    let mut days = std::mem::take(&mut read.days);
    let start = match &previous {
        Some(p) => p.business_date.succ_opt().unwrap_or(through),
        None => days.keys().next().copied().unwrap_or(through).min(through),
    };
    let mut carry = previous;
    let mut closed = Vec::new();
    let mut day = start;
    while day <= through {
        let txns = days.remove(&day).unwrap_or_default();
        let (clearing, mut next) = clear_day(day, &txns, carry.as_ref(), &job.rules)?;
        if next.closed.len() >= job.rules.carried_closed_max {
            tracing::warn!(
                business_date = %day,
                carried_closed_max = job.rules.carried_closed_max,
                "closed approvals carried over at clearing.carried_closed_max: the oldest of earlier days are dropped, and a late reversal of one becomes an exception"
            );
        }
        let (lsn, check) = read.resume_after(day);
        next.resume_lsn = Some(lsn);
        next.resume_check = check;
        write_clearing(job, &clearing, &next)?;
        tracing::info!(
            business_date = %day,
            items = clearing.items.len(),
            carried = clearing.authorized_not_captured.len(),
            expired = clearing.expired.len(),
            exceptions = clearing.exceptions.len(),
            "business day closed"
        );
        closed.push(clearing);
        carry = Some(next);
        let Some(next_day) = day.succ_opt() else {
            break;
        };
        day = next_day;
    }
    Ok(closed)
}

/// Settles business day `day` from its clearing (closing it first, at `now`, if it is not yet)
/// and writes the settlement report and the merchant statements.
pub fn settle(
    job: &Job,
    schedule: &FeeSchedule,
    day: NaiveDate,
    now: NaiveDateTime,
) -> Result<(Settlement, Vec<MerchantStatement>), FilesError> {
    let path = job.day_dir(day).join(format!("{CLEARING}.json"));
    let clearing: Clearing = if path.exists() {
        read_json(&path)?
    } else {
        cutover(job, day, now)?
            .pop()
            .ok_or(FilesError::NotCleared { day })?
    };
    let (settlement, statements) = settle_day(&clearing, schedule)?;
    let dir = job.day_dir(day);
    let names = |id: &str| {
        job.names
            .iter()
            .find(|(i, _)| i == id)
            .map(|(_, n)| n.clone())
    };
    write_rendered(&dir, SETTLEMENT, &report::settlement(&settlement, &names)?)?;
    for m in &statements {
        let folder = dir.join("merchants").join(file_name(&m.acquirer));
        let mut stem = file_name(&m.merchant);
        if statements.iter().any(|o| {
            o.acquirer == m.acquirer && o.merchant == m.merchant && o.currency != m.currency
        }) {
            stem = format!("{stem}-{}", report::currency_code(m.currency));
        }
        write_rendered(&folder, &stem, &report::statement(m)?)?;
    }
    tracing::info!(
        business_date = %day,
        positions = settlement.positions.len(),
        merchants = statements.len(),
        "business day settled"
    );
    Ok((settlement, statements))
}

/// What [`read_days`] found.
struct DaysRead {
    /// The transactions of the days to close.
    days: std::collections::BTreeMap<NaiveDate, Vec<super::facts::Txn>>,
    /// Each request of a day to close: its day, LSN and the CRC-32 of its record, in LSN order.
    requests: Vec<(NaiveDate, u64, u32)>,
    /// The LSN of the first request of a day after the last one to close, if any was read.
    later_lsn: Option<u64>,
    /// The checked point the read began at, if it did not begin at the start.
    from: Option<(u64, u32)>,
    /// Whether the record before that point was there, as the carry-over said (always true
    /// without a point). When false the rest of this read is not to be used.
    point_held: bool,
}

impl DaysRead {
    /// Where the cutover of the day after `day` may start reading, and the CRC-32 of the record
    /// before it (`None`: from the start). The point is one past a request of a day closed by
    /// now, and at or before every request of a later day: the last such request, or the point
    /// this read began at if there is none. The next cutover checks the CRC before trusting it
    /// (see [`super::clear::CarryOver::resume_check`]).
    fn resume_after(&self, day: NaiveDate) -> (u64, Option<u32>) {
        let bound = self
            .requests
            .iter()
            .filter(|(d, _, _)| *d > day)
            .map(|&(_, lsn, _)| lsn)
            .chain(self.later_lsn)
            .min();
        self.requests
            .iter()
            .filter(|&&(d, lsn, _)| d <= day && bound.is_none_or(|b| lsn < b))
            .max_by_key(|&&(_, lsn, _)| lsn)
            .map_or_else(
                || self.from.map_or((1, None), |(lsn, crc)| (lsn, Some(crc))),
                |&(_, lsn, crc)| (lsn + 1, Some(crc)),
            )
    }
}

/// Reads the journal one record at a time, keeping the transactions of the days after `after`
/// (if any) up to `through`: what a cutover closes, and not the rest of the journal, whose size
/// grows with every day the switch runs. With a point `(lsn, crc)` it starts there and checks the
/// record before it ([`DaysRead::point_held`]: when false, the caller reads the whole journal
/// instead).
fn read_days(
    dir: &Path,
    after: Option<NaiveDate>,
    from: Option<(u64, u32)>,
    through: NaiveDate,
) -> Result<DaysRead, FilesError> {
    struct State<F> {
        days: super::facts::Days<F>,
        requests: Vec<(NaiveDate, u64, u32)>,
        later_lsn: Option<u64>,
        checked: bool,
        failed: Option<FilesError>,
    }
    let keep = move |d: NaiveDate| after.is_none_or(|a| d > a) && d <= through;
    let fresh = || State {
        days: super::facts::Days::new(keep),
        requests: Vec::new(),
        later_lsn: None,
        checked: false,
        failed: None,
    };
    let state = std::cell::RefCell::new(fresh());
    // The record before the point is read too, to be checked.
    let covered = from.map_or(0, |(lsn, _)| lsn.saturating_sub(2));
    crate::journal::read_each(
        dir,
        covered,
        &mut || *state.borrow_mut() = fresh(),
        &mut |lsn, bytes| {
            let mut s = state.borrow_mut();
            if s.failed.is_some() {
                return;
            }
            if let Some((point, crc)) = from
                && lsn + 1 == point
            {
                s.checked = crc32fast::hash(&bytes) == crc;
                return;
            }
            match Record::decode(&bytes) {
                Ok(rec) => {
                    if let Record::Request(r) = &rec {
                        if r.business_date > through {
                            s.later_lsn.get_or_insert(lsn);
                        } else if keep(r.business_date) {
                            s.requests
                                .push((r.business_date, lsn, crc32fast::hash(&bytes)));
                        }
                    }
                    s.days.push(rec);
                }
                Err(source) => s.failed = Some(FilesError::Record { lsn, source }),
            }
        },
    )?;
    let s = state.into_inner();
    if let Some(e) = s.failed {
        return Err(e);
    }
    Ok(DaysRead {
        days: s.days.finish(),
        requests: s.requests,
        later_lsn: s.later_lsn,
        from,
        point_held: from.is_none() || s.checked,
    })
}

/// Every record of the journal, decoded and held at once: for tools and tests. A cutover reads
/// through [`read_days`] instead.
pub fn read_journal(dir: &Path) -> Result<Vec<Record>, FilesError> {
    crate::journal::read_all(dir)?
        .into_iter()
        .map(|(lsn, bytes)| {
            Record::decode(&bytes).map_err(|source| FilesError::Record { lsn, source })
        })
        .collect()
}

/// The carry-over written by the latest closed day before `day`, if any.
fn latest_carry_over(job: &Job, day: NaiveDate) -> Result<Option<CarryOver>, FilesError> {
    let entries = match std::fs::read_dir(&job.reports_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(FilesError::Io {
                path: job.reports_dir.clone(),
                source,
            });
        }
    };
    let latest = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<NaiveDate>().ok())
        .filter(|d| *d < day && job.day_dir(*d).join(CARRY_OVER).exists())
        .max();
    latest
        .map(|d| read_json(&job.day_dir(d).join(CARRY_OVER)))
        .transpose()
}

fn write_clearing(job: &Job, clearing: &Clearing, carry: &CarryOver) -> Result<(), FilesError> {
    let dir = job.day_dir(clearing.business_date);
    write_rendered(&dir, CLEARING, &report::clearing(clearing)?)?;
    // Compact: it holds every approval of the lookback window and only programs read it.
    let json = serde_json::to_string(carry).map_err(|source| FilesError::Json {
        path: dir.join(CARRY_OVER),
        source,
    })?;
    // Written last: its presence is what marks the day closed.
    write(&dir.join(CARRY_OVER), json.as_bytes())
}

fn write_rendered(dir: &Path, stem: &str, r: &Rendered) -> Result<(), FilesError> {
    write(&dir.join(format!("{stem}.txt")), r.text.as_bytes())?;
    write(&dir.join(format!("{stem}.csv")), r.csv.as_bytes())?;
    write(&dir.join(format!("{stem}.json")), r.json.as_bytes())
}

/// Writes through a temporary file and a rename, so a reader never sees half a report.
fn write(path: &Path, bytes: &[u8]) -> Result<(), FilesError> {
    let io = |source| FilesError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, FilesError> {
    let text = std::fs::read_to_string(path).map_err(|source| FilesError::Io {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| FilesError::Json {
        path: path.to_owned(),
        source,
    })
}

/// `id` with anything but `A-Z a-z 0-9 - _ .` replaced by `_` (and never empty or a dot name).
pub fn file_name(id: &str) -> String {
    let s: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.chars().all(|c| c == '.') {
        format!("_{s}")
    } else {
        s
    }
}
