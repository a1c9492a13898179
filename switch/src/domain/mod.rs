//! Domain types: the values an authorization is made of, each valid by construction.
//!
//! Owns what a PAN, an amount, a STAN, an expiry or a response code *is*: its invariants, its
//! field form and how it may be shown. It leaves bytes-on-the-wire to [`crate::iso8583`] (which
//! turns fields into these types), and every policy (routing, limits, when to decline) to the
//! decision layer. It depends on nothing else in the crate and does no I/O, so it is the bottom
//! of the dependency chain.
//!
//! Why types instead of strings: once a message has been validated into these types the rest
//! of the switch cannot meet a 20-digit PAN, a negative field 4 or an amount in the wrong
//! currency, and card data cannot reach a log by accident ([`Pan`] masks itself). Constructors
//! return [`DomainError`] rather than panicking because they run on untrusted input; the error
//! names the problem but never the value, and [`DomainError::response_code`] suggests field 39.
//!
//! Everything is re-exported here, so users write `switch::domain::Pan`.

mod ascii;
mod codes;
mod date;
mod decline;
mod error;
mod ids;
mod money;
mod pan;
mod product;

pub use codes::{AccountType, Mti, ProcessingCode, ResponseCode, TxnType};
pub use date::{Expiry, TransmissionDateTime};
pub use decline::Decline;
pub use error::DomainError;
pub use ids::{AcquirerId, AuthCode, MerchantId, Rrn, Stan, TerminalId};
pub use money::{Amount, Currency};
pub use pan::{Bin, MaskedPan, Pan, luhn_check_digit, luhn_valid};
pub use product::Product;

/// `bytes` as text when they are all ASCII, viewed without UTF-8 validation: for field values
/// the domain types have already restricted to ASCII (digits, `an`, `ans`).
pub fn ascii_text(bytes: &[u8]) -> Option<&str> {
    ascii::as_ascii_str(bytes)
}
