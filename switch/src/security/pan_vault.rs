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
use aes_gcm::aead::{Aead, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use serde::{Deserialize, Serialize};

use crate::domain::Pan;

/// An encrypted PAN: nonce ‖ ciphertext ‖ tag.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectedPan(#[serde(with = "serde_bytes_vec")] pub Vec<u8>);

impl std::fmt::Debug for ProtectedPan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProtectedPan({} bytes)", self.0.len())
    }
}

mod serde_bytes_vec {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        Vec::<u8>::deserialize(d)
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
        let mut nonce_bytes = [0u8; 12];
        nonce_bytes[..4].copy_from_slice(&self.prefix);
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        nonce_bytes[4..].copy_from_slice(&n.to_be_bytes());
        let nonce = Nonce::from_slice(&nonce_bytes);
        let ct = self
            .cipher
            .encrypt(nonce, pan.expose_digits())
            .map_err(|_| VaultError::Encrypt)?;
        let mut out = Vec::with_capacity(12 + ct.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&ct);
        Ok(ProtectedPan(out))
    }

    pub fn reveal(&self, p: &ProtectedPan) -> Result<Pan, VaultError> {
        if p.0.len() < 12 + 16 {
            return Err(VaultError::Unauthentic);
        }
        let (nonce, ct) = p.0.split_at(12);
        let clear = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), ct)
            .map_err(|_| VaultError::Unauthentic)?;
        Pan::parse(&clear).map_err(|_| VaultError::InvalidPan)
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
        assert_ne!(a.0[..12], c.0[..12], "clones share the nonce counter");
        assert_ne!(b.0[..12], c.0[..12], "clones share the nonce counter");
        assert!(!a.0.windows(16).any(|w| w == pan.expose_digits()));
        assert_eq!(v.reveal(&a).expect("reveal"), pan);
        let other = PanVault::new(&[8u8; 32]);
        assert_eq!(other.reveal(&a), Err(VaultError::Unauthentic));
        let mut bad = a.clone();
        bad.0[20] ^= 1;
        assert_eq!(v.reveal(&bad), Err(VaultError::Unauthentic));
        assert!(!format!("{a:?}").contains("4111"));
    }
}
