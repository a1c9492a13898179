//! [`DomainError`]: the single error type for every domain constructor and checked operation.
//!
//! Owns the list of ways a domain value can be refused, and the default ISO 8583 response code
//! each refusal suggests. It leaves operational errors (I/O, timeouts, codec framing) to the
//! modules that perform them, because those have nothing to do with what a value *is*.
//!
//! Why no variant carries the offending value: domain errors are logged, traced and sometimes
//! echoed in responses, and the most common refused value is a PAN. Carrying only the type and the
//! problem (plus non-secret numbers such as a length) makes it impossible for a `{err}` or
//! `{err:?}` anywhere in the switch to leak card data, so nobody has to remember to redact.

use super::codes::ResponseCode;

/// Why a domain value could not be built or an operation on it could not be completed.
///
/// Messages name the type and the problem, never the value.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, thiserror::Error)]
pub enum DomainError {
    // --- money ---
    /// A currency field was not exactly 3 ASCII digits, or an alpha code was not 3 letters.
    #[error("currency: malformed code")]
    CurrencyFormat,
    /// A well-formed currency code that the switch does not support.
    #[error("currency: unsupported code")]
    CurrencyUnknown,
    /// An amount field or human amount that is not a well-formed number.
    #[error("amount: malformed")]
    AmountFormat,
    /// More fractional digits than the currency's exponent allows.
    #[error("amount: more decimals than the currency allows ({exponent})")]
    AmountTooManyDecimals {
        /// The currency's exponent, i.e. the most decimals it accepts.
        exponent: u8,
    },
    /// A negative amount where only non-negative ones can be represented (ISO `n 12`).
    #[error("amount: negative where only non-negative amounts are allowed")]
    AmountNegative,
    /// The result does not fit the representation (`i64`, or the 12 digits of the field).
    #[error("amount: out of range")]
    AmountOverflow,
    /// Arithmetic or comparison between amounts in different currencies.
    #[error("amount: currency mismatch")]
    CurrencyMismatch,

    // --- card ---
    /// A PAN outside 12-19 digits.
    #[error("pan: length {len} outside 12-19")]
    PanLength {
        /// Number of bytes offered (a length is not card data).
        len: usize,
    },
    /// A PAN containing a byte that is not an ASCII digit.
    #[error("pan: non-digit character")]
    PanNonDigit,
    /// A well-formed PAN whose Luhn check digit is wrong.
    #[error("pan: Luhn check failed")]
    PanLuhn,
    /// A BIN outside 6-11 digits.
    #[error("bin: length {len} outside 6-11")]
    BinLength {
        /// Number of bytes offered.
        len: usize,
    },
    /// A BIN containing a byte that is not an ASCII digit.
    #[error("bin: non-digit character")]
    BinNonDigit,
    /// An expiry date that is not 4 ASCII digits.
    #[error("expiry: malformed, expected YYMM")]
    ExpiryFormat,
    /// An expiry date whose month is not 01-12.
    #[error("expiry: month outside 01-12")]
    ExpiryMonth,
    /// Field 7 is not a valid `MMDDhhmmss`.
    #[error("transmission date and time: not MMDDhhmmss")]
    TransmissionFormat,

    // --- identifiers ---
    /// A STAN field that is not exactly 6 ASCII digits.
    #[error("stan: malformed, expected 6 digits")]
    StanFormat,
    /// A STAN value above 999999, which the 6-digit field cannot carry.
    #[error("stan: above 999999")]
    StanRange,
    /// An identifier (RRN, terminal, merchant, acquirer, auth code) of the wrong length.
    #[error("{kind}: wrong length {len}, expected {expected}")]
    IdLength {
        /// Which identifier, e.g. `"terminal id"`.
        kind: &'static str,
        /// Number of bytes offered.
        len: usize,
        /// The accepted length or range, e.g. `"8"` or `"1-11"`.
        expected: &'static str,
    },
    /// An identifier containing a byte outside its ISO character set.
    #[error("{kind}: character outside {charset}")]
    IdCharset {
        /// Which identifier, e.g. `"rrn"`.
        kind: &'static str,
        /// The ISO attribute the identifier must satisfy: `"n"`, `"an"` or `"ans"`.
        charset: &'static str,
    },

    // --- codes ---
    /// An MTI that is not exactly 4 ASCII digits.
    #[error("mti: malformed, expected 4 digits")]
    MtiFormat,
    /// A processing code that is not exactly 6 ASCII digits.
    #[error("processing code: malformed, expected 6 digits")]
    ProcessingCodeFormat,
    /// A well-formed processing code naming a transaction or account type the switch does not
    /// support. Distinct from [`DomainError::ProcessingCodeFormat`] because it is answered with
    /// 12 (invalid transaction) rather than 30 (format error).
    #[error("processing code: unsupported transaction or account type")]
    ProcessingCodeUnknown,
    /// A response code that is not 2 alphanumeric characters.
    #[error("response code: malformed, expected 2 alphanumeric characters")]
    ResponseCodeFormat,
    /// A well-formed response code outside the set the switch understands.
    #[error("response code: unknown code")]
    ResponseCodeUnknown,
}

impl DomainError {
    /// The field 39 an acquirer should get when this error comes from validating its request.
    ///
    /// Only a default: the decision layer knows the context (e.g. an unknown currency on a
    /// refund may deserve a different answer) and may override it. Most refusals are 30 because
    /// ISO 8583 treats any malformed field content as a format error; the exceptions are the ones
    /// where the message is well formed but its content is refused, which the acquirer needs to
    /// tell apart (a mistyped card number is not a broken terminal).
    pub const fn response_code(&self) -> ResponseCode {
        match self {
            DomainError::PanLuhn => ResponseCode::InvalidCardNumber,
            DomainError::ProcessingCodeUnknown => ResponseCode::InvalidTransaction,
            DomainError::AmountTooManyDecimals { .. }
            | DomainError::AmountNegative
            | DomainError::AmountOverflow
            | DomainError::CurrencyMismatch => ResponseCode::InvalidAmount,
            _ => ResponseCode::FormatError,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_pan_errors_map_to_distinct_answers() {
        assert_eq!(
            DomainError::PanLuhn.response_code(),
            ResponseCode::InvalidCardNumber
        );
        assert_eq!(
            DomainError::PanNonDigit.response_code(),
            ResponseCode::FormatError
        );
        assert_eq!(
            DomainError::PanLength { len: 3 }.response_code(),
            ResponseCode::FormatError
        );
        assert_eq!(
            DomainError::ProcessingCodeUnknown.response_code(),
            ResponseCode::InvalidTransaction
        );
        assert_eq!(
            DomainError::ProcessingCodeFormat.response_code(),
            ResponseCode::FormatError
        );
    }

    #[test]
    fn messages_name_the_type() {
        assert_eq!(DomainError::PanLuhn.to_string(), "pan: Luhn check failed");
        let e = DomainError::IdCharset {
            kind: "terminal id",
            charset: "ans",
        };
        assert_eq!(e.to_string(), "terminal id: character outside ans");
        let e = DomainError::IdLength {
            kind: "rrn",
            len: 3,
            expected: "12",
        };
        assert_eq!(e.to_string(), "rrn: wrong length 3, expected 12");
    }
}
