//! Every reason the switch or an issuer declines, as one closed enum, mapped to field 39 in a
//! single exhaustive `match` ([`Decline::response_code`]).
//!
//! Decision code returns `Decline` rather than a bare response code so that the reason survives
//! into logs, metrics and the journal (two reasons can share a code: an unknown acquirer and an
//! inactive merchant both answer 03). Operational failures (a socket, a disk) are not declines;
//! they live in per-module error enums and become a decline only at the edge.

use super::codes::ResponseCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decline {
    // --- the switch's own checks ---
    /// Field 32 names no configured acquirer.
    UnknownAcquirer,
    /// A content error in the request, or a mandatory field missing, or a forbidden one present.
    FormatError,
    /// An MTI or processing code the switch does not support.
    InvalidTransaction,
    /// A zero or malformed amount.
    InvalidAmount,
    /// The PAN fails the Luhn check.
    InvalidCardNumber,
    /// No BIN range matches the PAN.
    NoSuchIssuer,
    /// The card's expiry is before the business date.
    ExpiredCard,
    /// The issuer cannot be reached (no ready link, timeout) and stand-in does not apply.
    IssuerUnavailable,
    /// The acquirer already holds its `connections_max`: the switch will not serve this
    /// connection (answered 91, like any unavailability, and the connection closed).
    ConnectionLimit,
    /// A reversal or completion whose original cannot be found.
    OriginalNotFound,
    /// A MAC is missing or wrong, or a party sends as someone it is not.
    SecurityViolation,
    /// Something inside the switch failed (journal, encode).
    SystemMalfunction,

    // --- card rules ---
    DoNotHonour,
    LostCard,
    StolenCard,
    RestrictedCard,
    /// Closed card, wrong currency, cash on a gift card, blocked MCC: not allowed for this card.
    NotPermittedToCardholder,
    NotPermittedToTerminal,
    InsufficientFunds,
    /// Over a daily amount limit or the cash-advance limit.
    ExceedsAmountLimit,
    /// Over a daily count limit.
    ExceedsFrequencyLimit,
    IncorrectPin,
    PinTriesExceeded,
    DuplicateTransmission,
}

impl Decline {
    /// Every decline, in declaration order (for reading stored names back, and for tests).
    pub const ALL: [Decline; 24] = [
        Decline::UnknownAcquirer,
        Decline::FormatError,
        Decline::InvalidTransaction,
        Decline::InvalidAmount,
        Decline::InvalidCardNumber,
        Decline::NoSuchIssuer,
        Decline::ExpiredCard,
        Decline::IssuerUnavailable,
        Decline::ConnectionLimit,
        Decline::OriginalNotFound,
        Decline::SecurityViolation,
        Decline::SystemMalfunction,
        Decline::DoNotHonour,
        Decline::LostCard,
        Decline::StolenCard,
        Decline::RestrictedCard,
        Decline::NotPermittedToCardholder,
        Decline::NotPermittedToTerminal,
        Decline::InsufficientFunds,
        Decline::ExceedsAmountLimit,
        Decline::ExceedsFrequencyLimit,
        Decline::IncorrectPin,
        Decline::PinTriesExceeded,
        Decline::DuplicateTransmission,
    ];

    /// The decline whose [`name`](Decline::name) is `name`.
    pub fn from_name(name: &str) -> Option<Decline> {
        Decline::ALL.into_iter().find(|d| d.name() == name)
    }

    /// Field 39 for this decline. The one place that mapping is written.
    pub const fn response_code(self) -> ResponseCode {
        match self {
            Decline::UnknownAcquirer => ResponseCode::InvalidMerchant,
            Decline::FormatError => ResponseCode::FormatError,
            Decline::InvalidTransaction => ResponseCode::InvalidTransaction,
            Decline::InvalidAmount => ResponseCode::InvalidAmount,
            Decline::InvalidCardNumber => ResponseCode::InvalidCardNumber,
            Decline::NoSuchIssuer => ResponseCode::NoSuchIssuer,
            Decline::ExpiredCard => ResponseCode::ExpiredCard,
            Decline::IssuerUnavailable => ResponseCode::IssuerInoperative,
            Decline::ConnectionLimit => ResponseCode::IssuerInoperative,
            Decline::OriginalNotFound => ResponseCode::UnableToLocateRecord,
            Decline::SecurityViolation => ResponseCode::SecurityViolation,
            Decline::SystemMalfunction => ResponseCode::SystemMalfunction,
            Decline::DoNotHonour => ResponseCode::DoNotHonour,
            Decline::LostCard => ResponseCode::LostCard,
            Decline::StolenCard => ResponseCode::StolenCard,
            Decline::RestrictedCard => ResponseCode::RestrictedCard,
            Decline::NotPermittedToCardholder => ResponseCode::NotPermittedToCardholder,
            Decline::NotPermittedToTerminal => ResponseCode::NotPermittedToTerminal,
            Decline::InsufficientFunds => ResponseCode::InsufficientFunds,
            Decline::ExceedsAmountLimit => ResponseCode::ExceedsAmountLimit,
            Decline::ExceedsFrequencyLimit => ResponseCode::ExceedsFrequencyLimit,
            Decline::IncorrectPin => ResponseCode::IncorrectPin,
            Decline::PinTriesExceeded => ResponseCode::PinTriesExceeded,
            Decline::DuplicateTransmission => ResponseCode::DuplicateTransmission,
        }
    }

    /// A short stable name for logs and metric labels.
    pub const fn name(self) -> &'static str {
        match self {
            Decline::UnknownAcquirer => "unknown_acquirer",
            Decline::FormatError => "format_error",
            Decline::InvalidTransaction => "invalid_transaction",
            Decline::InvalidAmount => "invalid_amount",
            Decline::InvalidCardNumber => "invalid_card_number",
            Decline::NoSuchIssuer => "no_such_issuer",
            Decline::ExpiredCard => "expired_card",
            Decline::IssuerUnavailable => "issuer_unavailable",
            Decline::ConnectionLimit => "connection_limit",
            Decline::OriginalNotFound => "original_not_found",
            Decline::SecurityViolation => "security_violation",
            Decline::SystemMalfunction => "system_malfunction",
            Decline::DoNotHonour => "do_not_honour",
            Decline::LostCard => "lost_card",
            Decline::StolenCard => "stolen_card",
            Decline::RestrictedCard => "restricted_card",
            Decline::NotPermittedToCardholder => "not_permitted_to_cardholder",
            Decline::NotPermittedToTerminal => "not_permitted_to_terminal",
            Decline::InsufficientFunds => "insufficient_funds",
            Decline::ExceedsAmountLimit => "exceeds_amount_limit",
            Decline::ExceedsFrequencyLimit => "exceeds_frequency_limit",
            Decline::IncorrectPin => "incorrect_pin",
            Decline::PinTriesExceeded => "pin_tries_exceeded",
            Decline::DuplicateTransmission => "duplicate_transmission",
        }
    }
}

impl std::fmt::Display for Decline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name(), self.response_code().as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_decline_maps_to_an_approval() {
        let all = Decline::ALL;
        let names: std::collections::HashSet<&str> = all.iter().map(|d| d.name()).collect();
        assert_eq!(names.len(), all.len(), "names are unique");
        assert!(all.iter().all(|d| Decline::from_name(d.name()) == Some(*d)));
        for d in all {
            assert!(!d.response_code().is_approval(), "{d}");
        }
        assert_eq!(Decline::InsufficientFunds.response_code().as_str(), "51");
        assert_eq!(Decline::UnknownAcquirer.response_code().as_str(), "03");
        assert_eq!(
            Decline::IssuerUnavailable.to_string(),
            "issuer_unavailable (91)"
        );
    }
}
