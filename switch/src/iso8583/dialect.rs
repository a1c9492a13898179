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

use super::spec::{Check, ContentClass, FieldDef, ISO87, LengthKind};

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
    /// 16 upper-case hex characters each; lower case is rejected on decode (a relay must give
    /// back exactly the bytes it received).
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

/// A field's dialect entry reduced to what the codec's loops read, so that the decoder and encoder
/// load one 8-byte descriptor per field instead of walking [`FieldSpec`] and its enums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Desc {
    /// Maximum (or, for fixed fields, exact) length, as in [`FieldDef::max`].
    pub(crate) max: u16,
    /// Bytes taken by the length prefix on the wire; 0 for a fixed field.
    pub(crate) prefix_len: u8,
    /// The length prefix is packed BCD rather than ASCII digits.
    pub(crate) prefix_bcd: bool,
    pub(crate) data: Encoding,
    /// What the content is checked against. [`Check::Undefined`] for a field the dialect does not
    /// define: such a field reads as fixed, empty, ASCII content that fails its check, so the hot
    /// loops need no test of their own for it and find out on their (cold) error path.
    pub(crate) check: Check,
    /// The content class, for error messages.
    pub(crate) class: ContentClass,
    /// `check` is [`Check::N`]: a flag of its own so that the hot loops can branch on it directly
    /// rather than through the dispatch on `check` (which compiles to an indirect jump).
    pub(crate) numeric: bool,
}

impl Desc {
    pub(crate) const UNDEFINED: Desc = Desc {
        max: 0,
        prefix_len: 0,
        prefix_bcd: false,
        data: Encoding::Ascii,
        check: Check::Undefined,
        class: ContentClass::B,
        numeric: false,
    };

    /// The descriptor of a dialect entry.
    #[inline]
    pub(crate) const fn of(f: &Option<FieldSpec>) -> Desc {
        match f {
            Some(spec) => Desc {
                max: spec.def.max,
                prefix_len: spec.prefix_len() as u8,
                prefix_bcd: matches!(spec.prefix, Encoding::Bcd),
                data: spec.data,
                check: Check::of(spec.def.class),
                class: spec.def.class,
                numeric: matches!(spec.def.class, ContentClass::N),
            },
            None => Desc::UNDEFINED,
        }
    }

    /// False when the dialect does not define the field.
    #[inline(always)]
    pub(crate) fn defined(self) -> bool {
        !matches!(self.check, Check::Undefined)
    }

    /// Wire bytes of `len` characters (or digits) of content.
    #[inline(always)]
    pub(crate) fn wire_len(self, len: usize) -> usize {
        if matches!(self.data, Encoding::Bcd) {
            len.div_ceil(2)
        } else {
            len
        }
    }
}

const fn descs(fields: &[Option<FieldSpec>; 129]) -> [Desc; 129] {
    let mut out = [Desc::UNDEFINED; 129];
    let mut i = 0;
    while i < 129 {
        out[i] = Desc::of(&fields[i]);
        i += 1;
    }
    out
}

/// Descriptors of the shipped tables, precomputed. `iso87-ascii` and `iso87-ascii-hexbitmap` share
/// their field table, hence their descriptors.
pub(crate) static ASCII_DESCS: [Desc; 129] = descs(&table(false));

/// The `iso87-ascii` descriptors by bitmap word and bit: `ASCII_BY_BIT[0][i]` is field `1 + i`
/// (primary bitmap, bit 63 - i), `ASCII_BY_BIT[1][i]` field `65 + i`.
pub(crate) static ASCII_BY_BIT: [[Desc; 64]; 2] = by_bit(&ASCII_DESCS);

const fn by_bit(t: &[Desc; 129]) -> [[Desc; 64]; 2] {
    let mut out = [[Desc::UNDEFINED; 64]; 2];
    let mut i = 0;
    while i < 64 {
        out[0][i] = t[1 + i];
        out[1][i] = t[65 + i];
        i += 1;
    }
    out
}
static BCD_DESCS: [Desc; 129] = descs(&table(true));

impl Dialect {
    /// The precomputed descriptors of this dialect's fields, when it is one of the shipped statics
    /// (whose tables never change). Any other dialect derives them from [`Dialect::fields`] with
    /// [`Desc::of`].
    #[inline(always)]
    pub(crate) fn descs(&'static self) -> Option<&'static [Desc; 129]> {
        if std::ptr::eq(self, &ISO87_ASCII) || std::ptr::eq(self, &ISO87_ASCII_HEXBITMAP) {
            Some(&ASCII_DESCS)
        } else if std::ptr::eq(self, &ISO87_BCD) {
            Some(&BCD_DESCS)
        } else {
            None
        }
    }

    /// True for the shipped dialects whose length prefixes are all ASCII and whose content is
    /// never packed BCD (`iso87-ascii`, `iso87-ascii-hexbitmap`), for which the codec runs a
    /// simpler loop.
    #[inline(always)]
    pub(crate) fn plain_ascii(&'static self) -> bool {
        std::ptr::eq(self, &ISO87_ASCII) || std::ptr::eq(self, &ISO87_ASCII_HEXBITMAP)
    }

    /// The descriptor of field `n` (0–128).
    #[inline]
    pub(crate) fn desc(&'static self, n: usize) -> Desc {
        match self.descs() {
            Some(t) => t[n],
            None => Desc::of(&self.fields[n]),
        }
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
    fn descriptors_take_one_word() {
        assert_eq!(std::mem::size_of::<Desc>(), 8);
    }

    #[test]
    fn precomputed_descriptors_match_the_tables() {
        for id in DialectId::ALL {
            let d = id.dialect();
            let t = d
                .descs()
                .expect("shipped dialects have precomputed descriptors");
            for (n, (desc, field)) in t.iter().zip(&d.fields).enumerate() {
                assert_eq!(*desc, Desc::of(field), "{id} field {n}");
                assert_eq!(desc.defined(), n >= 2, "{id} field {n}");
                if let Some(f) = field {
                    assert_eq!(desc.class, f.def.class, "{id} field {n}");
                    assert_eq!(
                        desc.numeric,
                        f.def.class == ContentClass::N,
                        "{id} field {n}"
                    );
                }
                if d.plain_ascii() {
                    assert!(
                        !desc.prefix_bcd && desc.data != Encoding::Bcd,
                        "{id} field {n}"
                    );
                }
            }
        }
        assert!(!ISO87_BCD.plain_ascii());
        let copy: &'static Dialect = Box::leak(Box::new(Dialect {
            id: DialectId::Iso87Ascii,
            mti: Encoding::Ascii,
            bitmap: BitmapEncoding::Binary,
            fields: ISO87_ASCII.fields,
        }));
        assert!(copy.descs().is_none(), "only the statics themselves");
        assert_eq!(copy.desc(2), ISO87_ASCII.desc(2));
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
