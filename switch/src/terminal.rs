//! The acquirer's side of message security, for the acquirer client ([`crate::client`]): the
//! MAC key an acquirer host MACs its requests with and checks the switch's answers with, and a
//! PIN pad that enciphers PINs under a zone PIN key or with DUKPT (TDES, ANSI X9.24-1; AES-128,
//! X9.24-3), its KSN advancing with every PIN.
//!
//! Owns what a terminal holds: clear keys, read from the keys file the way a PIN pad is loaded
//! at key injection (through [`HexKey::expose_hex`], the keys file's accessor for simulators),
//! and the KSN counter. It leaves the cryptography to [`crate::security`]'s terminal-side
//! helpers and where the results go in a message to the client. The switch itself never uses
//! this module: it holds its keys in its security module and never sees them in clear.
//!
//! Test keys only: this is what simulators, the demo and tests play; a real PIN pad never lets
//! its keys out.

use std::fmt;
use std::sync::Mutex;

use aes_gcm::aead::OsRng;
use aes_gcm::aead::rand_core::RngCore;
use zeroize::Zeroizing;

use crate::decision::security::MacViolation;
use crate::domain::Pan;
use crate::iso8583::Message;
use crate::iso8583::mac::{MAC_LEN, has_mac};
use crate::iso8583::views::Ksn;
use crate::security::dukpt::{
    AES_KSN_LEN, DerivedKey, KsnError, TDES_KSN_LEN, aes_encrypt_pin, aes_initial_key,
    aes_next_ksn, tdes_encrypt_pin, tdes_ipek, tdes_next_ksn,
};
use crate::security::keys::HexKey;
use crate::security::mac::{aes_cmac_mac, macs_equal, x919_mac};
use crate::security::pinblock::{encrypt_iso0, encrypt_iso4};
use crate::security::{
    EncryptedPinBlock, KeyAlgorithm, KeyId, KeyPurpose, KeysFile, MacAlgorithm, PinBlockError,
};

/// The first KSN of the TDES DUKPT test PIN pad: the ANSI X9.24-1 Annex A test KSN, counter 1.
pub const TEST_TDES_KSN: [u8; TDES_KSN_LEN] =
    [0xFF, 0xFF, 0x98, 0x76, 0x54, 0x32, 0x10, 0xE0, 0, 1];
/// The first KSN of the AES DUKPT test PIN pad: initial key id `1234567890123456` of the X9.24-3
/// test vectors, counter 1.
pub const TEST_AES_KSN: [u8; AES_KSN_LEN] =
    [0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56, 0, 0, 0, 1];

/// How the PIN pad enciphers PINs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinSetup {
    /// No PIN pad keys.
    None,
    /// Under a zone PIN key: format 0 in field 52 for TDES, format 4 in field 63 for AES.
    Zone(KeyId),
    /// TDES DUKPT: the PIN pad is loaded with the IPEK `bdk` gives for `ksn`, the KSN of its
    /// first PIN; format 0 in field 52, the KSN in field 62.
    TdesDukpt { bdk: KeyId, ksn: [u8; TDES_KSN_LEN] },
    /// AES DUKPT: loaded with the initial key `bdk` gives for the KSN's initial key id; format 4
    /// in field 63, the KSN in field 62.
    AesDukpt { bdk: KeyId, ksn: [u8; AES_KSN_LEN] },
}

/// Why a terminal's keys could not be set up, or a PIN not enciphered. Names keys, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TerminalKeyError {
    #[error("terminal keys: no key {0} in the keys file")]
    Missing(KeyId),
    #[error("terminal keys: {0} is not {1}")]
    Purpose(KeyId, &'static str),
    #[error("terminal keys: {0}: not 32 hex digits")]
    Hex(KeyId),
    #[error("terminal keys: KSN: {0}")]
    Ksn(#[from] KsnError),
    #[error("PIN: {0}")]
    Pin(#[from] PinBlockError),
    #[error("PIN: needs a valid card number")]
    Pan,
    #[error("PIN pad: no random source")]
    Random,
}

/// A PIN as the PIN pad sends it.
#[derive(Debug, Clone, Copy)]
pub struct EncipheredPin {
    pub block: EncryptedPinBlock,
    /// The KSN of a DUKPT PIN pad, for field 62.
    pub ksn: Option<Ksn>,
}

struct ClearMac {
    algorithm: MacAlgorithm,
    key: Zeroizing<[u8; 16]>,
}

enum PinPad {
    Zone {
        algorithm: KeyAlgorithm,
        key: Zeroizing<[u8; 16]>,
    },
    TdesDukpt {
        ipek: DerivedKey,
        next: Mutex<[u8; TDES_KSN_LEN]>,
    },
    AesDukpt {
        initial_key: DerivedKey,
        next: Mutex<[u8; AES_KSN_LEN]>,
    },
}

/// What an acquirer host and its PIN pad hold. `Debug` shows what is set, never a key.
#[derive(Default)]
pub struct TerminalKeys {
    mac: Option<ClearMac>,
    pin: Option<PinPad>,
}

impl fmt::Debug for TerminalKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pin = match &self.pin {
            None => "none",
            Some(PinPad::Zone { .. }) => "zone PIN key",
            Some(PinPad::TdesDukpt { .. }) => "TDES DUKPT",
            Some(PinPad::AesDukpt { .. }) => "AES DUKPT",
        };
        f.debug_struct("TerminalKeys")
            .field("mac", &self.mac.as_ref().map(|m| m.algorithm))
            .field("pin", &pin)
            .finish()
    }
}

/// The clear key `id` names in the keys file, with the algorithm text written beside it.
fn find<'k>(keys: &'k KeysFile, id: &KeyId) -> Result<(&'k str, &'k HexKey), TerminalKeyError> {
    let missing = || TerminalKeyError::Missing(id.clone());
    let parts: Vec<&str> = id.as_str().split(':').collect();
    match parts.as_slice() {
        ["bdk", name] => keys
            .bdk
            .iter()
            .find(|b| b.name == *name)
            .map(|b| (b.algorithm.as_str(), &b.key))
            .ok_or_else(missing),
        [section, party, usage] => {
            let list = if *section == "acquirer" {
                &keys.acquirer
            } else {
                &keys.issuer
            };
            let p = list.iter().find(|p| p.id == *party).ok_or_else(missing)?;
            let (algorithm, key) = if *usage == "mac" {
                (&p.mac_algorithm, &p.mac_key)
            } else {
                (&p.zpk_algorithm, &p.zpk)
            };
            match (algorithm, key) {
                (Some(a), Some(k)) => Ok((a.as_str(), k)),
                _ => Err(missing()),
            }
        }
        _ => Err(missing()),
    }
}

fn clear(id: &KeyId, key: &HexKey) -> Result<Zeroizing<[u8; 16]>, TerminalKeyError> {
    let mut out = Zeroizing::new([0u8; 16]);
    hex::decode_to_slice(key.expose_hex(), &mut out[..])
        .map_err(|_| TerminalKeyError::Hex(id.clone()))?;
    Ok(out)
}

fn key_algorithm(id: &KeyId, text: &str) -> Result<KeyAlgorithm, TerminalKeyError> {
    KeyAlgorithm::parse(text).ok_or(TerminalKeyError::Purpose(id.clone(), "TDES or AES"))
}

fn random8() -> Result<[u8; 8], TerminalKeyError> {
    let mut r = [0u8; 8];
    OsRng
        .try_fill_bytes(&mut r)
        .map_err(|_| TerminalKeyError::Random)?;
    Ok(r)
}

/// The KSN of the first PIN: `ksn` itself, or its successor when its counter is zero (the
/// IPEK's own KSN, which no transaction uses).
fn first_tdes(ksn: [u8; TDES_KSN_LEN]) -> Result<[u8; TDES_KSN_LEN], TerminalKeyError> {
    let zero = ksn[7] & 0x1F == 0 && ksn[8] == 0 && ksn[9] == 0;
    if zero {
        tdes_next_ksn(&ksn).ok_or(TerminalKeyError::Ksn(KsnError::Exhausted))
    } else {
        Ok(ksn)
    }
}

fn first_aes(ksn: [u8; AES_KSN_LEN]) -> Result<[u8; AES_KSN_LEN], TerminalKeyError> {
    if ksn[8..] == [0, 0, 0, 0] {
        aes_next_ksn(&ksn).ok_or(TerminalKeyError::Ksn(KsnError::Exhausted))
    } else {
        Ok(ksn)
    }
}

/// Takes the KSN to use now and moves the counter on.
fn take<const N: usize>(
    next: &Mutex<[u8; N]>,
    advance: fn(&[u8; N]) -> Option<[u8; N]>,
) -> Result<[u8; N], TerminalKeyError> {
    let mut slot = next.lock().unwrap_or_else(|p| p.into_inner());
    let now = *slot;
    *slot = advance(&now).ok_or(TerminalKeyError::Ksn(KsnError::Exhausted))?;
    Ok(now)
}

impl TerminalKeys {
    /// No keys: requests go without a MAC and PINs in clear.
    pub fn none() -> TerminalKeys {
        TerminalKeys::default()
    }

    /// A terminal loaded from the keys file: the MAC key `mac` names (if any) and a PIN pad as
    /// `pin` says.
    pub fn from_keys_file(
        keys: &KeysFile,
        mac: Option<&KeyId>,
        pin: &PinSetup,
    ) -> Result<TerminalKeys, TerminalKeyError> {
        let mac = match mac {
            None => None,
            Some(id) => {
                if id.purpose() != KeyPurpose::Mac {
                    return Err(TerminalKeyError::Purpose(id.clone(), "a MAC key"));
                }
                let (algorithm, key) = find(keys, id)?;
                Some(ClearMac {
                    algorithm: MacAlgorithm::parse(algorithm)
                        .ok_or(TerminalKeyError::Purpose(id.clone(), "x9.19 or aes-cmac"))?,
                    key: clear(id, key)?,
                })
            }
        };
        let bdk = |id: &KeyId, want: KeyAlgorithm| -> Result<_, TerminalKeyError> {
            let (algorithm, key) = find(keys, id)?;
            if id.purpose() != KeyPurpose::Bdk || key_algorithm(id, algorithm)? != want {
                let what = match want {
                    KeyAlgorithm::Tdes => "a TDES BDK",
                    KeyAlgorithm::Aes => "an AES BDK",
                };
                return Err(TerminalKeyError::Purpose(id.clone(), what));
            }
            clear(id, key)
        };
        let pin = match pin {
            PinSetup::None => None,
            PinSetup::Zone(id) => {
                if id.purpose() != KeyPurpose::Zpk {
                    return Err(TerminalKeyError::Purpose(id.clone(), "a zone PIN key"));
                }
                let (algorithm, key) = find(keys, id)?;
                Some(PinPad::Zone {
                    algorithm: key_algorithm(id, algorithm)?,
                    key: clear(id, key)?,
                })
            }
            PinSetup::TdesDukpt { bdk: id, ksn } => {
                let base = bdk(id, KeyAlgorithm::Tdes)?;
                Some(PinPad::TdesDukpt {
                    ipek: tdes_ipek(&base, ksn)?,
                    next: Mutex::new(first_tdes(*ksn)?),
                })
            }
            PinSetup::AesDukpt { bdk: id, ksn } => {
                let base = bdk(id, KeyAlgorithm::Aes)?;
                let mut initial_key_id = [0u8; 8];
                initial_key_id.copy_from_slice(&ksn[..8]);
                Some(PinPad::AesDukpt {
                    initial_key: aes_initial_key(&base, &initial_key_id),
                    next: Mutex::new(first_aes(*ksn)?),
                })
            }
        };
        Ok(TerminalKeys { mac, pin })
    }

    /// True when requests are MACed and answers checked.
    pub fn has_mac(&self) -> bool {
        self.mac.is_some()
    }

    /// True when PINs are enciphered.
    pub fn has_pin_pad(&self) -> bool {
        self.pin.is_some()
    }

    /// The MAC of `data`, `None` without a MAC key.
    pub fn mac(&self, data: &[u8]) -> Option<[u8; MAC_LEN]> {
        let m = self.mac.as_ref()?;
        Some(match m.algorithm {
            MacAlgorithm::X919 => x919_mac(&m.key, data),
            MacAlgorithm::AesCmac => aes_cmac_mac(&m.key, data),
        })
    }

    /// Checks the MAC of a message from the switch; always `Ok` without a MAC key.
    pub fn verify(&self, msg: &Message) -> Result<(), MacViolation> {
        if self.mac.is_none() {
            return Ok(());
        }
        if !has_mac(msg) {
            return Err(MacViolation::Missing);
        }
        let bytes = msg.as_bytes();
        let (data, got) = bytes.split_at(bytes.len() - MAC_LEN);
        let got: &[u8; MAC_LEN] = got.try_into().map_err(|_| MacViolation::Invalid)?;
        match self.mac(data) {
            Some(expected) if macs_equal(&expected, got) => Ok(()),
            _ => Err(MacViolation::Invalid),
        }
    }

    /// `pin` for `pan` as the PIN pad sends it (a DUKPT pad moves to its next KSN); `None`
    /// without a PIN pad.
    pub fn encipher_pin(
        &self,
        pin: &str,
        pan: &Pan,
    ) -> Result<Option<EncipheredPin>, TerminalKeyError> {
        let Some(pad) = &self.pin else {
            return Ok(None);
        };
        let out = match pad {
            PinPad::Zone { algorithm, key } => EncipheredPin {
                block: match algorithm {
                    KeyAlgorithm::Tdes => encrypt_iso0(key, pin, pan)?,
                    KeyAlgorithm::Aes => encrypt_iso4(key, pin, pan, random8()?)?,
                },
                ksn: None,
            },
            PinPad::TdesDukpt { ipek, next } => {
                let ksn = take(next, tdes_next_ksn)?;
                EncipheredPin {
                    block: tdes_encrypt_pin(ipek, &ksn, pin, pan).map_err(dukpt_error)?,
                    ksn: Ksn::from_bytes(&ksn),
                }
            }
            PinPad::AesDukpt { initial_key, next } => {
                let ksn = take(next, aes_next_ksn)?;
                EncipheredPin {
                    block: aes_encrypt_pin(initial_key, &ksn, pin, pan, random8()?)
                        .map_err(dukpt_error)?,
                    ksn: Ksn::from_bytes(&ksn),
                }
            }
        };
        Ok(Some(out))
    }
}

fn dukpt_error(e: crate::security::DukptError) -> TerminalKeyError {
    match e {
        crate::security::DukptError::Ksn(k) => TerminalKeyError::Ksn(k),
        crate::security::DukptError::Pin(p) => TerminalKeyError::Pin(p),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::security::{PinSource, SecurityModuleExt, SoftwareSecurityModule};

    fn keys() -> KeysFile {
        KeysFile::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/keys.toml"))
            .expect("keys")
    }

    fn id(t: &str) -> KeyId {
        t.parse().expect("id")
    }

    const PAN: &[u8] = b"4012345678909";

    /// The terminal's blocks decipher in the switch's module to the PIN it was given: zone
    /// and both DUKPT kinds, and the DUKPT counter moves on.
    #[test]
    fn pin_pads_agree_with_the_security_module() {
        let keys = keys();
        let module = SoftwareSecurityModule::from_keys(&keys).expect("module");
        let pan = Pan::parse(b"4111110000000013").expect("pan");
        let expected = crate::security::pinblock::iso0_clear_block("1234", &pan).expect("clear");
        let zpk = id("acquirer:100001:zpk");
        let tdes = id("bdk:test-tdes");
        let aes = id("bdk:test-aes");
        for setup in [
            PinSetup::Zone(zpk.clone()),
            PinSetup::TdesDukpt {
                bdk: tdes.clone(),
                ksn: TEST_TDES_KSN,
            },
            PinSetup::AesDukpt {
                bdk: aes.clone(),
                ksn: TEST_AES_KSN,
            },
        ] {
            let t = TerminalKeys::from_keys_file(&keys, None, &setup).expect("terminal");
            let mut ksns = Vec::new();
            for _ in 0..3 {
                let e = t.encipher_pin("1234", &pan).expect("pin").expect("pad");
                let source = match (&setup, &e.ksn) {
                    (PinSetup::Zone(z), None) => PinSource::Zone(z),
                    (PinSetup::TdesDukpt { .. }, Some(k)) => {
                        ksns.push(*k);
                        PinSource::Dukpt {
                            bdk: &tdes,
                            ksn: k.as_bytes(),
                        }
                    }
                    (PinSetup::AesDukpt { .. }, Some(k)) => {
                        ksns.push(*k);
                        PinSource::Dukpt {
                            bdk: &aes,
                            ksn: k.as_bytes(),
                        }
                    }
                    other => panic!("{other:?}"),
                };
                let clear = module
                    .with_clear_pin_block(source, &pan, &e.block, |c| *c)
                    .expect("deciphers");
                assert_eq!(clear, expected, "{setup:?}");
            }
            ksns.dedup();
            assert!(
                ksns.is_empty() || ksns.len() == 3,
                "a new KSN per PIN: {setup:?}"
            );
        }
    }

    /// ANSI X9.24-1 Annex A.4: the first two PINs of the test PIN pad.
    #[test]
    fn tdes_dukpt_pad_follows_the_published_vectors() {
        let t = TerminalKeys::from_keys_file(
            &keys(),
            None,
            &PinSetup::TdesDukpt {
                bdk: id("bdk:test-tdes"),
                ksn: [0xFF, 0xFF, 0x98, 0x76, 0x54, 0x32, 0x10, 0xE0, 0, 0],
            },
        )
        .expect("terminal");
        let pan = Pan::parse(PAN).expect("pan");
        for (ksn, block) in [
            ("FFFF9876543210E00001", "1B9C1845EB993A7A"),
            ("FFFF9876543210E00002", "10A01C8D02C69107"),
        ] {
            let e = t.encipher_pin("1234", &pan).expect("pin").expect("pad");
            assert_eq!(e.ksn.map(|k| k.to_field()).as_deref(), Some(ksn));
            assert_eq!(hex::encode_upper(e.block.as_bytes()), block);
        }
    }

    #[test]
    fn mac_and_its_check() {
        let keys = keys();
        let t =
            TerminalKeys::from_keys_file(&keys, Some(&id("acquirer:100002:mac")), &PinSetup::None)
                .expect("terminal");
        assert!(t.has_mac() && !t.has_pin_pad());
        let mut b = crate::iso8583::samples::auth_request(&crate::iso8583::ISO87_ASCII);
        let mut out = bytes::BytesMut::new();
        crate::iso8583::mac::encode_with_mac(&mut b, &mut out, |d| t.mac(d).ok_or(()))
            .expect("maced");
        let msg =
            crate::iso8583::decode(&crate::iso8583::ISO87_ASCII, out.freeze()).expect("decode");
        assert_eq!(t.verify(&msg), Ok(()));
        // The switch's module agrees.
        let module = SoftwareSecurityModule::from_keys(&keys).expect("module");
        assert_eq!(
            crate::decision::security::check_mac(&module, &id("acquirer:100002:mac"), &msg),
            Ok(())
        );
        assert_eq!(TerminalKeys::none().verify(&msg), Ok(()));
    }

    #[test]
    fn keys_are_named_never_shown() {
        let keys = keys();
        for (mac, pin, want) in [
            (
                Some(id("acquirer:100001:mac")),
                PinSetup::None,
                "no key acquirer:100001:mac",
            ),
            (
                None,
                PinSetup::Zone(id("acquirer:100002:mac")),
                "acquirer:100002:mac is not a zone PIN key",
            ),
            (
                None,
                PinSetup::AesDukpt {
                    bdk: id("bdk:test-tdes"),
                    ksn: TEST_AES_KSN,
                },
                "bdk:test-tdes is not an AES BDK",
            ),
        ] {
            let e = TerminalKeys::from_keys_file(&keys, mac.as_ref(), &pin).expect_err("refused");
            assert!(e.to_string().contains(want), "{e}");
        }
        let t = TerminalKeys::from_keys_file(
            &keys,
            Some(&id("acquirer:100002:mac")),
            &PinSetup::Zone(id("acquirer:100002:zpk")),
        )
        .expect("terminal");
        let shown = format!("{t:?}");
        assert!(
            !shown.contains("4BD1") && !shown.contains("1D03"),
            "{shown}"
        );
    }
}
