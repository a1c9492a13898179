//! The switch's security rules on messages: which party's messages must carry a MAC and what
//! happens when one is missing or wrong, and how a request's PIN data is read (zone PIN key or
//! DUKPT), translated for a remote issuer or handed to an on-us engine for verification.
//!
//! Owns the decisions and their answers:
//!
//! | what | answer | `switchyard_security_violations_total` reason |
//! |---|---|---|
//! | MAC required (party has `mac_key`) but absent | 63 | `mac_missing` |
//! | MAC present but wrong | 63 | `mac_invalid` |
//! | PIN data but no key to read it (no `pin_key`, or no BDK for the KSN's kind) | 63 | `pin_key_missing` |
//! | PIN block that does not decrypt to a valid block for the PAN, or a KSN no PIN pad sends | 55 | `pin_block_invalid` |
//! | PIN data for a remote issuer without `pin_key` | 96 | - |
//!
//! A PIN block that does not decrypt is answered 55 by the switch itself (never forwarded, and
//! not counted as a PIN try: a wrong key or an altered block says nothing about the
//! cardholder). A block that decrypts but holds the wrong PIN is the issuer's to judge, and its
//! 55 counts as a try.
//!
//! It leaves the cryptography and the keys to the security module ([`crate::security`]), the
//! place of the MAC in the bytes to [`crate::iso8583::mac`], and the sequencing (when to check,
//! journaling, counting) to the runtime. Plain synchronous functions with no I/O.
//!
//! Why the switch re-MACs rather than relays: a MAC covers the bytes of one hop. The switch
//! rewrites what it forwards (field 11, PIN block), so each hop is MACed under that hop's key,
//! and the acquirer's MAC never reaches the issuer.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::config::{AcquirerConfig, Config, IssuerConfig, IssuerKind, Problem};
use crate::domain::{Decline, Pan};
use crate::iso8583::mac::{MAC_LEN, MacEncodeError, encode_with_mac, has_mac};
use crate::iso8583::views::{AuthorizationRequest, KSN_FIELD, Ksn, PIN_BLOCK_AES_FIELD};
use crate::iso8583::{DecodeError, Dialect, EncodeError, Message, MessageBuilder, decode_lenient};
use crate::security::{
    EncryptedPinBlock, KeyAlgorithm, KeyId, KeyKind, KeyPurpose, PinSource, SecurityError,
    SecurityModule, SecurityModuleExt,
};

/// Field 52: a format 0 PIN block.
const PIN_BLOCK_FIELD: u8 = 52;

// ---------------------------------------------------------------------------------------------
// Keys per party

/// The keys one acquirer is configured with (all by id; the values stay in the module).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcquirerKeys {
    /// Its requests must carry a MAC under this key; its answers carry one.
    pub mac: Option<KeyId>,
    /// Its PIN blocks without a KSN are under this zone PIN key.
    pub zpk: Option<KeyId>,
    /// The BDKs of its DUKPT PIN pads (at most one per algorithm, checked at start-up).
    pub bdks: Vec<KeyId>,
}

impl AcquirerKeys {
    /// The keys of `a`, or `None` when it has none. Ids that do not parse are left out (the
    /// config's validation reports them).
    pub fn from_config(a: &AcquirerConfig) -> Option<AcquirerKeys> {
        let keys = AcquirerKeys {
            mac: parse_id(a.mac_key.as_deref()),
            zpk: parse_id(a.pin_key.as_deref()),
            bdks: a.bdk.iter().filter_map(|b| b.parse().ok()).collect(),
        };
        (keys != AcquirerKeys::default()).then_some(keys)
    }

    /// The key a PIN block is enciphered under: the BDK matching the KSN's kind when a KSN
    /// came with it (10 bytes TDES, 12 bytes AES), the zone PIN key otherwise.
    pub fn pin_source<'k>(
        &'k self,
        module: &dyn SecurityModule,
        ksn: Option<&'k Ksn>,
    ) -> Result<PinSource<'k>, PinRefusal> {
        match ksn {
            None => self
                .zpk
                .as_ref()
                .map(PinSource::Zone)
                .ok_or(PinRefusal::NoKey),
            Some(ksn) => {
                let wanted = if ksn.as_bytes().len() == 10 {
                    KeyAlgorithm::Tdes
                } else {
                    KeyAlgorithm::Aes
                };
                self.bdks
                    .iter()
                    .find(|b| module.key_kind(b) == Some(KeyKind::Bdk(wanted)))
                    .map(|bdk| PinSource::Dukpt {
                        bdk,
                        ksn: ksn.as_bytes(),
                    })
                    .ok_or(PinRefusal::NoKey)
            }
        }
    }
}

/// The keys of one remote issuer's link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IssuerKeys {
    /// Messages on the link carry a MAC under this key, both ways.
    pub mac: Option<KeyId>,
    /// PIN blocks are translated to this zone PIN key before they are forwarded.
    pub zpk: Option<KeyId>,
}

impl IssuerKeys {
    pub fn from_config(i: &IssuerConfig) -> IssuerKeys {
        IssuerKeys {
            mac: parse_id(i.mac_key.as_deref()),
            zpk: parse_id(i.pin_key.as_deref()),
        }
    }
}

fn parse_id(text: Option<&str>) -> Option<KeyId> {
    text.and_then(|t| t.parse().ok())
}

/// Checks the keys `config` names against the keys `module` holds: each must exist and be of
/// the purpose its setting needs, and an acquirer may have one BDK per algorithm. Reports every
/// problem at once, naming the setting and the key id, never a key value. The ids' syntax is
/// [`Config::validate`]'s.
pub fn check_keys(
    config: &Config,
    module: &dyn SecurityModule,
    origin: &str,
) -> Result<(), Vec<Problem>> {
    let mut problems = Vec::new();
    let mut check = |key: String, id: Option<&str>, purpose: KeyPurpose| -> Option<KeyKind> {
        let id: KeyId = id?.parse().ok()?;
        let message = match module.key_kind(&id) {
            None => format!("{id} is not in the keys file"),
            Some(kind) if kind.purpose() != purpose => format!("{id} is not {purpose}"),
            Some(kind) => return Some(kind),
        };
        problems.push(Problem {
            file: origin.to_owned(),
            key,
            message,
        });
        None
    };
    // Each party's MAC key and zone PIN key: an acquirer's, or a remote issuer's.
    let parties = config
        .acquirers
        .iter()
        .enumerate()
        .map(|(i, a)| (format!("acquirer[{i}]"), &a.mac_key, &a.pin_key))
        .chain(
            config
                .issuers
                .iter()
                .enumerate()
                .filter(|(_, c)| c.kind == IssuerKind::Remote)
                .map(|(i, c)| (format!("issuer[{i}]"), &c.mac_key, &c.pin_key)),
        );
    for (party, mac, pin) in parties {
        check(format!("{party}.mac_key"), mac.as_deref(), KeyPurpose::Mac);
        check(format!("{party}.pin_key"), pin.as_deref(), KeyPurpose::Zpk);
    }
    let mut duplicate_bdks = Vec::new();
    for (i, a) in config.acquirers.iter().enumerate() {
        let mut seen = BTreeMap::new();
        for (j, b) in a.bdk.iter().enumerate() {
            let key = format!("acquirer[{i}].bdk[{j}]");
            if let Some(KeyKind::Bdk(algorithm)) = check(key.clone(), Some(b), KeyPurpose::Bdk)
                && seen.insert(algorithm.to_string(), j).is_some()
            {
                duplicate_bdks.push(Problem {
                    file: origin.to_owned(),
                    key,
                    message: format!(
                        "a second {algorithm} BDK: the KSN's kind picks the BDK, so one per algorithm"
                    ),
                });
            }
        }
    }
    problems.extend(duplicate_bdks);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

// ---------------------------------------------------------------------------------------------
// MACs

/// Why a message failed its MAC check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacViolation {
    /// No MAC where the rule puts it (64, or 128 with a secondary bitmap).
    Missing,
    /// A MAC that does not verify.
    Invalid,
}

impl MacViolation {
    /// The `reason` label of the security metric.
    pub fn reason(self) -> &'static str {
        match self {
            MacViolation::Missing => "mac_missing",
            MacViolation::Invalid => "mac_invalid",
        }
    }
}

impl fmt::Display for MacViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MacViolation::Missing => "MAC missing",
            MacViolation::Invalid => "MAC does not verify",
        })
    }
}

/// Why a message could not be written with its MAC.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SealError {
    #[error("internal: the message to MAC does not decode: {0}")]
    Decode(#[from] DecodeError),
    #[error("internal: the message to MAC does not encode: {0}")]
    Encode(#[from] EncodeError),
    #[error("internal: {0}")]
    Module(#[from] SecurityError),
}

impl From<MacEncodeError<SecurityError>> for SealError {
    fn from(e: MacEncodeError<SecurityError>) -> SealError {
        match e {
            MacEncodeError::Encode(e) => SealError::Encode(e),
            MacEncodeError::Mac(e) => SealError::Module(e),
        }
    }
}

/// One party's MAC key in a security module: MACs what is sent to that party and checks what
/// it sends.
#[derive(Clone)]
pub struct PartyMac {
    module: Arc<dyn SecurityModule>,
    key: KeyId,
}

impl fmt::Debug for PartyMac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PartyMac({})", self.key)
    }
}

impl PartyMac {
    pub fn new(module: Arc<dyn SecurityModule>, key: KeyId) -> PartyMac {
        PartyMac { module, key }
    }

    pub fn key(&self) -> &KeyId {
        &self.key
    }

    /// Checks the MAC of a received message.
    pub fn check(&self, msg: &Message) -> Result<(), MacViolation> {
        check_mac(&*self.module, &self.key, msg)
    }

    /// Appends `b` to `dst` with its MAC (see [`encode_with_mac`]).
    pub fn encode(&self, b: &mut MessageBuilder<'_>, dst: &mut BytesMut) -> Result<(), SealError> {
        encode_sealed(&*self.module, &self.key, b, dst)
    }

    /// `b` encoded with its MAC.
    pub fn to_bytes(&self, b: &mut MessageBuilder<'_>) -> Result<Bytes, SealError> {
        let mut dst = BytesMut::with_capacity(256);
        self.encode(b, &mut dst)?;
        Ok(dst.freeze())
    }

    /// The encoded message `bytes` again, with a fresh MAC in place of any it carried.
    pub fn reseal(&self, dialect: &'static Dialect, bytes: &Bytes) -> Result<Bytes, SealError> {
        reseal(&*self.module, &self.key, dialect, bytes)
    }
}

/// Appends `b` to `dst` with its MAC under `key` (see [`encode_with_mac`]).
pub fn encode_sealed(
    module: &dyn SecurityModule,
    key: &KeyId,
    b: &mut MessageBuilder<'_>,
    dst: &mut BytesMut,
) -> Result<(), SealError> {
    encode_with_mac(b, dst, |data| module.generate_mac(key, data))?;
    Ok(())
}

/// The encoded message `bytes` again, with a fresh MAC under `key` in place of any it carried.
pub fn reseal(
    module: &dyn SecurityModule,
    key: &KeyId,
    dialect: &'static Dialect,
    bytes: &Bytes,
) -> Result<Bytes, SealError> {
    let msg = decode_lenient(dialect, bytes.clone())?;
    let mut b = MessageBuilder::new(dialect, msg.mti_digits());
    for n in msg.field_numbers().filter(|&n| n != 64 && n != 128) {
        b.copy_from(&msg, n);
    }
    let mut dst = BytesMut::with_capacity(bytes.len() + 16);
    encode_sealed(module, key, &mut b, &mut dst)?;
    Ok(dst.freeze())
}

/// Checks the MAC that `msg` (as received) carries under `key`.
pub fn check_mac(
    module: &dyn SecurityModule,
    key: &KeyId,
    msg: &Message,
) -> Result<(), MacViolation> {
    if !has_mac(msg) {
        return Err(MacViolation::Missing);
    }
    match module.verify_message_mac(key, msg.as_bytes()) {
        Ok(()) => Ok(()),
        Err(SecurityError::MacMismatch { .. }) => Err(MacViolation::Invalid),
        Err(e) => {
            // Only a module failure (an unknown key, which start-up rules out) gets here; the
            // message is refused all the same.
            tracing::error!(error = %e, "MAC check failed in the security module");
            Err(MacViolation::Invalid)
        }
    }
}

// The codec places the MAC and the module splits it off by the same size.
const _: () = assert!(MAC_LEN == crate::security::MAC_LEN);

// ---------------------------------------------------------------------------------------------
// PIN data

/// Why the switch does not take a request's PIN data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinRefusal {
    /// No key to read it under: the acquirer has no zone PIN key, or no BDK of the KSN's kind.
    NoKey,
    /// It does not decrypt to a well-formed PIN block for the PAN (wrong key, wrong PAN or
    /// altered), or its KSN is one no PIN pad sends.
    Invalid,
    /// The issuer has no zone PIN key to receive it under.
    IssuerNoKey,
    /// The security module failed.
    Internal,
}

impl PinRefusal {
    /// The answer the acquirer gets.
    pub fn decline(self) -> Decline {
        match self {
            PinRefusal::NoKey => Decline::SecurityViolation,
            PinRefusal::Invalid => Decline::IncorrectPin,
            PinRefusal::IssuerNoKey | PinRefusal::Internal => Decline::SystemMalfunction,
        }
    }

    /// The `reason` of the security metric, for refusals that are the acquirer's doing.
    pub fn reason(self) -> Option<&'static str> {
        match self {
            PinRefusal::NoKey => Some("pin_key_missing"),
            PinRefusal::Invalid => Some("pin_block_invalid"),
            PinRefusal::IssuerNoKey | PinRefusal::Internal => None,
        }
    }

    fn from_module(e: &SecurityError) -> PinRefusal {
        match e {
            SecurityError::InvalidPinBlock { .. }
            | SecurityError::PinBlockFormat { .. }
            | SecurityError::Ksn { .. } => PinRefusal::Invalid,
            _ => {
                tracing::error!(error = %e, "PIN operation failed in the security module");
                PinRefusal::Internal
            }
        }
    }
}

impl fmt::Display for PinRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PinRefusal::NoKey => "no key to read the PIN block under",
            PinRefusal::Invalid => "the PIN block is not valid under its key",
            PinRefusal::IssuerNoKey => "the issuer has no zone PIN key",
            PinRefusal::Internal => "the security module failed",
        })
    }
}

/// The request's PIN block (field 52 or 63), enciphered as it came.
pub fn pin_block(req: &AuthorizationRequest<'_>) -> Option<EncryptedPinBlock> {
    req.pin_block
        .map(EncryptedPinBlock::Iso0)
        .or(req.pin_block_aes.map(EncryptedPinBlock::Iso4))
}

/// Translates `block` from `source` to the issuer's zone PIN key `to`.
pub fn translate_pin(
    module: &dyn SecurityModule,
    source: PinSource<'_>,
    to: Option<&KeyId>,
    pan: &Pan,
    block: &EncryptedPinBlock,
) -> Result<EncryptedPinBlock, PinRefusal> {
    let to = to.ok_or(PinRefusal::IssuerNoKey)?;
    let translated = match source {
        PinSource::Zone(from) => module.translate_pin(from, to, pan, block),
        PinSource::Dukpt { bdk, ksn } => module.translate_pin_dukpt(bdk, ksn, block, to, pan),
    };
    translated.map_err(|e| PinRefusal::from_module(&e))
}

/// Lends `verify` the clear format 0 block of `block` for the length of the call (an on-us
/// engine checks the PIN with it) and returns what it says.
pub fn verify_pin<R>(
    module: &dyn SecurityModule,
    source: PinSource<'_>,
    pan: &Pan,
    block: &EncryptedPinBlock,
    verify: impl FnOnce(&[u8; 8]) -> R,
) -> Result<R, PinRefusal> {
    module
        .with_clear_pin_block(source, pan, block, verify)
        .map_err(|e| PinRefusal::from_module(&e))
}

/// `msg` as the issuer must receive it: without the acquirer's PIN fields (52, 62, 63) and
/// with `block` in field 52 (format 0) or field 63 (format 4, as hex).
pub fn with_pin_block(msg: &Message, block: &EncryptedPinBlock) -> Result<Message, SealError> {
    let dialect = msg.dialect();
    let mut b = MessageBuilder::new(dialect, msg.mti_digits());
    for n in msg
        .field_numbers()
        .filter(|&n| n != PIN_BLOCK_FIELD && n != KSN_FIELD && n != PIN_BLOCK_AES_FIELD)
    {
        b.copy_from(msg, n);
    }
    let hex;
    match block {
        EncryptedPinBlock::Iso0(bytes) => {
            b.set(PIN_BLOCK_FIELD, bytes);
        }
        EncryptedPinBlock::Iso4(bytes) => {
            hex = hex::encode_upper(bytes);
            b.set(PIN_BLOCK_AES_FIELD, hex.as_bytes());
        }
    }
    let bytes = b.to_bytes()?;
    Ok(decode_lenient(dialect, bytes)?)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::iso8583::{ISO87_ASCII, decode, samples};
    use crate::security::pinblock::encrypt_iso0;
    use crate::security::{KeysFile, SoftwareSecurityModule};

    fn module() -> Arc<dyn SecurityModule> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/keys.toml");
        let keys = KeysFile::load(&path).expect("keys");
        Arc::new(SoftwareSecurityModule::from_keys(&keys).expect("module"))
    }

    fn id(text: &str) -> KeyId {
        text.parse().expect("key id")
    }

    fn acquirer(mac: Option<&str>, zpk: Option<&str>, bdk: &[&str]) -> AcquirerConfig {
        AcquirerConfig {
            id: "100009".into(),
            name: "Test".into(),
            mac_key: mac.map(Into::into),
            pin_key: zpk.map(Into::into),
            bdk: bdk.iter().map(|b| (*b).to_owned()).collect(),
            ..AcquirerConfig::default()
        }
    }

    #[test]
    fn keys_must_exist_with_their_purpose_and_one_bdk_per_algorithm() {
        let m = module();
        let mut config = Config {
            acquirers: vec![
                acquirer(
                    Some("acquirer:100002:mac"),
                    Some("acquirer:100001:zpk"),
                    &["bdk:test-tdes", "bdk:test-aes"],
                ),
                acquirer(
                    Some("acquirer:100001:mac"),
                    Some("acquirer:9:zpk"),
                    &["bdk:test-tdes", "bdk:nope", "bdk:test-tdes"],
                ),
            ],
            ..Config::default()
        };
        let problems = check_keys(&config, &*m, "switch.toml").expect_err("problems");
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "switch.toml: acquirer[1].mac_key: acquirer:100001:mac is not in the keys file",
                "switch.toml: acquirer[1].pin_key: acquirer:9:zpk is not in the keys file",
                "switch.toml: acquirer[1].bdk[1]: bdk:nope is not in the keys file",
                "switch.toml: acquirer[1].bdk[2]: a second TDES BDK: the KSN's kind picks the BDK, so one per algorithm",
            ]
        );
        config.acquirers.truncate(1);
        assert_eq!(check_keys(&config, &*m, "x"), Ok(()));
        let shipped =
            Config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/switch.toml"))
                .expect("config/switch.toml");
        assert_eq!(check_keys(&shipped, &*m, "switch.toml"), Ok(()));
    }

    #[test]
    fn a_purpose_mismatch_is_named_without_the_value() {
        // The config's validation refuses a `:zpk` id as a MAC key; a module that answers a
        // different kind for an id is caught here.
        struct Liar;
        impl SecurityModule for Liar {
            fn key_kind(&self, _: &KeyId) -> Option<KeyKind> {
                Some(KeyKind::Zpk(KeyAlgorithm::Tdes))
            }
            fn generate_mac(&self, k: &KeyId, _: &[u8]) -> Result<[u8; 8], SecurityError> {
                Err(SecurityError::UnknownKey(k.clone()))
            }
            fn verify_mac(&self, k: &KeyId, _: &[u8], _: &[u8; 8]) -> Result<(), SecurityError> {
                Err(SecurityError::UnknownKey(k.clone()))
            }
            fn translate_pin(
                &self,
                k: &KeyId,
                _: &KeyId,
                _: &Pan,
                _: &EncryptedPinBlock,
            ) -> Result<EncryptedPinBlock, SecurityError> {
                Err(SecurityError::UnknownKey(k.clone()))
            }
            fn translate_pin_dukpt(
                &self,
                k: &KeyId,
                _: &[u8],
                _: &EncryptedPinBlock,
                _: &KeyId,
                _: &Pan,
            ) -> Result<EncryptedPinBlock, SecurityError> {
                Err(SecurityError::UnknownKey(k.clone()))
            }
            fn use_clear_pin_block(
                &self,
                _: PinSource<'_>,
                _: &Pan,
                _: &EncryptedPinBlock,
                _: &mut dyn FnMut(&[u8; 8]),
            ) -> Result<(), SecurityError> {
                Err(SecurityError::Random)
            }
        }
        let config = Config {
            acquirers: vec![acquirer(Some("acquirer:100002:mac"), None, &[])],
            ..Config::default()
        };
        let problems = check_keys(&config, &Liar, "f").expect_err("problem");
        assert_eq!(problems[0].message, "acquirer:100002:mac is not a MAC key");
    }

    #[test]
    fn mac_round_trip_missing_and_wrong() {
        let m = module();
        let mac = PartyMac::new(m.clone(), id("acquirer:100002:mac"));
        let mut b = samples::auth_request(&ISO87_ASCII);
        let bytes = mac.to_bytes(&mut b).expect("maced");
        let msg = decode(&ISO87_ASCII, bytes.clone()).expect("decode");
        assert_eq!(mac.check(&msg), Ok(()));

        let other = PartyMac::new(m.clone(), id("issuer:north-bank:zpk"));
        assert!(
            other
                .to_bytes(&mut samples::auth_request(&ISO87_ASCII))
                .is_err()
        );

        let mut tampered = bytes.to_vec();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        let msg = decode(&ISO87_ASCII, Bytes::from(tampered)).expect("decode");
        assert_eq!(mac.check(&msg), Err(MacViolation::Invalid));

        // Any byte of the covered part counts, the bitmap included.
        let mut tampered = bytes.to_vec();
        tampered[30] ^= 1;
        let msg = decode_lenient(&ISO87_ASCII, Bytes::from(tampered)).expect("decode");
        assert_eq!(mac.check(&msg), Err(MacViolation::Invalid));

        let plain = samples::auth_request(&ISO87_ASCII)
            .to_bytes()
            .expect("plain");
        let msg = decode(&ISO87_ASCII, plain.clone()).expect("decode");
        assert_eq!(mac.check(&msg), Err(MacViolation::Missing));

        // Resealing replaces a stale MAC and keeps every other field.
        let resealed = mac.reseal(&ISO87_ASCII, &plain).expect("reseal");
        let msg = decode(&ISO87_ASCII, resealed).expect("decode");
        assert_eq!(mac.check(&msg), Ok(()));
        let orig = decode(&ISO87_ASCII, plain).expect("decode");
        assert!(orig.field_numbers().all(|n| msg.get(n) == orig.get(n)));
    }

    #[test]
    fn zone_pin_is_translated_for_the_issuer_and_fields_rewritten() {
        let m = module();
        let keys = AcquirerKeys::from_config(&acquirer(None, Some("acquirer:100001:zpk"), &[]))
            .expect("keys");
        let pan = Pan::parse(b"4111110000000013").expect("pan");
        let acq_zpk = [
            0x38, 0x7D, 0xC0, 0x2F, 0x50, 0x18, 0x9F, 0x86, 0x6D, 0xBF, 0xB7, 0xC4, 0xA4, 0xAE,
            0x8E, 0xF3,
        ];
        let block = encrypt_iso0(&acq_zpk, "1234", &pan).expect("block");
        let source = keys.pin_source(&*m, None).expect("source");
        let to = id("issuer:north-bank:zpk");
        let out = translate_pin(&*m, source, Some(&to), &pan, &block).expect("translated");
        assert_ne!(out, block);
        assert_eq!(
            translate_pin(&*m, source, None, &pan, &block),
            Err(PinRefusal::IssuerNoKey)
        );
        let wrong_pan = Pan::parse(b"4111110000000021").expect("pan");
        assert_eq!(
            translate_pin(&*m, source, Some(&to), &wrong_pan, &block),
            Err(PinRefusal::Invalid)
        );

        let mut b = samples::auth_request(&ISO87_ASCII);
        b.set(52, block.as_bytes()).set(64, b"ACQ MAC!");
        let msg = decode(&ISO87_ASCII, b.to_bytes().expect("encode")).expect("decode");
        let fwd = with_pin_block(&msg, &out).expect("rewritten");
        assert_eq!(fwd.get(52).as_deref(), Some(out.as_bytes()));
        for n in msg.field_numbers().filter(|&n| n != 52) {
            assert_eq!(fwd.get(n), msg.get(n), "field {n}");
        }
        let aes = EncryptedPinBlock::Iso4([0xAB; 16]);
        let fwd = with_pin_block(&msg, &aes).expect("rewritten");
        assert!(!fwd.has(52));
        assert_eq!(
            fwd.get(63).as_deref(),
            Some(&b"ABABABABABABABABABABABABABABABAB"[..])
        );
    }

    #[test]
    fn the_ksn_kind_picks_the_bdk() {
        let m = module();
        let keys =
            AcquirerKeys::from_config(&acquirer(None, None, &["bdk:test-aes", "bdk:test-tdes"]))
                .expect("keys");
        let tdes = Ksn::from_field(b"FFFF9876543210E00001").expect("ksn");
        let aes = Ksn::from_field(b"123456789012345600000001").expect("ksn");
        match keys.pin_source(&*m, Some(&tdes)) {
            Ok(PinSource::Dukpt { bdk, ksn }) => {
                assert_eq!(bdk.as_str(), "bdk:test-tdes");
                assert_eq!(ksn.len(), 10);
            }
            other => panic!("{other:?}"),
        }
        match keys.pin_source(&*m, Some(&aes)) {
            Ok(PinSource::Dukpt { bdk, .. }) => assert_eq!(bdk.as_str(), "bdk:test-aes"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(keys.pin_source(&*m, None), Err(PinRefusal::NoKey)));
        let only_tdes =
            AcquirerKeys::from_config(&acquirer(None, None, &["bdk:test-tdes"])).expect("keys");
        assert!(matches!(
            only_tdes.pin_source(&*m, Some(&aes)),
            Err(PinRefusal::NoKey)
        ));
        assert_eq!(
            AcquirerKeys::from_config(&acquirer(None, None, &[])),
            None,
            "an acquirer without keys needs no entry"
        );
    }

    #[test]
    fn refusals_answer_63_55_96() {
        assert_eq!(PinRefusal::NoKey.decline().response_code().as_str(), "63");
        assert_eq!(PinRefusal::Invalid.decline().response_code().as_str(), "55");
        assert_eq!(
            PinRefusal::IssuerNoKey.decline().response_code().as_str(),
            "96"
        );
        assert_eq!(MacViolation::Missing.reason(), "mac_missing");
    }
}
