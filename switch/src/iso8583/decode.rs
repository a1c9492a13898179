//! Zero-copy decoding. A [`Message`] is the frame's `Bytes` plus the offset and length of each
//! field present; reading a field returns a slice of the frame. Decoding allocates nothing.
//!
//! Decoding is one pass that walks the bitmap and checks every field against its dialect entry:
//! content class, maximum length, truncation, trailing bytes. Structural errors stop the walk;
//! content errors are recorded and the walk goes on, so that the switch can still echo the
//! matching fields in a format-error answer ([`decode_lenient`]). [`decode`] is the strict form
//! that turns any error into `Err`.
//!
//! The `Debug` form masks cardholder data (fields 2, 34, 35, 36, 45, 52, 55), so a message can go
//! to a log.

use std::borrow::Cow;
use std::fmt;
use std::mem::MaybeUninit;

use bytes::Bytes;

use super::dialect::{BitmapEncoding, Dialect, Encoding, FieldSpec};
use super::error::DecodeError;
use super::spec::{LengthKind, class_ok};

#[derive(Debug, Clone, Copy)]
struct Pos {
    /// Offset of the field's content (after any length prefix).
    start: u16,
    /// Logical length: characters, digits for packed BCD, bytes for `b`.
    len: u16,
}

/// A decoded ISO 8583 message: the frame plus where each field sits in it.
#[derive(Clone)]
pub struct Message {
    buf: Bytes,
    dialect: &'static Dialect,
    mti: [u8; 4],
    /// Bit 127 is field 1 (the secondary bitmap), bit 0 is field 128.
    bitmap: u128,
    /// Where each field sits. Only entries whose bit is set in `bitmap` are initialised: the
    /// decoder writes every present field before a `Message` exists, and every read checks the
    /// bit first. Leaving the rest uninitialised saves zeroing 516 bytes per message.
    pos: [MaybeUninit<Pos>; 129],
    content_error: Option<DecodeError>,
    /// Fields that broke their class or maximum, same bit layout as `bitmap`.
    invalid: u128,
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
}

/// Appends the `digits` rightmost nibbles of `packed` as ASCII digits.
pub(crate) fn unpack_bcd(packed: &[u8], digits: usize, out: &mut Vec<u8>) {
    let skip = packed.len() * 2 - digits;
    for i in skip..packed.len() * 2 {
        let byte = packed[i / 2];
        let nib = if i % 2 == 0 { byte >> 4 } else { byte & 0x0f };
        out.push(b'0' + nib);
    }
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

#[inline(always)]
fn decode_impl<const STRICT: bool>(dialect: &'static Dialect, buf: Bytes) -> Result<Message, DecodeError> {
    if buf.len() > u16::MAX as usize {
        return Err(DecodeError::MessageTooLarge);
    }
    let b: &[u8] = &buf;
    let mut off;
    let mut content_error: Option<DecodeError> = None;

    // MTI
    let mut mti = [0u8; 4];
    match dialect.mti {
        Encoding::Bcd => {
            if b.len() < 2 {
                return Err(DecodeError::TruncatedMti);
            }
            for (i, d) in mti.iter_mut().enumerate() {
                let byte = b[i / 2];
                let nib = if i % 2 == 0 { byte >> 4 } else { byte & 0x0f };
                if nib > 9 {
                    return Err(DecodeError::BadMti);
                }
                *d = b'0' + nib;
            }
            off = 2;
        }
        _ => {
            if b.len() < 4 {
                return Err(DecodeError::TruncatedMti);
            }
            mti.copy_from_slice(&b[..4]);
            if !mti.iter().all(u8::is_ascii_digit) {
                return Err(DecodeError::BadMti);
            }
            off = 4;
        }
    }
    if mti[0] != b'0' {
        return Err(DecodeError::UnsupportedVersion);
    }

    // Bitmaps
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

    let mut pos = [MaybeUninit::<Pos>::uninit(); 129];
    let mut invalid = 0u128;
    let mut bits = bitmap & !(1u128 << 127);
    while bits != 0 {
        let lz = bits.leading_zeros();
        bits &= !(1u128 << (127 - lz));
        let n = (lz + 1) as u8;
        let spec = dialect
            .field(n)
            .ok_or(DecodeError::UndefinedField { field: n })?;
        let def = &spec.def;

        let len = match def.length {
            LengthKind::Fixed => def.max,
            kind => {
                let digits = if kind == LengthKind::LlVar { 2 } else { 3 };
                let v = read_prefix(spec.prefix, digits, b, &mut off)
                    .ok_or(DecodeError::BadLengthPrefix { field: n })?;
                if v > def.max {
                    let e = DecodeError::TooLong { field: n, len: v, max: def.max };
                    if STRICT {
                        return Err(e);
                    }
                    invalid |= 1u128 << (128 - n as u32);
                    content_error.get_or_insert(e);
                }
                v
            }
        };
        let wire = spec.wire_len(len as usize);
        let end = off + wire;
        if end > b.len() {
            return Err(DecodeError::Truncated { field: n });
        }
        let content = &b[off..end];
        let problem = match spec.data {
            Encoding::Ascii => (!class_ok(def.class, content)).then_some(DecodeError::BadContent {
                field: n,
                class: def.class,
            }),
            Encoding::Bcd => check_bcd(content, len as usize, n, def.class),
            Encoding::Binary => None,
        };
        if let Some(p) = problem {
            if STRICT {
                return Err(p);
            }
            invalid |= 1u128 << (128 - n as u32);
            content_error.get_or_insert(p);
        }
        pos[n as usize] = MaybeUninit::new(Pos { start: off as u16, len });
        off = end;
    }
    if off != b.len() && content_error.is_none() {
        let e = DecodeError::TrailingBytes { count: b.len() - off };
        if STRICT {
            return Err(e);
        }
        content_error = Some(e);
    }

    Ok(Message {
        buf,
        dialect,
        mti,
        bitmap,
        pos,
        content_error,
        invalid,
    })
}

#[inline]
fn read_bitmap(enc: BitmapEncoding, b: &[u8], off: &mut usize) -> Result<u64, DecodeError> {
    match enc {
        BitmapEncoding::Binary => {
            let bytes: [u8; 8] = b
                .get(*off..*off + 8)
                .and_then(|s| s.try_into().ok())
                .ok_or(DecodeError::TruncatedBitmap)?;
            *off += 8;
            Ok(u64::from_be_bytes(bytes))
        }
        BitmapEncoding::Hex => {
            let hex = b.get(*off..*off + 16).ok_or(DecodeError::TruncatedBitmap)?;
            let mut v = 0u64;
            for &c in hex {
                let nib = match c {
                    b'0'..=b'9' => c - b'0',
                    b'A'..=b'F' => c - b'A' + 10,
                    b'a'..=b'f' => c - b'a' + 10,
                    _ => return Err(DecodeError::BadBitmap),
                };
                v = (v << 4) | nib as u64;
            }
            *off += 16;
            Ok(v)
        }
    }
}

#[inline]
fn read_prefix(enc: Encoding, digits: usize, b: &[u8], off: &mut usize) -> Option<u16> {
    match enc {
        Encoding::Bcd => {
            let nbytes = digits.div_ceil(2);
            let s = b.get(*off..*off + nbytes)?;
            let mut v = 0u16;
            for &byte in s {
                let (hi, lo) = (byte >> 4, byte & 0x0f);
                if hi > 9 || lo > 9 {
                    return None;
                }
                v = v * 100 + (hi as u16) * 10 + lo as u16;
            }
            *off += nbytes;
            Some(v)
        }
        _ => {
            let s = b.get(*off..*off + digits)?;
            let mut v = 0u16;
            for &c in s {
                if !c.is_ascii_digit() {
                    return None;
                }
                v = v * 10 + (c - b'0') as u16;
            }
            *off += digits;
            Some(v)
        }
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
        // SAFETY: field `n` is present (checked above), and the decoder initialised the entry of
        // every present field before building this message.
        let p = unsafe { self.pos[n as usize].assume_init() };
        let start = p.start as usize;
        let end = start + spec.wire_len(p.len as usize);
        Some(FieldRef {
            spec,
            wire: &self.buf[start..end],
            len: p.len,
        })
    }

    /// Field `n`'s content as ASCII (raw for `b`): a slice of the frame unless it is packed BCD.
    #[inline]
    pub fn get(&self, n: u8) -> Option<Cow<'_, [u8]>> {
        self.field(n).map(|f| f.bytes())
    }

    /// The numbers of the fields present, ascending, excluding the secondary bitmap.
    pub fn field_numbers(&self) -> impl Iterator<Item = u8> + '_ {
        (2..=128u8).filter(move |&n| self.has(n))
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

/// Fields whose content never appears in clear in a `Debug` print.
const REDACTED: [u8; 5] = [34, 35, 36, 45, 52];

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
