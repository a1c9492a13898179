//! The security module: the one place where clear keys and clear PINs exist.
//!
//! [`SecurityModule`] is what the rest of the switch calls: MACs by party, PIN translation between
//! zones (and from DUKPT terminals into a zone), and a guarded view of a clear PIN block for the
//! issuing engine. [`SoftwareSecurityModule`] implements it in process from the keys file; a
//! network HSM can implement the same trait later without callers changing. Keys are named by
//! [`KeyId`] (`acquirer:100002:mac`, `issuer:north-bank:zpk`, `bdk:test-tdes`); no method takes or
//! returns a clear key.
//!
//! # The boundary
//!
//! - Clear keys live only inside [`SoftwareSecurityModule`], wiped on drop, with a `Debug` that
//!   prints key names and kinds, never bytes. Operations expand a key schedule per call and drop
//!   (and wipe) it before returning.
//! - PIN translation decrypts, checks and re-encrypts without the clear PIN leaving the call; the
//!   caller sees enciphered blocks only.
//! - The issuing engine verifies a PIN from a clear format 0 block (Visa PVV). Rather than return
//!   that block, the module lends it: [`SecurityModule::use_clear_pin_block`] (or the generic
//!   [`SecurityModuleExt::with_clear_pin_block`]) decrypts into a wiped buffer, calls the
//!   caller's closure with a reference, and wipes the buffer when the closure returns. The clear
//!   block thus exists for the duration of one verification, on the module's stack. The closure
//!   can copy it (a `[u8; 8]` is `Copy`): the boundary is a convention that makes the right use
//!   the easy one, checked in review, not a guarantee the type system gives.
//! - A network HSM never releases a clear PIN block; it verifies the PIN itself (a PVV
//!   verification command holding the PVK). Such an implementation would answer
//!   `use_clear_pin_block` with an error and the trait would grow a `verify_pin_pvv` method. Call
//!   sites shaped as "hand the module a closure that verifies" move to that with little change,
//!   which is why the clear block is lent and never returned.
//!
//! Errors ([`SecurityError`]) name keys and which check failed, never values. A PIN block that
//! does not decrypt to a well-formed PIN field gives one error whatever was wrong with it, so the
//! module cannot be used as an oracle for PIN digits.

use std::collections::HashMap;
use std::fmt;

use aes_gcm::aead::OsRng;
use aes_gcm::aead::rand_core::RngCore;
use zeroize::Zeroizing;

use super::blocks::{tdes_decrypt, tdes_encrypt};
use super::dukpt::{KsnError, aes_pin_key_from_bdk, tdes_pin_key_from_bdk};
use super::keys::{
    KeyAlgorithm, KeyError, KeyId, KeyKind, KeySpec, KeysFile, MacAlgorithm, SecretKey,
};
use super::mac::{MAC_LEN, MacInputError, aes_cmac_mac, macs_equal, split_mac, x919_mac};
use super::pinblock::{
    EncryptedPinBlock, PinDigits, decipher_iso4, decode_iso0, decode_iso4_field, encipher_iso4,
    encode_iso0, encode_iso4_field,
};
use crate::domain::Pan;

/// Why a security module operation failed. Carries key names, never key, PIN or PAN values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecurityError {
    #[error("security module: no key {0}")]
    UnknownKey(KeyId),
    #[error("security module: key {key} is not {expected}")]
    WrongKeyKind { key: KeyId, expected: &'static str },
    #[error("MAC verification failed under {key}")]
    MacMismatch { key: KeyId },
    #[error("MAC input: {0}")]
    MacInput(#[from] MacInputError),
    /// The PIN block did not decrypt to a well-formed PIN field for this PAN: wrong key, wrong
    /// PAN, or altered in transit.
    #[error("PIN block is not valid under {key}")]
    InvalidPinBlock { key: KeyId },
    #[error("a {format} PIN block cannot be used with {key} ({algorithm})")]
    PinBlockFormat {
        key: KeyId,
        format: &'static str,
        algorithm: KeyAlgorithm,
    },
    #[error("KSN for {key}: {source}")]
    Ksn { key: KeyId, source: KsnError },
    #[error("security module: random source failed")]
    Random,
}

/// Where an incoming PIN block is enciphered.
#[derive(Debug, Clone, Copy)]
pub enum PinSource<'a> {
    /// Under a zone PIN key (format 0 for TDES, format 4 for AES).
    Zone(&'a KeyId),
    /// Under the DUKPT key that `ksn` derives from the base derivation key `bdk`.
    Dukpt { bdk: &'a KeyId, ksn: &'a [u8] },
}

impl PinSource<'_> {
    fn key(&self) -> &KeyId {
        match self {
            PinSource::Zone(k) => k,
            PinSource::Dukpt { bdk, .. } => bdk,
        }
    }
}

/// What the switch asks of a security module. Object safe, so the switch can hold an
/// `Arc<dyn SecurityModule>` and a network HSM can replace [`SoftwareSecurityModule`].
pub trait SecurityModule: Send + Sync {
    /// What the key named `key` is (purpose and algorithm), `None` when the module holds no such
    /// key. Never its value.
    fn key_kind(&self, key: &KeyId) -> Option<KeyKind>;

    /// The 8-byte MAC of `data` under `key` with the party's configured algorithm.
    fn generate_mac(&self, key: &KeyId, data: &[u8]) -> Result<[u8; MAC_LEN], SecurityError>;

    /// `Ok` when `mac` is the MAC of `data` under `key`; compared in constant time.
    fn verify_mac(
        &self,
        key: &KeyId,
        data: &[u8],
        mac: &[u8; MAC_LEN],
    ) -> Result<(), SecurityError>;

    /// Re-enciphers a PIN block from zone `from` to zone `to` for `pan`, after checking that it
    /// decrypts to a well-formed PIN. The format follows each key: format 0 under TDES, format 4
    /// under AES, so a TDES to AES translation turns format 0 into format 4. Format 0 to format 0
    /// gives exactly the block a PIN pad holding `to` would have sent.
    fn translate_pin(
        &self,
        from: &KeyId,
        to: &KeyId,
        pan: &Pan,
        block: &EncryptedPinBlock,
    ) -> Result<EncryptedPinBlock, SecurityError>;

    /// Re-enciphers a PIN block from a DUKPT terminal (base derivation key `bdk`, key serial
    /// number `ksn` as sent by the terminal: 10 bytes for TDES, 12 for AES) to zone `to`.
    fn translate_pin_dukpt(
        &self,
        bdk: &KeyId,
        ksn: &[u8],
        block: &EncryptedPinBlock,
        to: &KeyId,
        pan: &Pan,
    ) -> Result<EncryptedPinBlock, SecurityError>;

    /// Decrypts `block` from `source`, checks it, and calls `use_block` with the clear ISO 9564
    /// format 0 block for `pan` (whatever the incoming format), wiping it afterwards. See the
    /// module documentation for the boundary this draws.
    fn use_clear_pin_block(
        &self,
        source: PinSource<'_>,
        pan: &Pan,
        block: &EncryptedPinBlock,
        use_block: &mut dyn FnMut(&[u8; 8]),
    ) -> Result<(), SecurityError>;
}

/// Conveniences over any [`SecurityModule`].
pub trait SecurityModuleExt: SecurityModule {
    /// [`SecurityModule::use_clear_pin_block`] with a closure that returns a value, e.g.
    /// `hsm.with_clear_pin_block(PinSource::Zone(&zpk), &pan, &block, |clear| engine.verify_pin_block(&pan, clear))`.
    fn with_clear_pin_block<R>(
        &self,
        source: PinSource<'_>,
        pan: &Pan,
        block: &EncryptedPinBlock,
        f: impl FnOnce(&[u8; 8]) -> R,
    ) -> Result<R, SecurityError> {
        let mut f = Some(f);
        let mut out = None;
        self.use_clear_pin_block(source, pan, block, &mut |clear| {
            if let Some(f) = f.take() {
                out = Some(f(clear));
            }
        })?;
        // The module calls the closure exactly once on success; an implementation that did not
        // is reported as an invalid block rather than a panic.
        out.ok_or_else(|| SecurityError::InvalidPinBlock {
            key: source.key().clone(),
        })
    }

    /// Verifies the MAC that ends `message` (an encoded ISO 8583 message from the MTI through
    /// the MAC field) under `key`; see [`super::mac`] for what is covered.
    fn verify_message_mac(&self, key: &KeyId, message: &[u8]) -> Result<(), SecurityError> {
        let (data, mac) = split_mac(message)?;
        self.verify_mac(key, data, mac)
    }
}

impl<T: SecurityModule + ?Sized> SecurityModuleExt for T {}

/// The in-process security module, built from the keys file.
pub struct SoftwareSecurityModule {
    keys: HashMap<KeyId, KeySpec>,
}

impl fmt::Debug for SoftwareSecurityModule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<String> = self
            .keys
            .iter()
            .map(|(id, spec)| {
                let kind = match spec {
                    KeySpec::Mac(MacAlgorithm::X919, _) => "x9.19 MAC",
                    KeySpec::Mac(MacAlgorithm::AesCmac, _) => "AES-CMAC",
                    KeySpec::Zpk(KeyAlgorithm::Tdes, _) => "TDES ZPK",
                    KeySpec::Zpk(KeyAlgorithm::Aes, _) => "AES ZPK",
                    KeySpec::Bdk(KeyAlgorithm::Tdes, _) => "TDES BDK",
                    KeySpec::Bdk(KeyAlgorithm::Aes, _) => "AES BDK",
                };
                format!("{id} ({kind})")
            })
            .collect();
        names.sort();
        f.debug_struct("SoftwareSecurityModule")
            .field("keys", &names)
            .finish()
    }
}

impl SoftwareSecurityModule {
    /// Validates the keys file (every problem at once) and loads its keys.
    pub fn from_keys(keys: &KeysFile) -> Result<SoftwareSecurityModule, KeyError> {
        let resolved = keys.resolve("keys file").map_err(KeyError::Problems)?;
        Ok(SoftwareSecurityModule {
            keys: resolved.into_iter().collect(),
        })
    }

    /// The ids of every key held, sorted, so that the switch can check at start-up that the keys
    /// its config names exist.
    pub fn key_ids(&self) -> Vec<KeyId> {
        let mut ids: Vec<KeyId> = self.keys.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// The key named `key` if `pick` accepts its kind; `expected` names the kind for the error.
    fn lookup<'a, A>(
        &'a self,
        key: &KeyId,
        expected: &'static str,
        pick: fn(&'a KeySpec) -> Option<(A, &'a SecretKey)>,
    ) -> Result<(A, &'a SecretKey), SecurityError> {
        let spec = self
            .keys
            .get(key)
            .ok_or_else(|| SecurityError::UnknownKey(key.clone()))?;
        pick(spec).ok_or_else(|| SecurityError::WrongKeyKind {
            key: key.clone(),
            expected,
        })
    }

    fn mac_key(&self, key: &KeyId) -> Result<(MacAlgorithm, &SecretKey), SecurityError> {
        self.lookup(key, "a MAC key", |spec| match spec {
            KeySpec::Mac(algorithm, secret) => Some((*algorithm, secret)),
            _ => None,
        })
    }

    fn zpk(&self, key: &KeyId) -> Result<(KeyAlgorithm, &SecretKey), SecurityError> {
        self.lookup(key, "a zone PIN key", |spec| match spec {
            KeySpec::Zpk(algorithm, secret) => Some((*algorithm, secret)),
            _ => None,
        })
    }

    fn bdk(&self, key: &KeyId) -> Result<(KeyAlgorithm, &SecretKey), SecurityError> {
        self.lookup(key, "a base derivation key", |spec| match spec {
            KeySpec::Bdk(algorithm, secret) => Some((*algorithm, secret)),
            _ => None,
        })
    }

    /// The PIN key `block` is enciphered under, with its algorithm: the zone key itself, or the
    /// DUKPT PIN key derived for the KSN.
    fn source_key(
        &self,
        source: PinSource<'_>,
    ) -> Result<(KeyAlgorithm, Zeroizing<[u8; 16]>), SecurityError> {
        match source {
            PinSource::Zone(id) => {
                let (algorithm, secret) = self.zpk(id)?;
                Ok((algorithm, Zeroizing::new(*secret.expose())))
            }
            PinSource::Dukpt { bdk, ksn } => {
                let (algorithm, secret) = self.bdk(bdk)?;
                let derived = match algorithm {
                    KeyAlgorithm::Tdes => tdes_pin_key_from_bdk(secret.expose(), ksn),
                    KeyAlgorithm::Aes => aes_pin_key_from_bdk(secret.expose(), ksn),
                };
                let key = derived.map_err(|source| SecurityError::Ksn {
                    key: bdk.clone(),
                    source,
                })?;
                Ok((algorithm, key))
            }
        }
    }

    /// The PIN in `block`, checked against `pan`.
    fn decrypt_pin(
        &self,
        source: PinSource<'_>,
        pan: &Pan,
        block: &EncryptedPinBlock,
    ) -> Result<PinDigits, SecurityError> {
        let (algorithm, key) = self.source_key(source)?;
        let pan = pan.expose_digits();
        let pin = match (algorithm, block) {
            (KeyAlgorithm::Tdes, EncryptedPinBlock::Iso0(b)) => {
                let mut clear = Zeroizing::new(*b);
                tdes_decrypt(&key, &mut clear);
                decode_iso0(&clear, pan)
            }
            (KeyAlgorithm::Aes, EncryptedPinBlock::Iso4(b)) => {
                decode_iso4_field(&decipher_iso4(&key, b, pan))
            }
            _ => {
                return Err(SecurityError::PinBlockFormat {
                    key: source.key().clone(),
                    format: block.format_name(),
                    algorithm,
                });
            }
        };
        pin.map_err(|_| SecurityError::InvalidPinBlock {
            key: source.key().clone(),
        })
    }

    /// `pin` for `pan` enciphered under zone key `to`, in the format its algorithm takes.
    fn encrypt_pin(
        &self,
        to: &KeyId,
        pan: &Pan,
        pin: &PinDigits,
    ) -> Result<EncryptedPinBlock, SecurityError> {
        let (algorithm, secret) = self.zpk(to)?;
        let pan = pan.expose_digits();
        match algorithm {
            KeyAlgorithm::Tdes => {
                let mut block = encode_iso0(pin, pan);
                tdes_encrypt(secret.expose(), &mut block);
                Ok(EncryptedPinBlock::Iso0(*block))
            }
            KeyAlgorithm::Aes => {
                let mut random = [0u8; 8];
                OsRng
                    .try_fill_bytes(&mut random)
                    .map_err(|_| SecurityError::Random)?;
                let field = encode_iso4_field(pin, &random);
                Ok(EncryptedPinBlock::Iso4(encipher_iso4(
                    secret.expose(),
                    &field,
                    pan,
                )))
            }
        }
    }

    fn translate(
        &self,
        source: PinSource<'_>,
        to: &KeyId,
        pan: &Pan,
        block: &EncryptedPinBlock,
    ) -> Result<EncryptedPinBlock, SecurityError> {
        // Resolve the destination first: a missing key is a configuration error worth
        // reporting even when the block is also bad.
        self.zpk(to)?;
        let pin = self.decrypt_pin(source, pan, block)?;
        self.encrypt_pin(to, pan, &pin)
    }
}

impl SecurityModule for SoftwareSecurityModule {
    fn key_kind(&self, key: &KeyId) -> Option<KeyKind> {
        self.keys.get(key).map(KeySpec::kind)
    }

    fn generate_mac(&self, key: &KeyId, data: &[u8]) -> Result<[u8; MAC_LEN], SecurityError> {
        let (algorithm, secret) = self.mac_key(key)?;
        Ok(match algorithm {
            MacAlgorithm::X919 => x919_mac(secret.expose(), data),
            MacAlgorithm::AesCmac => aes_cmac_mac(secret.expose(), data),
        })
    }

    fn verify_mac(
        &self,
        key: &KeyId,
        data: &[u8],
        mac: &[u8; MAC_LEN],
    ) -> Result<(), SecurityError> {
        let expected = self.generate_mac(key, data)?;
        if macs_equal(&expected, mac) {
            Ok(())
        } else {
            Err(SecurityError::MacMismatch { key: key.clone() })
        }
    }

    fn translate_pin(
        &self,
        from: &KeyId,
        to: &KeyId,
        pan: &Pan,
        block: &EncryptedPinBlock,
    ) -> Result<EncryptedPinBlock, SecurityError> {
        self.translate(PinSource::Zone(from), to, pan, block)
    }

    fn translate_pin_dukpt(
        &self,
        bdk: &KeyId,
        ksn: &[u8],
        block: &EncryptedPinBlock,
        to: &KeyId,
        pan: &Pan,
    ) -> Result<EncryptedPinBlock, SecurityError> {
        self.translate(PinSource::Dukpt { bdk, ksn }, to, pan, block)
    }

    fn use_clear_pin_block(
        &self,
        source: PinSource<'_>,
        pan: &Pan,
        block: &EncryptedPinBlock,
        use_block: &mut dyn FnMut(&[u8; 8]),
    ) -> Result<(), SecurityError> {
        let pin = self.decrypt_pin(source, pan, block)?;
        let clear = encode_iso0(&pin, pan.expose_digits());
        use_block(&clear);
        Ok(())
    }
}
