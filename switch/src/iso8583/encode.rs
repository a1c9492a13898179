//! Encoding. A [`MessageBuilder`] takes fields in any order, borrows their values, and writes the
//! message into a `BytesMut` in one pass; the codec derives the primary and secondary bitmaps, so
//! callers never set bit 1.
//!
//! Values are given as characters (ASCII digits for numerics, raw bytes for `b`), whatever the
//! dialect. A value copied from a decoded message keeps its wire form ([`Value::Packed`]), so a
//! relayed field is written back byte for byte, and a BCD field relayed to an ASCII peer is
//! unpacked on the way. Every value is validated against the dialect before it is written; on
//! error the output buffer is left as it was.

use arrayvec::ArrayVec;
use bytes::{BufMut, Bytes, BytesMut};

use super::decode::{Message, check_bcd};
use super::dialect::{BitmapEncoding, Dialect, Encoding};
use super::error::EncodeError;
use super::spec::{ContentClass, LengthKind, class_ok};

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
    /// Bit 127 is field 1, as in [`Message::bitmap`].
    present: u128,
    /// `slot[n]` is 1 + the index of field `n` in `values`, or 0.
    slot: [u8; 129],
    values: ArrayVec<Value<'a>, 128>,
    not_settable: Option<u8>,
}

impl<'a> MessageBuilder<'a> {
    /// A message of type `mti` (four ASCII digits) in `dialect`.
    pub fn new(dialect: &'static Dialect, mti: [u8; 4]) -> Self {
        MessageBuilder {
            dialect,
            mti,
            present: 0,
            slot: [0; 129],
            values: ArrayVec::new(),
            not_settable: None,
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
        match self.slot[n as usize] {
            0 => {
                // 127 fields at most (2..=128), so the ArrayVec of 128 cannot overflow.
                self.values.push(value);
                self.slot[n as usize] = self.values.len() as u8;
                self.present |= 1u128 << (128 - n as u32);
            }
            i => self.values[i as usize - 1] = value,
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
        if (2..=128).contains(&n) && self.slot[n as usize] != 0 {
            // Leave the value in place; it is unreachable once its bit and slot are cleared.
            self.slot[n as usize] = 0;
            self.present &= !(1u128 << (128 - n as u32));
        }
        self
    }

    /// The value set for field `n`.
    pub fn get(&self, n: u8) -> Option<Value<'a>> {
        match self.slot.get(n as usize) {
            Some(&i) if i != 0 => Some(self.values[i as usize - 1]),
            _ => None,
        }
    }

    pub fn has(&self, n: u8) -> bool {
        self.get(n).is_some()
    }

    /// Appends the encoded message to `dst`. On error `dst` is unchanged.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), EncodeError> {
        let start = dst.len();
        let r = self.encode_inner(dst);
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

    fn encode_inner(&self, dst: &mut BytesMut) -> Result<(), EncodeError> {
        if let Some(field) = self.not_settable {
            return Err(EncodeError::NotSettable { field });
        }
        let start = dst.len();
        dst.reserve(256);
        if !self.mti.iter().all(u8::is_ascii_digit) {
            return Err(EncodeError::BadMti);
        }
        match self.dialect.mti {
            Encoding::Bcd => {
                let d = self.mti.map(|c| c - b'0');
                dst.put_u8(d[0] << 4 | d[1]);
                dst.put_u8(d[2] << 4 | d[3]);
            }
            _ => dst.extend_from_slice(&self.mti),
        }

        let secondary = self.present as u64;
        let mut primary = (self.present >> 64) as u64;
        if secondary != 0 {
            primary |= 1 << 63;
        }
        write_bitmap(self.dialect.bitmap, primary, dst);
        if secondary != 0 {
            write_bitmap(self.dialect.bitmap, secondary, dst);
        }

        let mut bits = self.present;
        while bits != 0 {
            let lz = bits.leading_zeros();
            bits &= !(1u128 << (127 - lz));
            let n = (lz + 1) as u8;
            let value = self.values[self.slot[n as usize] as usize - 1];
            self.write_field(n, value, dst)?;
        }
        if dst.len() - start > u16::MAX as usize {
            return Err(EncodeError::MessageTooLarge);
        }
        Ok(())
    }

    #[inline]
    fn write_field(&self, n: u8, value: Value<'_>, dst: &mut BytesMut) -> Result<(), EncodeError> {
        let spec = self
            .dialect
            .field(n)
            .ok_or(EncodeError::UndefinedField { field: n })?;
        let def = &spec.def;
        let len = match value {
            Value::Text(t) => t.len(),
            Value::Packed { digits, .. } => digits as usize,
        };
        match def.length {
            LengthKind::Fixed if len != def.max as usize => {
                return Err(EncodeError::WrongLength {
                    field: n,
                    len,
                    expected: def.max,
                });
            }
            _ if len > def.max as usize => {
                return Err(EncodeError::TooLong {
                    field: n,
                    len,
                    max: def.max,
                });
            }
            _ => {}
        }
        match value {
            Value::Text(t) => {
                if !class_ok(def.class, t) {
                    return Err(EncodeError::BadContent {
                        field: n,
                        class: def.class,
                    });
                }
            }
            Value::Packed { bytes, digits } => {
                if def.class != ContentClass::N {
                    return Err(EncodeError::PackedNotNumeric { field: n });
                }
                if bytes.len() != (digits as usize).div_ceil(2)
                    || check_bcd(bytes, digits as usize, n, def.class).is_some()
                {
                    return Err(EncodeError::BadContent {
                        field: n,
                        class: def.class,
                    });
                }
            }
        }

        if def.length != LengthKind::Fixed {
            let digits = if def.length == LengthKind::LlVar {
                2
            } else {
                3
            };
            write_prefix(spec.prefix, digits, len, dst);
        }
        match (spec.data, value) {
            (Encoding::Bcd, Value::Text(t)) => pack_bcd(t, dst),
            (Encoding::Bcd, Value::Packed { bytes, .. }) => dst.extend_from_slice(bytes),
            (_, Value::Text(t)) => dst.extend_from_slice(t),
            (_, Value::Packed { bytes, digits }) => {
                let skip = bytes.len() * 2 - digits as usize;
                for i in skip..bytes.len() * 2 {
                    let b = bytes[i / 2];
                    let nib = if i % 2 == 0 { b >> 4 } else { b & 0x0f };
                    dst.put_u8(b'0' + nib);
                }
            }
        }
        Ok(())
    }
}

#[inline]
fn write_bitmap(enc: BitmapEncoding, v: u64, dst: &mut BytesMut) {
    match enc {
        BitmapEncoding::Binary => dst.put_u64(v),
        BitmapEncoding::Hex => {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            let mut out = [0u8; 16];
            for (i, o) in out.iter_mut().enumerate() {
                *o = HEX[((v >> (60 - 4 * i)) & 0xf) as usize];
            }
            dst.extend_from_slice(&out);
        }
    }
}

#[inline]
fn write_prefix(enc: Encoding, digits: usize, len: usize, dst: &mut BytesMut) {
    match enc {
        Encoding::Bcd => {
            if digits == 3 {
                dst.put_u8((len / 100) as u8);
            }
            let rest = len % 100;
            dst.put_u8((((rest / 10) << 4) | (rest % 10)) as u8);
        }
        _ => {
            if digits == 3 {
                dst.put_u8(b'0' + (len / 100) as u8);
            }
            dst.put_u8(b'0' + ((len / 10) % 10) as u8);
            dst.put_u8(b'0' + (len % 10) as u8);
        }
    }
}

/// Packs ASCII digits right-justified: an odd count gets a zero nibble in front.
#[inline]
fn pack_bcd(digits: &[u8], dst: &mut BytesMut) {
    let mut rest = digits;
    if digits.len() % 2 == 1 {
        dst.put_u8(digits[0] - b'0');
        rest = &digits[1..];
    }
    for pair in rest.chunks_exact(2) {
        dst.put_u8((pair[0] - b'0') << 4 | (pair[1] - b'0'));
    }
}
