//! The runtime's security step: where [`crate::decision::security`]'s rules meet a request in
//! flight. The MAC gate runs on every request from an acquirer that has a MAC key, before
//! screening; the PIN step runs on every authorization that carries PIN data, before the
//! duplicate check, once its issuer is known; answers to an acquirer with a MAC key are MACed
//! last, whatever produced them (decision, duplicate window, decline).
//!
//! Refusals are switch declines like screening's: journaled as a decision, counted in
//! `switchyard_security_violations_total` when the acquirer is at fault, logged with the
//! acquirer and the reason, never with a PIN block or a key.

use std::collections::HashMap;
use std::sync::Arc;

use super::{HandleResult, IssuerHandle, Live, Runtime};
use crate::decision::security::{
    AcquirerKeys, IssuerKeys, PinRefusal, check_mac, pin_block, reseal, translate_pin, verify_pin,
    with_pin_block,
};
use crate::domain::{AcquirerId, Decline};
use crate::iso8583::Message;
use crate::iso8583::views::{AuthorizationRequest, mti_of};
use crate::issuing::PinCheck;
use crate::metrics as m;
use crate::routing::IssuerIndex;
use crate::security::SecurityModule;

/// What the runtime holds for security.
pub struct SwitchSecurity {
    pub module: Arc<dyn SecurityModule>,
    /// Each issuer's keys, by issuer index (an on-us issuer's are empty). Fixed at start, like
    /// the issuers themselves.
    pub issuers: Vec<IssuerKeys>,
}

/// What the PIN step decided for one authorization.
pub(super) enum PinStep {
    /// No PIN data.
    Absent,
    /// On-us: the engine's verdict on the PIN.
    Checked(PinCheck),
    /// Remote: the request to forward, its PIN block under the issuer's zone PIN key.
    Forward(Box<Message>),
}

impl PinStep {
    /// The PIN outcome an on-us engine gets.
    pub(super) fn check(&self) -> PinCheck {
        match self {
            PinStep::Checked(c) => *c,
            _ => PinCheck::Absent,
        }
    }

    /// The request as rewritten for the issuer, if it was.
    pub(super) fn forward(&self) -> Option<&Message> {
        match self {
            PinStep::Forward(m) => Some(m),
            _ => None,
        }
    }
}

/// Each acquirer's keys, for those that have any.
pub(super) fn acquirer_keys(
    cfg: &crate::config::Config,
) -> HashMap<AcquirerId, Arc<AcquirerKeys>, foldhash::fast::RandomState> {
    cfg.acquirers
        .iter()
        .filter_map(|a| {
            let id = AcquirerId::parse(&a.id).ok()?;
            Some((id, Arc::new(AcquirerKeys::from_config(a)?)))
        })
        .collect()
}

impl Live {
    /// The keys of the acquirer field 32 names, when it has any. Cheap when no acquirer has.
    pub(super) fn acquirer_keys_of(&self, msg: &Message) -> Option<Arc<AcquirerKeys>> {
        if self.acquirer_keys.is_empty() {
            return None;
        }
        let id = AcquirerId::from_field(&msg.get(32)?).ok()?;
        self.acquirer_keys.get(&id).cloned()
    }
}

fn count(party: &'static str, reason: &'static str) {
    metrics::counter!(m::SECURITY_VIOLATIONS_TOTAL, "party" => party, "reason" => reason)
        .increment(1);
}

impl Runtime {
    /// Checks the MAC of a request from an acquirer with a MAC key. `None` lets it through;
    /// otherwise the 63 answer (before MACing).
    pub(super) async fn acquirer_mac_gate(
        &self,
        msg: &Message,
        keys: &AcquirerKeys,
    ) -> Option<HandleResult> {
        let key = keys.mac.as_ref()?;
        // Responses from an acquirer are dropped by screening whatever their MAC.
        if !mti_of(msg).is_ok_and(|m| m.is_request()) {
            return None;
        }
        let violation = check_mac(&*self.security.module, key, msg).err()?;
        count("acquirer", violation.reason());
        let acquirer = msg
            .get(32)
            .map(|a| String::from_utf8_lossy(&a).into_owned());
        tracing::warn!(acquirer = acquirer.as_deref().unwrap_or("-"), %violation, "acquirer request refused (63)");
        Some(
            self.switch_decline(msg, Decline::SecurityViolation, None, 0, None)
                .await,
        )
    }

    /// `out` with a MAC under the acquirer's key, when it has one. An answer that cannot be
    /// MACed is not sent; if it was an approval, it is undone as undeliverable.
    pub(super) async fn seal_for(
        &self,
        keys: Option<&AcquirerKeys>,
        out: HandleResult,
    ) -> HandleResult {
        let Some(key) = keys.and_then(|k| k.mac.as_ref()) else {
            return out;
        };
        let mut out = out?;
        match reseal(&*self.security.module, key, self.dialect, &out.bytes) {
            Ok(bytes) => {
                out.bytes = bytes;
                Some(out)
            }
            Err(e) => {
                tracing::error!(error = %e, "the answer cannot be MACed; dropped");
                metrics::counter!(m::DROPPED_TOTAL, "reason" => "encode").increment(1);
                self.undeliverable(out).await;
                None
            }
        }
    }

    /// Reads the request's PIN data, if any: for an on-us issuer the engine checks the PIN
    /// against the clear block the module lends it; for a remote issuer the block is translated
    /// to the issuer's zone PIN key and the request rewritten around it.
    pub(super) fn pin_step(
        &self,
        msg: &Message,
        req: &AuthorizationRequest<'_>,
        keys: Option<&AcquirerKeys>,
        issuer: IssuerIndex,
    ) -> Result<PinStep, PinRefusal> {
        let Some(block) = pin_block(req) else {
            return Ok(PinStep::Absent);
        };
        let module = &*self.security.module;
        let source = keys
            .ok_or(PinRefusal::NoKey)?
            .pin_source(module, req.ksn.as_ref())?;
        match &self.issuers[issuer as usize] {
            IssuerHandle::OnUs { engine, .. } => {
                verify_pin(module, source, &req.pan, &block, |clear| {
                    engine.verify_pin_block(&req.pan, clear)
                })
                .map(PinStep::Checked)
            }
            IssuerHandle::Remote { .. } => {
                let to = self
                    .security
                    .issuers
                    .get(issuer as usize)
                    .and_then(|k| k.zpk.as_ref());
                let translated = translate_pin(module, source, to, &req.pan, &block)?;
                with_pin_block(msg, &translated)
                    .map(|m| PinStep::Forward(Box::new(m)))
                    .map_err(|e| {
                        tracing::error!(error = %e, "request with the translated PIN block does not encode");
                        PinRefusal::Internal
                    })
            }
        }
    }

    /// Answers a request whose PIN data the switch does not take.
    pub(super) async fn pin_refused(
        &self,
        msg: &Message,
        refusal: PinRefusal,
        issuer: &str,
    ) -> HandleResult {
        if let Some(reason) = refusal.reason() {
            count("acquirer", reason);
        }
        let acquirer = msg
            .get(32)
            .map(|a| String::from_utf8_lossy(&a).into_owned());
        tracing::warn!(acquirer = acquirer.as_deref().unwrap_or("-"), issuer, %refusal, "PIN data refused");
        self.switch_decline(msg, refusal.decline(), None, 0, Some(issuer))
            .await
    }
}
