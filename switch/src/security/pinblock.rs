//! ISO 9564-1 PIN blocks: format 0 (8 bytes, enciphered with double-length TDES) and format 4
//! (16 bytes, enciphered with AES-128).
//!
//! Owns the layouts, their validation and the format 4 encipherment; also the terminal-side
//! helpers that simulators and tests use to play a PIN pad ([`iso0_clear_block`],
//! [`encrypt_iso0`], [`encrypt_iso4`]). It leaves key storage and translation between zones to
//! [`super::hsm`], and PIN *verification* (the Visa PVV) to `issuing::pin`.
//!
//! Format 0: the PIN field `0 L P…P F…F` (16 nibbles) XOR the PAN field `0000` + the 12 rightmost
//! PAN digits excluding the check digit.
//!
//! Format 4: the plain PIN field is `4 L P…P A…A` (16 nibbles) followed by 8 random bytes; the PAN
//! field is `M` (PAN length minus 12) followed by the PAN, zero-padded to 32 nibbles. The
//! enciphered block is `E_K(E_K(PIN field) XOR PAN field)`. The PAN is bound in without being
//! XORed into the PIN digits themselves, and the random half makes equal PINs encipher
//! differently.
//!
//! Validation failures all give the same [`PinBlockError::Malformed`] whatever the cause (format
//! nibble, length, digit or fill): telling them apart would turn the security module into an
//! oracle that leaks PIN digits to whoever can submit altered blocks.

use core::fmt;

use zeroize::Zeroizing;

use super::blocks::{AES_BLOCK, DES_BLOCK, aes_decrypt, aes_encrypt, tdes_encrypt, xor_into};
use crate::domain::Pan;

/// Shortest and longest PIN ISO 9564 allows.
pub const PIN_MIN: usize = 4;
pub const PIN_MAX: usize = 12;

/// Control nibble of format 0 and format 4.
const FORMAT_0: u8 = 0x0;
const FORMAT_4: u8 = 0x4;
/// Fill nibble after the PIN digits in format 0 and format 4.
const FILL_0: u8 = 0xF;
const FILL_4: u8 = 0xA;
/// PAN digits in the format 0 PAN field, and the PAN length format 4 counts `M` from.
const PAN_FIELD_DIGITS: usize = 12;

/// An enciphered PIN block as it travels between parties. The format follows the key: format 0
/// under TDES keys, format 4 under AES keys. `Debug` shows the format only, since even an
/// enciphered PIN block does not belong in a log.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum EncryptedPinBlock {
    /// ISO 9564 format 0 under a double-length TDES key (field 52 of ISO 8583:1987).
    Iso0([u8; DES_BLOCK]),
    /// ISO 9564 format 4 under an AES-128 key.
    Iso4([u8; AES_BLOCK]),
}

impl EncryptedPinBlock {
    /// An 8-byte block is format 0, a 16-byte block format 4; any other length is `None`.
    pub fn from_bytes(bytes: &[u8]) -> Option<EncryptedPinBlock> {
        if let Ok(b) = <[u8; DES_BLOCK]>::try_from(bytes) {
            Some(EncryptedPinBlock::Iso0(b))
        } else if let Ok(b) = <[u8; AES_BLOCK]>::try_from(bytes) {
            Some(EncryptedPinBlock::Iso4(b))
        } else {
            None
        }
    }

    /// The bytes to put on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            EncryptedPinBlock::Iso0(b) => b,
            EncryptedPinBlock::Iso4(b) => b,
        }
    }

    /// `"format 0"` or `"format 4"`, for errors.
    pub fn format_name(&self) -> &'static str {
        match self {
            EncryptedPinBlock::Iso0(_) => "format 0",
            EncryptedPinBlock::Iso4(_) => "format 4",
        }
    }
}

impl fmt::Debug for EncryptedPinBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncryptedPinBlock({}, ..)", self.format_name())
    }
}

/// Why a PIN block could not be built or read. Names no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PinBlockError {
    /// Building a block: the PIN is not 4-12 ASCII digits.
    #[error("PIN must be 4 to 12 digits")]
    BadPin,
    /// Reading a block: it does not decode to a well-formed PIN field (wrong key, wrong PAN or
    /// altered in transit; deliberately not saying which check failed).
    #[error("PIN block is not well formed")]
    Malformed,
}

/// Checks that `pin` is something a PIN block can carry: 4 to 12 ASCII digits (ISO 9564).
pub fn check_pin(pin: &str) -> Result<(), PinBlockError> {
    let bytes = pin.as_bytes();
    if (PIN_MIN..=PIN_MAX).contains(&bytes.len()) && bytes.iter().all(u8::is_ascii_digit) {
        Ok(())
    } else {
        Err(PinBlockError::BadPin)
    }
}

/// A PIN in clear inside the security module: digit values 0-9, wiped on drop, no `Debug`.
pub(crate) struct PinDigits {
    digits: Zeroizing<[u8; PIN_MAX]>,
    len: usize,
}

impl PinDigits {
    /// From 4-12 ASCII digits.
    pub(crate) fn from_ascii(pin: &str) -> Result<PinDigits, PinBlockError> {
        check_pin(pin)?;
        let bytes = pin.as_bytes();
        let mut digits = Zeroizing::new([0u8; PIN_MAX]);
        for (slot, b) in digits.iter_mut().zip(bytes) {
            *slot = b - b'0';
        }
        Ok(PinDigits {
            digits,
            len: bytes.len(),
        })
    }

    /// Reads `control L P…P fill…` from the first `nibbles.len()` nibbles of a PIN field.
    fn from_field(nibbles: &[u8], control: u8, fill: u8) -> Result<PinDigits, PinBlockError> {
        let (head, rest) = nibbles.split_at(2);
        let len = usize::from(head[1]);
        if head[0] != control || !(PIN_MIN..=PIN_MAX).contains(&len) {
            return Err(PinBlockError::Malformed);
        }
        let (pin, padding) = rest.split_at(len);
        // No short circuit between the digit and the fill checks: same error, similar time.
        let digits_ok = pin.iter().fold(true, |ok, &d| ok & (d < 10));
        let fill_ok = padding.iter().fold(true, |ok, &d| ok & (d == fill));
        if !(digits_ok & fill_ok) {
            return Err(PinBlockError::Malformed);
        }
        let mut digits = Zeroizing::new([0u8; PIN_MAX]);
        digits[..len].copy_from_slice(pin);
        Ok(PinDigits { digits, len })
    }

    /// The 16 nibbles `control L P…P fill…`.
    fn field_nibbles(&self, control: u8, fill: u8) -> Zeroizing<[u8; 16]> {
        let mut n = Zeroizing::new([fill; 16]);
        n[0] = control;
        // At most 12, checked at construction.
        n[1] = self.len as u8;
        n[2..2 + self.len].copy_from_slice(&self.digits[..self.len]);
        n
    }
}

/// Packs nibbles, high first, into `out` (two nibbles a byte).
fn pack(nibbles: &[u8], out: &mut [u8]) {
    for (byte, pair) in out.iter_mut().zip(nibbles.chunks(2)) {
        *byte = (pair[0] << 4) | pair.get(1).copied().unwrap_or(0);
    }
}

/// Unpacks `bytes` into nibbles, high first.
fn unpack<const N: usize>(bytes: &[u8]) -> Zeroizing<[u8; N]> {
    let mut n = Zeroizing::new([0u8; N]);
    for (pair, b) in n.chunks_mut(2).zip(bytes) {
        pair[0] = b >> 4;
        pair[1] = b & 0x0F;
    }
    n
}

/// A PAN digit as a nibble; anything else as 0 (callers pass validated PANs, vectors pass
/// digits).
fn digit(b: u8) -> u8 {
    b.wrapping_sub(b'0') % 10
}

/// Format 0 PAN field: `0000` and the 12 rightmost digits excluding the check digit,
/// left-padded with zeros for a PAN too short to have them.
fn iso0_pan_field(pan: &[u8]) -> [u8; DES_BLOCK] {
    let without_check = &pan[..pan.len().saturating_sub(1)];
    let used = &without_check[without_check.len().saturating_sub(PAN_FIELD_DIGITS)..];
    let mut nibbles = [0u8; 16];
    for (slot, &d) in nibbles[16 - used.len()..].iter_mut().zip(used) {
        *slot = digit(d);
    }
    let mut out = [0u8; DES_BLOCK];
    pack(&nibbles, &mut out);
    out
}

/// Format 4 PAN field: `M` (PAN length minus 12, 0 for a shorter PAN, which is left-padded with
/// zeros to 12 digits), the PAN, then zeros to 32 nibbles. PANs longer than 19 digits do not exist;
/// extra digits would be cut.
fn iso4_pan_field(pan: &[u8]) -> [u8; AES_BLOCK] {
    let mut nibbles = [0u8; 32];
    nibbles[0] = pan.len().saturating_sub(PAN_FIELD_DIGITS).min(7) as u8;
    let pad = PAN_FIELD_DIGITS.saturating_sub(pan.len());
    for (slot, &d) in nibbles[1 + pad..].iter_mut().zip(pan) {
        *slot = digit(d);
    }
    let mut out = [0u8; AES_BLOCK];
    pack(&nibbles, &mut out);
    out
}

/// The clear format 0 block of `pin` for the PAN digits `pan`.
pub(crate) fn encode_iso0(pin: &PinDigits, pan: &[u8]) -> Zeroizing<[u8; DES_BLOCK]> {
    let mut block = Zeroizing::new([0u8; DES_BLOCK]);
    pack(&pin.field_nibbles(FORMAT_0, FILL_0)[..], &mut block[..]);
    xor_into(&mut block, &iso0_pan_field(pan));
    block
}

/// The PIN in a clear format 0 block for the PAN digits `pan`.
pub(crate) fn decode_iso0(block: &[u8; DES_BLOCK], pan: &[u8]) -> Result<PinDigits, PinBlockError> {
    let mut field = Zeroizing::new(*block);
    xor_into(&mut field, &iso0_pan_field(pan));
    PinDigits::from_field(&unpack::<16>(&field[..])[..], FORMAT_0, FILL_0)
}

/// The plain format 4 PIN field of `pin` with `random` as its second half.
pub(crate) fn encode_iso4_field(pin: &PinDigits, random: &[u8; 8]) -> Zeroizing<[u8; AES_BLOCK]> {
    let mut field = Zeroizing::new([0u8; AES_BLOCK]);
    pack(&pin.field_nibbles(FORMAT_4, FILL_4)[..], &mut field[..8]);
    field[8..].copy_from_slice(random);
    field
}

/// The PIN in a plain format 4 PIN field (the random half is not checked: it is random).
pub(crate) fn decode_iso4_field(field: &[u8; AES_BLOCK]) -> Result<PinDigits, PinBlockError> {
    PinDigits::from_field(&unpack::<16>(&field[..8])[..], FORMAT_4, FILL_4)
}

/// `E_K(E_K(PIN field) XOR PAN field)`.
pub(crate) fn encipher_iso4(
    key: &[u8; 16],
    field: &[u8; AES_BLOCK],
    pan: &[u8],
) -> [u8; AES_BLOCK] {
    let mut block = *field;
    aes_encrypt(key, &mut block);
    xor_into(&mut block, &iso4_pan_field(pan));
    aes_encrypt(key, &mut block);
    block
}

/// The plain PIN field of an enciphered format 4 block: `D_K(D_K(block) XOR PAN field)`.
pub(crate) fn decipher_iso4(
    key: &[u8; 16],
    block: &[u8; AES_BLOCK],
    pan: &[u8],
) -> Zeroizing<[u8; AES_BLOCK]> {
    let mut field = Zeroizing::new(*block);
    aes_decrypt(key, &mut field);
    xor_into(&mut field, &iso4_pan_field(pan));
    aes_decrypt(key, &mut field);
    field
}

// Terminal side: what a PIN pad does. For simulators and tests, which hold test keys in clear.

/// The clear format 0 block for `pin` (4-12 ASCII digits) and `pan`.
pub fn iso0_clear_block(pin: &str, pan: &Pan) -> Result<[u8; DES_BLOCK], PinBlockError> {
    let pin = PinDigits::from_ascii(pin)?;
    Ok(*encode_iso0(&pin, pan.expose_digits()))
}

/// The plain format 4 PIN field for `pin`, with `random` (8 bytes from a secure random source
/// in a real PIN pad) as its second half.
pub fn iso4_pin_field(pin: &str, random: [u8; 8]) -> Result<[u8; AES_BLOCK], PinBlockError> {
    let pin = PinDigits::from_ascii(pin)?;
    Ok(*encode_iso4_field(&pin, &random))
}

/// `pin` for `pan` as a format 0 block enciphered under the double-length TDES key `zpk`.
pub fn encrypt_iso0(
    zpk: &[u8; 16],
    pin: &str,
    pan: &Pan,
) -> Result<EncryptedPinBlock, PinBlockError> {
    let mut block = iso0_clear_block(pin, pan)?;
    tdes_encrypt(zpk, &mut block);
    Ok(EncryptedPinBlock::Iso0(block))
}

/// `pin` for `pan` as a format 4 block enciphered under the AES-128 key `zpk`.
pub fn encrypt_iso4(
    zpk: &[u8; 16],
    pin: &str,
    pan: &Pan,
    random: [u8; 8],
) -> Result<EncryptedPinBlock, PinBlockError> {
    let field = Zeroizing::new(iso4_pin_field(pin, random)?);
    Ok(EncryptedPinBlock::Iso4(encipher_iso4(
        zpk,
        &field,
        pan.expose_digits(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin_str(p: &PinDigits) -> String {
        p.digits[..p.len]
            .iter()
            .map(|d| char::from(b'0' + d))
            .collect()
    }

    #[test]
    fn format_0_vectors() {
        for (pin, pan, expected) in [
            ("1234", "43219876543210987", "0412AC89ABCDEF67"),
            ("1234", "4012345678909", "041274EDCBA9876F"),
        ] {
            let digits = PinDigits::from_ascii(pin).expect("pin");
            let block = encode_iso0(&digits, pan.as_bytes());
            assert_eq!(hex::encode_upper(*block), expected, "{pan}");
            let back = decode_iso0(&block, pan.as_bytes()).expect("decode");
            assert_eq!(pin_str(&back), pin);
        }
    }

    #[test]
    fn format_4_field_layouts() {
        let pin = PinDigits::from_ascii("1234").expect("pin");
        let field = encode_iso4_field(&pin, &[0x11; 8]);
        assert_eq!(hex::encode_upper(&field[..8]), "441234AAAAAAAAAA");
        assert_eq!(&field[8..], &[0x11; 8]);
        assert_eq!(
            hex::encode_upper(iso4_pan_field(b"4111111111111111")),
            "44111111111111111000000000000000"
        );
        // Shorter than 12 digits: M = 0 and the PAN is left-padded with zeros.
        assert_eq!(
            hex::encode_upper(iso4_pan_field(b"12345678901")),
            "00123456789010000000000000000000"
        );
        assert_eq!(
            hex::encode_upper(iso4_pan_field(b"1234567890123456789")),
            "71234567890123456789000000000000"
        );
    }

    #[test]
    fn format_4_vector() {
        let mut key = [0u8; 16];
        hex::decode_to_slice("00112233445566778899AABBCCDDEEFF", &mut key).expect("hex");
        let mut block = [0u8; 16];
        hex::decode_to_slice("E4BE5B623AF7E006AC319E5B93544564", &mut block).expect("hex");
        let pan = b"1234567890123456";
        let field = decipher_iso4(&key, &block, pan);
        assert_eq!(
            hex::encode_upper(*field),
            "441234AAAAAAAAAAE63A8727CB39CB3A"
        );
        assert_eq!(pin_str(&decode_iso4_field(&field).expect("pin")), "1234");
        assert_eq!(
            hex::encode_upper(encipher_iso4(&key, &field, pan)),
            "E4BE5B623AF7E006AC319E5B93544564"
        );
        // The wrong PAN deciphers to garbage, which fails validation.
        assert!(decode_iso4_field(&decipher_iso4(&key, &block, b"1234567890123457")).is_err());
    }

    #[test]
    fn malformed_blocks_are_rejected_without_panicking() {
        let pan = b"4012345678909";
        let pan_field = iso0_pan_field(pan);
        for field in [
            "141234FFFFFFFFFF", // format nibble
            "031234FFFFFFFFFF", // PIN too short
            "0D1234FFFFFFFFFF", // PIN too long
            "04123AFFFFFFFFFF", // non-digit
            "041234FFFFFFFFFE", // fill
            "0000000000000000",
            "FFFFFFFFFFFFFFFF",
        ] {
            let mut block = [0u8; 8];
            hex::decode_to_slice(field, &mut block).expect("hex");
            xor_into(&mut block, &pan_field);
            assert!(
                matches!(decode_iso0(&block, pan), Err(PinBlockError::Malformed)),
                "{field}"
            );
        }
        for field in ["041234AAAAAAAAAA", "44123AAAAAAAAAAA", "4C12345678901AAA"] {
            let mut f = [0u8; 16];
            hex::decode_to_slice(field, &mut f[..8]).expect("hex");
            assert!(decode_iso4_field(&f).is_err(), "{field}");
        }
        let twelve = PinDigits::from_ascii("123456789012").expect("12 digits");
        let f = encode_iso4_field(&twelve, &[0; 8]);
        assert_eq!(hex::encode_upper(&f[..8]), "4C123456789012AA");
        assert_eq!(pin_str(&decode_iso4_field(&f).expect("12")), "123456789012");
    }

    #[test]
    fn bad_pins_are_refused_when_building() {
        let pan = Pan::parse(b"4012345678909").expect("pan");
        for pin in ["123", "1234567890123", "12a4", "", "１２３４"] {
            assert_eq!(
                iso0_clear_block(pin, &pan),
                Err(PinBlockError::BadPin),
                "{pin}"
            );
            assert_eq!(
                iso4_pin_field(pin, [0; 8]),
                Err(PinBlockError::BadPin),
                "{pin}"
            );
        }
        assert_eq!(
            hex::encode_upper(iso0_clear_block("1234", &pan).expect("block")),
            "041274EDCBA9876F"
        );
    }

    #[test]
    fn wire_form_and_debug() {
        assert_eq!(
            EncryptedPinBlock::from_bytes(&[1; 8]),
            Some(EncryptedPinBlock::Iso0([1; 8]))
        );
        assert_eq!(
            EncryptedPinBlock::from_bytes(&[1; 16]),
            Some(EncryptedPinBlock::Iso4([1; 16]))
        );
        assert_eq!(EncryptedPinBlock::from_bytes(&[1; 9]), None);
        let b = EncryptedPinBlock::Iso0([0xAB; 8]);
        assert_eq!(b.as_bytes(), &[0xAB; 8]);
        assert_eq!(format!("{b:?}"), "EncryptedPinBlock(format 0, ..)");
    }
}
