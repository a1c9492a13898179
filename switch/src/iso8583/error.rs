//! Codec errors. Each names the field number and the problem, never the field's value: a decode
//! error is logged, and the value could be a PAN or track data.
//!
//! Decode errors come in two kinds, because the switch treats them differently (issue 3):
//! - *structural*: the message cannot be walked (truncated, impossible length, bad bitmap). No
//!   field can be trusted, so nothing can be echoed and the message goes unanswered.
//! - *content*: every field was found, but one breaks its class or maximum. The switch can still
//!   echo fields 11, 37 and 41 and answer 30.

use super::spec::ContentClass;

/// Why a message failed to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    // --- structural ---
    #[error("message truncated inside the MTI")]
    TruncatedMti,
    #[error("MTI is not four digits")]
    BadMti,
    #[error("MTI version digit is not 0 (ISO 8583:1987)")]
    UnsupportedVersion,
    #[error("message truncated inside the bitmap")]
    TruncatedBitmap,
    #[error("bitmap is not hexadecimal")]
    BadBitmap,
    #[error("field {field}: bit set for a field the dialect does not define")]
    UndefinedField { field: u8 },
    #[error("field {field}: length prefix is not a number")]
    BadLengthPrefix { field: u8 },
    #[error("field {field}: message truncated inside the field")]
    Truncated { field: u8 },
    #[error("message is longer than 65535 bytes")]
    MessageTooLarge,

    // --- content ---
    #[error("field {field}: length {len} exceeds the maximum {max}")]
    TooLong { field: u8, len: u16, max: u16 },
    #[error("field {field}: character outside content class {class}")]
    BadContent { field: u8, class: ContentClass },
    #[error("field {field}: BCD pad nibble is not zero")]
    BadPad { field: u8 },
    #[error("secondary bitmap present but no field 65-128 is set")]
    EmptySecondaryBitmap,
    #[error("{count} trailing bytes after the last field")]
    TrailingBytes { count: usize },
}

impl DecodeError {
    /// True when the message could not be walked, so none of its fields can be trusted.
    pub fn is_structural(&self) -> bool {
        !matches!(
            self,
            DecodeError::TooLong { .. }
                | DecodeError::BadContent { .. }
                | DecodeError::BadPad { .. }
                | DecodeError::EmptySecondaryBitmap
                | DecodeError::TrailingBytes { .. }
        )
    }

    /// The field the error is about, if any.
    pub fn field(&self) -> Option<u8> {
        match *self {
            DecodeError::UndefinedField { field }
            | DecodeError::BadLengthPrefix { field }
            | DecodeError::Truncated { field }
            | DecodeError::TooLong { field, .. }
            | DecodeError::BadContent { field, .. }
            | DecodeError::BadPad { field } => Some(field),
            _ => None,
        }
    }
}

/// Why a message could not be encoded. These are internal errors: the caller built a bad message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("field {field}: not settable (the codec owns field 1; fields are 2-128)")]
    NotSettable { field: u8 },
    #[error("field {field}: the dialect does not define it")]
    UndefinedField { field: u8 },
    #[error("field {field}: length {len}, but the field is fixed at {expected}")]
    WrongLength {
        field: u8,
        len: usize,
        expected: u16,
    },
    #[error("field {field}: length {len} exceeds the maximum {max}")]
    TooLong { field: u8, len: usize, max: u16 },
    #[error("field {field}: character outside content class {class}")]
    BadContent { field: u8, class: ContentClass },
    #[error("field {field}: packed BCD value given for a field that is not numeric")]
    PackedNotNumeric { field: u8 },
    #[error("MTI is not four digits")]
    BadMti,
    #[error("encoded message is longer than 65535 bytes")]
    MessageTooLarge,
}
