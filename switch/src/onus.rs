//! On-us processing: the issuing engine ([`crate::issuing`]) plugged into the switch runtime
//! behind [`OnUs`], for issuers whose cards the switch decides itself.
//!
//! The adapter turns the runtime's typed requests into [`IssuingRequest`]s, checks a PIN block
//! with the issuer's verification key, and journals each ledger change through the switch's
//! journal *while the engine holds the account's lock* ([`Engine::process_with`]), so each
//! account's events reach the journal in sequence order and replay rebuilds exactly the same
//! balances.
//!
//! PIN blocks: the switch's security module deciphers the request's PIN block (under the
//! acquirer's zone PIN key or DUKPT key) and lends the clear format 0 block to
//! [`OnUs::verify_pin_block`] for the length of the check against the card's Visa PVV; the
//! verdict ([`PinCheck`]) is what [`OnUs::authorize`] gets. No PIN block reaches this adapter
//! otherwise.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime};

use crate::clock::Clock;
use crate::config::IssuerConfig;
use crate::domain::{Decline, Pan, TerminalId};
use crate::events::Record;
use crate::iso8583::views::AuthorizationRequest;
use crate::issuing::{
    Engine, IdemKey, IssuerFile, IssuingRequest, LedgerEvent, Outcome, PinCheck, RequestKind,
};
use crate::journal::{Admission, Journal};
use crate::net::duplicates::DupKey;
use crate::net::server::{OnUs, OnUsDecision, ReversalInput};

/// Terminal id that marks reversals the switch itself originates (undeliverable answers): their
/// idempotency key must differ from the original's.
const SWITCH_REVERSAL_TERMINAL: &[u8; 8] = b"SWITCHRV";

/// An issuing engine serving as an on-us issuer.
pub struct EngineOnUs {
    issuer: String,
    engine: Arc<Engine>,
    journal: Arc<dyn Journal>,
    clock: Arc<dyn Clock>,
}

impl EngineOnUs {
    pub fn new(
        engine: Arc<Engine>,
        journal: Arc<dyn Journal>,
        clock: Arc<dyn Clock>,
    ) -> EngineOnUs {
        EngineOnUs {
            issuer: engine.issuer().to_owned(),
            engine,
            journal,
            clock,
        }
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    fn run(
        &self,
        req: &IssuingRequest,
        now: NaiveDateTime,
        business_date: NaiveDate,
    ) -> OnUsDecision {
        let outcome = self
            .engine
            .process_with(req, now, business_date, |ev: &LedgerEvent| {
                // The caller's decision record answers for it (`Journal::append_covered`); a
                // refusal here (the journal failed or closed: the request record before it was
                // admitted, so the queue's depth does not refuse it) leaves the account
                // unchanged and the answer 96.
                with_ledger_record(&self.issuer, self.clock.now_ms(), ev, |payload| {
                    self.journal.append_covered(payload, Admission::Continuing)
                })?
                .map_err(|_| ())
            });
        decision(outcome)
    }
}

/// Hands the journal record of an issuing engine's ledger change (the event inside a
/// [`Record::Ledger`] of `issuer`, stamped `at_ms`) to `append`, encoded as
/// [`Record::with_encoded`] does (the event's own encoding is still a buffer of its own, which
/// the record owns). `Err` when either does not encode (the engine then changes nothing), which
/// is all a journaling closure needs to know.
pub(crate) fn with_ledger_record<R>(
    issuer: &str,
    at_ms: i64,
    ev: &LedgerEvent,
    append: impl FnOnce(&[u8]) -> R,
) -> Result<R, ()> {
    let event = ev.encode().map_err(|_| ())?;
    let rec = Record::Ledger {
        issuer: issuer.into(),
        at_ms,
        event,
    };
    rec.with_encoded(append).map_err(|_| ())
}

/// One [`Engine::sweep`] pass at `now`, each event journaled as a ledger record of `issuer`
/// before it is applied; returns how many events it made. For the switch's on-us issuers and
/// the issuer host alike.
pub(crate) fn sweep_journaled(
    engine: &Engine,
    issuer: &str,
    clock: &dyn Clock,
    journal: &dyn Journal,
    now: NaiveDateTime,
) -> usize {
    engine
        .sweep(now, |ev: &LedgerEvent| {
            // Queued, with no ticket to wake the writer for each of up to thousands of events;
            // the caller flushes after the pass (`net::sweep_every`). New work for the queue's
            // bound, so a full queue stops the sweep.
            with_ledger_record(issuer, clock.now_ms(), ev, |payload| {
                journal.append_covered(payload, Admission::New)
            })?
            .map_err(|_| ())
        })
        .len()
}

fn idem(k: &DupKey) -> IdemKey {
    IdemKey::new(k.acquirer, k.terminal, k.stan, k.transmission)
}

fn decision(o: Outcome) -> OnUsDecision {
    // Balances only where they are the answer's point (see `host::answer`).
    let show = match &o.result {
        Ok(_) => true,
        Err(d) => *d == Decline::InsufficientFunds,
    };
    let additional_amounts = o
        .balances
        .filter(|_| show)
        .and_then(|b| b.to_field54().ok())
        .map(|f| f.to_vec());
    match o.result {
        Ok(a) => OnUsDecision {
            decline: None,
            code: Some(a.code),
            auth_code: Some(a.auth_code),
            approved: (a.code == crate::domain::ResponseCode::ApprovedPartial)
                .then_some(a.approved),
            additional_amounts,
        },
        Err(d) => OnUsDecision {
            decline: Some(d),
            code: None,
            auth_code: None,
            approved: None,
            additional_amounts,
        },
    }
}

impl OnUs for EngineOnUs {
    fn authorize(
        &self,
        req: &AuthorizationRequest<'_>,
        _key: &DupKey,
        pin: PinCheck,
        now: NaiveDateTime,
        business_date: NaiveDate,
    ) -> OnUsDecision {
        match IssuingRequest::from_authorization(req, pin) {
            Ok(ir) => self.run(&ir, now, business_date),
            Err(d) => OnUsDecision {
                decline: Some(d),
                ..OnUsDecision::default()
            },
        }
    }

    fn verify_pin_block(&self, pan: &Pan, clear_block: &[u8; 8]) -> PinCheck {
        self.engine.verify_pin_block(pan, clear_block)
    }

    fn reverse(
        &self,
        rev: &ReversalInput,
        now: NaiveDateTime,
        business_date: NaiveDate,
    ) -> OnUsDecision {
        let mut key = idem(&rev.key);
        if rev.key == rev.original {
            // A reversal the switch originates for an answer it could not deliver.
            match TerminalId::from_field(SWITCH_REVERSAL_TERMINAL) {
                Ok(t) => {
                    key = IdemKey::new(rev.key.acquirer, t, rev.key.stan, rev.key.transmission)
                }
                Err(_) => {
                    return OnUsDecision {
                        decline: Some(Decline::SystemMalfunction),
                        ..OnUsDecision::default()
                    };
                }
            }
        }
        let ir = IssuingRequest {
            kind: RequestKind::Reversal {
                original: idem(&rev.original),
                replacement: rev.replacement,
            },
            key,
            pan: rev.pan,
            processing_code: crate::domain::ProcessingCode::PURCHASE,
            amount: Some(rev.amount),
            currency: rev.amount.currency(),
            mcc: None,
            expiry: None,
            pin: PinCheck::Absent,
            partial_supported: false,
        };
        self.run(&ir, now, business_date)
    }

    fn replay(&self, event: &[u8]) {
        match LedgerEvent::decode(event) {
            Ok(ev) => {
                if let Err(e) = self.engine.apply(&ev) {
                    tracing::error!(issuer = %self.issuer, error = %e, "journaled ledger event does not apply");
                }
            }
            Err(e) => {
                tracing::error!(issuer = %self.issuer, error = %e, "journaled ledger event does not decode")
            }
        }
    }

    fn snapshot(&self, pausing: &dyn Fn() -> bool) -> Option<crate::issuing::Snapshot> {
        Some(
            self.engine
                .snapshot_with_pauses(crate::issuing::SNAPSHOT_SLICE, pausing),
        )
    }

    fn restore(&self, snapshot: &crate::issuing::Snapshot) -> Result<(), String> {
        self.engine.restore(snapshot).map_err(|e| e.to_string())
    }

    fn sweep_interval(&self) -> Option<Duration> {
        match self.engine.sweep_interval_s() {
            0 => None,
            s => Some(Duration::from_secs(u64::from(s))),
        }
    }

    fn sweep(&self, now: NaiveDateTime) -> usize {
        sweep_journaled(
            &self.engine,
            &self.issuer,
            &*self.clock,
            &*self.journal,
            now,
        )
    }

    fn records_held(&self) -> usize {
        self.engine.records_held()
    }
}

/// The factory the switch uses for `kind = "on-us"` issuers: loads the issuer file named by
/// `cards` and builds its engine.
pub fn engine_factory(
    ic: &IssuerConfig,
    journal: Arc<dyn Journal>,
    clock: Arc<dyn Clock>,
) -> Result<Arc<dyn OnUs>, String> {
    let path = ic
        .cards
        .as_deref()
        .ok_or_else(|| format!("on-us issuer {} needs `cards` (its issuer file)", ic.id))?;
    let engine = load_engine(path)?;
    Ok(Arc::new(EngineOnUs::new(Arc::new(engine), journal, clock)))
}

/// Loads an issuer file and builds its engine.
pub fn load_engine(path: &Path) -> Result<Engine, String> {
    let file = IssuerFile::load(path).map_err(|e| e.to_string())?;
    Engine::from_file(&file).map_err(|e| e.to_string())
}

/// A 25.00 purchase authorization on `pan` under `stan`, for the tests here and in
/// [`crate::net::start`].
#[cfg(test)]
pub(crate) fn sample_purchase(pan: Pan, stan: u32) -> IssuingRequest {
    let amount = crate::domain::Amount::new(2_500, crate::domain::Currency::CNY);
    IssuingRequest {
        kind: RequestKind::Authorization,
        key: IdemKey::new(
            crate::domain::AcquirerId::parse("100001").expect("acquirer"),
            TerminalId::from_field(b"TERM0001").expect("terminal"),
            crate::domain::Stan::new(stan).expect("stan"),
            crate::domain::TransmissionDateTime::from_field(b"0513100000").expect("f7"),
        ),
        pan,
        processing_code: crate::domain::ProcessingCode::PURCHASE,
        amount: Some(amount),
        currency: amount.currency(),
        mcc: None,
        expiry: None,
        pin: PinCheck::Absent,
        partial_supported: false,
    }
}

#[cfg(test)]
mod tests {
    //! The adapter's journal contract: a ledger event the journal will not take leaves the
    //! account as it was, so memory never holds money the journal does not.

    use super::*;
    use crate::clock::ManualClock;
    use crate::journal::MemJournal;

    /// Metro Pay as shipped, on-us with a journal in memory, at 2026-05-13 10:00.
    fn metro_pay() -> (Arc<Engine>, Arc<MemJournal>, NaiveDateTime, EngineOnUs) {
        let engine = Arc::new(load_engine(&metro_pay_path()).expect("Metro Pay's issuer file"));
        let journal = Arc::new(MemJournal::new());
        let now = NaiveDate::from_ymd_opt(2026, 5, 13)
            .and_then(|d| d.and_hms_opt(10, 0, 0))
            .expect("time");
        let onus = EngineOnUs::new(engine.clone(), journal.clone(), ManualClock::new(now));
        (engine, journal, now, onus)
    }

    fn metro_pay_path() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/issuers/metro-pay.toml")
    }

    #[test]
    fn a_ledger_event_the_journal_refuses_changes_nothing() {
        // Metro Pay as shipped: prepaid card 6050010000000013 holds 200.00.
        let (engine, journal, now, onus) = metro_pay();
        let pan = Pan::parse(b"6050010000000013").expect("pan");
        let before = engine.balances(&pan).expect("balances").available;

        // Taken: the hold is journaled and placed.
        let taken = onus.run(&sample_purchase(pan, 1), now, now.date());
        assert_eq!(taken.response_code(), crate::domain::ResponseCode::Approved);
        assert_eq!(journal.records().len(), 1);
        let held = engine.balances(&pan).expect("balances").available;
        assert_eq!(held.minor(), before.minor() - 2_500);

        // Refused: 96, and neither the balance nor the journal moves.
        journal.close();
        let refused = onus.run(&sample_purchase(pan, 2), now, now.date());
        assert_eq!(refused.decline, Some(Decline::SystemMalfunction));
        assert_eq!(engine.balances(&pan).expect("balances").available, held);
        assert_eq!(journal.records().len(), 1);
    }

    #[test]
    fn a_sweep_releases_a_quiet_accounts_expired_hold_and_journals_it_first() {
        let (engine, journal, now, onus) = metro_pay();
        assert_eq!(onus.sweep_interval(), Some(Duration::from_secs(60)));
        let pan = Pan::parse(b"6050010000000013").expect("pan");
        let before = engine.balances(&pan).expect("balances").available;
        onus.run(&sample_purchase(pan, 1), now, now.date());
        assert_eq!(onus.records_held(), 1);

        // Before the hold's expiry (168 h) nothing is due.
        assert_eq!(onus.sweep(now + chrono::Duration::hours(167)), 0);
        assert_eq!(journal.records().len(), 1);
        // After it, with no request on the account, the sweep gives the money back, and the
        // journal holds the change: a replay of it reaches the same balance.
        assert_eq!(onus.sweep(now + chrono::Duration::hours(169)), 1);
        assert_eq!(engine.balances(&pan).expect("balances").available, before);
        let records = journal.records();
        assert_eq!(records.len(), 2);
        let (_, _, _, fresh) = metro_pay();
        for (_, bytes) in &records {
            match Record::decode(bytes).expect("record") {
                Record::Ledger { event, .. } => fresh.replay(&event),
                other => panic!("not a ledger record: {other:?}"),
            }
        }
        assert_eq!(
            fresh.engine().balances(&pan).expect("balances").available,
            before
        );

        // A journal that refuses it: nothing changes, and the next sweep tries again.
        let (_, _, _, onus2) = metro_pay();
        onus2.run(&sample_purchase(pan, 1), now, now.date());
        let held = onus2.engine().balances(&pan).expect("balances").available;
        let closed = Arc::new(MemJournal::new());
        closed.close();
        let refusing = EngineOnUs {
            journal: closed,
            ..onus2
        };
        assert_eq!(refusing.sweep(now + chrono::Duration::hours(169)), 0);
        assert_eq!(
            refusing
                .engine()
                .balances(&pan)
                .expect("balances")
                .available,
            held
        );
    }
}
