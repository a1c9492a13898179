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
//! One pass validates each field and copies it straight into the buffer's spare capacity, eight
//! bytes at a time, checking the content class on the same words it copies. The ASCII dialects
//! take a fast path that only tells a clean message from anything else; anything else goes to the
//! general encoder, which names the first problem. Both apply the same rules.

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};

use super::decode::{Message, check_bcd};
use super::dialect::{ASCII_BY_BIT, BitmapEncoding, Desc, Dialect, Encoding};
use super::error::EncodeError;
use super::spec::{
    Check, ContentClass, all_digits, class_ok, copy_checked, copy_checked_outline, copy_quick, put,
};

/// A field value handed to the builder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// Characters (ASCII digits for `n`), or raw bytes for `b`.
    Text(&'a [u8]),
    /// Packed BCD, right-justified, holding `digits` digits.
    Packed { bytes: &'a [u8], digits: u16 },
}

/// Builds one message. Cheap to create: nothing per field is initialised until it is set, and
/// each `set` is a few plain stores.
pub struct MessageBuilder<'a> {
    dialect: &'static Dialect,
    mti: [u8; 4],
    not_settable: Option<u8>,
    /// The fields set: field `n` is bit `n - 1` of `low` (fields 1-64) or bit `n - 65` of `high`
    /// (fields 65-128). Words at fixed places, so that the compiler can keep them in registers
    /// across a run of `set` calls.
    low: u64,
    high: u64,
    /// `kind[n]` is [`TEXT`] or [`PACKED`] when field `n` is set (initialised exactly then).
    kind: [MaybeUninit<u8>; 129],
    /// `bytes[n]`: the characters, or the packed BCD bytes, of field `n`. Initialised exactly when
    /// field `n` is set; left uninitialised otherwise, which saves writing 2 KB per builder.
    bytes: [MaybeUninit<&'a [u8]>; 129],
    /// `digits[n]`: the digit count of field `n` when it is `PACKED` (initialised exactly then).
    digits: [MaybeUninit<u16>; 129],
}

const TEXT: u8 = 1;
const PACKED: u8 = 2;

/// The bit of field `n` (1–128) in its word, `low` or `high`.
#[inline(always)]
fn bit(n: usize) -> u64 {
    1 << ((n - 1) & 63)
}

impl<'a> MessageBuilder<'a> {
    /// A message of type `mti` (four ASCII digits) in `dialect`.
    #[inline]
    pub fn new(dialect: &'static Dialect, mti: [u8; 4]) -> Self {
        MessageBuilder {
            dialect,
            mti,
            not_settable: None,
            low: 0,
            high: 0,
            kind: [const { MaybeUninit::uninit() }; 129],
            bytes: [const { MaybeUninit::uninit() }; 129],
            digits: [const { MaybeUninit::uninit() }; 129],
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
        let n = n as usize;
        match value {
            Value::Text(t) => {
                self.bytes[n] = MaybeUninit::new(t);
                self.kind[n] = MaybeUninit::new(TEXT);
            }
            Value::Packed { bytes, digits } => {
                self.bytes[n] = MaybeUninit::new(bytes);
                self.digits[n] = MaybeUninit::new(digits);
                self.kind[n] = MaybeUninit::new(PACKED);
            }
        }
        if n <= 64 {
            self.low |= bit(n);
        } else {
            self.high |= bit(n);
        }
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
            if n <= 64 {
                self.low &= !bit(n as usize);
            } else {
                self.high &= !bit(n as usize);
            }
        }
        self
    }

    /// The value set for field `n`.
    pub fn get(&self, n: u8) -> Option<Value<'a>> {
        self.has(n).then(|| self.value(n as usize))
    }

    /// True when some field above 64 is set, so the message will carry a secondary bitmap.
    pub fn has_secondary_bitmap(&self) -> bool {
        self.high != 0
    }

    pub fn has(&self, n: u8) -> bool {
        if !(2..=128).contains(&n) {
            return false;
        }
        (if n <= 64 { self.low } else { self.high }) & bit(n as usize) != 0
    }

    /// The value of field `n`, which must be set.
    #[inline(always)]
    fn value(&self, n: usize) -> Value<'a> {
        debug_assert!(self.has(n as u8));
        // SAFETY: callers only ask for fields that are set, that is whose bit is set in
        // `present`. Only `set_value` sets a bit, right after it writes `kind[n]` and `bytes[n]`
        // (and, for `PACKED`, `digits[n]`); `remove` only ever clears bits.
        unsafe {
            let bytes = self.bytes[n].assume_init();
            if self.kind[n].assume_init() == TEXT {
                Value::Text(bytes)
            } else {
                Value::Packed {
                    bytes,
                    digits: self.digits[n].assume_init(),
                }
            }
        }
    }

    /// The fields set, as two words: field `n` is bit `(n - 1) % 64` of word `(n - 1) / 64`, so
    /// a walk from the lowest bit up meets the fields in wire order.
    #[inline(always)]
    fn present(&self) -> [u64; 2] {
        [self.low, self.high]
    }

    /// Appends the encoded message to `dst`. On error `dst` is unchanged.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), EncodeError> {
        if self.dialect.plain_ascii() && self.not_settable.is_none() && self.encode_ascii(dst) {
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
            Some(t) => self.encode_with(dst, |n| t[n]),
            None => self.encode_with(dst, |n| Desc::of(&d.fields[n])),
        };
        if r.is_err() {
            dst.truncate(start);
        }
        r
    }

    /// Encodes into a fresh buffer.
    pub fn to_bytes(&self) -> Result<Bytes, EncodeError> {
        let mut b = BytesMut::with_capacity(256);
        self.encode(&mut b)?;
        Ok(b.freeze())
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
        let present = self.present();
        // Usually the buffer has room to spare; if not, reserve exactly and try again.
        dst.reserve(256);
        match self.write_ascii(present, dst.spare_capacity_mut()) {
            Ok(len) => {
                // SAFETY: `write_ascii` wrote every byte of the first `len` bytes of the spare
                // capacity of `dst`.
                unsafe { dst.set_len(dst.len() + len) };
                return true;
            }
            Err(Stop::Invalid) => return false,
            Err(Stop::Room) => {}
        }
        dst.reserve(self.ascii_len(present));
        match self.write_ascii(present, dst.spare_capacity_mut()) {
            Ok(len) => {
                // SAFETY: as above.
                unsafe { dst.set_len(dst.len() + len) };
                true
            }
            Err(_) => false,
        }
    }

    /// At least the length of the message in an ASCII dialect (prefixes counted at 3 bytes).
    #[cold]
    fn ascii_len(&self, present: [u64; 2]) -> usize {
        let mut len = 4 + 32;
        for (w, word) in present.into_iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                let n = 64 * w + bits.trailing_zeros() as usize + 1;
                bits &= bits - 1;
                // SAFETY: field `n` is set (its bit is).
                len += 3 + unsafe { self.bytes[n].assume_init() }.len();
            }
        }
        len
    }

    /// Writes the whole message (ASCII dialects) at the start of `out`: `Ok` with its length when
    /// every field passes and fits, having written every one of those bytes, in order.
    #[inline(always)]
    fn write_ascii(&self, present: [u64; 2], out: &mut [MaybeUninit<u8>]) -> Result<usize, Stop> {
        let [low, high] = present;
        let mut cur = 0;
        let head = out.get_mut(..36).ok_or(Stop::Room)?;
        put(head, 0, self.mti);
        cur = write_bitmap(
            self.dialect.bitmap,
            (low | (high != 0) as u64).reverse_bits(),
            head,
            cur + 4,
        );
        if high != 0 {
            cur = write_bitmap(self.dialect.bitmap, high.reverse_bits(), head, cur);
        }
        let (kind, bytes) = (&self.kind, &self.bytes);
        let total = out.len();
        let mut rest = &mut out[cur..];
        rest = fields_ascii(low, &kind[1..65], &bytes[1..65], &ASCII_BY_BIT[0], rest)?;
        if high != 0 {
            rest = fields_ascii(
                high,
                &kind[65..129],
                &bytes[65..129],
                &ASCII_BY_BIT[1],
                rest,
            )?;
        }
        let len = total - rest.len();
        if len > u16::MAX as usize {
            return Err(Stop::Invalid);
        }
        Ok(len)
    }
    /// The general encoder: one pass that validates each field and writes it straight into the
    /// spare capacity of `dst`. On error `dst` may hold part of the message past its original
    /// length; [`encode_general`](Self::encode_general) truncates it.
    #[inline(always)]
    fn encode_with(
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
        let [low, secondary] = self.present();
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
                    Value::Text(t) if d.data != Encoding::Bcd => write_text(n, d, t, buf, cur)?,
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

/// Why [`MessageBuilder::write_ascii`] stopped.
enum Stop {
    /// A field does not pass (or the builder holds something the fast path leaves alone).
    Invalid,
    /// The output has no room left.
    Room,
}

/// Writes the fields of one bitmap word (bit `i` is the field of `kind[i]`, `bytes[i]` and
/// `descs[i]`) at the front of `out`, checking each; returns the rest of `out`. Every byte of
/// `out` before the returned rest is written, in order.
#[inline(always)]
fn fields_ascii<'o>(
    mut bits: u64,
    kind: &[MaybeUninit<u8>],
    bytes: &[MaybeUninit<&[u8]>],
    descs: &[Desc; 64],
    mut out: &'o mut [MaybeUninit<u8>],
) -> Result<&'o mut [MaybeUninit<u8>], Stop> {
    let kind: &[MaybeUninit<u8>; 64] = kind.try_into().map_err(|_| Stop::Invalid)?;
    let bytes: &[MaybeUninit<&[u8]>; 64] = bytes.try_into().map_err(|_| Stop::Invalid)?;
    while bits != 0 {
        let i = bits.trailing_zeros() as usize & 63;
        bits &= bits - 1;
        // SAFETY: the field is set (its bit is), so `set_value` wrote its kind and bytes (see
        // `MessageBuilder::value`).
        if unsafe { kind[i].assume_init() } != TEXT {
            return Err(Stop::Invalid);
        }
        // SAFETY: as above.
        let t = unsafe { bytes[i].assume_init() };
        let d = descs[i];
        let len = t.len();
        if d.prefix_len == 0 {
            if len != d.max as usize {
                return Err(Stop::Invalid);
            }
        } else {
            if len > d.max as usize {
                return Err(Stop::Invalid);
            }
            // The maximum of an LL field is at most 99, of an LLL field at most 999.
            let digit = |v: usize| MaybeUninit::new(b'0' + v as u8);
            let (prefix, rest) = out
                .split_at_mut_checked(d.prefix_len as usize)
                .ok_or(Stop::Room)?;
            if let [a, b] = prefix {
                [*a, *b] = [digit(len / 10), digit(len % 10)];
            } else if let [a, b, c] = prefix {
                [*a, *b, *c] = [digit(len / 100), digit(len / 10 % 10), digit(len % 10)];
            }
            out = rest;
        }
        let (dst, rest) = out.split_at_mut_checked(len).ok_or(Stop::Room)?;
        // Numeric fields (most of every message) on a branch of their own, the rest through the
        // class dispatch (an indirect jump, which mispredicts more).
        let quick = if d.numeric {
            copy_quick(Check::N, t, dst)
        } else {
            copy_quick(d.check, t, dst)
        };
        let ok = match quick {
            Some(ok) => ok,
            None => copy_checked_outline(d.check, t, dst),
        };
        if !ok {
            return Err(Stop::Invalid);
        }
        out = rest;
    }
    Ok(out)
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
fn write_text(
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
        at = write_prefix(d, len, buf, at);
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
    at = write_prefix(d, len, buf, at);
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
/// the offset after it.
#[inline(always)]
fn write_prefix(d: Desc, len: usize, buf: &mut [MaybeUninit<u8>], at: usize) -> usize {
    let digit = |v: usize| b'0' + v as u8;
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
