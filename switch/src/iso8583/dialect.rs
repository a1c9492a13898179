//! Dialects as data: each dialect is one const table that pairs every ISO 8583:1987 field
//! ([`spec::ISO87`](super::spec::ISO87)) with its wire encoding.
//!
//! The decoder and encoder are generic over this table; adding a dialect means adding a const, not
//! code. Three ship, which is what proves the point:
//! - `iso87-ascii` (the default): ASCII MTI, numerics and length prefixes; 8-byte binary bitmaps;
//!   raw bytes for `b` fields (52, 64, 65, 96, 128) and for field 55 (binary LLL). This is the
//!   layout of pyiso8583's `default` spec and what most acquirer hosts speak.
//! - `iso87-ascii-hexbitmap`: the same, with each bitmap written as 16 hex characters.
//! - `iso87-bcd`: MTI, `n` fields and length prefixes as packed BCD. Odd digit counts are
//!   right-justified with a zero pad nibble in front. A variable `n` field's prefix counts digits
//!   (as jPOS's `IFB_LLNUM` does); every other prefix counts bytes. LL is one BCD byte, LLL two.
//!   `z`, `an`, `ans` and `x+n` fields stay ASCII.

use serde::{Deserialize, Serialize};

use super::spec::{ContentClass, FieldDef, ISO87, LengthKind};

/// The wire dialects Switchyard ships. Each is one const table (see [`Dialect`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, Default)]
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
    pub const ALL: [DialectId; 3] = [
        DialectId::Iso87Ascii,
        DialectId::Iso87AsciiHexBitmap,
        DialectId::Iso87Bcd,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DialectId::Iso87Ascii => "iso87-ascii",
            DialectId::Iso87AsciiHexBitmap => "iso87-ascii-hexbitmap",
            DialectId::Iso87Bcd => "iso87-bcd",
        }
    }

    /// The const table for this dialect.
    pub fn dialect(self) -> &'static Dialect {
        match self {
            DialectId::Iso87Ascii => &ISO87_ASCII,
            DialectId::Iso87AsciiHexBitmap => &ISO87_ASCII_HEXBITMAP,
            DialectId::Iso87Bcd => &ISO87_BCD,
        }
    }
}

impl std::fmt::Display for DialectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How the characters of a field (or of the MTI, or a length prefix) are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// One ASCII byte per character.
    Ascii,
    /// Two decimal digits per byte.
    Bcd,
    /// Raw bytes, as given (only for class `b`).
    Binary,
}

/// How the primary and secondary bitmaps are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BitmapEncoding {
    /// 8 raw bytes each.
    Binary,
    /// 16 upper-case hex characters each. Lower case is accepted on decode.
    Hex,
}

/// One field as a dialect writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    pub def: FieldDef,
    /// Encoding of the field's content.
    pub data: Encoding,
    /// Encoding of the length prefix (unused for fixed fields).
    pub prefix: Encoding,
}

impl FieldSpec {
    /// Bytes taken on the wire by `len` characters (or digits) of content.
    #[inline]
    pub const fn wire_len(&self, len: usize) -> usize {
        match self.data {
            Encoding::Bcd => len.div_ceil(2),
            _ => len,
        }
    }

    /// Bytes taken by the length prefix.
    #[inline]
    pub const fn prefix_len(&self) -> usize {
        match (self.def.length, self.prefix) {
            (LengthKind::Fixed, _) => 0,
            (LengthKind::LlVar, Encoding::Bcd) => 1,
            (LengthKind::LllVar, Encoding::Bcd) => 2,
            (LengthKind::LlVar, _) => 2,
            (LengthKind::LllVar, _) => 3,
        }
    }
}

/// A complete wire dialect: MTI and bitmap encoding plus one entry per field. `fields[n]` is field
/// `n`; `None` means the dialect does not define that field, and a message that sets its bit is
/// rejected. Entries 0 and 1 (MTI and secondary bitmap) are handled by the codec itself.
#[derive(Debug)]
pub struct Dialect {
    pub id: DialectId,
    pub mti: Encoding,
    pub bitmap: BitmapEncoding,
    pub fields: [Option<FieldSpec>; 129],
}

impl Dialect {
    /// The spec of field `n`, if the dialect defines it.
    #[inline]
    pub fn field(&self, n: u8) -> Option<&FieldSpec> {
        self.fields.get(n as usize).and_then(|f| f.as_ref())
    }
}

const fn ascii_spec(def: FieldDef) -> FieldSpec {
    let data = match def.class {
        ContentClass::B => Encoding::Binary,
        _ => Encoding::Ascii,
    };
    FieldSpec {
        def,
        data,
        prefix: Encoding::Ascii,
    }
}

const fn bcd_spec(def: FieldDef) -> FieldSpec {
    let data = match def.class {
        ContentClass::B => Encoding::Binary,
        ContentClass::N => Encoding::Bcd,
        _ => Encoding::Ascii,
    };
    FieldSpec {
        def,
        data,
        prefix: Encoding::Bcd,
    }
}

const fn table(bcd: bool) -> [Option<FieldSpec>; 129] {
    let mut out: [Option<FieldSpec>; 129] = [None; 129];
    let mut i = 2;
    while i < 129 {
        out[i] = Some(if bcd {
            bcd_spec(ISO87[i])
        } else {
            ascii_spec(ISO87[i])
        });
        i += 1;
    }
    out
}

/// `iso87-ascii`: the default dialect.
pub static ISO87_ASCII: Dialect = Dialect {
    id: DialectId::Iso87Ascii,
    mti: Encoding::Ascii,
    bitmap: BitmapEncoding::Binary,
    fields: table(false),
};

/// `iso87-ascii-hexbitmap`.
pub static ISO87_ASCII_HEXBITMAP: Dialect = Dialect {
    id: DialectId::Iso87AsciiHexBitmap,
    mti: Encoding::Ascii,
    bitmap: BitmapEncoding::Hex,
    fields: table(false),
};

/// `iso87-bcd`.
pub static ISO87_BCD: Dialect = Dialect {
    id: DialectId::Iso87Bcd,
    mti: Encoding::Bcd,
    bitmap: BitmapEncoding::Binary,
    fields: table(true),
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dialect_defines_fields_2_to_128() {
        for id in DialectId::ALL {
            let d = id.dialect();
            assert_eq!(d.id, id);
            assert!(d.field(1).is_none(), "bit 1 belongs to the codec");
            for n in 2..=128u8 {
                let f = d.field(n).unwrap_or_else(|| panic!("{id} field {n}"));
                assert_eq!(f.def.number, n);
            }
        }
    }

    #[test]
    fn bcd_packs_only_numeric_fields() {
        let d = &ISO87_BCD;
        assert_eq!(d.field(2).map(|f| f.data), Some(Encoding::Bcd));
        assert_eq!(d.field(2).map(|f| f.prefix_len()), Some(1));
        assert_eq!(d.field(2).map(|f| f.wire_len(19)), Some(10));
        assert_eq!(d.field(35).map(|f| f.data), Some(Encoding::Ascii));
        assert_eq!(d.field(55).map(|f| f.data), Some(Encoding::Binary));
        assert_eq!(d.field(55).map(|f| f.prefix_len()), Some(2));
        assert_eq!(ISO87_ASCII.field(55).map(|f| f.prefix_len()), Some(3));
        assert_eq!(
            ISO87_ASCII.field(52).map(|f| f.data),
            Some(Encoding::Binary)
        );
    }
}
