//! Encoding. A [`MessageBuilder`] takes fields in any order, borrows their values, and writes the
//! message into a `BytesMut` in one pass; the codec derives the primary and secondary bitmaps, so
//! callers never set bit 1.
//!
//! Values are given as characters (ASCII digits for numerics, raw bytes for `b`), whatever the
//! dialect. A value copied from a decoded message keeps its wire form ([`Value::Packed`]), so a
//! relayed field is written back byte for byte, and a BCD field relayed to an ASCII peer is
//! unpacked on the way. Every value is validated against the dialect before it counts as written;
//! on error the output buffer is left as it was.
//!
//! The single pass validates each field and copies it straight into the buffer's spare capacity,
//! eight bytes at a time, checking the content class on the same words it copies.

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};

use super::decode::{Message, check_bcd};
use super::dialect::{ASCII_BY_BIT, BitmapEncoding, Desc, Dialect, Encoding};
use super::error::EncodeError;
use super::spec::{
    ContentClass, all_digits, class_ok, copy_checked, copy_checked_outline, copy_quick, put,
};

/// A field value handed to the builder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// Characters (ASCII digits for `n`), or raw bytes for `b`.
    Text(&'a [u8]),
    /// Packed BCD, right-justified, holding `digits` digits.
    Packed { bytes: &'a [u8], digits: u16 },
}

/// Builds one message. Cheap to create: nothing is initialised per field until it is set.
pub struct MessageBuilder<'a> {
    dialect: &'static Dialect,
    mti: [u8; 4],
    /// The fields set: field `n` is bit `(n - 1) % 64` of `present[(n - 1) / 64]`, so a walk from
    /// the lowest bit up meets the fields in wire order. Field 1 is never set here; the encoder
    /// derives it.
    present: [u64; 2],
    not_settable: Option<u8>,
    /// At least the total length of the values set (more once values are replaced), so that the
    /// encoder can reserve room for the whole message up front.
    room: usize,
    /// `values[n]` is field `n`'s value; initialised exactly when its bit in `present` is set.
    /// Left uninitialised otherwise, which saves writing 3 KB per builder.
    values: [MaybeUninit<Value<'a>>; 129],
}

/// Word of `present` and bit within it for field `n` (1–128).
#[inline(always)]
fn bit(n: u8) -> (usize, u64) {
    let i = n as u32 - 1;
    ((i >> 6) as usize, 1 << (i & 63))
}

impl<'a> MessageBuilder<'a> {
    /// A message of type `mti` (four ASCII digits) in `dialect`.
    #[inline]
    pub fn new(dialect: &'static Dialect, mti: [u8; 4]) -> Self {
        MessageBuilder {
            dialect,
            mti,
            present: [0; 2],
            not_settable: None,
            room: 0,
            values: [const { MaybeUninit::uninit() }; 129],
        }
    }

    pub fn dialect(&self) -> &'static Dialect {
        self.dialect
    }

    /// The MTI as four ASCII digits.
    pub fn mti(&self) -> [u8; 4] {
        self.mti
    }

    pub fn set_mti(&mut self, mti: [u8; 4]) -> &mut Self {
        self.mti = mti;
        self
    }

    /// Sets field `n` (2–128) to `value`, replacing any earlier value. An invalid field number is
    /// reported by [`encode`](Self::encode).
    #[inline]
    pub fn set(&mut self, n: u8, value: &'a [u8]) -> &mut Self {
        self.set_value(n, Value::Text(value))
    }

    #[inline]
    pub fn set_str(&mut self, n: u8, value: &'a str) -> &mut Self {
        self.set(n, value.as_bytes())
    }

    #[inline]
    pub fn set_value(&mut self, n: u8, value: Value<'a>) -> &mut Self {
        if !(2..=128).contains(&n) {
            self.not_settable.get_or_insert(n);
            return self;
        }
        self.values[n as usize] = MaybeUninit::new(value);
        let (w, m) = bit(n);
        self.present[w] |= m;
        let len = match value {
            Value::Text(t) => t.len(),
            Value::Packed { bytes, digits } => bytes.len().max(digits as usize),
        };
        // Wrapping cannot happen in practice, and would only send `encode` down its general path.
        self.room = self.room.wrapping_add(len);
        self
    }

    /// Copies field `n` from `msg` in its wire form, if present there.
    #[inline]
    pub fn copy_from(&mut self, msg: &'a Message, n: u8) -> &mut Self {
        if let Some(f) = msg.field(n) {
            let value = if f.is_packed() {
                Value::Packed {
                    bytes: f.wire(),
                    digits: f.len() as u16,
                }
            } else {
                Value::Text(f.wire())
            };
            self.set_value(n, value);
        }
        self
    }

    /// Copies each of `fields` that `msg` carries.
    pub fn copy_fields(&mut self, msg: &'a Message, fields: &[u8]) -> &mut Self {
        for &n in fields {
            self.copy_from(msg, n);
        }
        self
    }

    /// Removes field `n` if set.
    pub fn remove(&mut self, n: u8) -> &mut Self {
        if (2..=128).contains(&n) {
            // The value stays behind, unreachable once its bit is clear.
            let (w, m) = bit(n);
            self.present[w] &= !m;
        }
        self
    }

    /// The value set for field `n`.
    pub fn get(&self, n: u8) -> Option<Value<'a>> {
        self.has(n).then(|| self.value(n as usize))
    }

    pub fn has(&self, n: u8) -> bool {
        if !(2..=128).contains(&n) {
            return false;
        }
        let (w, m) = bit(n);
        self.present[w] & m != 0
    }

    /// The value of field `n`, which must be set.
    #[inline(always)]
    fn value(&self, n: usize) -> Value<'a> {
        debug_assert!(self.has(n as u8));
        // SAFETY: callers only ask for fields whose bit is set in `present`, and a bit is only
        // ever set by `set_value`, right after it writes `values[n]`. `remove` clears bits but
        // never sets them, so a set bit always has an initialised value behind it.
        unsafe { self.values[n].assume_init() }
    }

    /// Appends the encoded message to `dst`. On error `dst` is unchanged.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), EncodeError> {
        if self.dialect.plain_ascii()
            && self.not_settable.is_none()
            && self.room <= ROOM_MAX
            && self.encode_ascii(dst)
        {
            return Ok(());
        }
        self.encode_general(dst)
    }

    /// The encoder for any dialect and any builder, naming the first problem.
    #[inline(never)]
    fn encode_general(&self, dst: &mut BytesMut) -> Result<(), EncodeError> {
        let start = dst.len();
        let d = self.dialect;
        let r = match d.descs() {
            Some(t) => self.encode_with::<false>(dst, |n| t[n]),
            None => self.encode_with::<false>(dst, |n| Desc::of(&d.fields[n])),
        };
        if r.is_err() {
            dst.truncate(start);
        }
        r
    }

    /// The fast path for `iso87-ascii` and `iso87-ascii-hexbitmap`: writes the message when
    /// every field passes (true), or leaves `dst` as it was and returns false at the first sign
    /// of any problem, for [`encode_general`](Self::encode_general) to name. Same rules as
    /// `encode_general`.
    #[inline(never)]
    fn encode_ascii(&self, dst: &mut BytesMut) -> bool {
        if !all_digits(&self.mti) {
            return false;
        }
        let [low, high] = self.present;
        // Room for the MTI, both bitmaps (hex at worst), a prefix for every field, and the values.
        dst.reserve(4 + 32 + 3 * (low.count_ones() + high.count_ones()) as usize + self.room);
        let out = dst.spare_capacity_mut();
        put(out, 0, self.mti);
        let mut cur = 4;
        cur = write_bitmap(
            self.dialect.bitmap,
            (low | (high != 0) as u64).reverse_bits(),
            out,
            cur,
        );
        if high != 0 {
            cur = write_bitmap(self.dialect.bitmap, high.reverse_bits(), out, cur);
        }
        let (first, second) = self.values.split_at(65);
        let Some(cur) = fields_ascii(low, &first[1..], &ASCII_BY_BIT[0], out, cur)
            .and_then(|cur| fields_ascii(high, second, &ASCII_BY_BIT[1], out, cur))
        else {
            return false;
        };
        if cur > u16::MAX as usize {
            return false;
        }
        // SAFETY: `put`, `write_bitmap` and `fields_ascii` wrote every byte of `out[..cur]`, in
        // order and with no gaps, and `out` is the spare capacity of `dst`.
        unsafe { dst.set_len(dst.len() + cur) };
        true
    }

    /// Encodes into a fresh buffer.
    pub fn to_bytes(&self) -> Result<Bytes, EncodeError> {
        let mut b = BytesMut::with_capacity(256);
        self.encode(&mut b)?;
        Ok(b.freeze())
    }

    /// The encoder proper: one pass that validates each field and writes it straight into the
    /// spare capacity of `dst`. `ASCII` promises that no field of the dialect has a BCD prefix or
    /// BCD content (see [`Dialect::plain_ascii`]). On error `dst` may hold part of the message
    /// past its original length; [`encode`](Self::encode) truncates it.
    #[inline(always)]
    fn encode_with<const ASCII: bool>(
        &self,
        dst: &mut BytesMut,
        desc: impl Fn(usize) -> Desc,
    ) -> Result<(), EncodeError> {
        if let Some(field) = self.not_settable {
            return Err(EncodeError::NotSettable { field });
        }
        if !all_digits(&self.mti) {
            return Err(EncodeError::BadMti);
        }
        let start = dst.len();
        let [low, secondary] = self.present;
        // The bitmaps as on the wire: bit 63 is the first field of the word.
        let primary = (low | (secondary != 0) as u64).reverse_bits();

        // Invariant from here on: `buf` is the spare capacity of `dst`, and its first `cur` bytes
        // are written. Every write below writes exactly the bytes it then adds to `cur`.
        dst.reserve(256);
        let mut buf = dst.spare_capacity_mut();
        // MTI and bitmaps take at most 36 bytes, well within the 256 reserved.
        let mut cur = match self.dialect.mti {
            Encoding::Bcd => {
                let d = self.mti.map(|c| c - b'0');
                put(buf, 0, [d[0] << 4 | d[1], d[2] << 4 | d[3]]);
                2
            }
            _ => {
                put(buf, 0, self.mti);
                4
            }
        };
        cur = write_bitmap(self.dialect.bitmap, primary, buf, cur);
        if secondary != 0 {
            cur = write_bitmap(self.dialect.bitmap, secondary.reverse_bits(), buf, cur);
        }

        // Fields in ascending order: 2-64 from the first word, then 65-128.
        for (word, first) in [(low, 1), (secondary, 65)] {
            let mut bits = word;
            while bits != 0 {
                let n = bits.trailing_zeros() as usize + first;
                bits &= bits - 1;
                let d = desc(n);
                let value = self.value(n);
                // At most 3 bytes of prefix, and never more content bytes than the value's
                // length or digit count.
                let need = 3 + match value {
                    Value::Text(t) => t.len(),
                    Value::Packed { bytes, digits } => bytes.len().max(digits as usize),
                };
                if buf.len() - cur < need {
                    // SAFETY: by the invariant, the first `cur` bytes of the spare capacity are
                    // written.
                    buf = unsafe { grow(dst, cur, need) };
                    cur = 0;
                }
                cur = match value {
                    Value::Text(t) if ASCII || d.data != Encoding::Bcd => {
                        write_text::<ASCII>(n, d, t, buf, cur)?
                    }
                    _ => write_other(n, d, value, buf, cur)?,
                };
            }
        }
        // SAFETY: by the invariant, the first `cur` bytes of the spare capacity are written.
        unsafe { dst.set_len(dst.len() + cur) };
        if dst.len() - start > u16::MAX as usize {
            return Err(EncodeError::MessageTooLarge);
        }
        Ok(())
    }
}

/// The most value bytes [`MessageBuilder::encode_ascii`] reserves room for; builders past it
/// (which cannot make a valid message) take the general path.
const ROOM_MAX: usize = 128 * 1024;

/// Writes the fields whose bits are set in `bits` (bit `i` is the field of `values[i]` and
/// `descs[i]`) at `out[cur..]`, checking each; returns where the last one ends, or `None` at the
/// first problem (with some bytes written, which the caller does not count). Every byte of
/// `out[cur..end]` is written, in order.
#[inline(always)]
fn fields_ascii(
    mut bits: u64,
    values: &[MaybeUninit<Value<'_>>],
    descs: &[Desc; 64],
    out: &mut [MaybeUninit<u8>],
    mut cur: usize,
) -> Option<usize> {
    let values: &[MaybeUninit<Value<'_>>; 64] = values.try_into().ok()?;
    while bits != 0 {
        let i = bits.trailing_zeros() as usize & 63;
        bits &= bits - 1;
        // SAFETY: the bit of this field is set, and a bit is only ever set by `set_value`, right
        // after it writes the value (see `MessageBuilder::value`).
        let Value::Text(t) = (unsafe { values[i].assume_init() }) else {
            return None;
        };
        let d = descs[i];
        let len = t.len();
        if d.prefix_len == 0 {
            if len != d.max as usize {
                return None;
            }
        } else {
            if len > d.max as usize {
                return None;
            }
            // The maximum of an LL field is at most 99, of an LLL field at most 999.
            let digit = |v: usize| MaybeUninit::new(b'0' + v as u8);
            if d.prefix_len == 2 {
                out.get_mut(cur..cur + 2)?
                    .copy_from_slice(&[digit(len / 10), digit(len % 10)]);
            } else {
                out.get_mut(cur..cur + 3)?.copy_from_slice(&[
                    digit(len / 100),
                    digit(len / 10 % 10),
                    digit(len % 10),
                ]);
            }
            cur += d.prefix_len as usize;
        }
        let dst = out.get_mut(cur..cur + len)?;
        let ok = match copy_quick(d.check, t, dst) {
            Some(ok) => ok,
            None => copy_checked_outline(d.check, t, dst),
        };
        if !ok {
            return None;
        }
        cur += len;
    }
    Some(cur)
}

/// Commits the first `written` bytes of the spare capacity of `dst` and reserves room for at
/// least `need` more; returns the new spare capacity.
///
/// # Safety
///
/// The first `written` bytes of `dst.spare_capacity_mut()` must be initialised.
#[cold]
#[inline(never)]
unsafe fn grow(dst: &mut BytesMut, written: usize, need: usize) -> &mut [MaybeUninit<u8>] {
    // SAFETY: the caller guarantees those bytes are initialised, and they are within capacity.
    unsafe { dst.set_len(dst.len() + written) };
    dst.reserve(need.max(256));
    dst.spare_capacity_mut()
}

/// Writes a bitmap at `buf[at..]`; returns the offset after it.
#[inline(always)]
fn write_bitmap(enc: BitmapEncoding, v: u64, buf: &mut [MaybeUninit<u8>], at: usize) -> usize {
    match enc {
        BitmapEncoding::Binary => {
            put(buf, at, v.to_be_bytes());
            at + 8
        }
        BitmapEncoding::Hex => {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            let mut out = [0u8; 16];
            for (i, o) in out.iter_mut().enumerate() {
                *o = HEX[((v >> (60 - 4 * i)) & 0xf) as usize];
            }
            put(buf, at, out);
            at + 16
        }
    }
}

/// The error for a value of `len` characters that does not fit field `n`.
#[cold]
#[inline(never)]
fn length_error(n: usize, d: Desc, len: usize) -> EncodeError {
    let field = n as u8;
    if !d.defined() {
        EncodeError::UndefinedField { field }
    } else if d.prefix_len == 0 {
        EncodeError::WrongLength {
            field,
            len,
            expected: d.max,
        }
    } else {
        EncodeError::TooLong {
            field,
            len,
            max: d.max,
        }
    }
}

/// The error for a value of field `n` that fails the field's check.
#[cold]
#[inline(never)]
fn check_error(n: usize, d: Desc) -> EncodeError {
    let field = n as u8;
    if !d.defined() {
        EncodeError::UndefinedField { field }
    } else {
        EncodeError::BadContent {
            field,
            class: d.class,
        }
    }
}

/// Validates characters `t` for field `n` (not packed BCD on the wire) and writes prefix and
/// content at `buf[at..]`; returns the offset after them. On error some bytes may be written; the
/// caller discards them.
#[inline(always)]
fn write_text<const ASCII: bool>(
    n: usize,
    d: Desc,
    t: &[u8],
    buf: &mut [MaybeUninit<u8>],
    mut at: usize,
) -> Result<usize, EncodeError> {
    let len = t.len();
    if d.prefix_len == 0 {
        if len != d.max as usize {
            return Err(length_error(n, d, len));
        }
    } else {
        if len > d.max as usize {
            return Err(length_error(n, d, len));
        }
        at = write_prefix::<ASCII>(d, len, buf, at);
    }
    // Checks and copies in one pass; `Undefined` always fails.
    if !copy_checked(d.check, t, &mut buf[at..]) {
        return Err(check_error(n, d));
    }
    Ok(at + len)
}

/// The rarer cases: packing digits into BCD and relaying packed values. Same contract as
/// [`write_text`].
#[inline(never)]
fn write_other(
    n: usize,
    d: Desc,
    value: Value<'_>,
    buf: &mut [MaybeUninit<u8>],
    mut at: usize,
) -> Result<usize, EncodeError> {
    let field = n as u8;
    if !d.defined() {
        return Err(EncodeError::UndefinedField { field });
    }
    let len = match value {
        Value::Text(t) => t.len(),
        Value::Packed { digits, .. } => digits as usize,
    };
    if (d.prefix_len == 0 && len != d.max as usize) || len > d.max as usize {
        return Err(length_error(n, d, len));
    }
    match value {
        Value::Text(t) => {
            if !class_ok(d.class, t) {
                return Err(check_error(n, d));
            }
        }
        Value::Packed { bytes, digits } => {
            if d.class != ContentClass::N {
                return Err(EncodeError::PackedNotNumeric { field });
            }
            if bytes.len() != (digits as usize).div_ceil(2)
                || check_bcd(bytes, digits as usize, field, d.class).is_some()
            {
                return Err(check_error(n, d));
            }
        }
    }
    at = write_prefix::<false>(d, len, buf, at);
    let mut byte = |b: u8| {
        buf[at] = MaybeUninit::new(b);
        at += 1;
    };
    match (d.data, value) {
        (Encoding::Bcd, Value::Text(t)) => {
            // Right-justified: an odd count gets a zero nibble in front.
            let mut rest = t;
            if t.len() % 2 == 1 {
                byte(t[0] - b'0');
                rest = &t[1..];
            }
            for pair in rest.chunks_exact(2) {
                byte((pair[0] - b'0') << 4 | (pair[1] - b'0'));
            }
        }
        (Encoding::Bcd, Value::Packed { bytes, .. }) => bytes.iter().for_each(|&b| byte(b)),
        (_, Value::Text(t)) => t.iter().for_each(|&b| byte(b)),
        (_, Value::Packed { bytes, digits }) => {
            let skip = bytes.len() * 2 - digits as usize;
            for i in skip..bytes.len() * 2 {
                let b = bytes[i / 2];
                let nib = if i % 2 == 0 { b >> 4 } else { b & 0x0f };
                byte(b'0' + nib);
            }
        }
    }
    Ok(at)
}

/// Writes the length prefix of a variable field holding `len` characters at `buf[at..]`; returns
/// the offset after it. `ASCII` promises an ASCII prefix within the field's maximum (so at most
/// 99 for LL, 999 for LLL).
#[inline(always)]
fn write_prefix<const ASCII: bool>(
    d: Desc,
    len: usize,
    buf: &mut [MaybeUninit<u8>],
    at: usize,
) -> usize {
    let digit = |v: usize| b'0' + v as u8;
    if ASCII {
        if d.prefix_len == 2 {
            put(buf, at, [digit(len / 10), digit(len % 10)]);
        } else {
            put(
                buf,
                at,
                [digit(len / 100), digit(len / 10 % 10), digit(len % 10)],
            );
        }
        return at + d.prefix_len as usize;
    }
    match (d.prefix_len, d.prefix_bcd) {
        (0, _) => at,
        (2, false) => {
            put(buf, at, [digit(len / 10 % 10), digit(len % 10)]);
            at + 2
        }
        (3, false) => {
            put(
                buf,
                at,
                [digit(len / 100), digit(len / 10 % 10), digit(len % 10)],
            );
            at + 3
        }
        (_, _) => {
            let rest = len % 100;
            let low = (((rest / 10) << 4) | (rest % 10)) as u8;
            if d.prefix_len == 2 {
                put(buf, at, [(len / 100) as u8, low]);
                at + 2
            } else {
                put(buf, at, [low]);
                at + 1
            }
        }
    }
}
