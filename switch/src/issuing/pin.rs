//! PIN verification data: the Visa PVV ([`visa_pvv`]), checking a clear PIN against a card
//! ([`verify_clear_pin`]) and reading a clear ISO 9564 format 0 PIN block
//! ([`ClearPin::from_iso0_block`]).
//!
//! Owns the algorithms. It leaves the PIN *rules* (wrong PIN 55, three wrong in a row 75, a right
//! PIN resets the count) to [`super::rules`], which takes the outcome of a check as a
//! [`super::PinCheck`] and never sees a PIN. It leaves decrypting field 52 to whoever holds the
//! PIN keys: a security module in production, a test key in the simulators. Nothing here logs.
//!
//! Why PVV: the issuer stores four digits derived from the PIN under a key (the PVK), never the
//! PIN itself, so a stolen card file reveals no PIN. The Visa method:
//!
//! 1. TSP (transformed security parameter), 16 digits: the 11 rightmost PAN digits excluding the
//!    check digit, the PVKI (key index, 0-6), the 4 leftmost PIN digits; packed as 8 bytes.
//! 2. Encrypt the TSP with the double-length PVK in TDES EDE (K1, K2, K1).
//! 3. Decimalise the 16 hex digits of the result: the decimal digits from left to right; if there
//!    are fewer than four, then the hex digits A-F from left to right, minus 10. The first four
//!    digits are the PVV.

use core::fmt;

use des::TdesEde2;
use des::cipher::generic_array::GenericArray;
use des::cipher::{BlockEncrypt, KeyInit};

use super::engine::Card;
use crate::domain::Pan;

/// Digits of the PAN in the TSP and in the format 0 PAN field.
const TSP_PAN_DIGITS: usize = 11;
/// Shortest and longest PIN ISO 9564 allows.
const PIN_MIN: usize = 4;
const PIN_MAX: usize = 12;

/// The Visa PVV of `pin` for `pan` under `pvk` and key index `pvki`, as four ASCII digits.
///
/// `pin` must be 4 to 12 ASCII digits (only the leftmost four take part, as Visa specifies) and
/// `pvki` a single digit; [`verify_clear_pin`] checks both before calling. Anything else gives
/// four digits that match no real PVV rather than a panic.
pub fn visa_pvv(pvk: &[u8; 16], pan: &Pan, pvki: u8, pin: &str) -> [u8; 4] {
    pvv_of_digits(pvk, pan.expose_digits(), pvki, pin.as_bytes())
}

/// [`visa_pvv`] on raw PAN digits (published test vectors use PANs that fail Luhn).
fn pvv_of_digits(pvk: &[u8; 16], pan: &[u8], pvki: u8, pin: &[u8]) -> [u8; 4] {
    // TSP digits: 11 PAN digits left of the check digit, the PVKI, 4 PIN digits.
    let mut tsp = [0u8; 16];
    let body = pan.len().saturating_sub(1);
    let start = body.saturating_sub(TSP_PAN_DIGITS);
    // Short input is left-padded with zeros; real PANs have at least 12 digits.
    let pan_part = &pan[start..body];
    let offset = TSP_PAN_DIGITS - pan_part.len();
    for (slot, &d) in tsp[offset..TSP_PAN_DIGITS].iter_mut().zip(pan_part) {
        *slot = d.wrapping_sub(b'0') & 0x0F;
    }
    tsp[TSP_PAN_DIGITS] = pvki % 10;
    for (slot, &d) in tsp[TSP_PAN_DIGITS + 1..].iter_mut().zip(pin) {
        *slot = d.wrapping_sub(b'0') & 0x0F;
    }
    let mut block = [0u8; 8];
    for (i, byte) in block.iter_mut().enumerate() {
        *byte = (tsp[2 * i] << 4) | tsp[2 * i + 1];
    }

    let cipher = TdesEde2::new(GenericArray::from_slice(pvk));
    let mut ga = GenericArray::from(block);
    cipher.encrypt_block(&mut ga);

    let nibbles = ga.iter().flat_map(|&b| [b >> 4, b & 0x0F]);
    // First scan: the decimal digits; second scan: the hex digits A-F, minus 10.
    let digits = nibbles
        .clone()
        .filter(|&d| d < 10)
        .chain(nibbles.filter(|&d| d >= 10).map(|d| d - 10));
    let mut out = [b'0'; 4];
    for (slot, d) in out.iter_mut().zip(digits) {
        *slot = b'0' + d;
    }
    out
}

/// True when `pin` (4-12 ASCII digits, in clear) matches `card`'s PVV under `pvk`.
///
/// The key is an argument rather than part of the card because it belongs to the issuer, is
/// shared by all its cards, and in production lives in a security module. A card without a PVV
/// never verifies. The final comparison does not stop at the first differing digit.
pub fn verify_clear_pin(pvk: &[u8; 16], card: &Card, pin: &str) -> bool {
    let Some(stored) = card.pvv() else {
        return false;
    };
    if !(PIN_MIN..=PIN_MAX).contains(&pin.len()) || !pin.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let computed = visa_pvv(pvk, card.pan(), card.pvki(), pin);
    let diff = computed
        .iter()
        .zip(stored.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    diff == 0
}

/// A PIN in clear, 4-12 digits, as read from a decrypted PIN block. `Debug` shows only its
/// length; the digits come out through [`ClearPin::expose_str`], named so that every use is
/// deliberate.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ClearPin {
    digits: [u8; PIN_MAX],
    len: u8,
}

impl ClearPin {
    /// Reads a clear (already decrypted) ISO 9564 format 0 PIN block for `pan`.
    ///
    /// The block is the PIN field (`0`, the PIN length, the PIN digits, `F` fill) XOR the PAN
    /// field (`0000` and the 12 rightmost PAN digits excluding the check digit). `None` when the
    /// result is not a well-formed format 0 PIN field, which is how a block made for another PAN
    /// or under a wrong key shows up.
    pub fn from_iso0_block(block: &[u8; 8], pan: &Pan) -> Option<ClearPin> {
        let pan_field = iso0_pan_field(pan.expose_digits());
        let mut nibbles = [0u8; 16];
        for (i, (&b, &p)) in block.iter().zip(pan_field.iter()).enumerate() {
            let x = b ^ p;
            nibbles[2 * i] = x >> 4;
            nibbles[2 * i + 1] = x & 0x0F;
        }
        let len = usize::from(nibbles[1]);
        if nibbles[0] != 0 || !(PIN_MIN..=PIN_MAX).contains(&len) {
            return None;
        }
        let (pin, fill) = nibbles[2..].split_at(len);
        if !pin.iter().all(|&d| d < 10) || !fill.iter().all(|&d| d == 0x0F) {
            return None;
        }
        let mut digits = [0u8; PIN_MAX];
        for (slot, &d) in digits.iter_mut().zip(pin) {
            *slot = b'0' + d;
        }
        Some(ClearPin {
            digits,
            // At most 12, checked above.
            len: len as u8,
        })
    }

    /// Builds the clear format 0 block for `pin` (4-12 ASCII digits) and `pan`; `None` for a
    /// malformed PIN. For simulators and tests, which play the terminal's part.
    pub fn iso0_block(pin: &str, pan: &Pan) -> Option<[u8; 8]> {
        let len = pin.len();
        if !(PIN_MIN..=PIN_MAX).contains(&len) || !pin.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut nibbles = [0x0Fu8; 16];
        nibbles[0] = 0;
        // At most 12.
        nibbles[1] = len as u8;
        for (slot, d) in nibbles[2..].iter_mut().zip(pin.bytes()) {
            *slot = d - b'0';
        }
        let pan_field = iso0_pan_field(pan.expose_digits());
        let mut block = [0u8; 8];
        for (i, byte) in block.iter_mut().enumerate() {
            *byte = ((nibbles[2 * i] << 4) | nibbles[2 * i + 1]) ^ pan_field[i];
        }
        Some(block)
    }

    /// The digits in clear.
    pub fn expose_str(&self) -> &str {
        core::str::from_utf8(&self.digits[..usize::from(self.len)]).unwrap_or("")
    }
}

impl fmt::Debug for ClearPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClearPin({} digits)", self.len)
    }
}

/// The format 0 PAN field: `0000` then the 12 rightmost PAN digits excluding the check digit.
fn iso0_pan_field(pan: &[u8]) -> [u8; 8] {
    let body = &pan[..pan.len().saturating_sub(1)];
    let twelve = &body[body.len().saturating_sub(12)..];
    let mut nibbles = [0u8; 16];
    let offset = 16 - twelve.len();
    for (slot, &d) in nibbles[offset..].iter_mut().zip(twelve) {
        *slot = d.wrapping_sub(b'0') & 0x0F;
    }
    let mut out = [0u8; 8];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = (nibbles[2 * i] << 4) | nibbles[2 * i + 1];
    }
    out
}

/// Parses a PVK written as 32 hex digits (configuration).
pub(crate) fn parse_pvk(text: &str) -> Option<[u8; 16]> {
    let bytes = hex::decode(text).ok()?;
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST_PVK: &str = "0123456789ABCDEFFEDCBA9876543210";

    fn pvk() -> [u8; 16] {
        parse_pvk(TEST_PVK).unwrap()
    }

    /// Published vectors (the `psec` library's test suite, same test PVK), cross-checked with
    /// Python `cryptography`'s TDES.
    #[test]
    fn visa_pvv_vectors() {
        for (pvki, pin, pan, expected) in [
            (1, "4524", "1122334455667788", "8523"),
            (2, "1912", "1122334455667788", "3244"),
            (1, "0570", "1122334455667718", "3144"),
            (1, "8299", "1122334455667708", "4422"),
        ] {
            let got = pvv_of_digits(&pvk(), pan.as_bytes(), pvki, pin.as_bytes());
            assert_eq!(&got, expected.as_bytes(), "{pan} {pin}");
        }
    }

    #[test]
    fn only_four_pin_digits_count() {
        let pan = Pan::parse(b"4111110000000013").unwrap();
        assert_eq!(
            visa_pvv(&pvk(), &pan, 1, "1234"),
            visa_pvv(&pvk(), &pan, 1, "123499")
        );
        assert_ne!(
            visa_pvv(&pvk(), &pan, 1, "1234"),
            visa_pvv(&pvk(), &pan, 2, "1234")
        );
    }

    #[test]
    fn iso0_block_round_trip() {
        let pan = Pan::parse(b"4111110000000013").unwrap();
        let block = ClearPin::iso0_block("1234", &pan).unwrap();
        // PIN field 041234FFFFFFFFFF XOR PAN field 0000111000000001.
        assert_eq!(hex::encode_upper(block), "041225EFFFFFFFFE");
        let pin = ClearPin::from_iso0_block(&block, &pan).unwrap();
        assert_eq!(pin.expose_str(), "1234");
        assert_eq!(format!("{pin:?}"), "ClearPin(4 digits)");
        let other = Pan::parse(b"6222020000000015").unwrap();
        assert_eq!(ClearPin::from_iso0_block(&block, &other), None);
        assert_eq!(ClearPin::iso0_block("12a4", &pan), None);
        assert_eq!(ClearPin::iso0_block("123", &pan), None);
        let long = ClearPin::iso0_block("123456789012", &pan).unwrap();
        assert_eq!(
            ClearPin::from_iso0_block(&long, &pan).map(|p| p.expose_str().to_owned()),
            Some("123456789012".to_owned())
        );
    }
}
