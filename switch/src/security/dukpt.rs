//! DUKPT (derived unique key per transaction): every transaction of a PIN pad is enciphered under
//! its own key, derived from a base derivation key (BDK) and the key serial number (KSN) that the
//! terminal sends with the PIN block. A key stolen from one terminal (or one transaction) reveals
//! nothing about other terminals or about earlier transactions.
//!
//! Two generations:
//! - TDES DUKPT, ANSI X9.24-1 (10-byte KSN, 21-bit counter): the initial PIN encryption key
//!   (IPEK) is the BDK-encryption of the KSN with its counter cleared (left half under the BDK,
//!   right half under the BDK XOR `C0C0C0C000000000C0C0C0C000000000`); the transaction key walks
//!   the counter's one bits from the highest, applying the non-reversible key generation process
//!   once per bit; the PIN key is the transaction key XOR `00000000000000FF00000000000000FF`. PIN
//!   blocks are ISO 9564 format 0.
//! - AES DUKPT, ANSI X9.24-3 (12-byte KSN: 8-byte initial key id, 32-bit counter), AES-128 BDK:
//!   keys are AES encryptions of 16-byte derivation data (version, key block counter, key usage,
//!   algorithm, length, then key id and counter); the initial key from the BDK, one intermediate
//!   derivation key per one bit of the counter, then the working key for the usage. PIN blocks are
//!   ISO 9564 format 4.
//!
//! Owns the key derivation on top of the block ciphers, both sides of it: the host side (from the
//! BDK, used by [`super::hsm::SoftwareSecurityModule`]) and the terminal side (from the IPEK or
//! initial key a PIN pad is loaded with, used by simulators and tests). It leaves the BDKs
//! themselves to the security module. Counters a terminal never uses (zero, or more one bits than
//! the standard allows) are refused rather than derived, since only an attacker sends them.

use zeroize::Zeroizing;

use super::blocks::{DES_BLOCK, aes_encrypt, des_encrypt, halves, tdes_encrypt, xor_into};
use super::pinblock::{
    EncryptedPinBlock, PinBlockError, PinDigits, encipher_iso4, encode_iso0, encode_iso4_field,
};
use crate::domain::Pan;

/// Bytes in a TDES DUKPT KSN.
pub const TDES_KSN_LEN: usize = 10;
/// Bytes in an AES DUKPT KSN.
pub const AES_KSN_LEN: usize = 12;

/// Bits of the TDES transaction counter, and the most one bits a terminal uses.
const TDES_COUNTER_BITS: u32 = 21;
const TDES_MAX_ONES: u32 = 10;
/// The most one bits of the AES transaction counter a terminal uses.
const AES_MAX_ONES: u32 = 16;

/// XORed into a TDES key for the right half of the IPEK and inside key generation.
const KEY_MASK_C0: [u8; 16] = [
    0xC0, 0xC0, 0xC0, 0xC0, 0, 0, 0, 0, 0xC0, 0xC0, 0xC0, 0xC0, 0, 0, 0, 0,
];
/// The PIN encryption variant of a TDES transaction key.
const PIN_VARIANT: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0xFF];

/// A clear 16-byte key, wiped on drop.
pub type DerivedKey = Zeroizing<[u8; 16]>;

/// Why a KSN cannot be used. Names no key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KsnError {
    #[error("KSN must be {expected} bytes for {algorithm} DUKPT, got {len}")]
    Length {
        algorithm: &'static str,
        expected: usize,
        len: usize,
    },
    #[error("KSN transaction counter is zero")]
    ZeroCounter,
    #[error("KSN transaction counter has more than {max} one bits, which no terminal uses")]
    TooManyOnes { max: u32 },
    #[error("KSN transaction counter is exhausted")]
    Exhausted,
}

/// Why a terminal-side DUKPT encryption failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DukptError {
    #[error(transparent)]
    Ksn(#[from] KsnError),
    #[error(transparent)]
    Pin(#[from] PinBlockError),
}

/// `ksn` as a fixed-size array, or a length error naming the algorithm.
fn ksn_array<const N: usize>(ksn: &[u8], algorithm: &'static str) -> Result<[u8; N], KsnError> {
    ksn.try_into().map_err(|_| KsnError::Length {
        algorithm,
        expected: N,
        len: ksn.len(),
    })
}

/// Checks a counter a terminal could have used.
fn check_counter(counter: u32, max_ones: u32) -> Result<(), KsnError> {
    if counter == 0 {
        Err(KsnError::ZeroCounter)
    } else if counter.count_ones() > max_ones {
        Err(KsnError::TooManyOnes { max: max_ones })
    } else {
        Ok(())
    }
}

/// The next counter a terminal uses after `counter`: plus one, skipping counters with too many one
/// bits by adding their lowest one bit (as X9.24 terminals do); `None` once past `bits` bits.
fn next_counter(counter: u32, bits: u32, max_ones: u32) -> Option<u32> {
    let mut next = counter.checked_add(1)?;
    while next.count_ones() > max_ones {
        next = next.checked_add(next & next.wrapping_neg())?;
    }
    (bits >= 32 || next < (1 << bits)).then_some(next)
}

// ---------------------------------------------------------------------------------------------
// TDES DUKPT (ANSI X9.24-1)

/// The 21-bit transaction counter of a TDES KSN.
fn tdes_counter(ksn: &[u8; TDES_KSN_LEN]) -> u32 {
    (u32::from(ksn[7] & 0x1F) << 16) | (u32::from(ksn[8]) << 8) | u32::from(ksn[9])
}

/// The IPEK of the terminal whose KSN is `ksn` (any counter value; it is cleared).
pub fn tdes_ipek(bdk: &[u8; 16], ksn: &[u8]) -> Result<DerivedKey, KsnError> {
    let ksn: [u8; TDES_KSN_LEN] = ksn_array(ksn, "TDES")?;
    let mut data = [0u8; DES_BLOCK];
    data.copy_from_slice(&ksn[..8]);
    data[7] &= 0xE0;
    let mut ipek = Zeroizing::new([0u8; 16]);
    let mut left = data;
    tdes_encrypt(bdk, &mut left);
    let mut variant = Zeroizing::new(*bdk);
    xor_into(&mut variant, &KEY_MASK_C0);
    let mut right = data;
    tdes_encrypt(&variant, &mut right);
    ipek[..8].copy_from_slice(&left);
    ipek[8..].copy_from_slice(&right);
    Ok(ipek)
}

/// One half of the non-reversible key generation process: `E_{left}(data XOR right) XOR right`.
fn nrkgp_half(key: &[u8; 16], data: &[u8; DES_BLOCK]) -> [u8; DES_BLOCK] {
    let (left, right) = halves(key);
    let mut out = *data;
    xor_into(&mut out, &right);
    des_encrypt(&left, &mut out);
    xor_into(&mut out, &right);
    out
}

/// The non-reversible key generation process: the new right half under the key, the new left
/// half under the key XOR the C0 mask.
fn nrkgp(key: &[u8; 16], data: &[u8; DES_BLOCK]) -> DerivedKey {
    let right = nrkgp_half(key, data);
    let mut masked = Zeroizing::new(*key);
    xor_into(&mut masked, &KEY_MASK_C0);
    let left = nrkgp_half(&masked, data);
    let mut out = Zeroizing::new([0u8; 16]);
    out[..8].copy_from_slice(&left);
    out[8..].copy_from_slice(&right);
    out
}

/// The transaction key for `ksn`, from the terminal's IPEK: what both the terminal (through its
/// future key registers) and the host arrive at.
pub fn tdes_transaction_key(ipek: &[u8; 16], ksn: &[u8]) -> Result<DerivedKey, KsnError> {
    let ksn: [u8; TDES_KSN_LEN] = ksn_array(ksn, "TDES")?;
    let counter = tdes_counter(&ksn);
    check_counter(counter, TDES_MAX_ONES)?;
    let mut register = [0u8; 8];
    register.copy_from_slice(&ksn[2..]);
    let mut shift = u64::from_be_bytes(register) & !((1u64 << TDES_COUNTER_BITS) - 1);
    let mut key = Zeroizing::new(*ipek);
    for bit in (0..TDES_COUNTER_BITS).rev() {
        if counter & (1 << bit) != 0 {
            shift |= 1u64 << bit;
            key = nrkgp(&key, &shift.to_be_bytes());
        }
    }
    Ok(key)
}

/// The PIN encryption key of a TDES transaction key.
pub fn tdes_pin_key(transaction_key: &[u8; 16]) -> DerivedKey {
    let mut key = Zeroizing::new(*transaction_key);
    xor_into(&mut key, &PIN_VARIANT);
    key
}

/// Host side: the PIN encryption key for `ksn` under `bdk`.
pub(crate) fn tdes_pin_key_from_bdk(bdk: &[u8; 16], ksn: &[u8]) -> Result<DerivedKey, KsnError> {
    let ipek = tdes_ipek(bdk, ksn)?;
    Ok(tdes_pin_key(&*tdes_transaction_key(&ipek, ksn)?))
}

/// Terminal side: `pin` for `pan` as a format 0 block under the PIN key of `ksn`, for a PIN pad
/// loaded with `ipek`.
pub fn tdes_encrypt_pin(
    ipek: &[u8; 16],
    ksn: &[u8],
    pin: &str,
    pan: &Pan,
) -> Result<EncryptedPinBlock, DukptError> {
    let key = tdes_pin_key(&*tdes_transaction_key(ipek, ksn)?);
    let pin = PinDigits::from_ascii(pin)?;
    let mut block = *encode_iso0(&pin, pan.expose_digits());
    tdes_encrypt(&key, &mut block);
    Ok(EncryptedPinBlock::Iso0(block))
}

/// Terminal side: the KSN of the next transaction after `ksn`, `None` when the counter is spent
/// (the PIN pad must then be reloaded with a new IPEK).
pub fn tdes_next_ksn(ksn: &[u8; TDES_KSN_LEN]) -> Option<[u8; TDES_KSN_LEN]> {
    let next = next_counter(tdes_counter(ksn), TDES_COUNTER_BITS, TDES_MAX_ONES)?;
    let mut out = *ksn;
    let [_, hi, mid, lo] = next.to_be_bytes();
    out[7] = (out[7] & 0xE0) | hi;
    out[8] = mid;
    out[9] = lo;
    Some(out)
}

// ---------------------------------------------------------------------------------------------
// AES DUKPT (ANSI X9.24-3), AES-128 BDK deriving AES-128 keys

/// Key usage indicators of X9.24-3 derivation data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AesKeyUsage {
    /// PIN encryption (`1000`).
    PinEncryption,
    /// MAC generation (`2000`).
    MacGeneration,
    /// MAC verification (`2001`).
    MacVerification,
    /// MAC, both ways (`2002`).
    MacBothWays,
}

impl AesKeyUsage {
    fn code(self) -> u16 {
        match self {
            AesKeyUsage::PinEncryption => 0x1000,
            AesKeyUsage::MacGeneration => 0x2000,
            AesKeyUsage::MacVerification => 0x2001,
            AesKeyUsage::MacBothWays => 0x2002,
        }
    }
}

/// Usage of intermediate derivation keys and of the initial key.
const USAGE_KEY_DERIVATION: u16 = 0x8000;
const USAGE_INITIAL_KEY: u16 = 0x8001;
/// Algorithm indicator and bit length of an AES-128 key.
const ALGORITHM_AES128: u16 = 0x0002;
const LENGTH_AES128: u16 = 128;

/// X9.24-3 derivation data for one AES-128 key: version 1, key block counter 1, `usage`, the
/// algorithm, the length in bits, then `tail` (the initial key id, or the derivation id and the
/// counter).
fn derivation_data(usage: u16, tail: &[u8; 8]) -> [u8; 16] {
    let mut data = [0u8; 16];
    data[0] = 0x01;
    data[1] = 0x01;
    data[2..4].copy_from_slice(&usage.to_be_bytes());
    data[4..6].copy_from_slice(&ALGORITHM_AES128.to_be_bytes());
    data[6..8].copy_from_slice(&LENGTH_AES128.to_be_bytes());
    data[8..].copy_from_slice(tail);
    data
}

/// `E_key(derivation data)`: one derived key.
fn derive(key: &[u8; 16], usage: u16, tail: &[u8; 8]) -> DerivedKey {
    let mut out = Zeroizing::new(derivation_data(usage, tail));
    aes_encrypt(key, &mut out);
    out
}

/// The terminal's initial key, from the BDK and the 8-byte initial key id (the leftmost 8 bytes
/// of the KSN).
pub fn aes_initial_key(bdk: &[u8; 16], initial_key_id: &[u8; 8]) -> DerivedKey {
    derive(bdk, USAGE_INITIAL_KEY, initial_key_id)
}

/// The derivation id (rightmost 4 bytes of the initial key id) followed by `counter`.
fn id_and_counter(ksn: &[u8; AES_KSN_LEN], counter: u32) -> [u8; 8] {
    let mut tail = [0u8; 8];
    tail[..4].copy_from_slice(&ksn[4..8]);
    tail[4..].copy_from_slice(&counter.to_be_bytes());
    tail
}

/// The working key for `usage` at `ksn`, from the terminal's initial key.
pub fn aes_working_key(
    initial_key: &[u8; 16],
    ksn: &[u8],
    usage: AesKeyUsage,
) -> Result<DerivedKey, KsnError> {
    let ksn: [u8; AES_KSN_LEN] = ksn_array(ksn, "AES")?;
    let mut counter_bytes = [0u8; 4];
    counter_bytes.copy_from_slice(&ksn[8..]);
    let counter = u32::from_be_bytes(counter_bytes);
    check_counter(counter, AES_MAX_ONES)?;
    let mut key = Zeroizing::new(*initial_key);
    let mut working = 0u32;
    for bit in (0..32).rev() {
        if counter & (1 << bit) != 0 {
            working |= 1 << bit;
            key = derive(&key, USAGE_KEY_DERIVATION, &id_and_counter(&ksn, working));
        }
    }
    Ok(derive(&key, usage.code(), &id_and_counter(&ksn, counter)))
}

/// Host side: the PIN encryption key for `ksn` under `bdk`.
pub(crate) fn aes_pin_key_from_bdk(bdk: &[u8; 16], ksn: &[u8]) -> Result<DerivedKey, KsnError> {
    let array: [u8; AES_KSN_LEN] = ksn_array(ksn, "AES")?;
    let mut id = [0u8; 8];
    id.copy_from_slice(&array[..8]);
    aes_working_key(&aes_initial_key(bdk, &id), ksn, AesKeyUsage::PinEncryption)
}

/// Terminal side: `pin` for `pan` as a format 4 block under the PIN key of `ksn`, for a PIN pad
/// loaded with `initial_key`; `random` fills the second half of the PIN field.
pub fn aes_encrypt_pin(
    initial_key: &[u8; 16],
    ksn: &[u8],
    pin: &str,
    pan: &Pan,
    random: [u8; 8],
) -> Result<EncryptedPinBlock, DukptError> {
    let key = aes_working_key(initial_key, ksn, AesKeyUsage::PinEncryption)?;
    let pin = PinDigits::from_ascii(pin)?;
    let field = encode_iso4_field(&pin, &random);
    Ok(EncryptedPinBlock::Iso4(encipher_iso4(
        &key,
        &field,
        pan.expose_digits(),
    )))
}

/// Terminal side: the KSN of the next transaction after `ksn`, `None` when the counter is spent.
pub fn aes_next_ksn(ksn: &[u8; AES_KSN_LEN]) -> Option<[u8; AES_KSN_LEN]> {
    let mut counter = [0u8; 4];
    counter.copy_from_slice(&ksn[8..]);
    let next = next_counter(u32::from_be_bytes(counter), 32, AES_MAX_ONES)?;
    let mut out = *ksn;
    out[8..].copy_from_slice(&next.to_be_bytes());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::blocks::tdes_decrypt;
    use crate::security::pinblock::{decipher_iso4, decode_iso0, decode_iso4_field};

    fn bytes<const N: usize>(text: &str) -> [u8; N] {
        let mut out = [0u8; N];
        hex::decode_to_slice(text, &mut out).expect("hex");
        out
    }

    const TDES_BDK: &str = "0123456789ABCDEFFEDCBA9876543210";

    /// ANSI X9.24-1:2009 Annex A.4.
    #[test]
    fn tdes_vectors() {
        let bdk: [u8; 16] = bytes(TDES_BDK);
        let ipek = tdes_ipek(&bdk, &bytes::<10>("FFFF9876543210E00000")).expect("ipek");
        assert_eq!(hex::encode_upper(*ipek), "6AC292FAA1315B4D858AB3A3D7D5933A");
        let pan = Pan::parse(b"4012345678909").expect("pan");
        for (ksn, txn, pin_key, block) in [
            (
                "FFFF9876543210E00001",
                "042666B49184CFA368DE9628D0397BC9",
                "042666B49184CF5C68DE9628D0397B36",
                "1B9C1845EB993A7A",
            ),
            (
                "FFFF9876543210E00002",
                "C46551CEF9FD24B0AA9AD834130D3BC7",
                "C46551CEF9FD244FAA9AD834130D3B38",
                "10A01C8D02C69107",
            ),
        ] {
            let ksn: [u8; 10] = bytes(ksn);
            assert_eq!(
                tdes_ipek(&bdk, &ksn).expect("ipek"),
                ipek,
                "counter ignored"
            );
            let t = tdes_transaction_key(&ipek, &ksn).expect("txn");
            assert_eq!(hex::encode_upper(*t), txn);
            assert_eq!(hex::encode_upper(*tdes_pin_key(&t)), pin_key);
            assert_eq!(
                hex::encode_upper(*tdes_pin_key_from_bdk(&bdk, &ksn).expect("host")),
                pin_key
            );
            let enc = tdes_encrypt_pin(&ipek, &ksn, "1234", &pan).expect("encrypt");
            assert_eq!(hex::encode_upper(enc.as_bytes()), block);
            let mut clear: [u8; 8] = bytes(block);
            tdes_decrypt(&bytes(pin_key), &mut clear);
            assert_eq!(hex::encode_upper(clear), "041274EDCBA9876F");
            assert!(decode_iso0(&clear, pan.expose_digits()).is_ok());
        }
    }

    /// ANSI X9.24-3:2017, AES-128 BDK.
    #[test]
    fn aes_vectors() {
        let bdk: [u8; 16] = bytes("FEDCBA9876543210F1F1F1F1F1F1F1F1");
        let id: [u8; 8] = bytes("1234567890123456");
        let initial = aes_initial_key(&bdk, &id);
        assert_eq!(
            hex::encode_upper(*initial),
            "1273671EA26AC29AFA4D1084127652A1"
        );
        let ksn: [u8; 12] = bytes("123456789012345600000001");
        let pin_key = aes_working_key(&initial, &ksn, AesKeyUsage::PinEncryption).expect("key");
        assert_eq!(
            hex::encode_upper(*pin_key),
            "AF8CB133A78F8DC2D1359F18527593FB"
        );
        assert_eq!(aes_pin_key_from_bdk(&bdk, &ksn).expect("host"), pin_key);
        let pan = Pan::parse(b"4111111111111111").expect("pan");
        let block = aes_encrypt_pin(&initial, &ksn, "98765", &pan, [7; 8]).expect("encrypt");
        let EncryptedPinBlock::Iso4(b) = block else {
            panic!("format 4 expected");
        };
        let field = decipher_iso4(&pin_key, &b, pan.expose_digits());
        assert!(decode_iso4_field(&field).is_ok());
        assert_eq!(&field[..8], &bytes::<8>("4598765AAAAAAAAA"));
        let mac_key = aes_working_key(&initial, &ksn, AesKeyUsage::MacGeneration).expect("key");
        assert_ne!(mac_key, pin_key, "usages give distinct keys");
    }

    #[test]
    fn unusable_ksns_are_refused() {
        let ipek = [0u8; 16];
        assert_eq!(
            tdes_transaction_key(&ipek, &[0; 9]),
            Err(KsnError::Length {
                algorithm: "TDES",
                expected: 10,
                len: 9
            })
        );
        assert_eq!(
            tdes_transaction_key(&ipek, &bytes::<10>("FFFF9876543210E00000")),
            Err(KsnError::ZeroCounter)
        );
        // 11 one bits.
        assert_eq!(
            tdes_transaction_key(&ipek, &bytes::<10>("FFFF9876543210E007FF")),
            Err(KsnError::TooManyOnes { max: 10 })
        );
        assert_eq!(
            aes_working_key(
                &ipek,
                &bytes::<12>("123456789012345600000000"),
                AesKeyUsage::PinEncryption
            ),
            Err(KsnError::ZeroCounter)
        );
        assert_eq!(
            aes_working_key(
                &ipek,
                &bytes::<12>("1234567890123456FFFF0001"),
                AesKeyUsage::PinEncryption
            ),
            Err(KsnError::TooManyOnes { max: 16 })
        );
        assert!(matches!(
            aes_working_key(&ipek, &[0; 10], AesKeyUsage::PinEncryption),
            Err(KsnError::Length { expected: 12, .. })
        ));
    }

    #[test]
    fn next_ksn_skips_counters_with_too_many_ones() {
        let ksn: [u8; 10] = bytes("FFFF9876543210E00001");
        let next = tdes_next_ksn(&ksn).expect("next");
        assert_eq!(hex::encode_upper(next), "FFFF9876543210E00002");
        // 0x3FE has 9 ones and 0x3FF 10, which is allowed.
        assert_eq!(next_counter(0x3FE, 21, 10), Some(0x3FF));
        // 0x3FF + 1 = 0x400: no skipping needed.
        assert_eq!(next_counter(0x3FF, 21, 10), Some(0x400));
        // 0xFFC00 has 10 ones; every counter up to 0xFFFFF has more, so the next is 0x100000.
        assert_eq!(next_counter(0xFFC00, 21, 10), Some(0x100000));
        assert_eq!(next_counter(0x1FF800, 21, 10), None, "spent");
        let mut aes: [u8; 12] = bytes("1234567890123456000000FF");
        aes = aes_next_ksn(&aes).expect("next");
        assert_eq!(hex::encode_upper(aes), "123456789012345600000100");
        // Every KSN the terminal moves to is one the host accepts.
        let mut k = ksn;
        for _ in 0..2000 {
            k = tdes_next_ksn(&k).expect("next");
            assert!(tdes_transaction_key(&[1; 16], &k).is_ok());
        }
    }
}
