//! The ISO 8583:1987 data elements as facts: number, name, content class, length kind and maximum
//! length for all 128 fields.
//!
//! This table says *what* each field is; it says nothing about bytes on the wire. A
//! [`Dialect`](super::dialect::Dialect) pairs it with encodings (ASCII, packed BCD, raw binary) so
//! that one set of facts serves every dialect. The sizes follow ISO 8583:1987 and the layout of
//! pyiso8583's `default` spec (which defines field 55 as binary LLL of at most 255 bytes and field
//! 65 as an 8-byte binary bitmap).

/// What characters a field may carry. Checked on decode and on encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContentClass {
    /// Digits 0–9.
    N,
    /// Letters, plus the space that pads fixed fields.
    A,
    /// Letters and digits, plus the space that pads fixed fields.
    An,
    /// Printable ASCII, 0x20–0x7E.
    Ans,
    /// Raw bytes. The maximum length counts bytes.
    B,
    /// Track 2/3 code set: digits plus the separator `=` (or `D`).
    Z,
    /// `x+n`: a `C` (credit) or `D` (debit) sign followed by digits; the length counts the sign.
    XN,
}

impl ContentClass {
    /// The notation ISO 8583 uses for the class, for error messages.
    pub const fn notation(self) -> &'static str {
        match self {
            ContentClass::N => "n",
            ContentClass::A => "a",
            ContentClass::An => "an",
            ContentClass::Ans => "ans",
            ContentClass::B => "b",
            ContentClass::Z => "z",
            ContentClass::XN => "x+n",
        }
    }
}

impl std::fmt::Display for ContentClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.notation())
    }
}

/// How a field's length is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LengthKind {
    /// Exactly `max` characters (or bytes for `b`).
    Fixed,
    /// A 2-digit length prefix, at most 99.
    LlVar,
    /// A 3-digit length prefix, at most 999.
    LllVar,
}

/// One data element of the standard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldDef {
    pub number: u8,
    pub name: &'static str,
    pub class: ContentClass,
    pub length: LengthKind,
    /// Maximum (or, for fixed fields, exact) length in characters; in bytes for class `b`.
    pub max: u16,
}

const fn f(
    number: u8,
    name: &'static str,
    class: ContentClass,
    length: LengthKind,
    max: u16,
) -> FieldDef {
    FieldDef {
        number,
        name,
        class,
        length,
        max,
    }
}

use ContentClass::{An, Ans, B, N, XN, Z};
use LengthKind::{Fixed as F, LlVar as LL, LllVar as LLL};

/// All 128 fields of ISO 8583:1987. Index 0 stands for the MTI so that `ISO87[n]` is field `n`.
pub const ISO87: [FieldDef; 129] = [
    f(0, "Message type indicator", N, F, 4),
    f(1, "Bitmap, secondary", B, F, 8),
    f(2, "Primary account number", N, LL, 19),
    f(3, "Processing code", N, F, 6),
    f(4, "Amount, transaction", N, F, 12),
    f(5, "Amount, settlement", N, F, 12),
    f(6, "Amount, cardholder billing", N, F, 12),
    f(7, "Transmission date and time", N, F, 10),
    f(8, "Amount, cardholder billing fee", N, F, 8),
    f(9, "Conversion rate, settlement", N, F, 8),
    f(10, "Conversion rate, cardholder billing", N, F, 8),
    f(11, "System trace audit number", N, F, 6),
    f(12, "Time, local transaction", N, F, 6),
    f(13, "Date, local transaction", N, F, 4),
    f(14, "Date, expiration", N, F, 4),
    f(15, "Date, settlement", N, F, 4),
    f(16, "Date, conversion", N, F, 4),
    f(17, "Date, capture", N, F, 4),
    f(18, "Merchant type", N, F, 4),
    f(19, "Acquiring institution country code", N, F, 3),
    f(20, "PAN extended, country code", N, F, 3),
    f(21, "Forwarding institution country code", N, F, 3),
    f(22, "Point of service entry mode", N, F, 3),
    f(23, "Card sequence number", N, F, 3),
    f(24, "Network international identifier", N, F, 3),
    f(25, "Point of service condition code", N, F, 2),
    f(26, "Point of service PIN capture code", N, F, 2),
    f(27, "Authorizing identification response length", N, F, 1),
    f(28, "Amount, transaction fee", XN, F, 9),
    f(29, "Amount, settlement fee", XN, F, 9),
    f(30, "Amount, transaction processing fee", XN, F, 9),
    f(31, "Amount, settlement processing fee", XN, F, 9),
    f(32, "Acquiring institution identification code", N, LL, 11),
    f(33, "Forwarding institution identification code", N, LL, 11),
    f(34, "Primary account number, extended", Ans, LL, 28),
    f(35, "Track 2 data", Z, LL, 37),
    f(36, "Track 3 data", Z, LLL, 104),
    f(37, "Retrieval reference number", An, F, 12),
    f(38, "Authorization identification response", An, F, 6),
    f(39, "Response code", An, F, 2),
    f(40, "Service restriction code", An, F, 3),
    f(41, "Card acceptor terminal identification", Ans, F, 8),
    f(42, "Card acceptor identification code", Ans, F, 15),
    f(43, "Card acceptor name/location", Ans, F, 40),
    f(44, "Additional response data", Ans, LL, 25),
    f(45, "Track 1 data", Ans, LL, 76),
    f(46, "Additional data, ISO", Ans, LLL, 999),
    f(47, "Additional data, national", Ans, LLL, 999),
    f(48, "Additional data, private", Ans, LLL, 999),
    f(49, "Currency code, transaction", N, F, 3),
    f(50, "Currency code, settlement", N, F, 3),
    f(51, "Currency code, cardholder billing", N, F, 3),
    f(52, "Personal identification number data", B, F, 8),
    f(53, "Security related control information", N, F, 16),
    f(54, "Additional amounts", Ans, LLL, 120),
    f(55, "ICC data", B, LLL, 255),
    f(56, "Reserved ISO", Ans, LLL, 999),
    f(57, "Reserved national", Ans, LLL, 999),
    f(58, "Reserved national", Ans, LLL, 999),
    f(59, "Reserved national", Ans, LLL, 999),
    f(60, "Reserved national", Ans, LLL, 999),
    f(61, "Reserved private", Ans, LLL, 999),
    f(62, "Reserved private", Ans, LLL, 999),
    f(63, "Reserved private", Ans, LLL, 999),
    f(64, "Message authentication code", B, F, 8),
    f(65, "Bitmap, extended", B, F, 8),
    f(66, "Settlement code", N, F, 1),
    f(67, "Extended payment code", N, F, 2),
    f(68, "Receiving institution country code", N, F, 3),
    f(69, "Settlement institution country code", N, F, 3),
    f(70, "Network management information code", N, F, 3),
    f(71, "Message number", N, F, 4),
    f(72, "Message number, last", N, F, 4),
    f(73, "Date, action", N, F, 6),
    f(74, "Credits, number", N, F, 10),
    f(75, "Credits, reversal number", N, F, 10),
    f(76, "Debits, number", N, F, 10),
    f(77, "Debits, reversal number", N, F, 10),
    f(78, "Transfer, number", N, F, 10),
    f(79, "Transfer, reversal number", N, F, 10),
    f(80, "Inquiries, number", N, F, 10),
    f(81, "Authorizations, number", N, F, 10),
    f(82, "Credits, processing fee amount", N, F, 12),
    f(83, "Credits, transaction fee amount", N, F, 12),
    f(84, "Debits, processing fee amount", N, F, 12),
    f(85, "Debits, transaction fee amount", N, F, 12),
    f(86, "Credits, amount", N, F, 16),
    f(87, "Credits, reversal amount", N, F, 16),
    f(88, "Debits, amount", N, F, 16),
    f(89, "Debits, reversal amount", N, F, 16),
    f(90, "Original data elements", N, F, 42),
    f(91, "File update code", An, F, 1),
    f(92, "File security code", An, F, 2),
    f(93, "Response indicator", An, F, 5),
    f(94, "Service indicator", An, F, 7),
    f(95, "Replacement amounts", An, F, 42),
    f(96, "Message security code", B, F, 8),
    f(97, "Amount, net settlement", XN, F, 17),
    f(98, "Payee", Ans, F, 25),
    f(99, "Settlement institution identification code", N, LL, 11),
    f(100, "Receiving institution identification code", N, LL, 11),
    f(101, "File name", Ans, LL, 17),
    f(102, "Account identification 1", Ans, LL, 28),
    f(103, "Account identification 2", Ans, LL, 28),
    f(104, "Transaction description", Ans, LLL, 100),
    f(105, "Reserved ISO", Ans, LLL, 999),
    f(106, "Reserved ISO", Ans, LLL, 999),
    f(107, "Reserved ISO", Ans, LLL, 999),
    f(108, "Reserved ISO", Ans, LLL, 999),
    f(109, "Reserved ISO", Ans, LLL, 999),
    f(110, "Reserved ISO", Ans, LLL, 999),
    f(111, "Reserved ISO", Ans, LLL, 999),
    f(112, "Reserved national", Ans, LLL, 999),
    f(113, "Reserved national", Ans, LLL, 999),
    f(114, "Reserved national", Ans, LLL, 999),
    f(115, "Reserved national", Ans, LLL, 999),
    f(116, "Reserved national", Ans, LLL, 999),
    f(117, "Reserved national", Ans, LLL, 999),
    f(118, "Reserved national", Ans, LLL, 999),
    f(119, "Reserved national", Ans, LLL, 999),
    f(120, "Reserved private", Ans, LLL, 999),
    f(121, "Reserved private", Ans, LLL, 999),
    f(122, "Reserved private", Ans, LLL, 999),
    f(123, "Reserved private", Ans, LLL, 999),
    f(124, "Reserved private", Ans, LLL, 999),
    f(125, "Reserved private", Ans, LLL, 999),
    f(126, "Reserved private", Ans, LLL, 999),
    f(127, "Reserved private", Ans, LLL, 999),
    f(128, "Message authentication code", B, F, 8),
];

/// Per-byte class membership, so a content check is one table load and mask per byte.
pub(crate) static CLASS_TABLE: [u8; 256] = build_class_table();

pub(crate) const M_N: u8 = 1;
pub(crate) const M_A: u8 = 2;
pub(crate) const M_AN: u8 = 4;
pub(crate) const M_ANS: u8 = 8;
pub(crate) const M_Z: u8 = 16;

const fn build_class_table() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut b = 0usize;
    while b < 256 {
        let c = b as u8;
        let mut m = 0u8;
        if c.is_ascii_digit() {
            m |= M_N | M_AN | M_ANS | M_Z;
        }
        if c.is_ascii_alphabetic() || c == b' ' {
            m |= M_A | M_AN;
        }
        if c >= 0x20 && c <= 0x7e {
            m |= M_ANS;
        }
        if c == b'=' || c == b'D' {
            m |= M_Z;
        }
        t[b] = m;
        b += 1;
    }
    t
}

/// True when every byte belongs to `class`. `b` accepts anything.
#[inline(always)]
pub(crate) fn class_ok(class: ContentClass, bytes: &[u8]) -> bool {
    match class {
        ContentClass::B => true,
        ContentClass::N => all_digits(bytes),
        ContentClass::Ans => all_printable(bytes),
        ContentClass::XN => match bytes.split_first() {
            Some((sign, rest)) => (*sign == b'C' || *sign == b'D') && all_digits(rest),
            None => false,
        },
        ContentClass::A => all_in(M_A, bytes),
        ContentClass::An => all_in(M_AN, bytes),
        ContentClass::Z => all_in(M_Z, bytes),
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Eight ASCII digits? High nibble 3 in every byte, and low nibble + 6 never carries (so ≤ 9).
/// Numeric fields dominate every message, so they get a word-at-a-time check.
#[inline(always)]
fn word_digits(x: u64) -> bool {
    const HI: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    const THREES: u64 = 0x3030_3030_3030_3030;
    (((x & HI) ^ THREES) | ((x.wrapping_add(0x0606_0606_0606_0606) & HI) ^ THREES)) == 0
}

/// Eight bytes in 0x20..=0x7E? No high bit, no byte below 0x20, no 0x7F.
#[inline(always)]
fn word_printable(x: u64) -> bool {
    let below_space = x.wrapping_sub(ONES * 0x20) & !x;
    let y = x ^ (ONES * 0x7F);
    let del = y.wrapping_sub(ONES) & !y;
    ((x | below_space | del) & HIGH) == 0
}

/// The 8 bytes at `b[i..i + 8]` as one word; callers guarantee the range.
#[inline(always)]
fn word_at(b: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(w)
}

/// Checks `b` a word at a time: whole words from the front, then one final word that ends at the
/// last byte (overlapping the previous one is harmless for an "every byte" check). Fields shorter
/// than a word are checked a byte at a time.
#[inline(always)]
fn all_words(b: &[u8], word: impl Fn(u64) -> bool, byte: impl Fn(u8) -> bool) -> bool {
    let n = b.len();
    if n < 8 {
        return b.iter().fold(true, |ok, &c| ok & byte(c));
    }
    let mut ok = true;
    let mut i = 0;
    while i + 8 <= n {
        ok &= word(word_at(b, i));
        i += 8;
    }
    if i < n {
        ok &= word(word_at(b, n - 8));
    }
    ok
}

#[inline(always)]
pub(crate) fn all_digits(bytes: &[u8]) -> bool {
    all_words(bytes, word_digits, |c| c.wrapping_sub(b'0') < 10)
}

#[inline(always)]
pub(crate) fn all_printable(bytes: &[u8]) -> bool {
    all_words(bytes, word_printable, |c| c.wrapping_sub(0x20) < 0x5f)
}

#[inline(always)]
fn all_in(mask: u8, bytes: &[u8]) -> bool {
    // Fold with `&` rather than short-circuit: branch-free over short fields, which is all of them.
    bytes.iter().fold(mask, |acc, &b| acc & CLASS_TABLE[b as usize]) == mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_indexed_by_field_number() {
        for (i, d) in ISO87.iter().enumerate() {
            assert_eq!(d.number as usize, i, "entry {i}");
            assert!(d.max > 0);
            match d.length {
                LengthKind::LlVar => assert!(d.max <= 99, "field {i}"),
                LengthKind::LllVar => assert!(d.max <= 999, "field {i}"),
                LengthKind::Fixed => {}
            }
        }
    }

    #[test]
    fn classes() {
        assert!(class_ok(ContentClass::N, b"0123456789"));
        assert!(!class_ok(ContentClass::N, b"12a4"));
        assert!(!class_ok(ContentClass::N, b"12 4"));
        assert!(class_ok(ContentClass::A, b"AbC "));
        assert!(!class_ok(ContentClass::A, b"AB1"));
        assert!(class_ok(ContentClass::An, b"AB12 "));
        assert!(!class_ok(ContentClass::An, b"AB-12"));
        assert!(class_ok(ContentClass::Ans, b"A-1 ~!"));
        assert!(!class_ok(ContentClass::Ans, b"A\x7f"));
        assert!(!class_ok(ContentClass::Ans, b"\x00"));
        assert!(class_ok(ContentClass::Z, b"4111111111111111=3012"));
        assert!(class_ok(ContentClass::Z, b"4111111111111111D3012"));
        assert!(!class_ok(ContentClass::Z, b"41^1"));
        assert!(class_ok(ContentClass::XN, b"C00000100"));
        assert!(class_ok(ContentClass::XN, b"D00000100"));
        assert!(!class_ok(ContentClass::XN, b"X00000100"));
        assert!(!class_ok(ContentClass::XN, b"C0000010A"));
        assert!(class_ok(ContentClass::B, b"\x00\xff"));
    }

    #[test]
    fn word_checks_agree_with_the_table_for_every_byte_and_position() {
        for len in 0..20usize {
            for pos in 0..len {
                for b in 0..=255u8 {
                    let mut v = vec![b'5'; len];
                    v[pos] = b;
                    assert_eq!(all_digits(&v), b.is_ascii_digit(), "digits len {len} pos {pos} byte {b}");
                    let mut v = vec![b'x'; len];
                    v[pos] = b;
                    assert_eq!(all_printable(&v), (0x20..=0x7e).contains(&b), "ans len {len} pos {pos} byte {b}");
                }
            }
        }
        assert!(all_digits(b"") && all_printable(b""));
    }
}
