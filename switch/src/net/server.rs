//! The switch's runtime: the shared state every acquirer connection works against, and the async
//! glue that walks one request through screening, the duplicate window, the issuer (remote link
//! or on-us engine), the journal and back.
//!
//! Everything that decides is elsewhere and synchronous ([`crate::decision`], the issuing engine
//! behind [`OnUs`]); this module only sequences it, awaits I/O (issuer links, journal) and keeps
//! the promises that need state across requests:
//! - every request, forward, reply, timeout, reversal and decision is journaled before the
//!   acquirer is answered;
//! - a duplicate gets the first answer and is never forwarded twice;
//! - a request that timed out or whose link dropped is reversed through store-and-forward;
//! - an approval the acquirer can no longer receive is reversed too ([`Runtime::undeliverable`]);
//! - an acquirer with a MAC key gets its requests' MACs checked before screening and every answer
//!   MACed, and PIN blocks are translated or verified before the duplicate check (`secure`).
//!
//! Configuration that may change on SIGHUP (routing, acquirers, expiry check) sits behind an
//! `ArcSwap`, read once per request, so a reload never blocks traffic.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use chrono::{NaiveDate, NaiveDateTime};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::clock::Clock;
use crate::config::Config;
use crate::decision::response::{Additions, AnswerError, answer_bytes, relay_bytes, with_answer};
use crate::decision::stip::{CardDay, StandInRules};
use crate::decision::{ScreenCtx, Screened, screen};
use crate::domain::{
    AcquirerId, Amount, AuthCode, Decline, Mti, Pan, ResponseCode, Stan, TerminalId,
    TransmissionDateTime,
};
use crate::events::{
    AdviceRecord, DecisionRecord, DecisionSource, KeyRecord, OriginalRecord, Record, RequestRecord,
    Text,
};
use crate::iso8583::views::{AuthorizationRequest, NetworkManagement, ReversalRequest};
use crate::iso8583::{Dialect, Message, MessageBuilder, decode_lenient};
use crate::journal::{Admission, AppendTicket, Journal};
use crate::metrics as m;
use crate::net::duplicates::{Answer, Claim, ClaimId, DupKey, DuplicateWindow};
use crate::net::issuer::{IssuerPool, IssuerReply, LinkError, OutboundRequest, StanChoice};
use crate::net::saf::Saf;
use crate::routing::{IssuerIndex, RoutingTable};
use crate::security::PanVault;

mod secure;
#[cfg(test)]
mod tests;
pub use secure::SwitchSecurity;

/// What an on-us issuer decided.
#[derive(Debug, Default)]
pub struct OnUsDecision {
    /// `None` means approved (00, or 10 when `approved` is set).
    pub decline: Option<Decline>,
    pub code: Option<ResponseCode>,
    pub auth_code: Option<AuthCode>,
    /// The approved amount when it differs from the requested one (partial approval).
    pub approved: Option<Amount>,
    /// Field 54, ready to send.
    pub additional_amounts: Option<Vec<u8>>,
}

impl OnUsDecision {
    /// Field 39 of this decision.
    pub fn response_code(&self) -> ResponseCode {
        match (self.decline, self.code) {
            (Some(d), _) => d.response_code(),
            (None, Some(c)) => c,
            (None, None) => ResponseCode::Approved,
        }
    }
}

/// A reversal as an on-us engine needs it.
#[derive(Debug, Clone)]
pub struct ReversalInput {
    pub pan: Pan,
    pub amount: Amount,
    /// What remains of the original after a partial reversal (field 95).
    pub replacement: Option<Amount>,
    /// The duplicate key of the original request (its acquirer, terminal, STAN and field 7).
    pub original: DupKey,
    /// The reversal's own key.
    pub key: DupKey,
}

/// An issuer processed inside the switch.
///
/// The journal contract the runtime relies on: `authorize` and `reverse` queue any ledger change
/// on the journal the factory was given (the runtime's) before they return, as a record covered
/// by the runtime's next one ([`Journal::append_covered`], [`Admission::Continuing`]: the
/// request's own record was already admitted), and apply the change only if the journal took
/// it. A change the journal refused is answered [`Decline::SystemMalfunction`] and leaves the
/// card's state as it was. The runtime's decision record (or, for a reversal it originates, a
/// [`Journal::flush`]) then makes the change durable before anyone is answered.
pub trait OnUs: Send + Sync + 'static {
    /// Decides `req`; `pin` is the outcome of [`OnUs::verify_pin_block`] on its PIN block
    /// ([`PinCheck::Absent`] without one).
    fn authorize(
        &self,
        req: &AuthorizationRequest<'_>,
        key: &DupKey,
        pin: crate::issuing::PinCheck,
        now: NaiveDateTime,
        business_date: NaiveDate,
    ) -> OnUsDecision;

    /// Checks a clear ISO 9564 format 0 PIN block for `pan` against the card. The security
    /// module lends the block for the length of this call only.
    fn verify_pin_block(&self, pan: &Pan, clear_block: &[u8; 8]) -> crate::issuing::PinCheck;

    fn reverse(
        &self,
        rev: &ReversalInput,
        now: NaiveDateTime,
        business_date: NaiveDate,
    ) -> OnUsDecision;

    /// Re-applies a journaled ledger event during recovery (in journal order). An event the
    /// state already holds (a checkpoint taken after it) changes nothing.
    fn replay(&self, event: &[u8]);

    /// The state for the switch's checkpoint, taken with the issuer serving, pausing now and
    /// then while `pausing()` says so (`Engine::snapshot_with_pauses`). `None`: this issuer
    /// cannot be checkpointed, and the switch writes no checkpoint.
    fn snapshot(&self, _pausing: &dyn Fn() -> bool) -> Option<crate::issuing::Snapshot> {
        None
    }

    /// Restores a [`OnUs::snapshot`] before recovery replays the journal after it; `Err` when
    /// the snapshot does not belong to this issuer as configured.
    fn restore(&self, _snapshot: &crate::issuing::Snapshot) -> Result<(), String> {
        Err("this issuer cannot restore a checkpoint".to_owned())
    }

    /// How often the switch calls [`OnUs::sweep`]; `None`: never.
    fn sweep_interval(&self) -> Option<std::time::Duration> {
        None
    }

    /// Releases expired holds and forgets idempotency records past their window on accounts
    /// that have no requests to do it for them, journaling each change before it is made;
    /// returns how many events it journaled (at most two per account). It visits every account:
    /// call it off the runtime's workers.
    fn sweep(&self, _now: NaiveDateTime) -> usize {
        0
    }

    /// Idempotency records held (what `[ledger] records_max` bounds), for the metrics.
    fn records_held(&self) -> usize {
        0
    }
}

/// A remote issuer's stand-in: its rules and each card's use per business day.
pub struct StandIn {
    pub rules: StandInRules,
    days: dashmap::DashMap<(Pan, NaiveDate), CardDay>,
    /// The latest business day seen, in days since 0001-01-01: when it moves on, the entries of
    /// older days are dropped ([`StandIn::roll_to`]).
    newest_day: std::sync::atomic::AtomicI32,
    seq: std::sync::atomic::AtomicU32,
}

impl StandIn {
    pub fn new(rules: StandInRules) -> StandIn {
        StandIn {
            rules,
            days: dashmap::DashMap::new(),
            newest_day: std::sync::atomic::AtomicI32::new(i32::MIN),
            seq: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// Forgets the days before the one before `day` once `day` is the newest seen. Allowances
    /// are per business day, so older entries are never read again, and without this every card
    /// that ever used stand-in stayed in memory for good. The day before is kept for a request
    /// dated just before the cutover that arrives just after it.
    fn roll_to(&self, day: NaiveDate) {
        use chrono::Datelike;
        let n = day.num_days_from_ce();
        // Only the call that moves the newest day forward sweeps.
        if self.newest_day.fetch_max(n, Ordering::Relaxed) < n {
            self.days
                .retain(|(_, d), _| d.num_days_from_ce() >= n.saturating_sub(1));
        }
    }

    /// Cards with an entry, over every day kept.
    pub fn entries(&self) -> usize {
        self.days.len()
    }

    /// Decides under the card's day entry, so two concurrent requests cannot both take the last
    /// allowance. On approval the day is charged and the stand-in auth code returned.
    pub fn decide(
        &self,
        req: &AuthorizationRequest<'_>,
        day: NaiveDate,
    ) -> Result<String, Decline> {
        // Only authorizations and financial requests: advices and completions report facts the
        // issuer must see itself.
        if req.mti.original() != Mti::AUTH_REQUEST && req.mti.original() != Mti::FINANCIAL_REQUEST {
            return Err(Decline::IssuerUnavailable);
        }
        self.roll_to(day);
        let mut entry = self.days.entry((req.pan, day)).or_default();
        self.rules.decide(req, *entry)?;
        let amount = req.amount.map(|a| a.minor()).unwrap_or(0);
        entry.count += 1;
        entry.amount_minor += amount;
        let n = self.seq.fetch_add(1, Ordering::Relaxed) % 10_000;
        Ok(format!("{}{n:04}", crate::decision::stip::AUTH_CODE_PREFIX))
    }

    /// Charges an approval recovered from the journal.
    pub fn charge(&self, pan: Pan, day: NaiveDate, amount_minor: i64) {
        self.roll_to(day);
        let mut e = self.days.entry((pan, day)).or_default();
        e.count += 1;
        e.amount_minor += amount_minor;
        self.seq.fetch_add(1, Ordering::Relaxed);
    }

    /// The card's use on `day`.
    pub fn day(&self, pan: &Pan, day: NaiveDate) -> CardDay {
        self.days.get(&(*pan, day)).map(|e| *e).unwrap_or_default()
    }
}

/// One configured issuer.
#[derive(Clone)]
pub enum IssuerHandle {
    Remote {
        id: Arc<str>,
        pool: IssuerPool,
        saf: Arc<Saf>,
        timeout: Duration,
        stand_in: Option<Arc<StandIn>>,
    },
    OnUs {
        id: Arc<str>,
        engine: Arc<dyn OnUs>,
    },
}

impl IssuerHandle {
    pub fn id(&self) -> &Arc<str> {
        match self {
            IssuerHandle::Remote { id, .. } | IssuerHandle::OnUs { id, .. } => id,
        }
    }
}

/// The part of the configuration that a reload may change.
pub struct Live {
    pub routing: RoutingTable,
    /// foldhash: looked up on every request, and filled from the configuration only.
    pub acquirers: HashSet<AcquirerId, foldhash::fast::RandomState>,
    /// The keys of the acquirers that have any (MAC, zone PIN key, BDKs).
    pub acquirer_keys: std::collections::HashMap<
        AcquirerId,
        Arc<crate::decision::security::AcquirerKeys>,
        foldhash::fast::RandomState,
    >,
    pub check_expiry: bool,
    /// `[switch] business_date_cutover`, minutes after midnight.
    pub cutover_minutes: u16,
}

impl Live {
    /// Builds the reloadable state. Issuers are matched by id against `issuer_ids`.
    pub fn build(cfg: &Config, issuer_ids: &[Arc<str>]) -> Result<Live, String> {
        let routing = RoutingTable::build(&cfg.bin_ranges, |id| {
            issuer_ids
                .iter()
                .position(|i| &**i == id)
                .map(|p| p as IssuerIndex)
        })
        .map_err(|e| e.to_string())?;
        let acquirers = cfg
            .acquirers
            .iter()
            .map(|a| AcquirerId::parse(&a.id).map_err(|e| format!("acquirer {}: {e}", a.id)))
            .collect::<Result<HashSet<_, _>, _>>()?;
        Ok(Live {
            routing,
            acquirers,
            acquirer_keys: secure::acquirer_keys(cfg),
            check_expiry: cfg.switch.check_expiry,
            cutover_minutes: cfg.switch.business_date_cutover_minutes().unwrap_or(0),
        })
    }
}

/// What the connection should write, and what to do if it cannot.
pub struct Outgoing {
    pub bytes: Bytes,
    /// Boxed: an approval's undo plan is about 580 bytes, and an `Outgoing` is carried through
    /// the state of every request's future (docs/performance.md, "Fewer copies and allocations
    /// per request").
    pub if_undeliverable: Option<Box<Undeliverable>>,
    /// Time spent waiting for the issuer, excluded from the switch's own latency.
    pub issuer_time: Duration,
}

/// How to undo an approval the acquirer never received.
pub struct Undeliverable {
    /// The request's duplicate key and message type: a repeat must learn that the approval was
    /// undone.
    pub key: DupKey,
    pub mti: Mti,
    /// The duplicate-window claim the answer was given under, once it was (`None` before, or
    /// when a later claim of the key owns its slot): only that answer may be replaced by the 96.
    pub claim: Option<ClaimId>,
    pub txn: u64,
    pub issuer: IssuerIndex,
    pub advice: AdvicePlan,
    pub reversal: Option<ReversalInput>,
}

impl Undeliverable {
    /// Names the original by the STAN the issuer saw it under.
    pub fn issuer_stan(mut self: Box<Self>, stan: u32) -> Box<Undeliverable> {
        self.advice.original_stan = stan;
        self
    }
}

/// The advice an undone approval becomes at a remote issuer, kept as the request's own values.
/// Every approval carries one in case its answer cannot be delivered, which is rare: turned into
/// an [`AdviceRecord`] (a dozen texts) only when it is queued, instead of for every approval
/// (about 350 instructions an on-us answer: docs/performance.md, "Instructions per answer").
pub struct AdvicePlan {
    /// 0420 (reversal advice) or 0120 (stand-in authorization advice).
    pub mti: u16,
    /// The answer the advice reports (`00` for a stand-in approval); none for a reversal.
    pub response_code: Option<&'static str>,
    pub txn: u64,
    pub pan: crate::security::ProtectedPan,
    pub card: Pan,
    pub processing_code: crate::domain::ProcessingCode,
    pub amount: Amount,
    /// The request's currency (field 49), as the advice names it.
    pub currency: crate::domain::Currency,
    pub original_mti: Mti,
    /// The STAN the issuer saw the original under.
    pub original_stan: u32,
    pub transmission: TransmissionDateTime,
    pub acquirer: AcquirerId,
    pub terminal: TerminalId,
    pub merchant: crate::domain::MerchantId,
    pub rrn: Option<crate::domain::Rrn>,
    pub auth_code: Option<Text>,
}

impl AdvicePlan {
    /// The store-and-forward record for `issuer`, queued as `saf_id` at `at_ms` for `reason`.
    pub fn record(self, issuer: &str, saf_id: u64, at_ms: i64, reason: &str) -> AdviceRecord {
        AdviceRecord {
            saf_id,
            at_ms,
            issuer: issuer.into(),
            mti: self.mti,
            reason: reason.into(),
            txn: Some(self.txn),
            pan: self.pan,
            masked_pan: masked_text(&self.card),
            processing_code: code_text(self.processing_code),
            amount_minor: self.amount.minor(),
            currency: self.currency.numeric(),
            original: OriginalRecord {
                mti: self.original_mti.value(),
                stan: self.original_stan,
                transmission: Text::from(self.transmission.as_str()),
                acquirer: Text::from(self.acquirer.as_str()),
            },
            terminal: Text::from(self.terminal.as_str()),
            merchant: Some(Text::from(self.merchant.as_str())),
            rrn: self.rrn.map(|r| Text::from(r.as_str())),
            replacement_minor: None,
            auth_code: self.auth_code,
            response_code: self.response_code.map(Text::from),
        }
    }
}

/// Which STAN a forwarded request went to its issuer under when that was not the acquirer's own:
/// only requests forwarded by earlier versions of the switch, recovered from their `Forwarded`
/// records, so that a retry goes out under it again and a later completion or reversal names it
/// in field 90 as the issuer knows it. A request without an entry went out under the acquirer's
/// STAN. Bounded: the oldest entries go first.
pub struct IssuerStans {
    /// foldhash, seeded at random as the duplicate window's is: SipHash over a key's four parts
    /// was about 650 instructions a lookup.
    map: dashmap::DashMap<DupKey, u32, foldhash::fast::RandomState>,
    order: std::sync::Mutex<std::collections::VecDeque<DupKey>>,
    max: usize,
    /// Set by the first insert and never cleared. Entries come only from recovered `Forwarded`
    /// records, so on a switch that never ran an earlier version the map stays empty, and every
    /// forward's lookup (a second for a completion's or reversal's original) would hash a key to
    /// find nothing.
    any: std::sync::atomic::AtomicBool,
}

impl IssuerStans {
    pub fn new(max: usize) -> IssuerStans {
        IssuerStans {
            map: dashmap::DashMap::default(),
            order: std::sync::Mutex::new(std::collections::VecDeque::new()),
            max,
            any: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn insert(&self, key: DupKey, stan: u32) {
        // Inserts come from recovery, before the switch serves a request.
        self.any.store(true, std::sync::atomic::Ordering::Release);
        if self.map.insert(key, stan).is_none() {
            let mut order = self.order.lock().unwrap_or_else(|p| p.into_inner());
            order.push_back(key);
            while order.len() > self.max {
                if let Some(old) = order.pop_front() {
                    self.map.remove(&old);
                }
            }
        }
    }

    pub fn get(&self, key: &DupKey) -> Option<u32> {
        if !self.any.load(std::sync::atomic::Ordering::Acquire) {
            return None;
        }
        self.map.get(key).map(|v| *v)
    }

    /// Every key with its STAN, oldest first (for the checkpoint: inserted again in this order,
    /// the same keys are evicted first).
    pub fn entries(&self) -> Vec<(DupKey, u32)> {
        let order = self.order.lock().unwrap_or_else(|p| p.into_inner());
        order
            .iter()
            .filter_map(|k| self.get(k).map(|stan| (*k, stan)))
            .collect()
    }
}

/// The switch's shared state. One per process; connections hold an `Arc`.
pub struct Runtime {
    pub live: ArcSwap<Live>,
    pub dialect: &'static Dialect,
    pub journal: Arc<dyn Journal>,
    pub vault: PanVault,
    pub clock: Arc<dyn Clock>,
    pub dup: Arc<DuplicateWindow>,
    pub issuers: Vec<IssuerHandle>,
    pub issuer_stans: IssuerStans,
    pub security: SwitchSecurity,
    txn_seq: AtomicU64,
    saf_seq: AtomicU64,
    /// The handles of the metrics every request records.
    meters: m::RequestMeters,
    pub shutdown: CancellationToken,
}

type HandleResult = Option<Outgoing>;

/// Forwarded requests whose issuer-side STAN is remembered.
const ISSUER_STANS_MAX: usize = 2_000_000;

/// A journal record's masked PAN. The record's texts are copied from the fields' own bytes, not
/// formatted: `to_compact_string` goes through `fmt`, and a forwarded request made some thirty
/// such texts, 3% of the switch's samples at 16×16 remote (docs/performance.md).
fn masked_text(pan: &Pan) -> Text {
    Text::from(pan.masked().as_str())
}

/// A journal record's processing code, as its six digits.
fn code_text(code: crate::domain::ProcessingCode) -> Text {
    Text::from(crate::domain::ascii_text(&code.to_field()).unwrap_or(""))
}

pub(crate) fn key_record(k: &DupKey) -> KeyRecord {
    KeyRecord {
        acquirer: k.acquirer.as_str().into(),
        terminal: k.terminal.as_str().into(),
        stan: k.stan.value(),
        transmission: Text::from(k.transmission.as_str()),
    }
}

/// Rebuilds a duplicate key from its record (recovery).
pub fn key_from_record(k: &KeyRecord) -> Option<DupKey> {
    Some(DupKey {
        acquirer: AcquirerId::parse(&k.acquirer).ok()?,
        terminal: TerminalId::from_field(k.terminal.as_bytes()).ok()?,
        stan: Stan::new(k.stan).ok()?,
        transmission: TransmissionDateTime::from_field(k.transmission.as_bytes()).ok()?,
    })
}

impl Runtime {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        live: Live,
        dialect: &'static Dialect,
        journal: Arc<dyn Journal>,
        vault: PanVault,
        clock: Arc<dyn Clock>,
        dup: Arc<DuplicateWindow>,
        issuers: Vec<IssuerHandle>,
        security: SwitchSecurity,
        next_txn: u64,
        next_saf: u64,
        shutdown: CancellationToken,
    ) -> Runtime {
        let meters = m::RequestMeters::new(
            std::iter::once("switch").chain(issuers.iter().map(|i| &**i.id())),
        );
        Runtime {
            live: ArcSwap::from_pointee(live),
            dialect,
            journal,
            vault,
            clock,
            dup,
            issuers,
            issuer_stans: IssuerStans::new(ISSUER_STANS_MAX),
            security,
            txn_seq: AtomicU64::new(next_txn.max(1)),
            saf_seq: AtomicU64::new(next_saf.max(1)),
            meters,
            shutdown,
        }
    }

    /// The next transaction and advice numbers to be handed out (for the checkpoint).
    pub fn next_numbers(&self) -> (u64, u64) {
        (
            self.txn_seq.load(Ordering::Relaxed),
            self.saf_seq.load(Ordering::Relaxed),
        )
    }

    fn next_txn(&self) -> u64 {
        self.txn_seq.fetch_add(1, Ordering::Relaxed)
    }

    fn next_saf(&self) -> u64 {
        self.saf_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Journals a record that starts nothing: refused when the journal's queue is full.
    fn journal(&self, rec: &Record) -> AppendTicket {
        self.journal_as(rec, Admission::New)
    }

    /// Journals a later record of a transaction whose request record was taken (its decision,
    /// its reversal): never refused for the queue's depth, so a transaction is not cut in half
    /// ([`Admission`]).
    fn journal_continuing(&self, rec: &Record) -> AppendTicket {
        self.journal_as(rec, Admission::Continuing)
    }

    fn journal_as(&self, rec: &Record, admission: Admission) -> AppendTicket {
        match with_record(rec, |b| self.journal.append_as(b, admission)) {
            Ok(ticket) => ticket,
            Err(e) => AppendTicket::ready(Err(e)),
        }
    }

    /// Queues a transaction's request record, whose durability its decision record answers for
    /// (see [`Journal::append_covered`]); `Err` means it was not queued. This is where the
    /// journal's queue bound pushes back: the records after it are [`Admission::Continuing`].
    fn journal_request(&self, rec: &Record) -> Result<(), crate::journal::JournalError> {
        with_record(rec, |b| self.journal.append_covered(b, Admission::New))?
    }

    /// The 96 for a request whose records the journal would not take: nothing may be answered
    /// that is not journaled, and nothing is journaled about this answer either.
    fn journal_refused(
        &self,
        msg: &Message,
        issuer_id: &str,
        e: &crate::journal::JournalError,
    ) -> HandleResult {
        // Warn, not error: under overload this is one line per refused request, and the
        // journal's own failure (if that is the cause) was logged once as an error already.
        tracing::warn!(error = %e, "journal refused the request's records; answering 96");
        let code = ResponseCode::SystemMalfunction;
        with_answer(self.dialect, msg, code, &Additions::default(), |b| {
            self.encode_answer(b, &code, issuer_id)
        })
        .ok()
        .flatten()
        .map(|bytes| Outgoing {
            bytes,
            if_undeliverable: None,
            issuer_time: Duration::ZERO,
        })
    }

    /// Handles one frame's payload; `None` means the message goes unanswered (and was counted).
    pub async fn handle(&self, payload: Bytes) -> HandleResult {
        let started = Instant::now();
        let msg = match decode_lenient(self.dialect, payload) {
            Ok(msg) => msg,
            Err(e) => {
                metrics::counter!(m::DROPPED_TOTAL, "reason" => "structure").increment(1);
                tracing::warn!(error = %e, "acquirer message structure unreadable; dropped");
                return None;
            }
        };
        let out = self.handle_inner(msg).await;
        self.timed(started, out)
    }

    /// [`Runtime::handle`] for a frame the caller has decoded already (leniently, as `handle`
    /// does), received at `started`: the switch's own latency is timed from there.
    ///
    /// It owns its runtime, so that the acquirer loop can box this future as it is, without a
    /// wrapper holding the runtime and a second copy of the message beside it.
    pub async fn handle_decoded(self: Arc<Self>, msg: Message, started: Instant) -> HandleResult {
        let out = self.handle_inner(msg).await;
        self.timed(started, out)
    }

    /// Records the switch's own latency of an answer (the issuer's time taken out) and passes it
    /// on.
    fn timed(&self, started: Instant, out: HandleResult) -> HandleResult {
        if let Some(o) = &out {
            let own = started.elapsed().saturating_sub(o.issuer_time);
            self.meters.switch_latency(own.as_secs_f64());
        }
        out
    }

    async fn handle_inner(&self, msg: Message) -> HandleResult {
        let mti = msg.mti_digits();
        self.meters.request(&mti);
        let now = self.clock.now();
        let live = self.live.load();
        let business_date = crate::clearing::business_date(now, live.cutover_minutes);
        let acquirer_keys = live.acquirer_keys_of(&msg);
        if let Some(k) = &acquirer_keys
            && let Some(refused) = self.acquirer_mac_gate(&msg, k).await
        {
            return self.seal_for(Some(k), refused).await;
        }
        let known = |a: &AcquirerId| live.acquirers.contains(a);
        let ctx = ScreenCtx {
            known_acquirer: &known,
            routing: &live.routing,
            check_expiry: live.check_expiry,
            business_date,
        };
        let out = match screen(&msg, &ctx) {
            Screened::UnexpectedResponse => {
                metrics::counter!(m::DROPPED_TOTAL, "reason" => "unexpected_response").increment(1);
                tracing::warn!(mti = %String::from_utf8_lossy(&mti), "response MTI from an acquirer; dropped");
                None
            }
            Screened::Network(n) => self.network(&msg, &n),
            Screened::Decline(d) => self.switch_decline(&msg, d, None, 0, None).await,
            // By reference: the screened value lives to the end of the match anyway (a match
            // keeps its scrutinee), and a moved-out copy would be a second 304 bytes in the
            // future's state across the await.
            Screened::Authorization { ref req, route } => {
                // Spans are debug-level: free when disabled, and the PAN in them is masked.
                let span = tracing::debug_span!(
                    "txn",
                    mti = %req.mti,
                    pan = %req.pan,
                    stan = %req.stan,
                    rrn = tracing::field::Empty,
                    issuer = %self.issuers[route.issuer as usize].id(),
                    response_code = tracing::field::Empty,
                );
                if let Some(r) = &req.rrn {
                    span.record("rrn", tracing::field::display(r));
                }
                let keys = acquirer_keys.as_deref();
                let authorize = self.authorize(&msg, req, route, keys, now, business_date);
                // Wrapped only when the span is on: `Instrumented` is one more move of the
                // authorization's state (1.9 KiB), about 200 instructions a request in a
                // callgrind count (docs/performance.md, "Smaller futures, again").
                let out = if span.is_disabled() {
                    authorize.await
                } else {
                    authorize.instrument(span.clone()).await
                };
                record_code(&span, self.dialect, out.as_ref());
                out
            }
            Screened::Reversal { req, issuer } => {
                let span = tracing::debug_span!(
                    "txn",
                    mti = %req.mti,
                    pan = %req.pan,
                    stan = %req.stan,
                    issuer = %self.issuers[issuer as usize].id(),
                    response_code = tracing::field::Empty,
                );
                // Boxed: reversals are a few in a hundred requests, and inline their state (2 KiB)
                // would set the size of every request's future (docs/performance.md, "Fewer
                // copies and allocations per request").
                let out = Box::pin(
                    self.reverse(&msg, req, issuer, now, business_date)
                        .instrument(span.clone()),
                )
                .await;
                record_code(&span, self.dialect, out.as_ref());
                out
            }
        };
        self.seal_for(acquirer_keys.as_deref(), out).await
    }

    fn network(&self, msg: &Message, n: &NetworkManagement) -> HandleResult {
        let mut b = MessageBuilder::new(self.dialect, Mti::NETWORK_RESPONSE.to_digits());
        b.copy_fields(msg, &[7, 11, 32, 70]);
        b.set(39, b"00");
        tracing::debug!(code = ?n.code, stan = %n.stan, "acquirer network management");
        self.encode_answer(&b, &ResponseCode::Approved, "switch")
            .map(|bytes| Outgoing {
                bytes,
                if_undeliverable: None,
                issuer_time: Duration::ZERO,
            })
    }

    fn encode_answer(
        &self,
        b: &MessageBuilder<'_>,
        code: &ResponseCode,
        issuer: &str,
    ) -> Option<Bytes> {
        match b.to_bytes() {
            Ok(bytes) => {
                self.meters.response(&b.mti(), Some(*code), issuer);
                Some(bytes)
            }
            Err(e) => {
                tracing::error!(error = %e, "answer does not encode; request dropped");
                metrics::counter!(m::DROPPED_TOTAL, "reason" => "encode").increment(1);
                None
            }
        }
    }

    /// A decline made by the switch itself (screening, availability, the connection limits of
    /// [`crate::net::acquirer`]), journaled then answered.
    pub(crate) async fn switch_decline(
        &self,
        msg: &Message,
        d: Decline,
        key: Option<&DupKey>,
        txn: u64,
        issuer: Option<&str>,
    ) -> HandleResult {
        let code = d.response_code();
        let mti = crate::iso8583::views::mti_of(msg)
            .map(|m| m.value())
            .unwrap_or(0);
        let rec = Record::Decision(DecisionRecord {
            reason: Some(d.name().into()),
            ..DecisionRecord::new(
                txn,
                self.clock.now_ms(),
                key.map(key_record),
                mti,
                code.as_str(),
                DecisionSource::Switch,
                issuer.map(Into::into),
            )
        });
        if let Err(e) = self.journal(&rec).await {
            tracing::error!(error = %e, "journal refused a decline; answered without its record (no money moved)");
        }
        let encoded = with_answer(self.dialect, msg, code, &Additions::default(), |b| {
            self.encode_answer(b, &code, issuer.unwrap_or("switch"))
        });
        let encoded = match encoded {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::warn!(error = %e, "no answer can be built; dropped");
                return None;
            }
        };
        encoded.map(|bytes| Outgoing {
            bytes,
            if_undeliverable: None,
            issuer_time: Duration::ZERO,
        })
    }

    fn dup_key(
        req_acquirer: AcquirerId,
        terminal: TerminalId,
        stan: Stan,
        t: TransmissionDateTime,
    ) -> DupKey {
        DupKey {
            acquirer: req_acquirer,
            terminal,
            stan,
            transmission: t,
        }
    }

    async fn authorize(
        &self,
        msg: &Message,
        req: &AuthorizationRequest<'_>,
        route: crate::routing::Route,
        acquirer_keys: Option<&crate::decision::security::AcquirerKeys>,
        now: NaiveDateTime,
        business_date: NaiveDate,
    ) -> HandleResult {
        let crate::routing::Route {
            issuer: issuer_idx,
            product,
        } = route;
        let pin = match self.pin_step(msg, req, acquirer_keys, issuer_idx) {
            Ok(p) => p,
            Err(refusal) => {
                let issuer = self.issuers[issuer_idx as usize].id();
                return self.pin_refused(msg, refusal, issuer).await;
            }
        };
        let key = Self::dup_key(req.acquirer, req.terminal, req.stan, req.transmission);
        let pending = match self.claim(msg, key, req.mti).await {
            Ok(p) => p,
            Err(answer) => return answer,
        };
        let issuer = &self.issuers[issuer_idx as usize];
        let issuer_id = issuer.id().clone();
        let txn = self.next_txn();
        let pan_protected = match self.protect_pan(msg, &req.pan, &key, txn, &issuer_id).await {
            Ok(p) => p,
            Err(answer) => return answer,
        };
        // The record is a temporary, dropped at the end of this statement: as a local it lived
        // to the end of the function, so the future kept its 360 bytes across every later await.
        let journaled = self.journal_request(&Record::Request(RequestRecord {
            txn,
            at_ms: self.clock.now_ms(),
            key: key_record(&key),
            mti: req.mti.value(),
            pan: pan_protected.clone(),
            masked_pan: masked_text(&req.pan),
            processing_code: code_text(req.processing_code),
            amount_minor: req.amount.map(|a| a.minor()),
            currency: req.currency.numeric(),
            issuer: Text::from(&*issuer_id),
            rrn: req.rrn.map(|r| Text::from(r.as_str())),
            merchant: Some(Text::from(req.merchant.as_str())),
            mcc: req.mcc,
            original: req.original.map(|o| OriginalRecord {
                mti: o.mti.value(),
                stan: o.stan.value(),
                transmission: Text::from(o.transmission.as_str()),
                acquirer: Text::from(o.acquirer.as_str()),
            }),
            replacement_minor: None,
            business_date,
            product,
            card_present: crate::clearing::card_present(req.pos_entry_mode),
        }));
        // Refused here, the request goes no further: no engine or issuer sees it.
        if let Err(e) = journaled {
            return self.journal_refused(msg, &issuer_id, &e);
        }

        let mut issuer_time = Duration::ZERO;
        let (builder_result, decision, undeliverable) = match issuer {
            IssuerHandle::OnUs { engine, .. } => {
                // The engine queued its ledger event (if any) under the account's lock; the
                // decision record's ticket answers for it.
                let d = engine.authorize(req, &key, pin.check(), now, business_date);
                let code = d.response_code();
                let auth = d.auth_code.map(|a| Text::from(a.as_str()));
                let approved = d.approved.and_then(|a| a.to_field().ok());
                let rec = DecisionRecord {
                    reason: d.decline.map(|x| x.name().into()),
                    auth_code: auth.clone(),
                    approved_minor: d.approved.map(|a| a.minor()),
                    additional_amounts: d
                        .additional_amounts
                        .as_ref()
                        .map(|v| crate::events::text_lossy(v)),
                    ..DecisionRecord::new(
                        txn,
                        self.clock.now_ms(),
                        Some(key_record(&key)),
                        req.mti.value(),
                        code.as_str(),
                        DecisionSource::OnUs,
                        Some(Text::from(&*issuer_id)),
                    )
                };
                let undeliverable = code.is_approval().then(|| {
                    let amount = d.approved.or(req.amount);
                    self.reversal_for(
                        req,
                        &key,
                        txn,
                        issuer_idx,
                        pan_protected.clone(),
                        amount,
                        auth.clone(),
                    )
                });
                let answer = self.on_us_answer(
                    msg,
                    code,
                    auth.as_deref(),
                    approved.as_ref(),
                    d.additional_amounts.as_deref(),
                );
                (answer, rec, undeliverable.flatten())
            }
            IssuerHandle::Remote {
                pool,
                timeout,
                stand_in,
                ..
            } => {
                let deadline = Instant::now() + *timeout;
                // A completion names its preauthorization by the STAN the issuer saw; a PIN
                // block goes under the issuer's key.
                let base = pin.forward().unwrap_or(msg);
                let outbound = match &req.original {
                    Some(o) => self
                        .with_issuer_original(base, o, req.terminal)
                        .unwrap_or_else(|| base.clone()),
                    None => base.clone(),
                };
                let (sent, link_stan) = self.forward(pool, key, deadline, outbound).await;
                // A reversal or advice names the original by the STAN it went out under.
                let seen_as = |u: Box<Undeliverable>| u.issuer_stan(link_stan.value());
                match sent {
                    Ok(reply) => {
                        issuer_time = reply.round_trip;
                        let code = reply
                            .msg
                            .get(39)
                            .and_then(|c| ResponseCode::from_field(&c).ok())
                            .unwrap_or(ResponseCode::SystemMalfunction);
                        let auth = reply.msg.get(38).map(|a| crate::events::text_lossy(&a));
                        let approved_minor = if code == ResponseCode::ApprovedPartial {
                            reply
                                .msg
                                .get(4)
                                .and_then(|a| Amount::from_field(&a, req.currency).ok())
                                .map(|a| a.minor())
                        } else {
                            None
                        };
                        let rec = DecisionRecord {
                            auth_code: auth.clone(),
                            approved_minor,
                            additional_amounts: reply
                                .msg
                                .get(54)
                                .map(|v| crate::events::text_lossy(&v)),
                            ..DecisionRecord::new(
                                txn,
                                self.clock.now_ms(),
                                Some(key_record(&key)),
                                req.mti.value(),
                                code.as_str(),
                                DecisionSource::Issuer,
                                Some(Text::from(&*issuer_id)),
                            )
                        };
                        let undeliverable = if code.is_approval() {
                            let amount = approved_minor
                                .map(|a| Amount::new(a, req.currency))
                                .or(req.amount);
                            self.reversal_for(
                                req,
                                &key,
                                txn,
                                issuer_idx,
                                pan_protected.clone(),
                                amount,
                                auth,
                            )
                            .map(seen_as)
                        } else {
                            None
                        };
                        let answer = relay_bytes(self.dialect, msg, &reply.msg);
                        (answer, rec, undeliverable)
                    }
                    Err(e) => {
                        let (decline, reverse) = match &e {
                            LinkError::Timeout => {
                                drop(self.journal_continuing(&Record::Timeout {
                                    txn,
                                    at_ms: self.clock.now_ms(),
                                }));
                                (Decline::IssuerUnavailable, Some("timeout"))
                            }
                            LinkError::LinkLost => (Decline::IssuerUnavailable, Some("link_lost")),
                            // The issuer answered, but its answer cannot be trusted: its
                            // outcome is unknown, as after a timeout.
                            LinkError::BadMac(_) => {
                                (Decline::IssuerUnavailable, Some("mac_invalid"))
                            }
                            LinkError::NoLinkReady
                            | LinkError::Overloaded
                            | LinkError::Shutdown
                            | LinkError::StanBusy => (Decline::IssuerUnavailable, None),
                            other => {
                                tracing::error!(error = %other, "request could not be forwarded");
                                (Decline::SystemMalfunction, None)
                            }
                        };
                        tracing::info!(issuer = %issuer_id, error = %e, pan = %req.pan, stan = %req.stan, "issuer unavailable for a request");
                        let stood_in = match (decline, stand_in) {
                            (Decline::IssuerUnavailable, Some(si)) => {
                                Some(si.decide(req, business_date))
                            }
                            _ => None,
                        };
                        match stood_in {
                            Some(Ok(auth)) => {
                                let auth = Text::from(auth.as_str());
                                // Approved in stand-in. The 0120 advice tells the issuer; it also
                                // stands for any copy of the request the issuer may have seen
                                // before the timeout (same key), so no reversal is sent.
                                metrics::counter!(m::STANDIN_TOTAL, "issuer" => issuer_id.to_string(), "response_code" => "00").increment(1);
                                if let Some(mut u) = self
                                    .reversal_for(
                                        req,
                                        &key,
                                        txn,
                                        issuer_idx,
                                        pan_protected.clone(),
                                        req.amount,
                                        Some(auth.clone()),
                                    )
                                    .map(seen_as)
                                {
                                    u.advice.mti = Mti::AUTH_ADVICE.value();
                                    u.advice.response_code = Some("00");
                                    self.queue_reversal(u, "stand_in").await;
                                }
                                let rec = DecisionRecord {
                                    reason: Some(compact_str::format_compact!(
                                        "stand_in:{}",
                                        match &e {
                                            LinkError::Timeout => "timeout",
                                            LinkError::LinkLost => "link_lost",
                                            LinkError::BadMac(_) => "mac_invalid",
                                            _ => "no_link",
                                        }
                                    )),
                                    auth_code: Some(auth.clone()),
                                    ..DecisionRecord::new(
                                        txn,
                                        self.clock.now_ms(),
                                        Some(key_record(&key)),
                                        req.mti.value(),
                                        "00",
                                        DecisionSource::StandIn,
                                        Some(Text::from(&*issuer_id)),
                                    )
                                };
                                let add = Additions {
                                    auth_code: Some(auth.as_bytes()),
                                    ..Additions::default()
                                };
                                let answer =
                                    answer_bytes(self.dialect, msg, ResponseCode::Approved, &add);
                                let undeliverable = self
                                    .reversal_for(
                                        req,
                                        &key,
                                        txn,
                                        issuer_idx,
                                        pan_protected.clone(),
                                        req.amount,
                                        Some(auth),
                                    )
                                    .map(seen_as);
                                (answer, rec, undeliverable)
                            }
                            other => {
                                let (decline, source) = match other {
                                    Some(Err(d)) if d != Decline::IssuerUnavailable => {
                                        metrics::counter!(m::STANDIN_TOTAL, "issuer" => issuer_id.to_string(), "response_code" => d.response_code().as_str()).increment(1);
                                        (d, DecisionSource::StandIn)
                                    }
                                    _ => (decline, DecisionSource::Switch),
                                };
                                if let Some(reason) = reverse
                                    && let Some(u) = self
                                        .reversal_for(
                                            req,
                                            &key,
                                            txn,
                                            issuer_idx,
                                            pan_protected.clone(),
                                            req.amount,
                                            None,
                                        )
                                        .map(seen_as)
                                {
                                    self.queue_reversal(u, reason).await;
                                }
                                let code = decline.response_code();
                                let rec = DecisionRecord {
                                    reason: Some(decline.name().into()),
                                    ..DecisionRecord::new(
                                        txn,
                                        self.clock.now_ms(),
                                        Some(key_record(&key)),
                                        req.mti.value(),
                                        code.as_str(),
                                        source,
                                        Some(Text::from(&*issuer_id)),
                                    )
                                };
                                let answer =
                                    answer_bytes(self.dialect, msg, code, &Additions::default());
                                (answer, rec, None)
                            }
                        }
                    }
                }
            }
        };
        let code = decision.response_code.clone();
        let decision_ticket = self.journal_continuing(&Record::Decision(decision));
        // Covers the request record and any ledger event too: see `journal_request`.
        let journaled = decision_ticket.await;
        let bytes = match (journaled, builder_result) {
            (Ok(_), Ok(bytes)) => bytes,
            (Err(e), _) => {
                // If it was an approval, undo it.
                if let Some(u) = undeliverable {
                    self.queue_reversal(u, "journal_failure").await;
                }
                return self.journal_refused(msg, &issuer_id, &e);
            }
            (Ok(_), Err(e)) => {
                tracing::error!(error = %e, "answer does not encode; dropped");
                metrics::counter!(m::DROPPED_TOTAL, "reason" => "encode").increment(1);
                if let Some(u) = undeliverable {
                    self.queue_reversal(u, "undeliverable").await;
                }
                return None;
            }
        };
        self.meters.response(
            &resp_mti(&req.mti),
            ResponseCode::from_field(code.as_bytes()).ok(),
            &issuer_id,
        );
        let claim = pending.complete(Answer::Bytes(bytes.clone()));
        Some(Outgoing {
            bytes,
            if_undeliverable: undeliverable.map(|mut u| {
                u.claim = claim;
                u
            }),
            issuer_time,
        })
    }

    /// Sends a request (duplicate key `key`) to a remote issuer under a STAN that a restarted
    /// switch names again, so that an acquirer's retry after a crash reaches the issuer under the
    /// STAN the issuer already saw and the issuer's idempotency answers it instead of posting
    /// again. Returns the outcome and the STAN the request went (or was to go) out under.
    ///
    /// The STAN is the acquirer's own (field 11), or the one a `Forwarded` record of an older
    /// journal names for `key`. No journal write: the STAN follows from the request itself. When
    /// another request holds that STAN on the link (two terminals with one STAN), the link holds
    /// this one back until the STAN is free, at the latest when the holder times out; if that is
    /// past this request's own deadline the link answers [`LinkError::StanBusy`] and nothing was
    /// sent. Never another STAN: after a crash nobody can know whether the issuer saw the request
    /// under its own, so a second STAN could post it twice.
    async fn forward(
        &self,
        pool: &IssuerPool,
        key: DupKey,
        deadline: Instant,
        msg: Message,
    ) -> (Result<IssuerReply, LinkError>, Stan) {
        let stan = self
            .issuer_stans
            .get(&key)
            .and_then(|s| Stan::new(s).ok())
            .unwrap_or(key.stan);
        let sent = pool
            .send(OutboundRequest {
                msg,
                deadline,
                mti: None,
                stan: StanChoice::Exactly(stan),
            })
            .await;
        (sent, stan)
    }

    /// `msg` with field 90's STAN replaced by the one the issuer knows the original by, or `None`
    /// when the original was never forwarded under another STAN.
    fn with_issuer_original(
        &self,
        msg: &Message,
        o: &crate::iso8583::views::OriginalData,
        terminal: TerminalId,
    ) -> Option<Message> {
        let key = DupKey {
            acquirer: o.acquirer,
            terminal,
            stan: o.stan,
            transmission: o.transmission,
        };
        let stan = Stan::new(self.issuer_stans.get(&key)?).ok()?;
        let f90 = crate::iso8583::views::OriginalData { stan, ..*o }.to_field();
        let mut b = MessageBuilder::new(self.dialect, msg.mti_digits());
        for n in msg.field_numbers().filter(|&n| n != 90) {
            b.copy_from(msg, n);
        }
        b.set(90, &f90);
        let bytes = b.to_bytes().ok()?;
        crate::iso8583::decode_lenient(self.dialect, bytes).ok()
    }

    fn on_us_answer(
        &self,
        msg: &Message,
        code: ResponseCode,
        auth: Option<&str>,
        approved: Option<&[u8; 12]>,
        f54: Option<&[u8]>,
    ) -> Result<Bytes, AnswerError> {
        let add = Additions {
            auth_code: auth.map(str::as_bytes),
            approved_amount: approved.map(|a| &a[..]),
            additional_amounts: f54,
        };
        answer_bytes(self.dialect, msg, code, &add)
    }

    /// Claims `key` for a request of type `mti` in the duplicate window. A duplicate gets the
    /// first request's answer (once there is one) as the `Err`.
    async fn claim(
        &self,
        msg: &Message,
        key: DupKey,
        mti: Mti,
    ) -> Result<crate::net::duplicates::Pending, HandleResult> {
        match self.dup.claim(key, mti, Instant::now()) {
            Claim::New(p) => Ok(p),
            Claim::Duplicate(w) => {
                metrics::counter!(m::DUPLICATES_TOTAL).increment(1);
                Err(self.duplicate_answer(msg, w.answer().await))
            }
        }
    }

    /// The PAN encrypted for the journal. If encryption fails the request cannot be journaled,
    /// so it is declined (96) and that answer is the `Err`.
    async fn protect_pan(
        &self,
        msg: &Message,
        pan: &Pan,
        key: &DupKey,
        txn: u64,
        issuer_id: &Arc<str>,
    ) -> Result<crate::security::ProtectedPan, HandleResult> {
        match self.vault.protect(pan) {
            Ok(p) => Ok(p),
            Err(e) => {
                tracing::error!(error = %e, "PAN protection failed");
                Err(self
                    .switch_decline(
                        msg,
                        Decline::SystemMalfunction,
                        Some(key),
                        txn,
                        Some(issuer_id),
                    )
                    .await)
            }
        }
    }

    fn duplicate_answer(&self, msg: &Message, answer: Option<Answer>) -> HandleResult {
        match answer? {
            Answer::Bytes(bytes) => Some(Outgoing {
                bytes,
                if_undeliverable: None,
                issuer_time: Duration::ZERO,
            }),
            Answer::Recorded(rec) => {
                let code = ResponseCode::from_field(rec.response_code.as_bytes()).ok()?;
                let approved = rec.approved_minor.and_then(|a| {
                    let cur = msg
                        .get(49)
                        .and_then(|c| crate::domain::Currency::from_field(&c).ok())?;
                    Amount::new(a, cur).to_field().ok()
                });
                let add = Additions {
                    auth_code: rec.auth_code.as_deref().map(str::as_bytes),
                    approved_amount: approved.as_ref().map(|a| &a[..]),
                    additional_amounts: rec.additional_amounts.as_deref().map(str::as_bytes),
                };
                answer_bytes(self.dialect, msg, code, &add)
                    .ok()
                    .map(|bytes| Outgoing {
                        bytes,
                        if_undeliverable: None,
                        issuer_time: Duration::ZERO,
                    })
            }
        }
    }

    /// The reversal advice that undoes an approval of `req`.
    #[allow(clippy::too_many_arguments)]
    fn reversal_for(
        &self,
        req: &AuthorizationRequest<'_>,
        key: &DupKey,
        txn: u64,
        issuer_idx: IssuerIndex,
        pan: crate::security::ProtectedPan,
        amount: Option<Amount>,
        auth_code: Option<Text>,
    ) -> Option<Box<Undeliverable>> {
        let amount = amount?;
        let advice = AdvicePlan {
            mti: Mti::REVERSAL_ADVICE.value(),
            response_code: None,
            txn,
            pan,
            card: req.pan,
            processing_code: req.processing_code,
            amount,
            currency: req.currency,
            original_mti: req.mti,
            original_stan: req.stan.value(),
            transmission: req.transmission,
            acquirer: req.acquirer,
            terminal: req.terminal,
            merchant: req.merchant,
            rrn: req.rrn,
            auth_code,
        };
        let reversal = Some(ReversalInput {
            pan: req.pan,
            amount,
            replacement: None,
            original: *key,
            key: *key,
        });
        Some(Box::new(Undeliverable {
            key: *key,
            mti: req.mti,
            claim: None,
            txn,
            issuer: issuer_idx,
            advice,
            reversal,
        }))
    }

    /// Undoes an approval: an on-us engine reverses at once; a remote issuer gets a 0420 through
    /// store-and-forward.
    ///
    /// Boxed because it is a rare path awaited inside every authorization: inline, its state
    /// machine (2.4 KiB) made each request's future larger by that much, and every request's
    /// future is moved into its connection's set of answers in flight (docs/performance.md,
    /// "Smaller futures").
    pub fn queue_reversal(
        &self,
        u: Box<Undeliverable>,
        reason: &'static str,
    ) -> futures::future::BoxFuture<'_, ()> {
        Box::pin(self.queue_reversal_now(u, reason))
    }

    async fn queue_reversal_now(&self, u: Box<Undeliverable>, reason: &'static str) {
        let Some(issuer) = self.issuers.get(u.issuer as usize) else {
            return;
        };
        match issuer {
            IssuerHandle::OnUs { engine, id } => {
                if let Some(rev) = &u.reversal {
                    let now = self.clock.now();
                    // No decision record follows the engine's ledger event here, so a flush (of
                    // everything queued so far, this event included) makes it durable.
                    let d = engine.reverse(rev, now, now.date());
                    let journaled = match d.decline {
                        Some(Decline::SystemMalfunction) => Err("the engine refused it".to_owned()),
                        _ => self
                            .journal
                            .flush()
                            .await
                            .map(drop)
                            .map_err(|e| e.to_string()),
                    };
                    match (journaled, d.decline) {
                        // The engine refused (the journal failed or closed: the event is
                        // `Admission::Continuing`; or the account could not be locked) or the
                        // flush failed. The restarted switch replays the hold and it lapses at
                        // its expiry, as an operator will see from this line.
                        (Err(e), _) => {
                            tracing::error!(issuer = %id, txn = u.txn, reason, error = %e, "on-us approval NOT reversed: the reversal was not journaled")
                        }
                        (Ok(()), None) => {
                            metrics::counter!(m::REVERSALS_QUEUED_TOTAL, "issuer" => id.to_string(), "reason" => reason).increment(1);
                            tracing::info!(issuer = %id, reason, txn = u.txn, "on-us approval reversed");
                        }
                        (Ok(()), Some(d)) => {
                            tracing::warn!(issuer = %id, txn = u.txn, reason, decline = d.name(), "on-us reversal declined by the engine")
                        }
                    }
                }
            }
            IssuerHandle::Remote { saf, id, .. } => {
                let advice = u
                    .advice
                    .record(id, self.next_saf(), self.clock.now_ms(), reason);
                tracing::info!(issuer = %saf.issuer(), reason, txn = u.txn, masked_pan = %advice.masked_pan, "reversal advice queued");
                if let Err(e) = saf.enqueue(advice, reason).await {
                    tracing::error!(error = %e, "reversal advice could not be queued");
                }
            }
        }
    }

    /// Journals an issuer answer that came after its request had timed out. The request was
    /// already answered 91 and a reversal advice queued, so nothing else is owed.
    pub async fn late_reply(&self, l: &crate::net::issuer::LateReply) {
        let rec = Record::LateReply {
            issuer: Text::from(&*l.issuer_id),
            at_ms: self.clock.now_ms(),
            response_code: l.msg.get(39).map(|c| crate::events::text_lossy(&c)),
            masked_pan: l
                .msg
                .get(2)
                .map(|p| crate::iso8583::decode::mask_pan(&p).into()),
        };
        // Continues a transaction that timed out: not refused for the queue's depth.
        let _ = self.journal_continuing(&rec).await;
    }

    /// The connection could not deliver an answer: journal it, undo the approval, and make sure a
    /// repeat of the request (terminals resend after losing a connection) learns that it was
    /// undone: the duplicate window now answers it 96 without an auth code.
    ///
    /// Boxed for the reason [`Runtime::queue_reversal`] is: a rare path awaited on the way of
    /// every answer (the MAC step), 3.7 KiB of state otherwise carried by each request.
    pub fn undeliverable(&self, out: Outgoing) -> futures::future::BoxFuture<'_, ()> {
        Box::pin(self.undeliverable_now(out))
    }

    async fn undeliverable_now(&self, out: Outgoing) {
        let Some(u) = out.if_undeliverable else {
            return;
        };
        let key = u.key;
        let request_mti = u.mti;
        let txn = u.txn;
        let code = ResponseCode::SystemMalfunction;
        // A repeat must stop getting the approval before the approval is undone: the duplicate
        // window gets the 96 first, then the reversal is journaled and queued.
        let reversed = crate::iso8583::decode_lenient(self.dialect, out.bytes)
            .ok()
            .and_then(|approval| {
                let mut b = MessageBuilder::new(self.dialect, approval.mti_digits());
                for n in approval
                    .field_numbers()
                    .filter(|&n| n != 38 && n != 39 && n != 54)
                {
                    b.copy_from(&approval, n);
                }
                b.set(39, crate::iso8583::views::code_bytes(code));
                let bytes = b.to_bytes().ok()?;
                let mti = crate::iso8583::views::mti_of(&approval)
                    .map(|m| m.value().saturating_sub(10))
                    .unwrap_or(0);
                Some((bytes, mti))
            });
        if let (Some((bytes, _)), Some(claim)) = (&reversed, u.claim) {
            self.dup
                .replace(&key, request_mti, claim, Answer::Bytes(bytes.clone()));
        }
        let _ = self
            .journal_continuing(&Record::Undeliverable {
                txn,
                at_ms: self.clock.now_ms(),
            })
            .await;
        self.queue_reversal(u, "undeliverable").await;
        let Some((_, mti)) = reversed else {
            return;
        };
        let rec = Record::Decision(DecisionRecord {
            reason: Some("undeliverable_reversed".into()),
            ..DecisionRecord::new(
                txn,
                self.clock.now_ms(),
                Some(key_record(&key)),
                mti,
                code.as_str(),
                DecisionSource::Switch,
                None,
            )
        });
        if let Err(e) = self.journal_continuing(&rec).await {
            tracing::error!(error = %e, "journal refused the reversed decision");
        }
    }

    async fn reverse(
        &self,
        msg: &Message,
        req: ReversalRequest,
        issuer_idx: IssuerIndex,
        now: NaiveDateTime,
        business_date: NaiveDate,
    ) -> HandleResult {
        let key = Self::dup_key(req.acquirer, req.terminal, req.stan, req.transmission);
        let pending = match self.claim(msg, key, req.mti).await {
            Ok(p) => p,
            Err(answer) => return answer,
        };
        let issuer = &self.issuers[issuer_idx as usize];
        let issuer_id = issuer.id().clone();
        let txn = self.next_txn();
        let pan_protected = match self.protect_pan(msg, &req.pan, &key, txn, &issuer_id).await {
            Ok(p) => p,
            Err(answer) => return answer,
        };
        let original = OriginalRecord {
            mti: req.original.mti.value(),
            stan: req.original.stan.value(),
            transmission: Text::from(req.original.transmission.as_str()),
            acquirer: Text::from(req.original.acquirer.as_str()),
        };
        let request_queued = self.journal_request(&Record::Request(RequestRecord {
            txn,
            at_ms: self.clock.now_ms(),
            key: key_record(&key),
            mti: req.mti.value(),
            pan: pan_protected.clone(),
            masked_pan: masked_text(&req.pan),
            processing_code: code_text(req.processing_code),
            amount_minor: Some(req.amount.minor()),
            currency: req.amount.currency().numeric(),
            issuer: Text::from(&*issuer_id),
            rrn: req.rrn.map(|r| Text::from(r.as_str())),
            merchant: msg.get(42).map(|m| crate::events::text_lossy(&m)),
            mcc: None,
            original: Some(original.clone()),
            replacement_minor: req.replacement.map(|r| r.transaction.minor()),
            business_date,
            product: None,
            card_present: None,
        }));
        // Refused here, the reversal goes no further: no engine or issuer sees it.
        if let Err(e) = request_queued {
            return self.journal_refused(msg, &issuer_id, &e);
        }
        let original_key = DupKey {
            acquirer: req.original.acquirer,
            terminal: req.terminal,
            stan: req.original.stan,
            transmission: req.original.transmission,
        };
        let (code, source, auth, reason) = match issuer {
            IssuerHandle::OnUs { engine, .. } => {
                let rev = ReversalInput {
                    pan: req.pan,
                    amount: req.amount,
                    replacement: req.replacement.map(|r| r.transaction),
                    original: original_key,
                    key,
                };
                let d = engine.reverse(&rev, now, business_date);
                (
                    d.response_code(),
                    DecisionSource::OnUs,
                    None,
                    d.decline.map(|x| Text::from(x.name())),
                )
            }
            IssuerHandle::Remote {
                pool, timeout, saf, ..
            } => {
                let mut original = original;
                if let Some(stan) = self.issuer_stans.get(&original_key) {
                    original.stan = stan;
                }
                let advice = AdviceRecord {
                    saf_id: self.next_saf(),
                    at_ms: self.clock.now_ms(),
                    issuer: Text::from(&*issuer_id),
                    mti: Mti::REVERSAL_ADVICE.value(),
                    reason: "acquirer_advice".into(),
                    txn: Some(txn),
                    pan: pan_protected.clone(),
                    masked_pan: masked_text(&req.pan),
                    processing_code: code_text(req.processing_code),
                    amount_minor: req.amount.minor(),
                    currency: req.amount.currency().numeric(),
                    original,
                    terminal: Text::from(req.terminal.as_str()),
                    merchant: msg.get(42).map(|m| crate::events::text_lossy(&m)),
                    rrn: req.rrn.map(|r| Text::from(r.as_str())),
                    replacement_minor: req.replacement.map(|r| r.transaction.minor()),
                    auth_code: msg.get(38).map(|a| crate::events::text_lossy(&a)),
                    response_code: None,
                };
                if req.is_advice() {
                    // An 0420 is acknowledged at once; store-and-forward delivers it.
                    match saf.enqueue(advice, "acquirer_advice").await {
                        Ok(()) => (ResponseCode::Approved, DecisionSource::Switch, None, None),
                        Err(e) => {
                            tracing::error!(error = %e, "acquirer reversal advice could not be queued");
                            (
                                ResponseCode::SystemMalfunction,
                                DecisionSource::Switch,
                                None,
                                Some("saf_full".into()),
                            )
                        }
                    }
                } else {
                    let deadline = Instant::now() + *timeout;
                    let outbound = self
                        .with_issuer_original(msg, &req.original, req.terminal)
                        .unwrap_or_else(|| msg.clone());
                    match self.forward(pool, key, deadline, outbound).await.0 {
                        Ok(reply) => {
                            let code = reply
                                .msg
                                .get(39)
                                .and_then(|c| ResponseCode::from_field(&c).ok())
                                .unwrap_or(ResponseCode::SystemMalfunction);
                            (code, DecisionSource::Issuer, None, None)
                        }
                        Err(e) => {
                            // The reversal must still reach the issuer: send it as an advice.
                            let sent = matches!(e, LinkError::Timeout | LinkError::LinkLost);
                            let reason: &'static str = if sent { "timeout" } else { "issuer_down" };
                            if let Err(err) = saf.enqueue(advice, reason).await {
                                tracing::error!(error = %err, "reversal advice could not be queued");
                            }
                            let d = Decline::IssuerUnavailable;
                            (
                                d.response_code(),
                                DecisionSource::Switch,
                                None,
                                Some(d.name().into()),
                            )
                        }
                    }
                }
            }
        };
        let decision_ticket = self.journal_continuing(&Record::Decision(DecisionRecord {
            reason,
            auth_code: auth,
            ..DecisionRecord::new(
                txn,
                self.clock.now_ms(),
                Some(key_record(&key)),
                req.mti.value(),
                code.as_str(),
                source,
                Some(Text::from(&*issuer_id)),
            )
        }));
        // Covers the request record and any ledger event too: see `journal_request`.
        let journaled = decision_ticket.await;
        let code = if journaled.is_ok() {
            code
        } else {
            ResponseCode::SystemMalfunction
        };
        let bytes = with_answer(self.dialect, msg, code, &Additions::default(), |b| {
            self.encode_answer(b, &code, &issuer_id)
        })
        .ok()??;
        if journaled.is_ok() {
            pending.complete(Answer::Bytes(bytes.clone()));
        }
        Some(Outgoing {
            bytes,
            if_undeliverable: None,
            issuer_time: Duration::ZERO,
        })
    }
}

/// Hands a record's journal payload to `append` (see [`Record::with_encoded`]). A record that
/// does not encode is a bug, logged; the caller treats it as a journal that would not take the
/// record.
fn with_record<R>(
    rec: &Record,
    append: impl FnOnce(&[u8]) -> R,
) -> Result<R, crate::journal::JournalError> {
    rec.with_encoded(append).map_err(|e| {
        tracing::error!(error = %e, "journal record does not encode");
        crate::journal::JournalError::Closed
    })
}

/// Puts the answer's response code on the transaction's span (only when the span is enabled).
fn record_code(span: &tracing::Span, dialect: &'static Dialect, out: Option<&Outgoing>) {
    if span.is_disabled() {
        return;
    }
    let code = out
        .and_then(|o| crate::iso8583::decode_lenient(dialect, o.bytes.clone()).ok())
        .and_then(|m| m.get(39).map(|c| crate::events::text_lossy(&c)));
    if let Some(c) = code {
        span.record("response_code", tracing::field::display(c));
        tracing::debug!(parent: span, "answered");
    }
}

fn resp_mti(mti: &Mti) -> [u8; 4] {
    mti.response().map(|m| m.to_digits()).unwrap_or(*b"0000")
}
