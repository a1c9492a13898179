//! Zero-copy decoding. A [`Message`] is the frame's `Bytes` plus the offset of each field
//! present; reading a field returns a slice of the frame. Decoding allocates nothing.
//!
//! Decoding is one pass that walks the bitmap and checks every field against its dialect entry:
//! content class, maximum length, truncation, trailing bytes. Structural errors stop the walk;
//! content errors are recorded and the walk goes on, so that the switch can still echo the
//! matching fields in a format-error answer ([`decode_lenient`]). [`decode`] is the strict form
//! that turns any error into `Err`.
//!
//! Two walks implement those rules. The fast one only tells a clean message (every check passes)
//! from anything else, checking eight bytes at a time with no error bookkeeping; it is what every
//! well-formed message takes. Anything it turns down is walked again by the reference walk
//! ([`decode_slow`]), which names the first problem, or records content problems and goes on.
//!
//! The `Debug` form masks cardholder data (fields 2, 34, 35, 36, 45, 52, 55), so a message can go
//! to a log.

use std::borrow::Cow;
use std::fmt;
use std::mem::MaybeUninit;

use bytes::Bytes;

use super::dialect::{
    ASCII_BY_BIT, ASCII_DESCS, BitmapEncoding, Desc, Dialect, Encoding, FieldSpec,
};
use super::error::DecodeError;
use super::spec::{all_digits, check_in, check_in_outline, check_quick, class_ok};

/// A decoded ISO 8583 message: the frame plus where each field sits in it.
#[derive(Clone)]
pub struct Message {
    /// Bit 127 is field 1 (the secondary bitmap), bit 0 is field 128.
    bitmap: u128,
    /// Fields that broke their class or maximum, same bit layout as `bitmap`.
    invalid: u128,
    buf: Bytes,
    dialect: &'static Dialect,
    content_error: Option<DecodeError>,
    mti: [u8; 4],
    /// `pos[n]` is the offset of field `n`'s content (after any length prefix). Only entries whose
    /// bit is set in `bitmap` are initialised: the decoder writes every present field's entry
    /// before a `Message` exists, and every read checks the bit first. The length is not stored: a
    /// fixed field's is its maximum, and a variable field's is read back from the (already
    /// validated) prefix just before `pos[n]`. Offsets only, left uninitialised, keep the message
    /// small and cheap to build.
    pos: [MaybeUninit<u16>; 129],
}

/// One field of a decoded message, borrowed from the frame.
#[derive(Clone, Copy)]
pub struct FieldRef<'a> {
    spec: &'static FieldSpec,
    wire: &'a [u8],
    len: u16,
}

impl<'a> FieldRef<'a> {
    /// The field's content bytes exactly as on the wire (packed for BCD numerics).
    #[inline]
    pub fn wire(&self) -> &'a [u8] {
        self.wire
    }

    /// Logical length: characters, digits for BCD numerics, bytes for binary fields.
    #[inline]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when the content is packed BCD.
    #[inline]
    pub fn is_packed(&self) -> bool {
        self.spec.data == Encoding::Bcd
    }

    /// The dialect's entry for this field.
    #[inline]
    pub fn spec(&self) -> &'static FieldSpec {
        self.spec
    }

    /// The content as ASCII characters (raw bytes for `b`). Borrowed from the frame except for
    /// packed BCD, which is unpacked into a new buffer.
    #[inline]
    pub fn bytes(&self) -> Cow<'a, [u8]> {
        if self.is_packed() {
            let mut out = Vec::with_capacity(self.len());
            unpack_bcd(self.wire, self.len(), &mut out);
            Cow::Owned(out)
        } else {
            Cow::Borrowed(self.wire)
        }
    }

    /// True when the content is `ascii`, as [`Self::bytes`] would give it, without unpacking
    /// packed BCD into a buffer: a comparison on the forwarding path, done for every request.
    pub fn content_is(&self, ascii: &[u8]) -> bool {
        if !self.is_packed() {
            return self.wire == ascii;
        }
        ascii.len() == self.len() && bcd_digits(self.wire, self.len()).eq(ascii.iter().copied())
    }
}

/// The `digits` rightmost nibbles of `packed`, as ASCII digits.
fn bcd_digits(packed: &[u8], digits: usize) -> impl Iterator<Item = u8> + '_ {
    let skip = packed.len() * 2 - digits;
    (skip..packed.len() * 2).map(move |i| {
        let byte = packed[i / 2];
        b'0' + if i % 2 == 0 { byte >> 4 } else { byte & 0x0f }
    })
}

/// Appends the `digits` rightmost nibbles of `packed` as ASCII digits.
pub(crate) fn unpack_bcd(packed: &[u8], digits: usize, out: &mut Vec<u8>) {
    out.extend(bcd_digits(packed, digits));
}

/// Strict decode: any structural or content error is an `Err`.
#[inline]
pub fn decode(dialect: &'static Dialect, buf: Bytes) -> Result<Message, DecodeError> {
    decode_impl::<true>(dialect, buf)
}

/// Decode that fails only on structural errors. The first content error, if any, is kept in
/// [`Message::content_error`]; every field is still reachable.
#[inline]
pub fn decode_lenient(dialect: &'static Dialect, buf: Bytes) -> Result<Message, DecodeError> {
    decode_impl::<false>(dialect, buf)
}

/// Both walks apply the same rules, so the fast one accepts exactly the messages on which the slow
/// one would find nothing, and records the same offsets for them.
#[inline(always)]
fn decode_impl<const STRICT: bool>(
    dialect: &'static Dialect,
    buf: Bytes,
) -> Result<Message, DecodeError> {
    let mut out = MaybeUninit::uninit();
    let filled = match dialect.descs() {
        Some(_) if dialect.plain_ascii() => {
            fill_fast::<true>(&mut out, dialect, buf, |n| ASCII_DESCS[n])
        }
        Some(t) => fill_fast::<false>(&mut out, dialect, buf, |n| t[n]),
        None => fill_fast::<false>(&mut out, dialect, buf, |n| Desc::of(&dialect.fields[n])),
    };
    match filled {
        // SAFETY: `fill_fast` returns `Ok` only after writing a whole message to `out` (see
        // there).
        Ok(()) => Ok(unsafe { out.assume_init() }),
        Err(buf) => decode_slow::<STRICT>(dialect, buf),
    }
}

/// The fast walk: decodes `buf` into `out` when no check fails on it; at the first sign of any
/// problem, gives `buf` back for [`decode_slow`]. Returns `Ok` only after writing a whole message
/// to `out`. `ASCII` promises that no field of the dialect has a BCD prefix or BCD content (see
/// [`Dialect::plain_ascii`]). Out of line, with the message written in place through `out`,
/// which keeps the loops' registers their own and avoids building the message twice.
#[inline(never)]
fn fill_fast<const ASCII: bool>(
    out: &mut MaybeUninit<Message>,
    dialect: &'static Dialect,
    buf: Bytes,
    desc: impl Fn(usize) -> Desc,
) -> Result<(), Bytes> {
    let b: &[u8] = &buf;
    if b.len() > u16::MAX as usize {
        return Err(buf);
    }
    let Ok((mti, mut off)) = read_mti(dialect.mti, b) else {
        return Err(buf);
    };
    if mti[0] != b'0' {
        return Err(buf);
    }
    let Ok(primary) = read_bitmap(dialect.bitmap, b, &mut off) else {
        return Err(buf);
    };
    let mut secondary = 0;
    if primary & (1 << 63) != 0 {
        match read_bitmap(dialect.bitmap, b, &mut off) {
            Ok(v) if v != 0 => secondary = v,
            _ => return Err(buf),
        }
    }
    // From here on `out` holds a message; on failure its frame is taken back out, leaving an
    // empty one that needs no drop (and `MaybeUninit` never drops it anyway).
    let m = out.write(Message {
        bitmap: (primary as u128) << 64 | secondary as u128,
        invalid: 0,
        buf,
        dialect,
        content_error: None,
        mti,
        pos: [const { MaybeUninit::uninit() }; 129],
    });
    let b: &[u8] = &m.buf;
    // Two 64-bit walks (fields 2-64, then 65-128) rather than one over a u128.
    let (low, high) = m.pos.split_at_mut(65);
    let mut walked = if ASCII {
        walk_ascii(
            b,
            off,
            primary & !(1 << 63),
            &ASCII_BY_BIT[0],
            &mut low[1..],
        )
    } else {
        walk(b, off, primary & !(1 << 63), 1, &mut low[1..], &desc)
    };
    if secondary != 0 {
        walked = walked.and_then(|off| {
            if ASCII {
                walk_ascii(b, off, secondary, &ASCII_BY_BIT[1], high)
            } else {
                walk(b, off, secondary, 65, high, &desc)
            }
        });
    }
    if walked != Some(b.len()) {
        return Err(std::mem::take(&mut m.buf));
    }
    Ok(())
}

/// Walks the fields of one bitmap word in an ASCII-dialect frame `b`, from `off`: bit `63 - i` of
/// `bits` stands for the field described by `descs[i]`, whose content offset goes to `pos[i]`.
/// Returns where the last field ends, or `None` on any problem. The same rules as the field walk
/// of [`decode_slow`].
#[inline(never)]
fn walk_ascii(
    b: &[u8],
    off: usize,
    bits: u64,
    descs: &[Desc; 64],
    pos: &mut [MaybeUninit<u16>],
) -> Option<usize> {
    let pos: &mut [MaybeUninit<u16>; 64] = pos.try_into().ok()?;
    // The frame from the next field on; the walk only ever shortens it from the front.
    let mut rest = b.get(off..)?;
    // Reversed, bit i stands for field i of the word, and the lowest set bit is the next field.
    let mut bits = bits.reverse_bits();
    while bits != 0 {
        let i = bits.trailing_zeros() as usize & 63;
        bits &= bits - 1;
        let d = descs[i];
        let mut len = d.max as usize;
        if d.prefix_len != 0 {
            match read_ascii_prefix(d.prefix_len, rest, 0) {
                Some(v) if v <= d.max => len = v as usize,
                _ => return None,
            }
            rest = &rest[d.prefix_len as usize..];
        }
        if len > rest.len() {
            return None;
        }
        let start = b.len() - rest.len();
        let ok = match check_quick(d.check, b, rest, start, len) {
            Some(ok) => ok,
            None => check_in_outline(d.check, b, start, start + len),
        };
        if !ok {
            return None;
        }
        // `b` is at most u16::MAX bytes (checked first), so every offset fits.
        pos[i] = MaybeUninit::new(start as u16);
        rest = &rest[len..];
    }
    Some(b.len() - rest.len())
}

/// Walks the fields of one bitmap word, as [`walk_ascii`] does, in any dialect: bit `63 - i` of
/// `bits` is field `first + i`.
#[inline(always)]
fn walk(
    b: &[u8],
    mut off: usize,
    mut bits: u64,
    first: usize,
    pos: &mut [MaybeUninit<u16>],
    desc: &impl Fn(usize) -> Desc,
) -> Option<usize> {
    let pos: &mut [MaybeUninit<u16>; 64] = pos.try_into().ok()?;
    while bits != 0 {
        let i = bits.leading_zeros() as usize & 63;
        bits ^= (1 << 63) >> i;
        let (start, end) = fast_step(desc(first + i), b, off)?;
        // `b` is at most u16::MAX bytes (checked first), so every offset fits.
        pos[i] = MaybeUninit::new(start as u16);
        off = end;
    }
    Some(off)
}

/// One field, described by `d`, at `off`: `Some((start, end))`, where its content starts and ends
/// (where the next field starts), when the prefix, length, bounds and content all pass; `None`
/// on any problem. The same rules as the field walk of [`decode_slow`].
#[inline(always)]
fn fast_step(d: Desc, b: &[u8], off: usize) -> Option<(usize, usize)> {
    let (start, len) = if d.prefix_len == 0 {
        (off, d.max as usize)
    } else {
        match read_prefix(d, b, off) {
            Some(v) if v <= d.max => (off + d.prefix_len as usize, v as usize),
            _ => return None,
        }
    };
    let end = start + d.wire_len(len);
    if end > b.len() {
        return None;
    }
    let ok = match d.data {
        Encoding::Ascii => check_in(d.check, b, start, end),
        Encoding::Binary => true,
        Encoding::Bcd => check_bcd(&b[start..end], len, 0, d.class).is_none(),
    };
    ok.then_some((start, end))
}

/// The reference decoder: walks the message field by field and names the first problem, or
/// (lenient) records content problems and goes on. Runs only for messages the fast path turns
/// down, so it is written for clarity rather than speed.
#[cold]
#[inline(never)]
fn decode_slow<const STRICT: bool>(
    dialect: &'static Dialect,
    buf: Bytes,
) -> Result<Message, DecodeError> {
    if buf.len() > u16::MAX as usize {
        return Err(DecodeError::MessageTooLarge);
    }
    let b: &[u8] = &buf;
    let (mti, mut off) = read_mti(dialect.mti, b)?;
    if mti[0] != b'0' {
        return Err(DecodeError::UnsupportedVersion);
    }
    let mut content_error: Option<DecodeError> = None;

    let primary = read_bitmap(dialect.bitmap, b, &mut off)?;
    let mut bitmap = (primary as u128) << 64;
    if primary & (1 << 63) != 0 {
        let secondary = read_bitmap(dialect.bitmap, b, &mut off)?;
        if secondary == 0 {
            if STRICT {
                return Err(DecodeError::EmptySecondaryBitmap);
            }
            content_error = Some(DecodeError::EmptySecondaryBitmap);
        }
        bitmap |= secondary as u128;
    }

    let mut pos = [const { MaybeUninit::uninit() }; 129];
    let mut invalid = 0u128;
    let mut bits = bitmap & !(1u128 << 127);
    while bits != 0 {
        let lz = bits.leading_zeros();
        bits &= !(1u128 << (127 - lz));
        let n = (lz + 1) as u8;
        let d = dialect.desc(n as usize);
        if !d.defined() {
            return Err(DecodeError::UndefinedField { field: n });
        }
        let mut problem = |e: DecodeError| {
            invalid |= 1u128 << (128 - n as u32);
            content_error.get_or_insert(e);
        };

        let len = if d.prefix_len == 0 {
            d.max
        } else {
            let v = read_prefix(d, b, off).ok_or(DecodeError::BadLengthPrefix { field: n })?;
            off += d.prefix_len as usize;
            if v > d.max {
                let e = DecodeError::TooLong {
                    field: n,
                    len: v,
                    max: d.max,
                };
                if STRICT {
                    return Err(e);
                }
                problem(e);
            }
            v
        };
        let end = off + d.wire_len(len as usize);
        if end > b.len() {
            return Err(DecodeError::Truncated { field: n });
        }
        let content = &b[off..end];
        let e = match d.data {
            Encoding::Ascii => (!class_ok(d.class, content)).then_some(DecodeError::BadContent {
                field: n,
                class: d.class,
            }),
            Encoding::Bcd => check_bcd(content, len as usize, n, d.class),
            Encoding::Binary => None,
        };
        if let Some(e) = e {
            if STRICT {
                return Err(e);
            }
            problem(e);
        }
        // `b` is at most u16::MAX bytes (checked first), so every offset fits.
        pos[n as usize] = MaybeUninit::new(off as u16);
        off = end;
    }
    if off != b.len() && content_error.is_none() {
        let e = DecodeError::TrailingBytes {
            count: b.len() - off,
        };
        if STRICT {
            return Err(e);
        }
        content_error = Some(e);
    }
    Ok(Message {
        bitmap,
        invalid,
        buf,
        dialect,
        content_error,
        mti,
        pos,
    })
}

#[inline(always)]
fn read_mti(enc: Encoding, b: &[u8]) -> Result<([u8; 4], usize), DecodeError> {
    match enc {
        Encoding::Bcd => {
            let Some(&[hi, lo]) = b.get(..2) else {
                return Err(DecodeError::TruncatedMti);
            };
            let mti = [hi >> 4, hi & 0x0f, lo >> 4, lo & 0x0f];
            if mti.iter().any(|&nib| nib > 9) {
                return Err(DecodeError::BadMti);
            }
            Ok((mti.map(|nib| b'0' + nib), 2))
        }
        _ => {
            let Some(mti) = b.first_chunk::<4>() else {
                return Err(DecodeError::TruncatedMti);
            };
            if !all_digits(mti) {
                return Err(DecodeError::BadMti);
            }
            Ok((*mti, 4))
        }
    }
}

#[inline(always)]
fn read_bitmap(enc: BitmapEncoding, b: &[u8], off: &mut usize) -> Result<u64, DecodeError> {
    match enc {
        BitmapEncoding::Binary => {
            let Some(bytes) = b.get(*off..).and_then(|s| s.first_chunk::<8>()) else {
                return Err(DecodeError::TruncatedBitmap);
            };
            *off += 8;
            Ok(u64::from_be_bytes(*bytes))
        }
        BitmapEncoding::Hex => read_hex_bitmap(b, off),
    }
}

/// Upper-case hex only: the encoder writes upper case, and accepting lower case would make a
/// relayed message differ from what was received (found by the decode fuzz target).
fn read_hex_bitmap(b: &[u8], off: &mut usize) -> Result<u64, DecodeError> {
    let hex = b.get(*off..*off + 16).ok_or(DecodeError::TruncatedBitmap)?;
    let mut v = 0u64;
    for &c in hex {
        let nib = match c {
            b'0'..=b'9' => c - b'0',
            b'A'..=b'F' => c - b'A' + 10,
            _ => return Err(DecodeError::BadBitmap),
        };
        v = (v << 4) | nib as u64;
    }
    *off += 16;
    Ok(v)
}

/// The value of an ASCII length prefix of `digits` (2 or 3) digits at `b[off..]`, or `None` when
/// it is cut short or not digits.
#[inline(always)]
fn read_ascii_prefix(digits: u8, b: &[u8], off: usize) -> Option<u16> {
    if digits == 2 {
        let &[x, y] = b.get(off..)?.first_chunk::<2>()?;
        let (x, y) = (x.wrapping_sub(b'0'), y.wrapping_sub(b'0'));
        (x < 10 && y < 10).then_some(x as u16 * 10 + y as u16)
    } else {
        let &[x, y, z] = b.get(off..)?.first_chunk::<3>()?;
        let (x, y, z) = (
            x.wrapping_sub(b'0'),
            y.wrapping_sub(b'0'),
            z.wrapping_sub(b'0'),
        );
        (x < 10 && y < 10 && z < 10).then_some(x as u16 * 100 + y as u16 * 10 + z as u16)
    }
}

/// The value of the length prefix of a field described by `d` at `b[off..]`, or `None` when it is
/// cut short or not digits.
#[inline(always)]
fn read_prefix(d: Desc, b: &[u8], off: usize) -> Option<u16> {
    if d.prefix_bcd {
        let s = b.get(off..off + d.prefix_len as usize)?;
        let mut v = 0u16;
        for &byte in s {
            let (hi, lo) = (byte >> 4, byte & 0x0f);
            if hi > 9 || lo > 9 {
                return None;
            }
            v = v * 100 + (hi as u16) * 10 + lo as u16;
        }
        Some(v)
    } else {
        read_ascii_prefix(d.prefix_len, b, off)
    }
}

/// Checks that packed BCD holds only digits and that an odd count has a zero pad nibble.
#[inline]
pub(crate) fn check_bcd(
    packed: &[u8],
    digits: usize,
    field: u8,
    class: super::spec::ContentClass,
) -> Option<DecodeError> {
    if digits % 2 == 1 && packed.first().is_some_and(|b| b >> 4 != 0) {
        return Some(DecodeError::BadPad { field });
    }
    let bad = packed.iter().any(|&b| (b >> 4) > 9 || (b & 0x0f) > 9);
    bad.then_some(DecodeError::BadContent { field, class })
}

impl Message {
    /// The dialect the message was decoded with.
    #[inline]
    pub fn dialect(&self) -> &'static Dialect {
        self.dialect
    }

    /// The MTI as four ASCII digits (unpacked for BCD dialects).
    #[inline]
    pub fn mti_digits(&self) -> [u8; 4] {
        self.mti
    }

    /// The whole message as received.
    #[inline]
    pub fn as_bytes(&self) -> &Bytes {
        &self.buf
    }

    /// The first content error, if the message was decoded leniently and one was found.
    #[inline]
    pub fn content_error(&self) -> Option<DecodeError> {
        self.content_error
    }

    /// True when field `n` is present and passed its class and length checks, so it can be
    /// echoed in an answer. After a strict decode every present field is valid.
    #[inline]
    pub fn is_valid(&self, n: u8) -> bool {
        self.has(n) && self.invalid & (1u128 << (128 - n as u32)) == 0
    }

    /// True when field `n` (1–128) is present. Field 1 is the secondary bitmap.
    #[inline]
    pub fn has(&self, n: u8) -> bool {
        (1..=128).contains(&n) && self.bitmap & (1u128 << (128 - n as u32)) != 0
    }

    /// Field `n`, if present (2–128).
    #[inline]
    pub fn field(&self, n: u8) -> Option<FieldRef<'_>> {
        if n < 2 || !self.has(n) {
            return None;
        }
        let spec = self.dialect.field(n)?;
        let d = self.dialect.desc(n as usize);
        // SAFETY: field `n` is present (checked above), and the decoder initialised the entry of
        // every present field before building this message.
        let start = unsafe { self.pos[n as usize].assume_init() } as usize;
        let len = if d.prefix_len == 0 {
            d.max
        } else {
            // The decoder read this prefix before recording `start`, so it is there and valid.
            read_prefix(d, &self.buf, start - d.prefix_len as usize).unwrap_or(0)
        };
        let end = start + d.wire_len(len as usize);
        Some(FieldRef {
            spec,
            wire: &self.buf[start..end],
            len,
        })
    }

    /// Field `n`'s content as ASCII (raw for `b`): a slice of the frame unless it is packed BCD.
    #[inline]
    pub fn get(&self, n: u8) -> Option<Cow<'_, [u8]>> {
        self.field(n).map(|f| f.bytes())
    }

    /// The numbers of the fields present, ascending, excluding the secondary bitmap. Walks the
    /// set bits only, not all 127 field numbers.
    pub fn field_numbers(&self) -> impl Iterator<Item = u8> + '_ {
        let mut bits = self.bitmap & !(1u128 << 127);
        std::iter::from_fn(move || {
            if bits == 0 {
                return None;
            }
            let zeros = bits.leading_zeros();
            bits &= !(1u128 << (127 - zeros));
            // Field n is bit 128 - n, so n = zeros + 1, at most 128.
            u8::try_from(zeros + 1).ok()
        })
    }

    /// The presence bitmap: bit 127 is field 1, bit 0 is field 128.
    #[inline]
    pub fn bitmap(&self) -> u128 {
        self.bitmap
    }
}

/// Equal when MTI and every field's content are equal, whatever the dialect.
impl PartialEq for Message {
    fn eq(&self, other: &Self) -> bool {
        self.mti == other.mti
            && (self.bitmap | 1u128 << 127) == (other.bitmap | 1u128 << 127)
            && self.field_numbers().all(|n| self.get(n) == other.get(n))
    }
}

/// Fields whose content never appears in clear in a `Debug` print: PAN extended, tracks, and
/// the PIN blocks (52, and 63 where Switchyard carries a format 4 block).
const REDACTED: [u8; 6] = [34, 35, 36, 45, 52, 63];

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        m.entry(&"dialect", &self.dialect.id.name());
        m.entry(&"mti", &String::from_utf8_lossy(&self.mti));
        for n in self.field_numbers() {
            let Some(field) = self.field(n) else { continue };
            let v = field.bytes();
            let shown = masked_value(n, field.spec().def.class, &v);
            m.entry(&n, &format_args!("{shown}"));
        }
        if let Some(e) = self.content_error {
            m.entry(&"content_error", &format_args!("{e}"));
        }
        m.finish()
    }
}

/// How field `n` appears in logs: PAN first 6 and last 4 digits, sensitive fields redacted,
/// binary as hex.
pub fn masked_value(n: u8, class: super::spec::ContentClass, v: &[u8]) -> String {
    if n == 2 {
        return mask_pan(v);
    }
    if n == 55 {
        return format!("[{} bytes ICC data redacted]", v.len());
    }
    if REDACTED.contains(&n) {
        return format!("[{} bytes redacted]", v.len());
    }
    if class == super::spec::ContentClass::B {
        return v.iter().map(|b| format!("{b:02X}")).collect();
    }
    format!("{:?}", String::from_utf8_lossy(v))
}

/// First 6 and last 4 digits; everything shorter than 13 is masked whole.
pub fn mask_pan(v: &[u8]) -> String {
    if v.len() < 13 {
        return "*".repeat(v.len());
    }
    let mut s = String::with_capacity(v.len());
    for (i, &c) in v.iter().enumerate() {
        if i < 6 || i >= v.len() - 4 {
            s.push(c as char);
        } else {
            s.push('*');
        }
    }
    s
}
