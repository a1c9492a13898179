//! (in progress) Length-prefixed framing. Shared types are fixed here first so config can name them.

use serde::Deserialize;

/// How the length of each frame is written in front of it. The length counts every byte after the
/// length header itself (the optional fixed header, e.g. a TPDU, plus the ISO message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LengthHeader {
    /// 2-byte binary, big-endian (network order). The default.
    #[default]
    Binary2Be,
    /// 2-byte binary, little-endian.
    Binary2Le,
    /// 4 ASCII decimal digits, e.g. `0204`.
    Ascii4,
    /// 2 bytes of packed BCD, e.g. `0x02 0x04` for 204 (max 9999).
    Bcd2,
}
