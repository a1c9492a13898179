//! The switch's own checks on an acquirer request, in a fixed order, each ending in a [`Decline`]
//! or passing the request on:
//!
//! | step | check | outcome |
//! |---|---|---|
//! | 1 | MTI is a response (x1x0, x1x3…) | dropped and counted, never answered |
//! | 2 | request MTI has no field rule | 12, on the response MTI |
//! | 3 | a field breaks its class or maximum | 30 |
//! | 4 | field 32 names no configured acquirer | 03 |
//! | 5 | mandatory field missing, forbidden field present, field unparsable | 30 (Luhn 14, unknown processing code 12) |
//! | 6 | amount zero (not a balance inquiry) | 13 |
//! | 7 | no BIN range matches the PAN | 15 |
//! | 8 | expiry before the business date (switchable) | 54 |
//!
//! Everything that passes is routed: an authorization or reversal with its issuer index, or a
//! network-management request for the switch itself.

use chrono::{Datelike, NaiveDate};

use crate::domain::{AcquirerId, Decline, Mti, TxnType};
use crate::iso8583::Message;
use crate::iso8583::views::{self, AuthorizationRequest, NetworkManagement, ReversalRequest};
use crate::routing::{IssuerIndex, Route, RoutingTable};

/// What screening needs to know; borrowed from the live configuration.
pub struct ScreenCtx<'a> {
    /// True when the acquirer id is configured.
    pub known_acquirer: &'a (dyn Fn(&AcquirerId) -> bool + Sync),
    pub routing: &'a RoutingTable,
    /// Pre-screen field 14 against the business date.
    pub check_expiry: bool,
    pub business_date: NaiveDate,
}

/// The outcome of screening one request.
#[derive(Debug)]
pub enum Screened<'m> {
    /// An authorization, financial request or advice, routed.
    Authorization {
        req: AuthorizationRequest<'m>,
        /// Its issuer, and the card product of the range that routed it (for its journal
        /// record).
        route: Route,
    },
    /// A reversal request or advice, routed by its PAN.
    Reversal {
        req: ReversalRequest,
        issuer: IssuerIndex,
    },
    /// An 0800 for the switch itself.
    Network(NetworkManagement),
    /// Answer at once, on the request MTI + 10.
    Decline(Decline),
    /// A response MTI arrived from an acquirer: drop it and count it.
    UnexpectedResponse,
}

/// Runs the checks of the table above on `msg` (decoded leniently).
pub fn screen<'m>(msg: &'m Message, ctx: &ScreenCtx<'_>) -> Screened<'m> {
    let Ok(mti) = views::mti_of(msg) else {
        return Screened::Decline(Decline::FormatError);
    };
    if !mti.is_request() {
        return Screened::UnexpectedResponse;
    }
    if views::rule_for(mti).is_none() {
        return Screened::Decline(Decline::InvalidTransaction);
    }
    if msg.content_error().is_some() {
        return Screened::Decline(Decline::FormatError);
    }
    if mti.class() == 8 {
        return match NetworkManagement::from_message(msg) {
            Ok(n) => Screened::Network(n),
            Err(e) => Screened::Decline(e.decline()),
        };
    }
    if let Some(acq) = msg.get(32) {
        match AcquirerId::from_field(&acq) {
            Ok(id) if (ctx.known_acquirer)(&id) => {}
            Ok(_) => return Screened::Decline(Decline::UnknownAcquirer),
            Err(_) => return Screened::Decline(Decline::FormatError),
        }
    }
    let base = mti.original();
    if base == Mti::REVERSAL_REQUEST || base == Mti::REVERSAL_ADVICE {
        let req = match ReversalRequest::from_message(msg) {
            Ok(r) => r,
            Err(e) => return Screened::Decline(e.decline()),
        };
        if req.amount.is_zero() {
            return Screened::Decline(Decline::InvalidAmount);
        }
        return match ctx.routing.route(&req.pan) {
            Some(issuer) => Screened::Reversal { req, issuer },
            None => Screened::Decline(Decline::NoSuchIssuer),
        };
    }
    let req = match AuthorizationRequest::from_message(msg) {
        Ok(r) => r,
        Err(e) => return Screened::Decline(e.decline()),
    };
    let inquiry = req.processing_code.txn == TxnType::BalanceInquiry;
    if !inquiry && req.amount.is_none_or(|a| a.is_zero()) {
        return Screened::Decline(Decline::InvalidAmount);
    }
    let Some(route) = ctx.routing.route_card(&req.pan) else {
        return Screened::Decline(Decline::NoSuchIssuer);
    };
    if ctx.check_expiry
        && let Some(exp) = req.expiry
        && exp.is_expired(ctx.business_date.year(), ctx.business_date.month())
    {
        return Screened::Decline(Decline::ExpiredCard);
    }
    Screened::Authorization { req, route }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::config::BinRangeConfig;
    use crate::iso8583::{ISO87_ASCII, MessageBuilder, decode_lenient, samples};

    fn table() -> RoutingTable {
        let r = |l: &str, i: &str| BinRangeConfig {
            low: l.into(),
            high: l.into(),
            issuer: i.into(),
            product: None,
        };
        RoutingTable::build(&[r("411111", "a"), r("622202", "b")], |id| match id {
            "a" => Some(0),
            "b" => Some(1),
            _ => None,
        })
        .expect("table")
    }

    fn run(mutate: impl FnOnce(&mut MessageBuilder<'static>)) -> String {
        let mut b = samples::auth_request(&ISO87_ASCII);
        b.set(32, b"100001");
        mutate(&mut b);
        let bytes: Bytes = b.to_bytes().expect("encode");
        let msg = decode_lenient(&ISO87_ASCII, bytes).expect("structure");
        let routing = table();
        let known = |a: &AcquirerId| a.as_str() == "100001";
        let ctx = ScreenCtx {
            known_acquirer: &known,
            routing: &routing,
            check_expiry: true,
            business_date: NaiveDate::from_ymd_opt(2026, 11, 25).expect("date"),
        };
        match screen(&msg, &ctx) {
            Screened::Authorization { route, .. } => format!("auth->{}", route.issuer),
            Screened::Reversal { issuer, .. } => format!("rev->{issuer}"),
            Screened::Network(_) => "network".into(),
            Screened::Decline(d) => d.response_code().as_str().into(),
            Screened::UnexpectedResponse => "drop".into(),
        }
    }

    #[test]
    fn each_check_in_order() {
        assert_eq!(run(|_| {}), "auth->0");
        assert_eq!(
            run(|b| {
                b.set_mti(*b"0110");
            }),
            "drop"
        );
        assert_eq!(
            run(|b| {
                b.set_mti(*b"0300");
            }),
            "12"
        );
        assert_eq!(
            run(|b| {
                b.set(32, b"999999");
            }),
            "03"
        );
        assert_eq!(
            run(|b| {
                b.remove(32);
            }),
            "30"
        );
        assert_eq!(
            run(|b| {
                b.remove(41);
            }),
            "30"
        );
        assert_eq!(
            run(|b| {
                b.set(39, b"00");
            }),
            "30"
        );
        assert_eq!(
            run(|b| {
                b.set(2, b"4111110000000012");
            }),
            "14"
        );
        assert_eq!(
            run(|b| {
                b.set(3, b"770000");
            }),
            "12"
        );
        assert_eq!(
            run(|b| {
                b.set(4, b"000000000000");
            }),
            "13"
        );
        assert_eq!(
            run(|b| {
                b.set(3, b"310000").set(4, b"000000000000");
            }),
            "auth->0"
        );
        assert_eq!(
            run(|b| {
                b.set(3, b"310000").remove(4);
            }),
            "auth->0"
        );
        assert_eq!(
            run(|b| {
                b.set(2, b"9999990000000014");
            }),
            "15"
        );
        assert_eq!(
            run(|b| {
                b.set(14, b"2401");
            }),
            "54"
        );
        assert_eq!(
            run(|b| {
                b.set(14, b"2611");
            }),
            "auth->0",
            "valid through the end of its month"
        );
        assert_eq!(
            run(|b| {
                b.set(2, b"6222020000000015").set_mti(*b"0200");
            }),
            "auth->1"
        );
    }

    #[test]
    fn content_error_is_30() {
        let mut v = samples::auth_request(&ISO87_ASCII)
            .to_bytes()
            .expect("encode")
            .to_vec();
        v[40] = b'X'; // inside field 4
        let msg = decode_lenient(&ISO87_ASCII, Bytes::from(v)).expect("structure");
        let routing = table();
        let known = |_: &AcquirerId| true;
        let ctx = ScreenCtx {
            known_acquirer: &known,
            routing: &routing,
            check_expiry: true,
            business_date: NaiveDate::from_ymd_opt(2026, 11, 25).expect("date"),
        };
        assert!(matches!(
            screen(&msg, &ctx),
            Screened::Decline(Decline::FormatError)
        ));
    }
}
