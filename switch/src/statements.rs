//! Statement runs: close a billing cycle for the issuers whose ledger events a journal holds,
//! post each close (the cycle's interest and fees) into that journal, and write the statements
//! as files. `issuer-sim statements` runs it on a remote issuer's own journal, `switch
//! statements` on the switch's journal for its on-us issuers (their engines journal
//! `Record::Ledger { issuer, .. }` there, see [`crate::onus`]), and `switch demo --days` on both.
//!
//! The statement rules and arithmetic are [`crate::issuing::statement`]'s; this module owns the
//! I/O around them: reading the journal, appending the closes durably, the file layout and the
//! one-line summary printed per statement.
//!
//! # Why the journal's writer must be stopped
//!
//! A close is a ledger event with the engine's next sequence number, appended as the journal's
//! next LSN. Both numbers belong to the one process that writes the journal: a statement run
//! beside a running switch (or issuer host) would hand out sequence numbers that the running
//! engine hands out too, and two writers would interleave LSNs. So a run that posts takes the
//! journal for itself: the caller stops the process serving from it and holds its
//! [`crate::journal::PidFile`] (the CLIs do; the demo stops its in-process stack), this module
//! opens the journal as its only writer, and the restarted process replays the closes like any
//! other change. A dry run (`dry_run`) only reads, posts nothing, and may run beside a live
//! process.
//!
//! Closes are posted and made durable before any statement file is written, so a statement on
//! disk always shows a close the journal holds. Running again for the same day posts nothing
//! (the engine knows the cycle is closed) and writes the same statements.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;

use crate::events::Record;
use crate::issuing::statement::render::{self, Format};
use crate::issuing::statement::{Planned, Summary};
use crate::issuing::{Engine, History, LedgerEvent, ProductKind, Statement, StatementError};
use crate::journal::{FileJournal, Journal, JournalError, JournalOptions, read_all};

/// Why a statement run did not complete.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("journal: {0}")]
    Journal(#[from] JournalError),
    /// Unlike a process's recovery, statements skip nothing: a missing event is a wrong
    /// statement.
    #[error("journal record {lsn}: {what}")]
    Record { lsn: u64, what: String },
    #[error("issuer {issuer}: {source}")]
    Statement {
        issuer: String,
        #[source]
        source: StatementError,
    },
    /// A close was not made durable; statements were not written. Running again posts what is
    /// missing.
    #[error("journal: {0}; no statement written, run statements again")]
    Post(JournalError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The cycle's last day; accounts whose cycle closes on it get a statement. The caller
    /// checks that it is over.
    pub cycle_end: NaiveDate,
    /// Formats written for each statement.
    pub formats: Vec<Format>,
    /// Read the journal only: nothing posted, statements of open cycles are previews.
    pub dry_run: bool,
    /// How the journal is opened to post (its sync policy).
    pub journal: JournalOptions,
    /// Journal time of the close records (`Record::Ledger::at_ms`), from the caller's clock.
    pub now_ms: i64,
}

/// One issuer of a run: its engine fresh from its issuer file, and where its statements go.
#[derive(Debug)]
pub struct IssuerRun {
    pub engine: Engine,
    pub out: PathBuf,
}

/// What happened to a statement's close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Posted,
    /// The cycle was closed by an earlier run: the statement was rebuilt from the journal.
    AlreadyPosted,
    /// A dry run: computed, not posted.
    Preview,
}

impl Status {
    /// Words for the operator, as printed after each statement's summary line.
    pub fn label(self) -> &'static str {
        match self {
            Status::Posted => "posted",
            Status::AlreadyPosted => "already posted",
            Status::Preview => "preview, not posted",
        }
    }
}

/// A statement written.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub statement: Statement,
    pub status: Status,
    /// One file per format, in the order of [`Options::formats`].
    pub files: Vec<PathBuf>,
}

/// Runs the cycle ending `opts.cycle_end` for each issuer of `issuers` on the journal in
/// `journal_dir`: replays each issuer's ledger events, posts the closes (unless a dry run) and
/// waits until they are durable, then writes the statements. Returns them in issuer order, then
/// account order.
///
/// Blocks on the journal's writer: from async code, call it on a blocking thread.
pub fn run(
    journal_dir: &Path,
    issuers: Vec<IssuerRun>,
    opts: &Options,
) -> Result<Vec<Delivered>, RunError> {
    let (journal, records) = if opts.dry_run {
        let records = if journal_dir.exists() {
            read_all(journal_dir)?
        } else {
            Vec::new()
        };
        (None, records)
    } else {
        let (journal, recovered) = FileJournal::open(journal_dir, opts.journal)?;
        (Some(journal), recovered.records)
    };

    let mut events: HashMap<String, Vec<LedgerEvent>> = issuers
        .iter()
        .map(|i| (i.engine.issuer().to_owned(), Vec::new()))
        .collect();
    for (lsn, bytes) in &records {
        let record = Record::decode(bytes).map_err(|e| RunError::Record {
            lsn: *lsn,
            what: e.to_string(),
        })?;
        if let Record::Ledger { issuer, event, .. } = record
            && let Some(list) = events.get_mut(issuer.as_str())
        {
            list.push(LedgerEvent::decode(&event).map_err(|e| RunError::Record {
                lsn: *lsn,
                what: format!("ledger event: {e}"),
            })?);
        }
    }
    drop(records);

    let mut runs = Vec::with_capacity(issuers.len());
    for IssuerRun { engine, out } in issuers {
        let issuer = engine.issuer().to_owned();
        let failed = |source| RunError::Statement {
            issuer: issuer.clone(),
            source,
        };
        let history =
            History::replay(engine, events.remove(&issuer).unwrap_or_default()).map_err(failed)?;
        let plans = history.cycle(opts.cycle_end).map_err(failed)?;
        runs.push((issuer, history, plans, out));
    }

    // Post every close first, durably; only then write statements that show them.
    let mut statuses = Vec::new();
    let mut tickets = Vec::new();
    for (issuer, history, plans, _) in &runs {
        for plan in plans {
            let status = match (&journal, &plan.close) {
                (_, None) => Status::AlreadyPosted,
                (None, Some(_)) => Status::Preview,
                (Some(journal), Some(close)) => {
                    let posted = history
                        .engine()
                        .close_statement(close, |ev: &LedgerEvent| {
                            tickets.push(crate::onus::with_ledger_record(
                                issuer,
                                opts.now_ms,
                                ev,
                                |payload| journal.append(payload),
                            )?);
                            Ok::<(), ()>(())
                        })
                        .map_err(|source| RunError::Statement {
                            issuer: issuer.clone(),
                            source,
                        })?;
                    if posted.is_some() {
                        Status::Posted
                    } else {
                        Status::AlreadyPosted
                    }
                }
            };
            statuses.push(status);
        }
    }
    if let Some(journal) = journal {
        futures::executor::block_on(async {
            for t in tickets {
                t.await.map_err(RunError::Post)?;
            }
            journal.flush().await.map_err(RunError::Post)?;
            Ok::<(), RunError>(())
        })?;
        journal.close();
    }

    let mut status = statuses.into_iter();
    let mut out = Vec::new();
    for (_, _, plans, dir) in runs {
        std::fs::create_dir_all(&dir).map_err(|source| RunError::Io {
            path: dir.clone(),
            source,
        })?;
        for Planned { statement, .. } in plans {
            let files = write(&dir, &statement, &opts.formats)?;
            out.push(Delivered {
                statement,
                status: status.next().unwrap_or(Status::AlreadyPosted),
                files,
            });
        }
    }
    Ok(out)
}

/// Writes `s` in each format to `dir/<account>.<ext>`.
fn write(dir: &Path, s: &Statement, formats: &[Format]) -> Result<Vec<PathBuf>, RunError> {
    let name = crate::clearing::files::file_name(&s.account);
    let mut files = Vec::with_capacity(formats.len());
    for format in formats {
        let text = format.render(s).map_err(|source| RunError::Statement {
            issuer: s.issuer.clone(),
            source,
        })?;
        let path = dir.join(format!("{name}.{}", format.extension()));
        std::fs::write(&path, text).map_err(|source| RunError::Io {
            path: path.clone(),
            source,
        })?;
        files.push(path);
    }
    Ok(files)
}

/// The folder of an issuer's statements for one cycle under a statements root:
/// `<root>/<issuer>/<cycle-end>`.
pub fn issuer_dir(root: &Path, issuer: &str, cycle_end: NaiveDate) -> PathBuf {
    root.join(crate::clearing::files::file_name(issuer))
        .join(cycle_end.to_string())
}

/// One line per statement for the operator: account, kind, period and the key figures.
pub fn summary_line(s: &Statement) -> String {
    let m = |v: i64| format!("{} {}", render::money(v, s.currency), s.currency.alpha());
    let kind = match s.kind {
        ProductKind::Credit => "credit",
        ProductKind::Debit => "debit",
        ProductKind::Prepaid => "prepaid",
    };
    let head = format!(
        "{:<12} {kind:<8} {}..{}",
        s.account, s.period_start, s.period_end
    );
    match &s.summary {
        Summary::Credit(c) => format!(
            "{head}  new balance {}  minimum {}  due {}  interest {}  fees {}",
            m(c.new_balance),
            m(c.minimum_due),
            c.due_date,
            m(c.interest),
            m(c.fees)
        ),
        Summary::Account(a) => format!(
            "{head}  opening {}  credits {}  debits {}  closing {}",
            m(a.opening_balance),
            m(a.credits),
            m(a.debits),
            m(a.closing_balance)
        ),
    }
}
