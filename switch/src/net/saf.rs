//! Store-and-forward: advices (0420 reversal advices, 0120 stand-in advices) that an issuer must
//! receive, delivered in order once it can take them, and retried until it acknowledges.
//!
//! Durability comes from the journal: an advice is journaled (`SafQueued`) before it is queued,
//! and its end (`SafDelivered` on the issuer's 0430/0130, `SafParked` after `saf_retries_max`
//! failed sends) is journaled too, so recovery rebuilds exactly the advices still owed. Only
//! attempts that were actually sent count towards the limit: an issuer that is simply down is
//! waited for, not given up on.
//!
//! The queue's depth is also published on a watch ([`Saf::depth_watch`]), so that whoever needs to
//! know when advices are owed or delivered (the demo, tests) waits for it instead of polling.
//!
//! One task per issuer drains its queue one advice at a time. Advices are rare next to
//! authorizations, and order matters more than speed here (an advice must not overtake the one it
//! follows).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::domain::{
    AcquirerId, Amount, Currency, Mti, ProcessingCode, Stan, TransmissionDateTime,
};
use crate::events::{AdviceRecord, Record, text_lossy};
use crate::iso8583::views::{OriginalData, ReplacementAmounts};
use crate::iso8583::{ISO87_ASCII, Message, MessageBuilder, decode};
use crate::journal::{Admission, Journal};
use crate::metrics as m;
use crate::net::issuer::{IssuerPool, LinkError, OutboundRequest, StanChoice};
use crate::security::PanVault;

/// Settings of one issuer's queue.
#[derive(Debug, Clone, Copy)]
pub struct SafConfig {
    /// How long one delivery attempt waits for the acknowledgement.
    pub attempt_timeout: Duration,
    /// Sent attempts before an advice is parked.
    pub retries_max: u32,
    /// First and largest pause between failed attempts.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Advices held at most; beyond it enqueueing fails loudly rather than growing without bound.
    pub depth_max: usize,
}

/// Why an advice could not be queued or built.
#[derive(Debug, thiserror::Error)]
pub enum SafError {
    #[error("internal: store-and-forward queue for issuer {issuer} is full ({depth} advices)")]
    Full { issuer: String, depth: usize },
    #[error("internal: journal refused the advice: {0}")]
    Journal(#[from] crate::journal::JournalError),
    #[error("internal: advice record cannot be encoded: {0}")]
    Record(#[from] crate::events::RecordError),
    #[error("internal: advice {saf_id} cannot be rebuilt: {problem}")]
    Build { saf_id: u64, problem: String },
}

/// One issuer's store-and-forward queue.
pub struct Saf {
    issuer: String,
    pool: IssuerPool,
    journal: Arc<dyn Journal>,
    vault: PanVault,
    clock: Arc<dyn Clock>,
    cfg: SafConfig,
    queue: Mutex<VecDeque<AdviceRecord>>,
    notify: Notify,
    /// The queue's depth, published under the queue's lock on every change so that watchers see
    /// the changes in the order they happened. Lets callers wait for a queue to fill or drain
    /// without polling.
    depth_tx: watch::Sender<usize>,
}

impl Saf {
    pub fn new(
        issuer: String,
        pool: IssuerPool,
        journal: Arc<dyn Journal>,
        vault: PanVault,
        clock: Arc<dyn Clock>,
        cfg: SafConfig,
    ) -> Arc<Saf> {
        Arc::new(Saf {
            issuer,
            pool,
            journal,
            vault,
            clock,
            cfg,
            queue: Mutex::new(VecDeque::new()),
            notify: Notify::new(),
            depth_tx: watch::Sender::new(0),
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<AdviceRecord>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Advices waiting.
    pub fn depth(&self) -> usize {
        self.lock().len()
    }

    /// The depth as it changes: every enqueue, recovery, delivery and parking publishes the new
    /// depth (e.g. `saf.depth_watch().wait_for(|&d| d == 0)` resolves once the queue drains).
    pub fn depth_watch(&self) -> watch::Receiver<usize> {
        self.depth_tx.subscribe()
    }

    /// The advices waiting, oldest first (for reports and tests).
    pub fn pending(&self) -> Vec<AdviceRecord> {
        self.lock().iter().cloned().collect()
    }

    /// Journals `rec` and queues it. Resolves once the advice is durable.
    pub async fn enqueue(
        &self,
        rec: AdviceRecord,
        reason_label: &'static str,
    ) -> Result<(), SafError> {
        let depth = self.depth();
        if depth >= self.cfg.depth_max {
            return Err(SafError::Full {
                issuer: self.issuer.clone(),
                depth,
            });
        }
        let bytes = Record::SafQueued(rec.clone()).encode()?;
        // An advice continues a transaction the journal already took (its request record); the
        // queue's own `depth_max` bounds how many wait.
        self.journal
            .append_as(&bytes, Admission::Continuing)
            .await?;
        metrics::counter!(m::REVERSALS_QUEUED_TOTAL, "issuer" => self.issuer.clone(), "reason" => reason_label)
            .increment(1);
        self.restore(rec);
        Ok(())
    }

    /// Queues an advice recovered from the journal (already durable).
    pub fn restore(&self, rec: AdviceRecord) {
        let depth = {
            let mut q = self.lock();
            q.push_back(rec);
            self.depth_tx.send_replace(q.len());
            q.len()
        };
        metrics::gauge!(m::SAF_DEPTH, "issuer" => self.issuer.clone()).set(depth as f64);
        self.notify.notify_one();
    }

    /// Delivers advices until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut attempts = 0u32;
        let mut backoff = self.cfg.backoff_min;
        loop {
            let head = self.lock().front().cloned();
            let Some(rec) = head else {
                tokio::select! {
                    () = self.notify.notified() => continue,
                    () = shutdown.cancelled() => return,
                }
            };
            if self.pool.ready_count() == 0 {
                tokio::select! {
                    r = self.pool.wait_ready(1) => if r.is_err() { return },
                    () = shutdown.cancelled() => return,
                }
                continue;
            }
            let msg = match self.build(&rec) {
                Ok(msg) => msg,
                Err(e) => {
                    tracing::error!(saf_id = rec.saf_id, issuer = %self.issuer, error = %e, "advice cannot be rebuilt; parking it");
                    self.finish(
                        &rec,
                        Record::SafParked {
                            saf_id: rec.saf_id,
                            at_ms: self.clock.now_ms(),
                            attempts,
                        },
                        &shutdown,
                    )
                    .await;
                    metrics::counter!(m::SAF_PARKED_TOTAL, "issuer" => self.issuer.clone())
                        .increment(1);
                    attempts = 0;
                    continue;
                }
            };
            let deadline = Instant::now() + self.cfg.attempt_timeout;
            let sent = self
                .pool
                .send(OutboundRequest {
                    msg,
                    deadline,
                    mti: None,
                    stan: StanChoice::Any,
                })
                .await;
            match sent {
                Ok(reply) => {
                    let code = reply.msg.get(39).map(|c| text_lossy(&c));
                    tracing::info!(saf_id = rec.saf_id, issuer = %self.issuer, mti = rec.mti, response_code = code.as_deref().unwrap_or("none"), masked_pan = %rec.masked_pan, "advice delivered");
                    self.finish(
                        &rec,
                        Record::SafDelivered {
                            saf_id: rec.saf_id,
                            at_ms: self.clock.now_ms(),
                            response_code: code,
                        },
                        &shutdown,
                    )
                    .await;
                    metrics::counter!(m::SAF_DELIVERED_TOTAL, "issuer" => self.issuer.clone())
                        .increment(1);
                    attempts = 0;
                    backoff = self.cfg.backoff_min;
                }
                Err(LinkError::NoLinkReady | LinkError::Overloaded) => {
                    // Never sent: not an attempt. Wait for a link, or a moment for the queue.
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {},
                        () = shutdown.cancelled() => return,
                    }
                }
                Err(LinkError::Shutdown) => return,
                Err(e) => {
                    attempts += 1;
                    tracing::warn!(saf_id = rec.saf_id, issuer = %self.issuer, attempt = attempts, error = %e, "advice not acknowledged");
                    if attempts >= self.cfg.retries_max {
                        self.finish(
                            &rec,
                            Record::SafParked {
                                saf_id: rec.saf_id,
                                at_ms: self.clock.now_ms(),
                                attempts,
                            },
                            &shutdown,
                        )
                        .await;
                        metrics::counter!(m::SAF_PARKED_TOTAL, "issuer" => self.issuer.clone())
                            .increment(1);
                        tracing::error!(saf_id = rec.saf_id, issuer = %self.issuer, attempts, "advice parked after too many attempts");
                        attempts = 0;
                        backoff = self.cfg.backoff_min;
                        continue;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {},
                        () = shutdown.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(self.cfg.backoff_max);
                }
            }
        }
    }

    /// Journals the advice's end and takes it off the queue. If the journal refuses (it failed
    /// or closed: the end continues an admitted advice, so the queue's depth does not refuse it),
    /// the advice stays queued and is sent again, which an issuer treats as a repeat; the loop
    /// waits `backoff_max` first rather than spin on a journal that keeps refusing.
    async fn finish(&self, rec: &AdviceRecord, end: Record, shutdown: &CancellationToken) {
        let ok = match end.encode() {
            Ok(b) => self
                .journal
                .append_as(&b, Admission::Continuing)
                .await
                .is_ok(),
            Err(_) => false,
        };
        if !ok {
            tracing::error!(saf_id = rec.saf_id, issuer = %self.issuer, "journal refused the end of an advice; it stays queued");
            tokio::select! {
                () = tokio::time::sleep(self.cfg.backoff_max) => {},
                () = shutdown.cancelled() => {},
            }
            return;
        }
        let depth = {
            let mut q = self.lock();
            if q.front().is_some_and(|h| h.saf_id == rec.saf_id) {
                q.pop_front();
                self.depth_tx.send_replace(q.len());
            }
            q.len()
        };
        metrics::gauge!(m::SAF_DEPTH, "issuer" => self.issuer.clone()).set(depth as f64);
    }

    /// The advice as a message (field 11 is a placeholder; the link puts its own STAN there).
    fn build(&self, rec: &AdviceRecord) -> Result<Message, SafError> {
        let bad = |problem: &str| SafError::Build {
            saf_id: rec.saf_id,
            problem: problem.to_owned(),
        };
        let pan = self
            .vault
            .reveal(&rec.pan)
            .map_err(|e| bad(&e.to_string()))?;
        let currency = Currency::from_numeric(rec.currency).map_err(|e| bad(&e.to_string()))?;
        let amount = Amount::new(rec.amount_minor, currency)
            .to_field()
            .map_err(|e| bad(&e.to_string()))?;
        let pc = ProcessingCode::from_field(rec.processing_code.as_bytes())
            .map_err(|e| bad(&e.to_string()))?
            .to_field();
        // Field 7 is the advice's creation time, the same on every retry, so the issuer can
        // recognise a resend.
        let created = chrono::DateTime::from_timestamp_millis(rec.at_ms)
            .map(|t| t.naive_utc())
            .unwrap_or_else(|| self.clock.now());
        let transmission = TransmissionDateTime::from_datetime(created).to_field();
        let original = OriginalData {
            mti: Mti::from_digits(format!("{:04}", rec.original.mti).as_bytes())
                .map_err(|e| bad(&e.to_string()))?,
            stan: Stan::new(rec.original.stan).map_err(|e| bad(&e.to_string()))?,
            transmission: TransmissionDateTime::from_field(rec.original.transmission.as_bytes())
                .map_err(|e| bad(&e.to_string()))?,
            acquirer: AcquirerId::parse(&rec.original.acquirer).map_err(|e| bad(&e.to_string()))?,
            forwarding: [b'0'; 11],
        }
        .to_field();
        let replacement = match rec.replacement_minor {
            Some(r) => Some(
                ReplacementAmounts {
                    transaction: Amount::new(r, currency),
                    settlement: Amount::new(r, currency),
                }
                .to_field()
                .map_err(|e| bad(&e.to_string()))?,
            ),
            None => None,
        };
        let mti = Mti::from_digits(format!("{:04}", rec.mti).as_bytes())
            .map_err(|e| bad(&e.to_string()))?;
        let currency_field = currency.to_field();
        let mut b = MessageBuilder::new(&ISO87_ASCII, mti.to_digits());
        b.set(2, pan.expose_digits())
            .set(3, &pc)
            .set(4, &amount)
            .set(7, &transmission)
            .set(11, b"000000")
            .set(32, original_acquirer(&original))
            .set(41, rec.terminal.as_bytes())
            .set(49, &currency_field)
            .set(90, &original);
        if let Some(r) = &rec.rrn {
            b.set(37, r.as_bytes());
        }
        if let Some(m) = &rec.merchant {
            b.set(42, m.as_bytes());
        }
        if let Some(a) = &rec.auth_code {
            b.set(38, a.as_bytes());
        }
        if let Some(c) = &rec.response_code {
            b.set(39, c.as_bytes());
        }
        if let Some(r) = &replacement {
            b.set(95, r);
        }
        let bytes = b.to_bytes().map_err(|e| bad(&e.to_string()))?;
        decode(&ISO87_ASCII, bytes).map_err(|e| bad(&e.to_string()))
    }
}

/// Field 32 of an advice: the original acquirer, digits without the zero padding of field 90.
fn original_acquirer(f90: &[u8; 42]) -> &[u8] {
    let acq = &f90[20..31];
    let first = acq.iter().position(|&c| c != b'0').unwrap_or(acq.len() - 1);
    &acq[first..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::events::OriginalRecord;
    use crate::journal::MemJournal;
    use crate::net::framing::FramingConfig;
    use crate::net::issuer::IssuerLinkConfig;
    use crate::security::ProtectedPan;

    fn advice(saf_id: u64) -> AdviceRecord {
        AdviceRecord {
            saf_id,
            at_ms: 0,
            issuer: "test-bank".into(),
            mti: 420,
            reason: "timeout".into(),
            txn: Some(saf_id),
            pan: ProtectedPan::from_bytes(&[]).expect("empty"),
            masked_pan: "411111******1111".into(),
            processing_code: "000000".into(),
            amount_minor: 100,
            currency: 156,
            original: OriginalRecord {
                mti: 100,
                stan: 1,
                transmission: "1125221800".into(),
                acquirer: "100001".into(),
            },
            terminal: "TERM0001".into(),
            merchant: None,
            rrn: None,
            replacement_minor: None,
            auth_code: None,
            response_code: None,
        }
    }

    /// A queue whose pool has no endpoint (never ready): only the queue itself is exercised.
    fn saf(shutdown: &CancellationToken) -> Arc<Saf> {
        let pool = IssuerPool::start(
            IssuerLinkConfig {
                issuer_id: "test-bank".to_owned(),
                endpoints: Vec::new(),
                connections_per_endpoint: 1,
                timeout_ms: 5_000,
                inflight_max: 16,
                echo_idle_ms: 600_000,
                reconnect_backoff_min_ms: 5,
                reconnect_backoff_max_ms: 20,
                dialect: &ISO87_ASCII,
                framing: FramingConfig::default(),
                queue_max: 16,
                mac: None,
                tls: None,
            },
            shutdown.clone(),
        );
        let at = chrono::NaiveDate::from_ymd_opt(2026, 11, 25)
            .and_then(|d| d.and_hms_opt(22, 18, 0))
            .expect("valid");
        Saf::new(
            "test-bank".into(),
            pool,
            Arc::new(MemJournal::new()),
            PanVault::new(&[7; 32]),
            ManualClock::new(at),
            SafConfig {
                attempt_timeout: Duration::from_secs(1),
                retries_max: 3,
                backoff_min: Duration::from_millis(5),
                backoff_max: Duration::from_millis(20),
                depth_max: 16,
            },
        )
    }

    /// Takes the watch's value if it changed since last seen.
    fn changed(rx: &mut watch::Receiver<usize>) -> Option<usize> {
        rx.has_changed()
            .expect("queue alive")
            .then(|| *rx.borrow_and_update())
    }

    #[tokio::test]
    async fn depth_watch_follows_enqueue_recovery_delivery_and_parking() {
        let shutdown = CancellationToken::new();
        let saf = saf(&shutdown);
        let mut rx = saf.depth_watch();
        assert_eq!(*rx.borrow_and_update(), 0);
        assert_eq!(changed(&mut rx), None);

        saf.enqueue(advice(1), "timeout").await.expect("queued");
        assert_eq!(changed(&mut rx), Some(1), "enqueue publishes");
        saf.restore(advice(2));
        assert_eq!(changed(&mut rx), Some(2), "recovery publishes");

        // Only the head is ever finished; a stale end for another advice changes nothing.
        let delivered = |saf_id| Record::SafDelivered {
            saf_id,
            at_ms: 0,
            response_code: Some("00".into()),
        };
        saf.finish(&advice(2), delivered(2), &CancellationToken::new())
            .await;
        assert_eq!((changed(&mut rx), saf.depth()), (None, 2));
        saf.finish(&advice(1), delivered(1), &CancellationToken::new())
            .await;
        assert_eq!(changed(&mut rx), Some(1), "delivery publishes");
        let parked = Record::SafParked {
            saf_id: 2,
            at_ms: 0,
            attempts: 3,
        };
        saf.finish(&advice(2), parked, &CancellationToken::new())
            .await;
        assert_eq!(changed(&mut rx), Some(0), "parking publishes");
        shutdown.cancel();
    }

    #[tokio::test]
    async fn a_waiter_wakes_when_the_queue_drains() {
        let shutdown = CancellationToken::new();
        let saf = saf(&shutdown);
        saf.restore(advice(1));
        let mut rx = saf.depth_watch();
        let drained = tokio::spawn(async move { rx.wait_for(|&d| d == 0).await.map(|d| *d) });
        tokio::task::yield_now().await;
        assert!(!drained.is_finished(), "nothing delivered yet");
        let end = Record::SafDelivered {
            saf_id: 1,
            at_ms: 0,
            response_code: None,
        };
        saf.finish(&advice(1), end, &CancellationToken::new()).await;
        assert_eq!(drained.await.expect("task").expect("queue alive"), 0);
        shutdown.cancel();
    }
}
