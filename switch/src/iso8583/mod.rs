//! (in progress) The ISO 8583 codec.
pub mod dialect;
