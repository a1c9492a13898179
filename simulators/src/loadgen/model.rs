//! loadgen's model of the switch: what a request should get, and whether the answer it got is
//! that.
//!
//! The model follows the order in which the switch screens a request (README, "Response codes
//! the switch itself gives"; `switch::decision::screen`) and then the issuing engine's order of
//! checks (`switch::issuing::rules`), using only what the mix declares about each card set:
//!
//! | # | where  | condition                                             | code |
//! |---|--------|-------------------------------------------------------|------|
//! | 1 | switch | PAN fails the Luhn check                               | 14 |
//! | 2 | switch | zero amount on a purchase or preauthorization          | 13 |
//! | 3 | switch | no BIN range (`kind = "unknown-bin"`)                   | 15 |
//! | 4 | switch | field 14 before today's month (UTC business date)      | 54 |
//! | 5 | issuer | card not on the issuer's file (`kind = "not-on-file"`) | 14 |
//! | 6 | issuer | status lost, stolen, restricted, closed                | 41, 43, 62, 57 |
//! | 7 | issuer | field 14 differs from the expiry on file               | 54 |
//! | 8 | issuer | balance inquiry                                        | 00 |
//! | 9 | issuer | debit above the available funds                        | 51 |
//! |10 |        | otherwise                                              | 00 |
//!
//! Product limits (daily limits, velocity, blocked merchant categories) are outside the model:
//! the generated products have none, and a mix over cards with such limits must keep within
//! them or declare `expect`.
//!
//! Checking a switch answer ([`check_switch`]): the response MTI is the request's plus 10, field
//! 39 is the expected code, and an approval carries an authorization code (38) and, on a debit,
//! echoes the requested amount in field 4. Checking an echo ([`check_echo`], for the relay
//! baseline): the answer is the request byte for byte, with the MTI's third digit raised by one.

use switch::client::{CardNumber, PreparedRequest, TxnResult};
use switch::domain::{Amount, Expiry, ResponseCode, luhn_valid};
use switch::iso8583::Message;
use switch::issuing::{CardStatus, NaiveDate};

use super::mix::{Action, CardKind, CardSet, Funds};

/// The answer the switch should give to `action` on card `pan` of `set` for `amount`, with field
/// 14 = `sent_expiry`, on business date `today`.
pub fn expected(
    set: &CardSet,
    action: Action,
    pan: &str,
    amount: Option<Amount>,
    sent_expiry: Expiry,
    today: NaiveDate,
) -> ResponseCode {
    if !luhn_valid(pan.as_bytes()) {
        return ResponseCode::InvalidCardNumber;
    }
    if action.is_debit() && amount.is_none_or(|a| a.is_zero()) {
        return ResponseCode::InvalidAmount;
    }
    match set.kind {
        CardKind::UnknownBin => return ResponseCode::NoSuchIssuer,
        CardKind::OnFile | CardKind::NotOnFile => {}
    }
    if sent_expiry.is_expired_on(today) {
        return ResponseCode::ExpiredCard;
    }
    if set.kind == CardKind::NotOnFile {
        return ResponseCode::InvalidCardNumber;
    }
    match set.status {
        CardStatus::Active => {}
        CardStatus::Lost => return ResponseCode::LostCard,
        CardStatus::Stolen => return ResponseCode::StolenCard,
        CardStatus::Restricted => return ResponseCode::RestrictedCard,
        CardStatus::Closed => return ResponseCode::NotPermittedToCardholder,
    }
    if sent_expiry != set.expiry || set.expiry.is_expired_on(today) {
        return ResponseCode::ExpiredCard;
    }
    if !action.is_debit() {
        return ResponseCode::Approved;
    }
    match (set.funds, amount) {
        (Funds::Fixed(avail), Some(a)) if a.minor() > avail.minor() => {
            ResponseCode::InsufficientFunds
        }
        _ => ResponseCode::Approved,
    }
}

/// Checks a switch answer against the expected code. `Err` describes the mismatch, with the card
/// number masked.
pub fn check_switch(
    expected: ResponseCode,
    request: &PreparedRequest,
    result: &TxnResult,
) -> Result<(), String> {
    let describe = |what: String| {
        let pan = request
            .pan
            .as_ref()
            .map(CardNumber::to_string)
            .unwrap_or_default();
        let amount = request
            .amount
            .map(|a| format!(" amount {a}"))
            .unwrap_or_default();
        format!(
            "{} STAN {} card {pan}{amount}: {what}",
            request.request_mti, request.stan
        )
    };
    let want_mti = request.request_mti.response();
    if want_mti != Some(result.response_mti) {
        return Err(describe(format!(
            "response MTI {} (expected {})",
            result.response_mti,
            want_mti.map(|m| m.to_string()).unwrap_or_default()
        )));
    }
    if result.response_code != expected {
        return Err(describe(format!(
            "expected {expected}, got {}",
            result.response_code
        )));
    }
    if expected.is_approval() {
        if result.auth_code.as_deref().is_none_or(str::is_empty) {
            return Err(describe(
                "approved without an authorization code (38)".into(),
            ));
        }
        if expected == ResponseCode::Approved
            && request.amount.is_some()
            && result.approved_amount != request.amount
        {
            return Err(describe(format!(
                "approved amount (4) {} differs from the requested amount",
                result
                    .approved_amount
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "absent".into())
            )));
        }
    }
    Ok(())
}

/// The echo of `request`: the same bytes with the MTI's third digit raised by one (0200 → 0210).
/// A payload shorter than an MTI, or whose third digit is odd or not a digit, echoes unchanged.
pub fn echo_of(request: &[u8]) -> Vec<u8> {
    let mut out = request.to_vec();
    flip_mti(&mut out);
    out
}

/// Raises the MTI's third digit by one in place when it is an even digit (request → response).
pub fn flip_mti(payload: &mut [u8]) {
    if let Some(d) = payload.get_mut(2)
        && d.is_ascii_digit()
        && (*d - b'0').is_multiple_of(2)
    {
        *d += 1;
    }
}

/// Checks an echo backend's answer (through the relay) against the request.
pub fn check_echo(request: &PreparedRequest, answer: &Message) -> Result<(), String> {
    let want = echo_of(&request.payload);
    if answer.as_bytes().as_ref() == want.as_slice() {
        Ok(())
    } else {
        let pan = request
            .pan
            .as_ref()
            .map(CardNumber::to_string)
            .unwrap_or_default();
        Err(format!(
            "{} STAN {} card {pan}: the echo differs from the request ({} bytes, expected {})",
            request.request_mti,
            request.stan,
            answer.as_bytes().len(),
            want.len()
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use switch::domain::Currency;

    use super::super::mix::Mix;
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 25).unwrap_or_default()
    }

    fn exp(s: &str) -> Expiry {
        Expiry::from_field(s.as_bytes()).expect("expiry")
    }

    fn set(extra: &str) -> CardSet {
        let text = format!(
            "[[cards]]\nname = \"s\"\npans = [\"4111110000000013\"]\nexpiry = \"3012\"\n{extra}\n\
             [[txn]]\nweight = 1\naction = \"balance\"\ncards = \"s\"\n"
        );
        let mix = Mix::from_toml_str(&text, "mem", Path::new("."), today()).expect("mix");
        mix.sets[0].clone()
    }

    fn cny(minor: i64) -> Option<Amount> {
        Some(Amount::new(minor, Currency::CNY))
    }

    #[test]
    fn the_order_of_checks() {
        let ok = set("");
        let code = |s: &CardSet, a: Action, pan: &str, amt, e: &str| {
            expected(s, a, pan, amt, exp(e), today()).as_str()
        };
        let pan = "4111110000000013";
        assert_eq!(code(&ok, Action::Purchase, pan, cny(100), "3012"), "00");
        assert_eq!(code(&ok, Action::Balance, pan, None, "3012"), "00");
        assert_eq!(
            code(&ok, Action::Purchase, "4111110000000012", cny(100), "3012"),
            "14"
        );
        assert_eq!(code(&ok, Action::Purchase, pan, cny(0), "3012"), "13");
        assert_eq!(code(&ok, Action::Purchase, pan, cny(100), "2401"), "54");
        assert_eq!(code(&ok, Action::Purchase, pan, cny(100), "2912"), "54");
        let unknown = set("kind = \"unknown-bin\"");
        assert_eq!(
            code(&unknown, Action::Purchase, pan, cny(100), "2401"),
            "15"
        );
        assert_eq!(code(&unknown, Action::Purchase, pan, cny(0), "3012"), "13");
        let missing = set("kind = \"not-on-file\"\nstatus = \"lost\"");
        assert_eq!(
            code(&missing, Action::Purchase, pan, cny(100), "3012"),
            "14"
        );
        let lost = set("status = \"lost\"\nfunds = \"empty\"");
        assert_eq!(code(&lost, Action::Purchase, pan, cny(100), "2912"), "41");
        assert_eq!(code(&lost, Action::Balance, pan, None, "3012"), "41");
        assert_eq!(
            code(
                &set("status = \"stolen\""),
                Action::Purchase,
                pan,
                cny(1),
                "3012"
            ),
            "43"
        );
        let empty = set("funds = \"empty\"");
        assert_eq!(code(&empty, Action::Preauth, pan, cny(1), "3012"), "51");
        assert_eq!(code(&empty, Action::Balance, pan, None, "3012"), "00");
        let hundred = set("funds = \"100.00\"");
        assert_eq!(
            code(&hundred, Action::Purchase, pan, cny(10_000), "3012"),
            "00"
        );
        assert_eq!(
            code(&hundred, Action::Purchase, pan, cny(10_001), "3012"),
            "51"
        );
    }

    #[test]
    fn echo_flips_the_third_mti_digit() {
        assert_eq!(echo_of(b"0200abc"), b"0210abc".to_vec());
        assert_eq!(echo_of(b"0100"), b"0110".to_vec());
        assert_eq!(echo_of(b"0420x"), b"0430x".to_vec());
        assert_eq!(echo_of(b"0210"), b"0210".to_vec());
        assert_eq!(echo_of(b"02"), b"02".to_vec());
        assert_eq!(echo_of(b""), Vec::<u8>::new());
        assert_eq!(echo_of(b"02X0"), b"02X0".to_vec());
    }
}
