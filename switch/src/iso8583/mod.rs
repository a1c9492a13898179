//! The ISO 8583:1987 codec: dialect tables, zero-copy decode, builder-based encode, and typed
//! views for business code.
//!
//! It owns bytes ↔ fields and nothing else: framing is [`crate::net::framing`]'s, and what the
//! fields mean to a transaction is the typed views' and the decision code's. It is plain
//! synchronous code with no I/O, so tests and benches need no sockets.

pub mod decode;
pub mod dialect;
pub mod encode;
pub mod error;
pub mod mac;
pub mod spec;

pub use decode::{FieldRef, Message, decode, decode_lenient};
pub use dialect::{Dialect, DialectId, ISO87_ASCII, ISO87_ASCII_HEXBITMAP, ISO87_BCD};
pub use encode::{MessageBuilder, Value};
pub use error::{DecodeError, EncodeError};
pub use spec::{ContentClass, FieldDef, ISO87, LengthKind};
pub mod samples;

#[cfg(test)]
mod tests;
pub mod views;
