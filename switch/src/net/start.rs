//! Starting and stopping a whole switch: build the issuers (links, on-us engines), open the
//! journal and recover from it, start the store-and-forward queues, bind the acquirer listener,
//! and later shut all of it down in order.
//!
//! Recovery restores the switch's checkpoint when it can be used ([`super::checkpoint`]: what it
//! holds, and why replaying on top of it is exact), then reads every journal record after its
//! replay point (all of them without one) once, one segment at a time, as the journal hands them
//! over: the highest transaction and advice numbers, the advices still owed to issuers (queued
//! and neither delivered nor parked), the answers still inside the duplicate window, today's
//! stand-in charges, and the on-us ledger events to replay. The issuers are built first, with a
//! journal handle filled in once recovery is done ([`LateJournal`]), so that the ledger events
//! can go straight to their engines and no segment is held after it is read (docs/reliability.md,
//! "Switch restart").

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::Clock;
use crate::config::{Config, ConfigError, IssuerConfig, IssuerKind, JournalSync, Problem};
use crate::decision::security::{IssuerKeys, PartyMac, check_keys};
use crate::decision::stip::StandInRules;
use crate::events::DecisionSource;
use crate::events::{AdviceRecord, Record};
use crate::journal::{Admission, AppendTicket, FileJournal, Journal, JournalError, JournalOptions};
use crate::metrics as m;
use crate::net::acquirer::{SessionLimits, Sessions, serve};
use crate::net::admission::Policies;
use crate::net::checkpoint::{Checkpointer, Samples, SwitchCheckpoint};
use crate::net::duplicates::{Answer, DuplicateWindow};
use crate::net::framing::FramingConfig;
use crate::net::issuer::{IssuerLinkConfig, IssuerPool};
use crate::net::saf::{Saf, SafConfig};
use crate::net::server::SwitchSecurity;
use crate::net::server::{IssuerHandle, Live, OnUs, Runtime, StandIn, key_from_record};
use crate::security::{KeysFile, PanVault, SecurityModule, SoftwareSecurityModule};

/// What a checkpoint must agree with to be used: the clock has not gone back past it, the
/// replay point reaches back as far as this start's duplicate window needs, and the business
/// day is dated as it was.
#[derive(Clone, Copy)]
struct Fit {
    now_ms: i64,
    today: chrono::NaiveDate,
    horizon_ms: i64,
    cutover_minutes: u16,
}

/// The checkpoint in the journal directory, restored onto the on-us engines, when it can be used:
/// it decodes, fits (see [`Fit`]), and every configured on-us issuer has a snapshot in it that
/// restores. Otherwise `None`, and recovery reads the whole journal (an engine restored before
/// another failed is still right after that: each account skips the events it already holds).
fn restore_checkpoint(
    dir: &std::path::Path,
    issuers: &[IssuerHandle],
    fit: &Fit,
) -> Option<SwitchCheckpoint> {
    let cp = match crate::net::checkpoint::read(dir) {
        Ok(Some(cp)) => cp,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(error = %e, "switch checkpoint not used; reading the whole journal");
            return None;
        }
    };
    // The replay point lies at least `cp.horizon_ms` before `cp.taken_at_ms`; this start's
    // duplicate window (and margin) must not reach further back than that. A clock set back, or
    // a longer window, fails this until enough time has passed.
    let misfit = if fit.now_ms.saturating_sub(fit.horizon_ms)
        < cp.taken_at_ms.saturating_sub(cp.horizon_ms)
    {
        Some(
            "the duplicate window reaches further back than its replay point (clock set back, or a longer window)",
        )
    } else if fit.cutover_minutes != cp.cutover_minutes {
        Some("the business day's cutover has changed")
    } else if cp.day > fit.today {
        Some("its business day is later than today's")
    } else {
        None
    };
    if let Some(why) = misfit {
        tracing::warn!(why, "switch checkpoint not used; reading the whole journal");
        return None;
    }
    for h in issuers {
        let IssuerHandle::OnUs { id, engine } = h else {
            continue;
        };
        let restored = match cp.engines.iter().find(|(i, _)| **i == **id) {
            Some((_, snapshot)) => engine.restore(snapshot),
            None => Err("the checkpoint has no snapshot of it".to_owned()),
        };
        if let Err(e) = restored {
            tracing::warn!(issuer = %id, error = %e, "switch checkpoint not used; reading the whole journal");
            return None;
        }
    }
    tracing::info!(
        replay_from = cp.replay_from,
        "switch checkpoint restored; reading the journal after it"
    );
    Some(cp)
}

/// How often a quiet switch's duplicate window lets go of answers past the window: a key stays
/// remembered up to this much longer than `duplicate_window_s` when no request comes.
const DUPLICATE_SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Sweeps an on-us issuer every `every` until `stop` ([`crate::net::sweep_every`]): expired
/// holds released and idempotency records past their window forgotten on accounts with no
/// requests of their own, so that a quiet account neither keeps money held nor holds memory
/// (`[ledger] sweep_interval_s`).
async fn sweeps(
    issuer: String,
    engine: Arc<dyn OnUs>,
    clock: Arc<dyn Clock>,
    journal: Arc<dyn Journal>,
    every: Duration,
    stop: CancellationToken,
) {
    let e = Arc::clone(&engine);
    let pass = Arc::new(move || e.sweep(clock.now()));
    crate::net::sweep_every(every, stop, journal, pass, |events| {
        metrics::counter!(m::ONUS_SWEEP_EVENTS_TOTAL, "issuer" => issuer.clone())
            .increment(events as u64);
        metrics::gauge!(m::ONUS_RECORDS, "issuer" => issuer.clone())
            .set(engine.records_held() as f64);
        if events > 0 {
            tracing::debug!(%issuer, events, "on-us sweep");
        }
    })
    .await;
}

/// Problems one per line, as the config loader shows them.
fn lines(problems: Vec<Problem>) -> String {
    ConfigError::Invalid(problems).to_string()
}

/// Builds the engine of an on-us issuer from its config; supplied by the caller so that this
/// module does not depend on how engines are made.
/// It gets the journal (the engine journals each ledger change under its account's lock) and the
/// clock.
pub type OnUsFactory = dyn Fn(&IssuerConfig, Arc<dyn Journal>, Arc<dyn Clock>) -> Result<Arc<dyn OnUs>, String>
    + Send
    + Sync;

/// Why the switch did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("internal: keys: {0}")]
    Keys(#[from] crate::security::KeyError),
    #[error("internal: journal: {0}")]
    Journal(#[from] crate::journal::JournalError),
    #[error("internal: checkpoint: {0}")]
    Checkpoint(String),
    #[error("internal: configuration: {0}")]
    Config(String),
    #[error("internal: issuer {issuer}: {message}")]
    Issuer { issuer: String, message: String },
    #[error("internal: cannot listen on {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
}

/// How to start.
pub struct StartOptions {
    pub config: Config,
    pub keys: KeysFile,
    pub clock: Arc<dyn Clock>,
    pub on_us: Arc<OnUsFactory>,
}

/// A running switch.
pub struct SwitchServer {
    pub runtime: Arc<Runtime>,
    /// `[[acquirer]]` connection policies, swapped on a reload like the runtime's live state.
    policies: Arc<ArcSwap<Policies>>,
    local_addr: SocketAddr,
    stop_accepting: CancellationToken,
    connections: TaskTracker,
    saf_stop: CancellationToken,
    pools: Vec<IssuerPool>,
    background: TaskTracker,
    journal: Arc<FileJournal>,
    grace: Duration,
    /// Advices recovered from the journal at start.
    pub recovered_advices: usize,
    checkpointer: Arc<Checkpointer>,
}

impl SwitchServer {
    /// Starts everything. Must run inside a tokio runtime.
    pub async fn start(opts: StartOptions) -> Result<SwitchServer, StartError> {
        let StartOptions {
            config,
            keys,
            clock,
            on_us,
        } = opts;
        let vault = PanVault::new(&keys.journal_pan_key()?);
        // The security module holds every key of the keys file; the config names them by id,
        // and each id must exist with the right purpose before anything starts.
        let module: Arc<dyn SecurityModule> = Arc::new(SoftwareSecurityModule::from_keys(&keys)?);
        check_keys(&config, &*module, "config").map_err(|p| StartError::Config(lines(p)))?;
        let mut issuer_keys = Vec::with_capacity(config.issuers.len());
        // The issuers are built before the journal is open, so that recovery can hand them its
        // records one segment at a time instead of holding the whole journal (docs/reliability.md,
        // "Switch restart"); they get a handle the open journal is put into once it is open.
        let late = Arc::new(LateJournal::default());
        let dialect = config.listener.dialect.dialect();
        let shutdown = CancellationToken::new();
        let saf_stop = CancellationToken::new();
        let background = TaskTracker::new();

        // Issuers, in config order: routing refers to them by index.
        let mut issuers = Vec::with_capacity(config.issuers.len());
        let mut pools = Vec::new();
        let mut safs: BTreeMap<String, Arc<Saf>> = BTreeMap::new();
        for ic in &config.issuers {
            let id: Arc<str> = Arc::from(ic.id.as_str());
            let keys = IssuerKeys::from_config(ic);
            match ic.kind {
                IssuerKind::OnUs => {
                    let engine = on_us(ic, late.clone() as Arc<dyn Journal>, clock.clone())
                        .map_err(|message| StartError::Issuer {
                            issuer: ic.id.clone(),
                            message,
                        })?;
                    issuers.push(IssuerHandle::OnUs { id, engine });
                }
                IssuerKind::Remote => {
                    let framing = FramingConfig {
                        length_header: ic.framing.length_header,
                        header_bytes: ic.framing.header_bytes as usize,
                        frame_bytes_max: ic.frame_bytes_max as usize,
                    };
                    let mut link_cfg =
                        IssuerLinkConfig::from_config(ic, ic.dialect.dialect(), framing).map_err(
                            |e| StartError::Issuer {
                                issuer: ic.id.clone(),
                                message: e.to_string(),
                            },
                        )?;
                    link_cfg.mac = keys.mac.clone().map(|k| PartyMac::new(module.clone(), k));
                    link_cfg.tls = ic
                        .tls
                        .as_ref()
                        .map(crate::net::issuer::LinkTls::from_config)
                        .transpose()
                        .map_err(|e| StartError::Issuer {
                            issuer: ic.id.clone(),
                            message: e.to_string(),
                        })?;
                    let pool = IssuerPool::start(link_cfg, shutdown.child_token());
                    let saf = Saf::new(
                        ic.id.clone(),
                        pool.clone(),
                        late.clone() as Arc<dyn Journal>,
                        vault.clone(),
                        clock.clone(),
                        SafConfig {
                            attempt_timeout: Duration::from_millis(ic.timeout_ms.max(1)),
                            retries_max: ic.saf_retries_max.max(1),
                            backoff_min: Duration::from_millis(ic.reconnect_backoff_min_ms.max(1)),
                            backoff_max: Duration::from_millis(ic.reconnect_backoff_max_ms.max(1)),
                            depth_max: ic.saf_depth_max,
                        },
                    );
                    safs.insert(ic.id.clone(), saf.clone());
                    pools.push(pool.clone());
                    let stand_in = match config.stand_in.iter().find(|s| s.issuer == ic.id) {
                        Some(sc) => Some(Arc::new(StandIn::new(
                            StandInRules::from_config(sc).map_err(|e| StartError::Issuer {
                                issuer: ic.id.clone(),
                                message: e.to_string(),
                            })?,
                        ))),
                        None => None,
                    };
                    issuers.push(IssuerHandle::Remote {
                        id,
                        pool,
                        saf,
                        timeout: Duration::from_millis(ic.timeout_ms.max(1)),
                        stand_in,
                    });
                }
            }
            issuer_keys.push(keys);
        }
        let ids: Vec<Arc<str>> = issuers.iter().map(|i| i.id().clone()).collect();
        let on_us_engines: Vec<(String, Arc<dyn OnUs>)> = issuers
            .iter()
            .filter_map(|h| match h {
                IssuerHandle::OnUs { id, engine } => Some((id.to_string(), Arc::clone(engine))),
                IssuerHandle::Remote { .. } => None,
            })
            .collect();
        let live = Live::build(&config, &ids).map_err(StartError::Config)?;

        // Recovery.
        let dup = Arc::new(DuplicateWindow::new(
            Duration::from_secs(config.switch.duplicate_window_s),
            config.switch.duplicate_entries_max,
        ));
        let now_ms = clock.now_ms();
        let now = tokio::time::Instant::now();
        let mut max_txn = 0u64;
        let mut max_saf = 0u64;
        let mut owed: BTreeMap<u64, AdviceRecord> = BTreeMap::new();
        let mut undecodable = 0usize;
        // Stand-in approvals of the current business day are charged back to their cards.
        let today = crate::clearing::business_date(clock.now(), live.cutover_minutes);
        let live_cutover = live.cutover_minutes;
        let mut requests: BTreeMap<u64, (crate::security::ProtectedPan, Option<i64>, String)> =
            BTreeMap::new();
        // Which STAN each forwarded request may have reached its issuer under, when not its own.
        let mut keys_by_txn: BTreeMap<u64, crate::events::KeyRecord> = BTreeMap::new();
        let mut issuer_stans: Vec<(crate::events::KeyRecord, u32)> = Vec::new();
        // The checkpoint, when there is a usable one: its state first, then the journal after
        // its replay point (see `checkpoint`). Recovery below folds the replayed records into
        // the same variables, so that each part takes a record it already holds unchanged.
        let horizon_ms = crate::net::checkpoint::horizon_ms(config.switch.duplicate_window_s);
        let fits = Fit {
            now_ms,
            today,
            horizon_ms,
            cutover_minutes: live_cutover,
        };
        let restored = restore_checkpoint(&config.journal.dir, &issuers, &fits);
        let replay_from = restored.as_ref().map_or(0, |cp| cp.replay_from);
        let mut restored_day = None;
        let restored_taken_lsn = restored.as_ref().map(|cp| cp.taken_lsn);
        if let Some(cp) = restored {
            max_txn = cp.next_txn.saturating_sub(1);
            max_saf = cp.next_saf.saturating_sub(1);
            owed.extend(cp.owed.into_iter().map(|a| (a.saf_id, a)));
            issuer_stans = cp.issuer_stans;
            restored_day = Some((cp.day, cp.day_start));
        }
        // An LSN below every record of today: the record before the first of today's requests
        // read (none before the replay point can be today's, which lies after the last day start).
        let mut previous_lsn = replay_from;
        let mut today_starts_after: Option<crate::journal::Lsn> = None;
        // The issuer links run from here on, and later the tasks that hold the journal: a start
        // that fails stops them before it returns, so nothing of it outlives the error.
        let abort = |e: StartError| {
            saf_stop.cancel();
            shutdown.cancel();
            background.close();
            e
        };
        // Wall time of recovery (reading the journal, decoding and applying its records), for the
        // log: it grows with the journal (docs/reliability.md, "Switch restart"), and an operator
        // planning a restart needs to see that.
        let recovery_started = std::time::Instant::now();
        // Counts what went to the sink, for the log.
        let mut records = 0usize;
        let opened = FileJournal::open_streaming(
            &config.journal.dir,
            JournalOptions::from(&config.journal),
            replay_from,
            &mut |lsn, bytes| {
                records += 1;
                let before = std::mem::replace(&mut previous_lsn, lsn);
                let rec = match Record::decode(&bytes) {
                    Ok(r) => r,
                    Err(_) => {
                        undecodable += 1;
                        return;
                    }
                };
                match rec {
                    Record::Request(r) => {
                        if r.business_date == today && today_starts_after.is_none() {
                            today_starts_after = Some(before);
                        }
                        max_txn = max_txn.max(r.txn);
                        keys_by_txn.insert(r.txn, r.key.clone());
                        if r.business_date == today {
                            requests.insert(r.txn, (r.pan, r.amount_minor, r.issuer.to_string()));
                        }
                    }
                    Record::Decision(d) => {
                        max_txn = max_txn.max(d.txn);
                        // A transaction's Forwarded records come before its decision.
                        keys_by_txn.remove(&d.txn);
                        // Its request record too: once decided, a request is no longer needed, so
                        // the map holds only requests with no decision yet, not the whole day's.
                        let request = requests.remove(&d.txn);
                        if d.source == DecisionSource::StandIn
                            && d.response_code == "00"
                            && let Some((pan, amount, issuer)) = &request
                            && let Some(IssuerHandle::Remote {
                                stand_in: Some(si), ..
                            }) = issuers.iter().find(|h| **h.id() == **issuer)
                            && let Ok(pan) = vault.reveal(pan)
                        {
                            si.charge(pan, today, amount.unwrap_or(0));
                        }
                        if let Some(k) = d.key.as_ref().and_then(key_from_record)
                            && let Ok(mti) =
                                crate::domain::Mti::from_digits(format!("{:04}", d.mti).as_bytes())
                        {
                            let age =
                                Duration::from_millis(now_ms.saturating_sub(d.at_ms).max(0) as u64);
                            dup.seed(k, mti, Answer::Recorded(Arc::new(d)), age, now);
                        }
                    }
                    // A request tried under several STANs has several; the last one counts (the
                    // map keeps the latest insert).
                    Record::Forwarded { txn, link_stan, .. } => {
                        if let Some(k) = keys_by_txn.get(&txn) {
                            issuer_stans.push((k.clone(), link_stan));
                        }
                    }
                    Record::SafQueued(a) => {
                        max_saf = max_saf.max(a.saf_id);
                        owed.insert(a.saf_id, a);
                    }
                    Record::SafDelivered { saf_id, .. } | Record::SafParked { saf_id, .. } => {
                        owed.remove(&saf_id);
                    }
                    Record::Ledger { issuer, event, .. } => {
                        if let Some(IssuerHandle::OnUs { engine, .. }) =
                            issuers.iter().find(|h| **h.id() == *issuer)
                        {
                            engine.replay(&event);
                        }
                    }
                    _ => {}
                }
            },
        );
        let journal = match opened {
            Ok((journal, _torn_bytes)) => Arc::new(journal),
            Err(e) => return Err(abort(e.into())),
        };
        late.set(Arc::clone(&journal));
        let end_lsn = *journal.progress().borrow();
        if let Some(taken) = restored_taken_lsn
            && end_lsn < taken
        {
            // The engines hold the checkpoint's state already; reading this journal on top of
            // it would mix two histories.
            return Err(abort(StartError::Checkpoint(format!(
                "{} was taken at journal LSN {taken}, but the journal in {} ends at {end_lsn}: \
                 it belongs to another journal. Move it away to read the whole journal",
                crate::net::checkpoint::CHECKPOINT_FILE,
                config.journal.dir.display()
            ))));
        }
        let day_start = match restored_day {
            Some((day, start)) if day == today => start,
            _ => today_starts_after.unwrap_or(end_lsn),
        };
        if config.journal.sync == JournalSync::None {
            tracing::warn!("journal sync = none: answers do not wait for fsync (benchmarks only)");
        }
        if undecodable > 0 {
            tracing::error!(
                undecodable,
                "journal records that do not decode were skipped during recovery"
            );
        }
        let recovered_advices = owed.len();
        for (_, a) in owed {
            match safs.get(a.issuer.as_str()) {
                Some(saf) => saf.restore(a),
                None => {
                    tracing::error!(issuer = %a.issuer, saf_id = a.saf_id, "recovered advice for an issuer no longer configured")
                }
            }
        }
        tracing::info!(
            records,
            replay_from,
            advices_owed = recovered_advices,
            duplicates = dup.len(),
            ms = recovery_started.elapsed().as_millis() as u64,
            "journal recovered"
        );

        background.spawn(Arc::clone(&dup).sweep_every(DUPLICATE_SWEEP_EVERY, saf_stop.clone()));
        let runtime = Arc::new(Runtime::new(
            live,
            dialect,
            journal.clone() as Arc<dyn Journal>,
            vault,
            clock.clone(),
            dup,
            issuers,
            SwitchSecurity {
                module,
                issuers: issuer_keys,
            },
            max_txn + 1,
            max_saf + 1,
            shutdown.clone(),
        ));

        for (k, stan) in issuer_stans {
            if let Some(key) = key_from_record(&k) {
                runtime.issuer_stans.insert(key, stan);
            }
        }
        let on_us_engines_swept = on_us_engines.clone();
        let checkpointer = Arc::new(Checkpointer::new(
            config.journal.dir.clone(),
            clock.clone(),
            Arc::clone(&journal),
            Arc::clone(&runtime),
            on_us_engines,
            safs.values().cloned().collect(),
            Samples::new(
                horizon_ms,
                clock.now_ms(),
                end_lsn,
                (today, live_cutover),
                day_start,
            ),
            restored_day.map(|(day, _)| (end_lsn, day)),
            crate::journal::WritePace::mib_per_s(config.journal.checkpoint_write_mib_per_s),
        ));
        if config.journal.checkpoint_interval_s > 0 {
            background.spawn(Arc::clone(&checkpointer).run(
                Duration::from_secs(config.journal.checkpoint_interval_s),
                saf_stop.clone(),
            ));
        }
        for saf in safs.values() {
            background.spawn(Arc::clone(saf).run(saf_stop.clone()));
        }
        for (id, engine) in &on_us_engines_swept {
            if let Some(every) = engine.sweep_interval() {
                background.spawn(sweeps(
                    id.clone(),
                    Arc::clone(engine),
                    clock.clone(),
                    Arc::clone(&journal) as Arc<dyn Journal>,
                    every,
                    saf_stop.clone(),
                ));
            }
        }
        for pool in &pools {
            let mut late = pool.late_replies();
            let rt = Arc::clone(&runtime);
            let stop = saf_stop.clone();
            background.spawn(async move {
                loop {
                    let r = tokio::select! {
                        r = late.recv() => r,
                        () = stop.cancelled() => return,
                    };
                    match r {
                        Ok(l) => rt.late_reply(&l).await,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            tracing::warn!(missed = n, "late replies missed by the journal");
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    }
                }
            });
        }

        if config.clearing.auto_cutover {
            let job = crate::clearing::Job::from_config(&config, None)
                .map_err(|e| abort(StartError::Config(e.to_string())))?;
            background.spawn(crate::clearing::schedule::run(
                clock.clone(),
                job,
                config.clearing.fees_file.clone(),
                Duration::from_secs(config.clearing.cutover_delay_s),
                saf_stop.clone(),
            ));
        }

        // Before binding: a certificate that cannot be loaded must not leave a listener that
        // accepts and drops every connection.
        let tls_server = config
            .listener
            .tls
            .as_ref()
            .map(crate::net::tls::listener_tls)
            .transpose()
            .map_err(|e| abort(StartError::Config(e.to_string())))?;
        let listener = crate::net::acquirer::bind(
            &config.listener.address,
            config.listener.accept_backlog_max,
        )
        .await
        .map_err(|source| {
            abort(StartError::Bind {
                address: config.listener.address.clone(),
                source,
            })
        })?;
        let local_addr = listener.local_addr().map_err(|source| {
            abort(StartError::Bind {
                address: config.listener.address.clone(),
                source,
            })
        })?;
        let limits = SessionLimits::from_config(&config.listener);
        let policies = Arc::new(ArcSwap::from_pointee(Policies::from_config(&config)));
        let stop_accepting = CancellationToken::new();
        let connections = TaskTracker::new();
        let sessions = match tls_server {
            None => Sessions::new(Arc::clone(&runtime), limits, Arc::clone(&policies)),
            Some(server) => {
                Sessions::with_tls(Arc::clone(&runtime), limits, Arc::clone(&policies), server)
            }
        };
        background.spawn(serve(
            listener,
            sessions,
            stop_accepting.clone(),
            connections.clone(),
        ));
        tracing::info!(%local_addr, dialect = %config.listener.dialect, tls = config.listener.tls.is_some(), "switch listening");

        Ok(SwitchServer {
            runtime,
            policies,
            local_addr,
            stop_accepting,
            connections,
            saf_stop,
            pools,
            background,
            journal,
            grace: Duration::from_millis(config.switch.shutdown_grace_ms),
            recovered_advices,
            checkpointer,
        })
    }

    /// Writes a checkpoint now (as the periodic one does): `Ok(None)` when none can be written
    /// yet, else its replay point. For tests and tools; it waits for a checkpoint in progress.
    pub async fn checkpoint(&self) -> Result<Option<crate::journal::Lsn>, String> {
        self.checkpointer.checkpoint().await
    }

    /// The acquirer listener's address (useful when configured with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The last LSN the switch's journal has written, as it changes (once per group commit): to
    /// follow the journal, e.g. wait for a record to appear, re-reading it only when it moves.
    pub fn journal_progress(&self) -> tokio::sync::watch::Receiver<crate::journal::Lsn> {
        self.journal.progress()
    }

    /// Swaps in a new routing table, acquirer list (with each acquirer's keys and connection policy) and
    /// expiry setting. The issuers themselves cannot change without a restart; nor can the
    /// `[listener]` limits or `[listener.tls]` files. A connection already bound to an acquirer keeps
    /// its seat when that acquirer's `connections_max` is lowered; the new limit applies to
    /// connections binding after the reload. Likewise a changed `tls_identity` applies to
    /// connections whose handshake completes after the reload.
    pub fn reload(&self, config: &Config) -> Result<(), String> {
        let ids: Vec<Arc<str>> = self
            .runtime
            .issuers
            .iter()
            .map(|i| i.id().clone())
            .collect();
        let same_issuers = config.issuers.len() == ids.len()
            && config.issuers.iter().zip(&ids).all(|(c, id)| c.id == **id);
        if !same_issuers {
            return Err("the [[issuer]] list changed; issuers change only with a restart".into());
        }
        let security = &self.runtime.security;
        if config
            .issuers
            .iter()
            .map(IssuerKeys::from_config)
            .ne(security.issuers.iter().cloned())
        {
            return Err(
                "an [[issuer]]'s keys changed; issuer keys change only with a restart".into(),
            );
        }
        check_keys(config, &*security.module, "config").map_err(lines)?;
        let live = Live::build(config, &ids)?;
        self.runtime.live.store(Arc::new(live));
        self.policies.store(Arc::new(Policies::from_config(config)));
        Ok(())
    }

    /// Stops gracefully: stop accepting and reading, let in-flight requests finish within the
    /// grace period, sign off the issuer links, stop store-and-forward, flush the journal.
    pub async fn shutdown(self) {
        tracing::info!(grace_ms = self.grace.as_millis() as u64, "shutting down");
        self.stop_accepting.cancel();
        self.connections.close();
        if tokio::time::timeout(self.grace, self.connections.wait())
            .await
            .is_err()
        {
            tracing::warn!("grace period over with requests still in flight");
        }
        self.saf_stop.cancel();
        for pool in &self.pools {
            pool.shutdown();
        }
        for pool in &self.pools {
            let _ = tokio::time::timeout(Duration::from_secs(5), pool.closed()).await;
        }
        self.runtime.shutdown.cancel();
        self.background.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.background.wait()).await;
        // Close first, then flush: whatever was queued before the close (covered records too,
        // which wait for an append someone waits on) is written and synced by the flush, and
        // nothing can slip in between the two.
        self.journal.close();
        match self.journal.flush().await {
            Ok(lsn) => tracing::info!(last_lsn = lsn, "journal flushed"),
            Err(e) => tracing::error!(error = %e, "journal flush at shutdown failed"),
        }
    }

    /// The journal directory's records so far (for tests and tools), read from disk.
    pub fn journal_dir(config: &Config) -> PathBuf {
        config.journal.dir.clone()
    }
}

/// The journal as the issuers hold it: built before the journal is open (see
/// [`SwitchServer::start`]), given the open one right after recovery and before any traffic.
/// Until then every append is refused as [`JournalError::Closed`], which nothing should see:
/// the issuers append only for traffic, and traffic starts after recovery.
#[derive(Debug, Default)]
struct LateJournal(std::sync::OnceLock<Arc<FileJournal>>);

impl LateJournal {
    fn set(&self, journal: Arc<FileJournal>) {
        if self.0.set(journal).is_err() {
            tracing::error!("the issuers' journal was set twice; keeping the first");
        }
    }
}

impl Journal for LateJournal {
    fn append_as(&self, payload: &[u8], admission: Admission) -> AppendTicket {
        match self.0.get() {
            Some(j) => j.append_as(payload, admission),
            None => AppendTicket::ready(Err(JournalError::Closed)),
        }
    }

    fn append_covered(&self, payload: &[u8], admission: Admission) -> Result<(), JournalError> {
        match self.0.get() {
            Some(j) => j.append_covered(payload, admission),
            None => Err(JournalError::Closed),
        }
    }

    fn flush(&self) -> AppendTicket {
        match self.0.get() {
            Some(j) => j.flush(),
            None => AppendTicket::ready(Err(JournalError::Closed)),
        }
    }

    fn close(&self) {
        if let Some(j) = self.0.get() {
            j.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::checkpoint::write;

    fn day(d: u32) -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(2026, 6, d).expect("date")
    }

    /// On tokio's paused clock, so the 60-second timer fires as the test waits; the engine's
    /// time is a manual clock moved past the hold's expiry.
    #[tokio::test(start_paused = true)]
    async fn on_us_engines_are_swept_every_interval_until_stopped() {
        use crate::domain::Pan;
        use crate::journal::CoveringJournal;

        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../config/issuers/metro-pay.toml");
        let engine = Arc::new(crate::onus::load_engine(&path).expect("Metro Pay"));
        // Holds covered records back until a flush, as the file journal does.
        let journal = Arc::new(CoveringJournal::new());
        let t0 = day(2).and_hms_opt(10, 0, 0).expect("time");
        let clock = crate::clock::ManualClock::new(t0);
        let onus: Arc<dyn OnUs> = Arc::new(crate::onus::EngineOnUs::new(
            engine.clone(),
            journal.clone(),
            clock.clone(),
        ));
        let pan = Pan::parse(b"6050010000000013").expect("pan");
        let before = engine.balances(&pan).expect("balances").available;
        let hold = crate::onus::sample_purchase(pan, 1);
        assert!(engine.process(&hold, t0, t0.date()).result.is_ok());
        assert_ne!(engine.balances(&pan).expect("balances").available, before);

        let stop = CancellationToken::new();
        let every = onus.sweep_interval().expect("Metro Pay sweeps");
        let task = tokio::spawn(sweeps(
            "metro-pay".into(),
            onus,
            clock.clone(),
            journal.clone(),
            every,
            stop.clone(),
        ));
        // Metro Pay's holds expire after 168 h; no request comes for the account. The paused
        // clock runs to the sweep's tick while the test waits for its event to be written; the
        // guard fails the test if it never is.
        clock.advance_ms(169 * 3_600_000);
        let mut written = journal.written_watch();
        tokio::time::timeout(Duration::from_secs(3_600), written.wait_for(|&n| n >= 1))
            .await
            .expect("the sweep's event is written within the hour")
            .expect("journal alive");
        assert_eq!(engine.balances(&pan).expect("balances").available, before);
        assert_eq!(
            journal.written().len(),
            1,
            "the sweep's event, journaled and written (flushed, not left queued)"
        );
        stop.cancel();
        task.await.expect("the sweeps end when stopped");
    }

    /// Which starts may use a checkpoint taken at 1,000 s with a 61 s horizon on June 2, cutover
    /// 23:00 (no on-us issuer, so only the fit decides).
    #[test]
    fn a_checkpoint_is_used_only_where_it_fits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cp = SwitchCheckpoint::new(10, day(2), 5);
        cp.taken_at_ms = 1_000_000;
        cp.horizon_ms = 61_000;
        cp.cutover_minutes = 1380;
        write(dir.path(), &cp, crate::journal::WritePace::unpaced()).expect("written");
        let fit = Fit {
            now_ms: 1_000_000,
            today: day(2),
            horizon_ms: 61_000,
            cutover_minutes: 1380,
        };
        let used = |f: &Fit| restore_checkpoint(dir.path(), &[], f).is_some();
        assert!(used(&fit));
        assert!(
            used(&Fit {
                now_ms: 5_000_000,
                today: day(3),
                ..fit
            }),
            "later"
        );
        assert!(
            !used(&Fit {
                now_ms: 999_999,
                ..fit
            }),
            "the clock set back"
        );
        assert!(
            !used(&Fit {
                horizon_ms: 70_000,
                ..fit
            }),
            "a longer window, at once"
        );
        assert!(
            used(&Fit {
                horizon_ms: 70_000,
                now_ms: 1_009_000,
                ..fit
            }),
            "a longer window, once the replay point lies far enough back"
        );
        assert!(
            !used(&Fit {
                cutover_minutes: 1320,
                ..fit
            }),
            "another cutover"
        );
        assert!(
            !used(&Fit {
                today: day(1),
                ..fit
            }),
            "a later business day"
        );
    }
}
