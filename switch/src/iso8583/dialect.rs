//! (in progress)
use serde::Deserialize;

/// The wire dialects Switchyard ships. Each is one const table (see [`Dialect`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Default)]
pub enum DialectId {
    /// ASCII MTI, numerics and length prefixes; 8-byte binary bitmaps. pyiso8583's `default` spec.
    #[default]
    #[serde(rename = "iso87-ascii")]
    Iso87Ascii,
    /// As `iso87-ascii`, with each bitmap as 16 hex characters.
    #[serde(rename = "iso87-ascii-hexbitmap")]
    Iso87AsciiHexBitmap,
    /// MTI, numeric fields and length prefixes as packed BCD.
    #[serde(rename = "iso87-bcd")]
    Iso87Bcd,
}

impl DialectId {
    pub const ALL: [DialectId; 3] = [DialectId::Iso87Ascii, DialectId::Iso87AsciiHexBitmap, DialectId::Iso87Bcd];
    pub fn name(self) -> &'static str {
        match self {
            DialectId::Iso87Ascii => "iso87-ascii",
            DialectId::Iso87AsciiHexBitmap => "iso87-ascii-hexbitmap",
            DialectId::Iso87Bcd => "iso87-bcd",
        }
    }
}
