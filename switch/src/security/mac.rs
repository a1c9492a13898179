//! Message authentication codes for ISO 8583 messages: which bytes a MAC covers
//! ([`mac_input`], [`split_mac`]) and the two algorithms a party may be configured with:
//!
//! - ISO 9797-1 MAC algorithm 3 with DES, known as the ANSI X9.19 retail MAC: CBC-MAC with single
//!   DES under K over every block (zero IV, padding method 1 = zeros to a positive multiple of
//!   8 bytes), then the last block is decrypted with K′ and encrypted with K. The key is K‖K′.
//! - AES-CMAC (RFC 4493) with AES-128, keeping the leftmost 8 bytes (an ISO 8583 MAC field is 8
//!   bytes).
//!
//! Owns the chaining on top of the block ciphers and the comparison. It leaves the ciphers to
//! RustCrypto (`des`, `aes`, `cmac`), the keys to [`super::hsm::SoftwareSecurityModule`] and the
//! encoding of the message to the codec: the helpers here work on encoded bytes and know nothing
//! of fields, so they serve every dialect alike.
//!
//! What the MAC covers: the message from the MTI to the end of the last field before the MAC,
//! with the MAC's bit (64, or 128 when a secondary bitmap is present) set in the bitmap. The
//! sender therefore encodes the message with the MAC field present (8 placeholder bytes), MACs
//! [`mac_input`] of it and writes the MAC over the placeholder; the receiver MACs the same slice
//! of what arrived and compares with the trailing 8 bytes. The length prefix of the framing is not
//! covered: it is transport, rebuilt by every hop.

use aes::Aes128;
use cmac::{Cmac, Mac};
use des::cipher::generic_array::GenericArray;
use subtle::ConstantTimeEq;

use super::blocks::{DES_BLOCK, DesSchedule, des_decrypt, halves};

/// Bytes in an ISO 8583 MAC (field 64 or 128).
pub const MAC_LEN: usize = 8;

/// Shortest message that can carry a MAC: a 2-byte BCD MTI, an 8-byte binary bitmap and the MAC.
pub const MIN_MACED_MESSAGE: usize = 2 + 8 + MAC_LEN;

/// Why a message cannot be split into MACed bytes and MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MacInputError {
    #[error("message of {len} bytes is too short to carry a MAC (at least {MIN_MACED_MESSAGE})")]
    TooShort { len: usize },
}

/// The bytes a MAC covers: everything but the trailing 8 MAC bytes of `message`, which is the
/// encoded ISO 8583 message from the MTI to the end of the MAC field, with the MAC's bitmap bit
/// already set. See the module documentation.
pub fn mac_input(message: &[u8]) -> Result<&[u8], MacInputError> {
    split_mac(message).map(|(data, _)| data)
}

/// `message` split into the bytes the MAC covers and the MAC itself (its last 8 bytes).
pub fn split_mac(message: &[u8]) -> Result<(&[u8], &[u8; MAC_LEN]), MacInputError> {
    let len = message.len();
    if len < MIN_MACED_MESSAGE {
        return Err(MacInputError::TooShort { len });
    }
    let (data, mac) = message.split_at(len - MAC_LEN);
    let mac = mac
        .try_into()
        .map_err(|_| MacInputError::TooShort { len })?;
    Ok((data, mac))
}

/// ISO 9797-1 MAC algorithm 1 state: CBC with a zero IV over `data` padded with method 1 (zeros
/// to a positive multiple of the block, so empty data is one zero block), under `encrypt`.
fn cbc_mac(data: &[u8], encrypt: impl Fn(&mut [u8; DES_BLOCK])) -> [u8; DES_BLOCK] {
    let mut state = [0u8; DES_BLOCK];
    let blocks = data.len().div_ceil(DES_BLOCK).max(1);
    for chunk in data
        .chunks(DES_BLOCK)
        .chain(core::iter::repeat(&[][..]))
        .take(blocks)
    {
        for (s, d) in state.iter_mut().zip(chunk) {
            *s ^= d;
        }
        encrypt(&mut state);
    }
    state
}

/// ISO 9797-1 MAC algorithm 3 (ANSI X9.19) under the double-length key K‖K′.
pub(crate) fn x919_mac(key: &[u8; 16], data: &[u8]) -> [u8; MAC_LEN] {
    let (k, k_prime) = halves(key);
    let ek = DesSchedule::new(&k);
    let mut state = cbc_mac(data, |b| ek.encrypt(b));
    des_decrypt(&k_prime, &mut state);
    ek.encrypt(&mut state);
    state
}

/// The full 16-byte AES-CMAC of `data` under an AES-128 key.
pub(crate) fn aes_cmac(key: &[u8; 16], data: &[u8]) -> [u8; 16] {
    let mut mac = <Cmac<Aes128> as Mac>::new(GenericArray::from_slice(key));
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The AES-CMAC truncated to an ISO 8583 MAC: its leftmost 8 bytes (RFC 4493 allows truncation
/// from the left).
pub(crate) fn aes_cmac_mac(key: &[u8; 16], data: &[u8]) -> [u8; MAC_LEN] {
    let full = aes_cmac(key, data);
    let mut out = [0u8; MAC_LEN];
    out.copy_from_slice(&full[..MAC_LEN]);
    out
}

/// MAC equality in constant time, so timing reveals nothing about how many leading bytes of a
/// forged MAC were right.
pub(crate) fn macs_equal(a: &[u8; MAC_LEN], b: &[u8; MAC_LEN]) -> bool {
    bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::blocks::{des_encrypt, tdes_encrypt};

    fn key16(text: &str) -> [u8; 16] {
        let mut k = [0u8; 16];
        hex::decode_to_slice(text, &mut k).expect("hex");
        k
    }

    /// FIPS 113 example, single DES, padded with zeros to 32 bytes.
    #[test]
    fn mac_algorithm_1_des_vector() {
        let key = [0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF];
        let mac = cbc_mac(b"7654321 Now is the time for ", |b| des_encrypt(&key, b));
        assert_eq!(hex::encode_upper(mac), "F1D30F6849312CA4");
    }

    #[test]
    fn mac_algorithm_1_tdes_vector() {
        let key = key16("7CA110454A1A6E570131D9619DC1376E");
        let mac = cbc_mac(b"Hello World !!!!", |b| tdes_encrypt(&key, b));
        assert_eq!(hex::encode_upper(mac), "862304D33AF01096");
    }

    #[test]
    fn x919_vector() {
        let key = key16("7CA110454A1A6E570131D9619DC1376E");
        assert_eq!(
            hex::encode_upper(x919_mac(&key, b"Hello World !!!!")),
            "F09B856213BAB83B"
        );
    }

    #[test]
    fn padding_method_1_pads_with_zeros_and_empty_is_one_block() {
        let key = key16("7CA110454A1A6E570131D9619DC1376E");
        assert_eq!(
            x919_mac(&key, b"Hello World !!"),
            x919_mac(&key, b"Hello World !!\0\0")
        );
        assert_eq!(x919_mac(&key, b""), x919_mac(&key, &[0u8; 8]));
        assert_ne!(
            x919_mac(&key, b"Hello World !!"),
            x919_mac(&key, b"Hello World !!!")
        );
    }

    /// RFC 4493 §4, examples 1-3.
    #[test]
    fn aes_cmac_vectors() {
        let key = key16("2B7E151628AED2A6ABF7158809CF4F3C");
        for (msg, expected) in [
            ("", "BB1D6929E95937287FA37D129B756746"),
            (
                "6BC1BEE22E409F96E93D7E117393172A",
                "070A16B46B4D4144F79BDD9DD04A287C",
            ),
            (
                "6BC1BEE22E409F96E93D7E117393172AAE2D8A571E03AC9C9EB76FAC45AF8E5130C81C46A35CE411",
                "DFA66747DE9AE63030CA32611497C827",
            ),
        ] {
            let data = hex::decode(msg).expect("hex");
            assert_eq!(hex::encode_upper(aes_cmac(&key, &data)), expected);
            assert_eq!(
                hex::encode_upper(aes_cmac_mac(&key, &data)),
                expected[..16],
                "truncated"
            );
        }
    }

    #[test]
    fn split_keeps_the_trailing_eight_bytes_as_mac() {
        let mut msg = b"0200".to_vec();
        msg.extend_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 1]);
        msg.extend_from_slice(b"MACBYTES");
        let (data, mac) = split_mac(&msg).expect("split");
        assert_eq!(data, &msg[..12]);
        assert_eq!(mac, b"MACBYTES");
        assert_eq!(mac_input(&msg).expect("input"), data);
        assert_eq!(
            mac_input(&msg[..17]),
            Err(MacInputError::TooShort { len: 17 })
        );
        assert_eq!(mac_input(&[]), Err(MacInputError::TooShort { len: 0 }));
    }

    #[test]
    fn constant_time_compare_tells_equal_from_different() {
        assert!(macs_equal(&[1; 8], &[1; 8]));
        assert!(!macs_equal(&[1; 8], &[1, 1, 1, 1, 1, 1, 1, 0]));
    }
}
