//! PANs at rest: AES-256-GCM with a distinct 96-bit nonce per PAN, so the journal never holds a
//! PAN in clear and two records of the same card are not linkable by their ciphertext. The masked
//! form (first 6, last 4) travels beside it for people and reports.
//!
//! Nonces: a vault draws one random 96-bit starting point from the operating system when it is
//! built, and every encryption takes the next value of a counter over the low 64 bits (shared by
//! the vault's clones). Within a process nonces are distinct by construction; across restarts two
//! runs collide only if their random ranges overlap, which for any real number of restarts and
//! records is far below 2^-40. It replaces a `getrandom` system call per request, which perf
//! showed on the authorization path.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{AeadInPlace, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Key, Nonce, Tag};
use arrayvec::ArrayVec;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::domain::Pan;

const NONCE_BYTES: usize = 12;
const TAG_BYTES: usize = 16;
/// The longest PAN, in digits (ISO/IEC 7812).
const PAN_DIGITS_MAX: usize = 19;
/// The longest protected PAN: nonce, a 19-digit PAN, tag.
pub const PROTECTED_PAN_BYTES_MAX: usize = NONCE_BYTES + PAN_DIGITS_MAX + TAG_BYTES;

/// An encrypted PAN: nonce ‖ ciphertext ‖ tag, held inline. Every request makes one and the
/// records of an approval carry copies (the request record, the reversal kept ready): as a
/// `Vec` that was three allocations per request, freed on other threads.
#[derive(Clone, PartialEq, Eq)]
pub struct ProtectedPan {
    bytes: ArrayVec<u8, PROTECTED_PAN_BYTES_MAX>,
}

impl ProtectedPan {
    /// `bytes` as a protected PAN, if not longer than [`PROTECTED_PAN_BYTES_MAX`] (whether it
    /// opens is [`PanVault::reveal`]'s question).
    pub fn from_bytes(bytes: &[u8]) -> Option<ProtectedPan> {
        Some(ProtectedPan {
            bytes: ArrayVec::try_from(bytes).ok()?,
        })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl std::fmt::Debug for ProtectedPan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProtectedPan({} bytes)", self.bytes.len())
    }
}

/// As bytes, which is what the `Vec<u8>` it was encoded as (a length, then the bytes), so
/// journals written before stay readable.
impl Serialize for ProtectedPan {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.as_bytes())
    }
}

impl<'de> Deserialize<'de> for ProtectedPan {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = Vec::<u8>::deserialize(d)?;
        ProtectedPan::from_bytes(&bytes).ok_or_else(|| {
            serde::de::Error::invalid_length(bytes.len(), &"a protected PAN of at most 47 bytes")
        })
    }
}

/// Why a protected PAN could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    #[error("internal: protected PAN failed authentication (wrong key or corrupted record)")]
    Unauthentic,
    #[error("internal: protected PAN decrypts to an invalid PAN")]
    InvalidPan,
    #[error("internal: PAN encryption failed")]
    Encrypt,
}

/// Encrypts and decrypts PANs under the journal PAN key.
#[derive(Clone)]
pub struct PanVault {
    cipher: Aes256Gcm,
    /// The nonce's high 32 bits, random per vault.
    prefix: [u8; 4],
    /// The next nonce's low 64 bits (random start, then counting).
    counter: Arc<AtomicU64>,
}

impl std::fmt::Debug for PanVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PanVault { .. }")
    }
}

impl PanVault {
    pub fn new(key: &[u8; 32]) -> PanVault {
        let mut prefix = [0u8; 4];
        OsRng.fill_bytes(&mut prefix);
        PanVault {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key)),
            prefix,
            counter: Arc::new(AtomicU64::new(OsRng.next_u64())),
        }
    }

    pub fn protect(&self, pan: &Pan) -> Result<ProtectedPan, VaultError> {
        let digits = pan.expose_digits();
        if digits.len() > PAN_DIGITS_MAX {
            return Err(VaultError::Encrypt);
        }
        let mut out = ProtectedPan {
            bytes: ArrayVec::from([0; PROTECTED_PAN_BYTES_MAX]),
        };
        out.bytes.truncate(NONCE_BYTES + digits.len() + TAG_BYTES);
        let (nonce_bytes, rest) = out.bytes.split_at_mut(NONCE_BYTES);
        nonce_bytes[..4].copy_from_slice(&self.prefix);
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        nonce_bytes[4..].copy_from_slice(&n.to_be_bytes());
        let (text, tag_out) = rest.split_at_mut(digits.len());
        text.copy_from_slice(digits);
        // Encrypted where it lies: no buffer of its own, as `Aead::encrypt` allocates.
        let tag = self
            .cipher
            .encrypt_in_place_detached(Nonce::from_slice(nonce_bytes), b"", text)
            .map_err(|_| VaultError::Encrypt)?;
        tag_out.copy_from_slice(&tag);
        Ok(out)
    }

    pub fn reveal(&self, p: &ProtectedPan) -> Result<Pan, VaultError> {
        let bytes = p.as_bytes();
        if bytes.len() < NONCE_BYTES + TAG_BYTES {
            return Err(VaultError::Unauthentic);
        }
        let (nonce, rest) = bytes.split_at(NONCE_BYTES);
        let (ct, tag) = rest.split_at(rest.len() - TAG_BYTES);
        let mut clear = [0u8; PAN_DIGITS_MAX];
        let clear = clear.get_mut(..ct.len()).ok_or(VaultError::Unauthentic)?;
        clear.copy_from_slice(ct);
        self.cipher
            .decrypt_in_place_detached(Nonce::from_slice(nonce), b"", clear, Tag::from_slice(tag))
            .map_err(|_| VaultError::Unauthentic)?;
        Pan::parse(clear).map_err(|_| VaultError::InvalidPan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_no_clear_digits() {
        let v = PanVault::new(&[7u8; 32]);
        let pan = Pan::parse(b"4111110000000013").expect("pan");
        let a = v.protect(&pan).expect("protect");
        let b = v.protect(&pan).expect("protect");
        assert_ne!(a, b, "fresh nonce each time");
        let c = v.clone().protect(&pan).expect("protect");
        assert_ne!(
            a.as_bytes()[..12],
            c.as_bytes()[..12],
            "clones share the nonce counter"
        );
        assert_ne!(
            b.as_bytes()[..12],
            c.as_bytes()[..12],
            "clones share the nonce counter"
        );
        assert!(!a.as_bytes().windows(16).any(|w| w == pan.expose_digits()));
        assert_eq!(v.reveal(&a).expect("reveal"), pan);
        let other = PanVault::new(&[8u8; 32]);
        assert_eq!(other.reveal(&a), Err(VaultError::Unauthentic));
        let mut bad = a.clone();
        bad.bytes[20] ^= 1;
        assert_eq!(v.reveal(&bad), Err(VaultError::Unauthentic));
        assert!(!format!("{a:?}").contains("4111"));
    }

    /// Encoded as the `Vec<u8>` it used to be, so journals written before read back, and
    /// nothing longer than a protected PAN can be is taken.
    #[test]
    fn encodes_as_the_bytes_it_was_and_refuses_oversized_ones() {
        let v = PanVault::new(&[7u8; 32]);
        let pan = Pan::parse(b"6222021234567890128").expect("19 digits");
        let p = v.protect(&pan).expect("protect");
        assert_eq!(p.as_bytes().len(), PROTECTED_PAN_BYTES_MAX);
        let as_vec = postcard::to_allocvec(&p.as_bytes().to_vec()).expect("vec");
        assert_eq!(postcard::to_allocvec(&p).expect("encode"), as_vec);
        let back: ProtectedPan = postcard::from_bytes(&as_vec).expect("decode");
        assert_eq!(v.reveal(&back), Ok(pan));
        let too_long = postcard::to_allocvec(&vec![0u8; PROTECTED_PAN_BYTES_MAX + 1]).expect("vec");
        assert!(postcard::from_bytes::<ProtectedPan>(&too_long).is_err());
        assert!(ProtectedPan::from_bytes(&[0; PROTECTED_PAN_BYTES_MAX + 1]).is_none());
        // What the vault wrote before it encrypted in place (`Aead::encrypt`: ciphertext, then
        // tag, after the nonce) still opens.
        use aes_gcm::aead::Aead;
        let nonce = [9u8; NONCE_BYTES];
        let mut old = nonce.to_vec();
        old.extend(
            v.cipher
                .encrypt(Nonce::from_slice(&nonce), pan.expose_digits())
                .expect("encrypt"),
        );
        let old = ProtectedPan::from_bytes(&old).expect("fits");
        assert_eq!(v.reveal(&old), Ok(pan));
        assert_eq!(
            v.reveal(&ProtectedPan::from_bytes(&[0; 20]).expect("short")),
            Err(VaultError::Unauthentic)
        );
    }
}
