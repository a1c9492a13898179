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

use std::mem::MaybeUninit;

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

// ---- Content-class checks, eight bytes at a time ------------------------------------------------
//
// Each `good_*` takes eight bytes as one little-endian word and returns a word in which byte i has
// its high bit set exactly when byte i belongs to the class (the other bits are noise). They look
// at the low seven bits of each byte and reject any byte whose high bit is set, and no step carries
// from one byte into the next, so every byte gets its own verdict whatever its neighbours hold.

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = ONES * 0x80;
const LOW7: u64 = ONES * 0x7F;

/// High bit of each byte set when that byte of `l` lies in `lo..=hi`. Every byte of `l` must be at
/// most 0x7F and `hi` at most 0x7F: adding `0x80 - lo` sets a byte's high bit exactly when the byte
/// is at least `lo`, adding `0x7F - hi` exactly when it is above `hi`, and neither sum exceeds 0xFF,
/// so nothing carries into the next byte.
#[inline(always)]
const fn in_range(l: u64, lo: u8, hi: u8) -> u64 {
    l.wrapping_add(ONES * (0x80 - lo as u64)) & !l.wrapping_add(ONES * (0x7F - hi as u64))
}

/// Letters of either case: folding `l` to lower case (setting 0x20) maps exactly the letters into
/// `a..=z`.
#[inline(always)]
const fn letters(l: u64) -> u64 {
    in_range(l | (ONES * 0x20), b'a', b'z')
}

#[inline(always)]
const fn good_n(x: u64) -> u64 {
    in_range(x & LOW7, b'0', b'9') & !x
}

#[inline(always)]
const fn good_ans(x: u64) -> u64 {
    in_range(x & LOW7, 0x20, 0x7E) & !x
}

#[inline(always)]
const fn good_a(x: u64) -> u64 {
    let l = x & LOW7;
    (letters(l) | in_range(l, b' ', b' ')) & !x
}

#[inline(always)]
const fn good_an(x: u64) -> u64 {
    let l = x & LOW7;
    (letters(l) | in_range(l, b'0', b'9') | in_range(l, b' ', b' ')) & !x
}

#[inline(always)]
const fn good_z(x: u64) -> u64 {
    let l = x & LOW7;
    (in_range(l, b'0', b'9') | in_range(l, b'=', b'=') | in_range(l, b'D', b'D')) & !x
}

#[inline(always)]
const fn good_any(_: u64) -> u64 {
    HIGH
}

/// `K` bytes of `s` from `at`; callers guarantee the range.
#[inline(always)]
fn load<const K: usize>(s: &[u8], at: usize) -> [u8; K] {
    let mut w = [0u8; K];
    w.copy_from_slice(&s[at..at + K]);
    w
}

#[inline(always)]
fn word(s: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(load(s, at))
}

/// A word made only of bytes of `s` (1 to 7 bytes) that holds every one of them: its first and
/// last four (or two, or one) bytes, overlapping as needed. Duplicates are harmless to an "every
/// byte" check, and no byte outside `s` is read.
#[inline(always)]
fn short_word(s: &[u8]) -> u64 {
    let n = s.len();
    if n >= 4 {
        u32::from_le_bytes(load(s, 0)) as u64 | (u32::from_le_bytes(load(s, n - 4)) as u64) << 32
    } else if n >= 2 {
        let w = u16::from_le_bytes(load(s, 0)) as u64
            | (u16::from_le_bytes(load(s, n - 2)) as u64) << 16;
        w | w << 32
    } else {
        s[0] as u64 * ONES
    }
}

/// True when `good` passes every byte of `s`: one [`short_word`] for up to 7 bytes, the first and
/// last words (overlapping) for up to 16, whole words then a last overlapping one beyond that.
#[inline(always)]
fn all_good(s: &[u8], good: impl Fn(u64) -> u64) -> bool {
    let n = s.len();
    if n < 8 {
        return n == 0 || good(short_word(s)) & HIGH == HIGH;
    }
    if n <= 16 {
        return good(word(s, 0)) & good(word(s, n - 8)) & HIGH == HIGH;
    }
    long_good(s, good)
}

/// [`all_good`] for more than 16 bytes, out of line to keep the callers' loops small. The early
/// exit keeps LLVM from vectorising a loop that rarely runs more than a few times.
#[inline(never)]
fn long_good(s: &[u8], good: impl Fn(u64) -> u64) -> bool {
    let n = s.len();
    let mut i = 0;
    while i + 8 < n {
        if good(word(s, i)) & HIGH != HIGH {
            return false;
        }
        i += 8;
    }
    good(word(s, n - 8)) & HIGH == HIGH
}

/// [`all_good`] for `b[start..end]` (in bounds, `start <= end`), allowed to read the neighbouring
/// bytes of `b` so that a short field takes one 8-byte load: the verdicts of bytes outside the
/// field are masked off, which is sound because each byte's verdict is its own.
#[inline(always)]
fn frame_good(b: &[u8], start: usize, end: usize, good: impl Fn(u64) -> u64) -> bool {
    let len = end - start;
    if len < 8 {
        let ok = if start + 8 <= b.len() {
            // Field in the low `len` bytes; ignore the rest.
            good(word(b, start)) | HIGH << (8 * len)
        } else if end >= 8 {
            // Near the end of the frame: the field is in the high `len` bytes.
            good(word(b, end - 8)) | HIGH >> (8 * len)
        } else {
            return all_good(&b[start..end], good);
        };
        return ok & HIGH == HIGH;
    }
    if len <= 16 {
        return good(word(b, start)) & good(word(b, end - 8)) & HIGH == HIGH;
    }
    long_good(&b[start..end], good)
}

const ZEROS: u64 = ONES * b'0' as u64;
const SIXES: u64 = ONES * 6;
const HIGH_NIBBLES: u64 = ONES * 0xF0;

/// Nonzero when some byte of `y` (characters XOR `'0'`) is not a digit: a digit becomes 0 to 9,
/// so its high nibble is 0 and adding 6 does not carry into it. A carry out of one byte into the
/// next only comes from a byte that is flagged itself, so it can add flags but never hide one.
#[inline(always)]
const fn not_digits(y: u64) -> u64 {
    (y | y.wrapping_add(SIXES)) & HIGH_NIBBLES
}

const SPACES: u64 = ONES * 0x20;
const PAST_TILDE: u64 = ONES * 0x21;

/// High bit set in some byte when some byte of `y` (characters minus 0x20, per byte) is not
/// printable: a printable character becomes 0 to 0x5E, so its high bit is clear and adding 0x21
/// does not set it. A borrow or carry between bytes only comes from a byte that is flagged
/// itself.
#[inline(always)]
const fn not_printable(y: u64) -> u64 {
    (y | y.wrapping_add(PAST_TILDE)) & HIGH
}

/// Whether the field `rest[..len]` (`len <= rest.len()`), which starts at `start` in the frame
/// `b` (so `rest == &b[start..]`), passes `check`: `None` for `x+n` and undefined fields, left to
/// [`check_in`]. Reads bytes of `b` around the field so that a short field takes one load.
#[inline(always)]
pub(crate) fn check_quick(
    check: Check,
    b: &[u8],
    rest: &[u8],
    start: usize,
    len: usize,
) -> Option<bool> {
    let ok = match check {
        Check::N => field_ok::<true>(b, rest, start, len, |w| w ^ ZEROS, not_digits, good_n),
        Check::Ans => field_ok::<true>(
            b,
            rest,
            start,
            len,
            |w| w.wrapping_sub(SPACES),
            not_printable,
            good_ans,
        ),
        Check::An => field_ok::<false>(b, rest, start, len, |w| w, digits_or(good_an), good_an),
        Check::Z => field_ok::<false>(b, rest, start, len, |w| w, digits_or(good_z), good_z),
        Check::A => field_ok::<false>(b, rest, start, len, |w| w, |w| !good_a(w) & HIGH, good_a),
        Check::B => true,
        Check::XN | Check::Undefined => return None,
    };
    Some(ok)
}

/// A `bad` function for a class that takes every digit (`an`, `z`): a word of digits (the
/// common case: reference numbers, track 2 but for its separator) passes on the cheap digit test,
/// and only other words take the class's own test.
#[inline(always)]
fn digits_or(good: impl Fn(u64) -> u64) -> impl Fn(u64) -> u64 {
    move |w| {
        if not_digits(w ^ ZEROS) == 0 {
            0
        } else {
            !good(w) & HIGH
        }
    }
}

/// [`check_quick`] for one class. `bad(map(w))` flags (nonzero) the invalid bytes of a word of
/// field bytes, and may let a flagged byte disturb the others; `good` is the exact per-byte
/// verdict (high bit set for a valid byte), for words that also hold bytes of other fields.
/// `SHIFT` promises that `map` turns every valid byte into a small value that `bad` accepts as
/// 0 too and that never carries or borrows out of its byte, so that a short field can be shifted
/// to the top of its word, zeros filling in below.
#[inline(always)]
fn field_ok<const SHIFT: bool>(
    b: &[u8],
    rest: &[u8],
    start: usize,
    len: usize,
    map: impl Fn(u64) -> u64,
    bad: impl Fn(u64) -> u64,
    good: impl Fn(u64) -> u64,
) -> bool {
    if len.wrapping_sub(1) < 7 {
        let ok = if let Some(w) = rest.first_chunk::<8>() {
            // The field is in the low `len` bytes.
            let w = u64::from_le_bytes(*w);
            if SHIFT {
                // Drop the bytes past the field; the zeros shifted in count as valid. Mapping
                // first is sound: a borrow or carry only runs upwards, out of the field.
                return bad(map(w) << ((64 - 8 * len) & 63)) == 0;
            }
            good(w) | HIGH << (8 * len)
        } else if let Some(w) = (start + len)
            .checked_sub(8)
            .and_then(|at| b.get(at..start + len))
        {
            // Near the end of the frame: the field is in the high `len` bytes.
            good(word(w, 0)) | HIGH >> (8 * len)
        } else {
            return all_good(&rest[..len], good);
        };
        return ok & HIGH == HIGH;
    }
    let s = &rest[..len];
    if len.wrapping_sub(8) < 9 {
        // 8 to 16 bytes: the first and the last 8, overlapping.
        return bad(map(word(s, 0))) | bad(map(word(s, len - 8))) == 0;
    }
    if len == 0 {
        return true;
    }
    // Whole words, then the last 8 (overlapping). Stops at the first bad word, so LLVM does not
    // vectorise a loop that rarely runs more than a few times.
    let mut i = 0;
    while i + 8 < len {
        if bad(map(word(s, i))) != 0 {
            return false;
        }
        i += 8;
    }
    bad(map(word(s, len - 8))) == 0
}

/// Copies `src` to `dst` (of the same length) and tells whether it passes `check`, when that is
/// quick: `None` (with nothing written) for the cases left to [`copy_checked`]: `x+n`, undefined
/// fields and empty values. When it returns `Some(true)`, every byte of `dst` is written.
#[inline(always)]
pub(crate) fn copy_quick(check: Check, src: &[u8], dst: &mut [MaybeUninit<u8>]) -> Option<bool> {
    match check {
        Check::N => copy_words_quick(src, dst, |w| not_digits(w ^ ZEROS)),
        Check::Ans => copy_words_quick(src, dst, |w| not_printable(w.wrapping_sub(SPACES))),
        Check::An => copy_words_quick(src, dst, digits_or(good_an)),
        Check::Z => copy_words_quick(src, dst, digits_or(good_z)),
        Check::A => copy_words_quick(src, dst, |w| !good_a(w) & HIGH),
        Check::B => copy_words_quick(src, dst, |_| 0),
        Check::XN | Check::Undefined => None,
    }
}

/// [`copy_quick`] for one class; `bad` flags (nonzero) the invalid bytes of a word made only of
/// bytes of `src`, and may let a flagged byte disturb the others.
#[inline(always)]
fn copy_words_quick(
    src: &[u8],
    dst: &mut [MaybeUninit<u8>],
    bad: impl Fn(u64) -> u64,
) -> Option<bool> {
    let n = src.len();
    let dst = &mut dst[..n];
    // Each case copies the first and the last K bytes (overlapping as needed), which covers
    // every byte of `src` exactly when K <= n <= 2K.
    let w = if n.wrapping_sub(8) < 9 {
        let (a, z) = ends::<8>(src, dst)?;
        return Some(bad(u64::from_le_bytes(a)) | bad(u64::from_le_bytes(z)) == 0);
    } else if n.wrapping_sub(4) < 4 {
        let (a, z) = ends::<4>(src, dst)?;
        u32::from_le_bytes(a) as u64 | (u32::from_le_bytes(z) as u64) << 32
    } else if n.wrapping_sub(2) < 2 {
        let (a, z) = ends::<2>(src, dst)?;
        let w = u16::from_le_bytes(a) as u64 | (u16::from_le_bytes(z) as u64) << 16;
        w | w << 32
    } else if n == 1 {
        dst[0] = MaybeUninit::new(src[0]);
        src[0] as u64 * ONES
    } else if n > 16 {
        // Whole words, then the last 8 (overlapping). Stops at the first bad word, so LLVM does
        // not vectorise a loop that rarely runs more than a few times.
        let mut i = 0;
        while i + 8 < n {
            let w = load::<8>(src, i);
            put(dst, i, w);
            if bad(u64::from_le_bytes(w)) != 0 {
                return Some(false);
            }
            i += 8;
        }
        let (_, z) = ends::<8>(src, dst)?;
        u64::from_le_bytes(z)
    } else {
        return None;
    };
    Some(bad(w) == 0)
}

/// Copies the first and the last `K` bytes of `src` to the same places in `dst` (same length)
/// and returns them.
#[inline(always)]
fn ends<const K: usize>(src: &[u8], dst: &mut [MaybeUninit<u8>]) -> Option<([u8; K], [u8; K])> {
    let (a, z) = (*src.first_chunk::<K>()?, *src.last_chunk::<K>()?);
    *dst.first_chunk_mut::<K>()? = a.map(MaybeUninit::new);
    *dst.last_chunk_mut::<K>()? = z.map(MaybeUninit::new);
    Some((a, z))
}

/// [`copy_checked`] out of line.
#[inline(never)]
pub(crate) fn copy_checked_outline(check: Check, src: &[u8], dst: &mut [MaybeUninit<u8>]) -> bool {
    copy_checked(check, src, dst)
}

/// [`check_in`] out of line.
#[inline(never)]
pub(crate) fn check_in_outline(check: Check, b: &[u8], start: usize, end: usize) -> bool {
    check_in(check, b, start, end)
}

/// `x+n` content: a sign, then digits. Rare, so out of line.
#[inline(never)]
fn xn_ok(s: &[u8]) -> bool {
    match s.split_first() {
        Some((&sign, rest)) => xn_sign(sign) & all_good(rest, good_n),
        None => false,
    }
}

/// [`class_ok`] for `b[start..end]`, which must be in bounds; may read bytes of `b` around it.
/// Always false for [`Check::Undefined`].
#[inline(always)]
pub(crate) fn check_in(check: Check, b: &[u8], start: usize, end: usize) -> bool {
    match check {
        Check::B => true,
        Check::N => frame_good(b, start, end, good_n),
        Check::Ans => frame_good(b, start, end, good_ans),
        Check::An => frame_good(b, start, end, good_an),
        Check::Z => frame_good(b, start, end, good_z),
        Check::A => frame_good(b, start, end, good_a),
        Check::XN => xn_ok(&b[start..end]),
        Check::Undefined => false,
    }
}

/// Writes `bytes` at `out[at..at + K]`.
#[inline(always)]
pub(crate) fn put<const K: usize>(out: &mut [MaybeUninit<u8>], at: usize, bytes: [u8; K]) {
    out[at..at + K].copy_from_slice(&bytes.map(MaybeUninit::new));
}

/// Copies `src` to `out[..src.len()]` (writing every one of those bytes and nothing else) and
/// checks it with `good` in the same pass over the same words.
#[inline(always)]
fn copy_good(src: &[u8], out: &mut [MaybeUninit<u8>], good: impl Fn(u64) -> u64) -> bool {
    let n = src.len();
    let out = &mut out[..n];
    let acc = if n >= 8 {
        if n > 16 {
            let mut i = 0;
            while i + 8 < n {
                let w = load::<8>(src, i);
                put(out, i, w);
                if good(u64::from_le_bytes(w)) & HIGH != HIGH {
                    // Finish the copy (the caller counts every byte as written) and fail.
                    for (o, &c) in out[i..].iter_mut().zip(&src[i..]) {
                        *o = MaybeUninit::new(c);
                    }
                    return false;
                }
                i += 8;
            }
        }
        let (a, b) = (load::<8>(src, 0), load::<8>(src, n - 8));
        put(out, 0, a);
        put(out, n - 8, b);
        good(u64::from_le_bytes(a)) & good(u64::from_le_bytes(b))
    } else if n >= 4 {
        let (a, b) = (load::<4>(src, 0), load::<4>(src, n - 4));
        put(out, 0, a);
        put(out, n - 4, b);
        good(u32::from_le_bytes(a) as u64 | (u32::from_le_bytes(b) as u64) << 32)
    } else if n >= 2 {
        let (a, b) = (load::<2>(src, 0), load::<2>(src, n - 2));
        put(out, 0, a);
        put(out, n - 2, b);
        let w = u16::from_le_bytes(a) as u64 | (u16::from_le_bytes(b) as u64) << 16;
        good(w | w << 32)
    } else if n == 1 {
        out[0] = MaybeUninit::new(src[0]);
        good(src[0] as u64 * ONES)
    } else {
        HIGH
    };
    acc & HIGH == HIGH
}

#[inline(always)]
fn xn_sign(c: u8) -> bool {
    c == b'C' || c == b'D'
}

/// What a field's content is checked against: its class, or `Undefined` for a field the dialect
/// does not define, which fails every check (see [`Desc`](super::dialect::Desc)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    N,
    A,
    An,
    Ans,
    B,
    Z,
    XN,
    Undefined,
}

impl Check {
    pub(crate) const fn of(class: ContentClass) -> Check {
        match class {
            ContentClass::N => Check::N,
            ContentClass::A => Check::A,
            ContentClass::An => Check::An,
            ContentClass::Ans => Check::Ans,
            ContentClass::B => Check::B,
            ContentClass::Z => Check::Z,
            ContentClass::XN => Check::XN,
        }
    }
}

/// True when every byte belongs to `class`. `b` accepts anything.
#[inline(always)]
pub(crate) fn class_ok(class: ContentClass, bytes: &[u8]) -> bool {
    match class {
        ContentClass::B => true,
        ContentClass::N => all_good(bytes, good_n),
        ContentClass::Ans => all_good(bytes, good_ans),
        ContentClass::An => all_good(bytes, good_an),
        ContentClass::Z => all_good(bytes, good_z),
        ContentClass::A => all_good(bytes, good_a),
        ContentClass::XN => xn_ok(bytes),
    }
}

/// Copies `src` into `out[..src.len()]` and returns whether every byte passes `check`, as
/// [`class_ok`] would. All of `out[..src.len()]` is written either way. Always false for
/// [`Check::Undefined`].
#[inline(always)]
pub(crate) fn copy_checked(check: Check, src: &[u8], out: &mut [MaybeUninit<u8>]) -> bool {
    match check {
        Check::B => copy_good(src, out, good_any),
        Check::N => copy_good(src, out, good_n),
        Check::Ans => copy_good(src, out, good_ans),
        Check::An => copy_good(src, out, good_an),
        Check::Z => copy_good(src, out, good_z),
        Check::A => copy_good(src, out, good_a),
        Check::XN => copy_good(src, out, good_any) & xn_ok(src),
        Check::Undefined => copy_good(src, out, good_any) & false,
    }
}

#[inline(always)]
pub(crate) fn all_digits(bytes: &[u8]) -> bool {
    all_good(bytes, good_n)
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
        assert!(!class_ok(ContentClass::XN, b""));
        assert!(class_ok(ContentClass::B, b"\x00\xff"));
    }

    /// The byte-by-byte definition of each class, which the word-at-a-time checks must match.
    fn reference(class: ContentClass, v: &[u8]) -> bool {
        let byte = |c: u8| match class {
            ContentClass::N | ContentClass::XN => c.is_ascii_digit(),
            ContentClass::A => c.is_ascii_alphabetic() || c == b' ',
            ContentClass::An => c.is_ascii_alphanumeric() || c == b' ',
            ContentClass::Ans => (0x20..=0x7e).contains(&c),
            ContentClass::Z => c.is_ascii_digit() || c == b'=' || c == b'D',
            ContentClass::B => true,
        };
        match class {
            ContentClass::XN => {
                matches!(v.first(), Some(b'C' | b'D')) && v[1..].iter().all(|&c| byte(c))
            }
            _ => v.iter().all(|&c| byte(c)),
        }
    }

    #[test]
    fn word_checks_agree_with_the_definition_for_every_byte_and_position() {
        const CLASSES: [ContentClass; 7] = [
            ContentClass::N,
            ContentClass::A,
            ContentClass::An,
            ContentClass::Ans,
            ContentClass::B,
            ContentClass::Z,
            ContentClass::XN,
        ];
        for class in CLASSES {
            // A filler every class accepts after the first byte, and a valid first byte.
            let (first, fill) = match class {
                ContentClass::XN => (b'C', b'5'),
                ContentClass::A => (b'x', b'x'),
                _ => (b'5', b'5'),
            };
            for len in 0..26usize {
                for pos in 0..len.max(1) {
                    for b in 0..=255u8 {
                        let mut v = vec![fill; len];
                        if len > 0 {
                            v[0] = first;
                            v[pos] = b;
                        }
                        let want = reference(class, &v);
                        assert_eq!(
                            class_ok(class, &v),
                            want,
                            "{class} len {len} pos {pos} byte {b}"
                        );
                        let mut out = vec![MaybeUninit::new(0xEEu8); len + 3];
                        assert_eq!(
                            copy_checked(Check::of(class), &v, &mut out),
                            want,
                            "{class} copy len {len}"
                        );
                        // SAFETY: every element was initialised when `out` was built.
                        let copied: Vec<u8> =
                            out.iter().map(|m| unsafe { m.assume_init() }).collect();
                        assert_eq!(&copied[..len], &v[..], "{class} copy len {len}");
                        assert_eq!(
                            &copied[len..],
                            &[0xEE; 3],
                            "{class} copy wrote past the end"
                        );
                    }
                }
            }
        }
        assert!(all_digits(b"") && class_ok(ContentClass::Ans, b""));
    }

    /// The quick checks read bytes around a field (masking their verdicts off) and take
    /// different routes by length and by room left in the frame: every route must agree with the
    /// definition, whatever the neighbouring bytes hold.
    #[test]
    fn quick_checks_agree_with_the_definition_in_every_frame_position() {
        const CLASSES: [ContentClass; 7] = [
            ContentClass::N,
            ContentClass::A,
            ContentClass::An,
            ContentClass::Ans,
            ContentClass::B,
            ContentClass::Z,
            ContentClass::XN,
        ];
        // Neighbours every class rejects, and neighbours every class but `b` accepts.
        let fillers = [0xFFu8, 0x00, b'0'];
        for class in CLASSES {
            let check = Check::of(class);
            let (first, fill) = match class {
                ContentClass::XN => (b'D', b'7'),
                ContentClass::A => (b'q', b'q'),
                _ => (b'7', b'7'),
            };
            for len in 0..26usize {
                let mut positions = vec![0, 1, len / 2, len.saturating_sub(1)];
                positions.retain(|&p| p < len.max(1));
                positions.dedup();
                for pos in positions {
                    for b in 0..=255u8 {
                        let mut v = vec![fill; len];
                        if len > 0 {
                            v[0] = first;
                            v[pos] = b;
                        }
                        let want = reference(class, &v);
                        for &f in &fillers {
                            // Field after `before` bytes, followed by `after` bytes.
                            for (before, after) in
                                [(0, 0), (0, 3), (0, 9), (12, 0), (12, 5), (3, 0)]
                            {
                                let mut frame = vec![f; before];
                                frame.extend_from_slice(&v);
                                frame.extend(std::iter::repeat_n(f, after));
                                let got = check_quick(check, &frame, &frame[before..], before, len)
                                    .unwrap_or_else(|| {
                                        check_in(check, &frame, before, before + len)
                                    });
                                assert_eq!(
                                    got, want,
                                    "{class} len {len} pos {pos} byte {b} in {before}+{after} of {f}"
                                );
                                assert_eq!(
                                    check_in(check, &frame, before, before + len),
                                    want,
                                    "{class} check_in"
                                );
                            }
                        }
                        let mut out = vec![MaybeUninit::new(0xEEu8); len];
                        if let Some(ok) = copy_quick(check, &v, &mut out) {
                            assert_eq!(ok, want, "{class} copy_quick len {len} pos {pos} byte {b}");
                            if ok {
                                // SAFETY: every element was initialised when `out` was built.
                                let copied: Vec<u8> =
                                    out.iter().map(|m| unsafe { m.assume_init() }).collect();
                                assert_eq!(copied, v, "{class} copy_quick len {len}");
                            }
                        }
                    }
                }
            }
        }
        assert!(all_digits(b"0123456789") && !all_digits(b"01234567a9"));
    }
}
