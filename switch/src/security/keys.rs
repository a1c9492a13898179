//! The keys file: a TOML file named by `[security].keys_file`, separate from the config so that a
//! deployment can keep it outside the repository with tighter permissions. The shipped
//! `config/keys.toml` holds test keys and says so.
//!
//! Owns the file's shape, its validation (every problem at once, naming the key, never its value)
//! and the names keys go by ([`KeyId`]). It leaves what is done with the keys to
//! [`super::hsm::SoftwareSecurityModule`], which is the only reader of the clear key bytes.
//!
//! Sections:
//! - `[journal] pan_key`: AES-256 key for PANs at rest.
//! - `[[acquirer]]` and `[[issuer]]`: per party, an optional MAC key (`mac_algorithm` `x9.19` or
//!   `aes-cmac`, `mac_key`) and an optional zone PIN key (`zpk_algorithm` `tdes` or `aes`, `zpk`).
//! - `[[bdk]]`: DUKPT base derivation keys (`name`, `algorithm` `tdes` or `aes`, `key`).
//!
//! Algorithms are read as text and checked by [`KeysFile::validate`] rather than by serde, so that
//! an unknown algorithm is reported together with every other problem instead of alone.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;
use zeroize::Zeroizing;

use crate::config::Problem;

/// Bytes in every key the security module holds: a double-length TDES key or an AES-128 key.
pub const KEY_BYTES: usize = 16;

/// The whole keys file.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysFile {
    /// `[journal]`: keys that protect data at rest.
    pub journal: JournalKeys,
    /// `[[acquirer]]`: keys shared with acquirers.
    #[serde(default)]
    pub acquirer: Vec<PartyKeys>,
    /// `[[issuer]]`: keys shared with issuers.
    #[serde(default)]
    pub issuer: Vec<PartyKeys>,
    /// `[[bdk]]`: DUKPT base derivation keys.
    #[serde(default)]
    pub bdk: Vec<BdkEntry>,
}

/// `[journal]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalKeys {
    /// AES-256 key for PANs in the journal (64 hex characters).
    pub pan_key: String,
}

/// One `[[acquirer]]` or `[[issuer]]` entry.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartyKeys {
    /// The party's id: the acquirer id (field 32) or the issuer id of the switch config.
    pub id: String,
    /// `x9.19` (ISO 9797-1 MAC algorithm 3, double-length TDES) or `aes-cmac` (AES-128).
    pub mac_algorithm: Option<String>,
    /// 32 hex digits.
    pub mac_key: Option<HexKey>,
    /// `tdes` (double-length, ISO 9564 format 0) or `aes` (AES-128, format 4).
    pub zpk_algorithm: Option<String>,
    /// Zone PIN key, 32 hex digits.
    pub zpk: Option<HexKey>,
}

/// One `[[bdk]]` entry.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BdkEntry {
    /// The name the config refers to, as `bdk:<name>`.
    pub name: String,
    /// `tdes` (ANSI X9.24-1) or `aes` (ANSI X9.24-3, AES-128 BDK).
    pub algorithm: String,
    /// 32 hex digits.
    pub key: HexKey,
}

/// A key written in hex in the keys file. Wiped on drop; `Debug` shows nothing of it.
#[derive(Clone, Deserialize)]
#[serde(from = "String")]
pub struct HexKey(Zeroizing<String>);

impl From<String> for HexKey {
    fn from(text: String) -> HexKey {
        HexKey(Zeroizing::new(text))
    }
}

impl HexKey {
    /// The hex text. For simulators that play a terminal or a peer and need the clear key.
    pub fn expose_hex(&self) -> &str {
        &self.0
    }

    /// The 16 key bytes, or why not (names no value).
    fn decode16(&self) -> Result<SecretKey, &'static str> {
        let mut key = SecretKey(Zeroizing::new([0u8; KEY_BYTES]));
        hex::decode_to_slice(self.0.as_bytes(), &mut key.0[..])
            .map_err(|_| "must be 32 hexadecimal digits (16 bytes)")?;
        Ok(key)
    }
}

impl fmt::Debug for HexKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HexKey(..)")
    }
}

/// A clear 16-byte key inside the security module. Wiped on drop; no `Debug`.
pub(crate) struct SecretKey(Zeroizing<[u8; KEY_BYTES]>);

impl SecretKey {
    pub(crate) fn expose(&self) -> &[u8; KEY_BYTES] {
        &self.0
    }
}

impl fmt::Debug for KeysFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeysFile { .. }")
    }
}

/// MAC algorithm of a party.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacAlgorithm {
    /// ISO 9797-1 MAC algorithm 3 with DES (ANSI X9.19 retail MAC), double-length key,
    /// padding method 1.
    X919,
    /// AES-CMAC (RFC 4493) with AES-128, leftmost 8 bytes.
    AesCmac,
}

impl MacAlgorithm {
    pub(crate) fn parse(text: &str) -> Option<MacAlgorithm> {
        match text {
            "x9.19" => Some(MacAlgorithm::X919),
            "aes-cmac" => Some(MacAlgorithm::AesCmac),
            _ => None,
        }
    }
}

/// Block cipher of a zone PIN key or a BDK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// Double-length triple DES (two-key TDEA).
    Tdes,
    /// AES-128.
    Aes,
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyAlgorithm::Tdes => "TDES",
            KeyAlgorithm::Aes => "AES",
        })
    }
}

impl KeyAlgorithm {
    pub(crate) fn parse(text: &str) -> Option<KeyAlgorithm> {
        match text {
            "tdes" => Some(KeyAlgorithm::Tdes),
            "aes" => Some(KeyAlgorithm::Aes),
            _ => None,
        }
    }
}

/// The name of one key in the security module:
///
/// | form | key |
/// |---|---|
/// | `acquirer:<id>:mac` | the acquirer's MAC key |
/// | `acquirer:<id>:zpk` | the acquirer's zone PIN key |
/// | `issuer:<id>:mac` | the issuer's MAC key |
/// | `issuer:<id>:zpk` | the issuer's zone PIN key |
/// | `bdk:<name>` | a DUKPT base derivation key |
///
/// A name is not a secret: errors and logs may carry it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct KeyId(String);

/// Why a text is not a [`KeyId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not a key id: expected acquirer:<id>:mac, acquirer:<id>:zpk, issuer:<id>:mac, \
     issuer:<id>:zpk or bdk:<name>"
)]
pub struct KeyIdError;

impl KeyId {
    pub fn acquirer_mac(id: &str) -> KeyId {
        KeyId(format!("acquirer:{id}:mac"))
    }

    pub fn acquirer_zpk(id: &str) -> KeyId {
        KeyId(format!("acquirer:{id}:zpk"))
    }

    pub fn issuer_mac(id: &str) -> KeyId {
        KeyId(format!("issuer:{id}:mac"))
    }

    pub fn issuer_zpk(id: &str) -> KeyId {
        KeyId(format!("issuer:{id}:zpk"))
    }

    pub fn bdk(name: &str) -> KeyId {
        KeyId(format!("bdk:{name}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What the key is for, read from its name (`…:mac`, `…:zpk`, `bdk:…`).
    pub fn purpose(&self) -> KeyPurpose {
        if self.0.starts_with("bdk:") {
            KeyPurpose::Bdk
        } else if self.0.ends_with(":mac") {
            KeyPurpose::Mac
        } else {
            KeyPurpose::Zpk
        }
    }
}

/// What a key is for, as its [`KeyId`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPurpose {
    /// Message authentication (`acquirer:<id>:mac`, `issuer:<id>:mac`).
    Mac,
    /// A zone PIN key (`acquirer:<id>:zpk`, `issuer:<id>:zpk`).
    Zpk,
    /// A DUKPT base derivation key (`bdk:<name>`).
    Bdk,
}

impl fmt::Display for KeyPurpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyPurpose::Mac => "a MAC key",
            KeyPurpose::Zpk => "a zone PIN key",
            KeyPurpose::Bdk => "a base derivation key",
        })
    }
}

/// What one key held by a security module is, without its value: enough for the switch to
/// check at start-up that the keys its config names fit their use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Mac(MacAlgorithm),
    Zpk(KeyAlgorithm),
    Bdk(KeyAlgorithm),
}

impl KeyKind {
    pub fn purpose(self) -> KeyPurpose {
        match self {
            KeyKind::Mac(_) => KeyPurpose::Mac,
            KeyKind::Zpk(_) => KeyPurpose::Zpk,
            KeyKind::Bdk(_) => KeyPurpose::Bdk,
        }
    }
}

/// An id or name usable inside a key id: non-empty, no `:` and no white space.
fn valid_name(text: &str) -> bool {
    !text.is_empty() && !text.chars().any(|c| c == ':' || c.is_whitespace())
}

impl FromStr for KeyId {
    type Err = KeyIdError;

    fn from_str(text: &str) -> Result<KeyId, KeyIdError> {
        let parts: Vec<&str> = text.split(':').collect();
        let ok = match parts.as_slice() {
            ["acquirer" | "issuer", id, "mac" | "zpk"] => valid_name(id),
            ["bdk", name] => valid_name(name),
            _ => false,
        };
        if ok {
            Ok(KeyId(text.to_owned()))
        } else {
            Err(KeyIdError)
        }
    }
}

impl TryFrom<String> for KeyId {
    type Error = KeyIdError;

    fn try_from(text: String) -> Result<KeyId, KeyIdError> {
        text.parse()
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.0)
    }
}

/// What one validated key is for, with its clear value.
pub(crate) enum KeySpec {
    Mac(MacAlgorithm, SecretKey),
    Zpk(KeyAlgorithm, SecretKey),
    Bdk(KeyAlgorithm, SecretKey),
}

impl KeySpec {
    pub(crate) fn kind(&self) -> KeyKind {
        match self {
            KeySpec::Mac(a, _) => KeyKind::Mac(*a),
            KeySpec::Zpk(a, _) => KeyKind::Zpk(*a),
            KeySpec::Bdk(a, _) => KeyKind::Bdk(*a),
        }
    }
}

/// Why keys could not be loaded. Never carries key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("keys file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("keys file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("keys file: {key}: {problem}")]
    Invalid {
        key: &'static str,
        problem: &'static str,
    },
    /// The file parsed but broke one or more rules; every problem found is listed.
    #[error("{}", problem_lines(.0))]
    Problems(Vec<Problem>),
}

/// Problems one per line, as the config loader shows them.
fn problem_lines(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl KeysFile {
    pub fn load(path: &Path) -> Result<KeysFile, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml_str(&text, path)
    }

    /// Parses and validates a keys file.
    pub fn from_toml_str(text: &str, path: &Path) -> Result<KeysFile, KeyError> {
        // The toml error message can quote the offending line, which may hold a key: keep only
        // the position.
        let file: KeysFile = toml::from_str(text).map_err(|e| KeyError::Parse {
            path: path.to_owned(),
            message: match e.span() {
                Some(span) => format!("invalid TOML at byte {}", span.start),
                None => "invalid TOML".to_owned(),
            },
        })?;
        file.validate(&path.display().to_string())
            .map_err(KeyError::Problems)?;
        Ok(file)
    }

    /// Checks every key and reports every problem, naming keys by their path in the file
    /// (`acquirer[1].mac_key`), never by value. `origin` fills [`Problem::file`].
    pub fn validate(&self, origin: &str) -> Result<(), Vec<Problem>> {
        self.resolve(origin).map(|_| ())
    }

    /// The journal PAN key as 32 bytes.
    pub fn journal_pan_key(&self) -> Result<[u8; 32], KeyError> {
        let bytes = hex::decode(&self.journal.pan_key).map_err(|_| KeyError::Invalid {
            key: "journal.pan_key",
            problem: "not hexadecimal",
        })?;
        bytes.try_into().map_err(|_| KeyError::Invalid {
            key: "journal.pan_key",
            problem: "must be 32 bytes",
        })
    }

    /// Every key of the security module under its [`KeyId`], or every problem found.
    pub(crate) fn resolve(&self, origin: &str) -> Result<Vec<(KeyId, KeySpec)>, Vec<Problem>> {
        let mut report = Report {
            origin,
            problems: Vec::new(),
            keys: Vec::new(),
        };
        if self.journal_pan_key().is_err() {
            report.push(
                "journal.pan_key".to_owned(),
                "must be 64 hexadecimal digits (32 bytes)",
            );
        }
        report.parties(
            "acquirer",
            &self.acquirer,
            KeyId::acquirer_mac,
            KeyId::acquirer_zpk,
        );
        report.parties("issuer", &self.issuer, KeyId::issuer_mac, KeyId::issuer_zpk);
        report.bdks(&self.bdk);
        if report.problems.is_empty() {
            Ok(report.keys)
        } else {
            Err(report.problems)
        }
    }
}

/// Collects keys and problems while walking the file.
struct Report<'a> {
    origin: &'a str,
    problems: Vec<Problem>,
    keys: Vec<(KeyId, KeySpec)>,
}

impl Report<'_> {
    fn push(&mut self, key: String, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.origin.to_owned(),
            key,
            message: message.into(),
        });
    }

    /// Checks one name and that it was not seen before in its section.
    fn name(&mut self, path: String, name: &str, seen: &mut BTreeSet<String>, what: &str) -> bool {
        if !valid_name(name) {
            self.push(path, "must be non-empty, without ':' or spaces");
            return false;
        }
        if !seen.insert(name.to_owned()) {
            self.push(path, format!("duplicate {what} {name:?}"));
            return false;
        }
        true
    }

    /// One algorithm + key pair; both present or both absent. `None` when absent or invalid.
    fn pair<A>(
        &mut self,
        base: &str,
        (algo_field, algo): (&str, Option<&str>),
        (key_field, key): (&str, Option<&HexKey>),
        parse: fn(&str) -> Option<A>,
        expected: &str,
    ) -> Option<(A, SecretKey)> {
        let algorithm = match algo.map(|a| (a, parse(a))) {
            Some((_, Some(a))) => Some(a),
            Some((text, None)) => {
                self.push(
                    format!("{base}.{algo_field}"),
                    format!("unknown algorithm {text:?}, expected {expected}"),
                );
                None
            }
            None => None,
        };
        let secret = match key.map(HexKey::decode16) {
            Some(Ok(k)) => Some(k),
            Some(Err(problem)) => {
                self.push(format!("{base}.{key_field}"), problem);
                None
            }
            None => None,
        };
        match (algo.is_some(), key.is_some()) {
            (true, false) => self.push(
                format!("{base}.{key_field}"),
                format!("missing: {algo_field} is set"),
            ),
            (false, true) => self.push(
                format!("{base}.{algo_field}"),
                format!("missing: {key_field} is set"),
            ),
            _ => {}
        }
        Some((algorithm?, secret?))
    }

    fn parties(
        &mut self,
        section: &str,
        parties: &[PartyKeys],
        mac_id: fn(&str) -> KeyId,
        zpk_id: fn(&str) -> KeyId,
    ) {
        let mut seen = BTreeSet::new();
        for (i, p) in parties.iter().enumerate() {
            let base = format!("{section}[{i}]");
            let named = self.name(format!("{base}.id"), &p.id, &mut seen, "id");
            let mac = self.pair(
                &base,
                ("mac_algorithm", p.mac_algorithm.as_deref()),
                ("mac_key", p.mac_key.as_ref()),
                MacAlgorithm::parse,
                "\"x9.19\" or \"aes-cmac\"",
            );
            let zpk = self.pair(
                &base,
                ("zpk_algorithm", p.zpk_algorithm.as_deref()),
                ("zpk", p.zpk.as_ref()),
                KeyAlgorithm::parse,
                "\"tdes\" or \"aes\"",
            );
            if named {
                if let Some((algorithm, key)) = mac {
                    self.keys
                        .push((mac_id(&p.id), KeySpec::Mac(algorithm, key)));
                }
                if let Some((algorithm, key)) = zpk {
                    self.keys
                        .push((zpk_id(&p.id), KeySpec::Zpk(algorithm, key)));
                }
            }
        }
    }

    fn bdks(&mut self, bdks: &[BdkEntry]) {
        let mut seen = BTreeSet::new();
        for (i, b) in bdks.iter().enumerate() {
            let base = format!("bdk[{i}]");
            let named = self.name(format!("{base}.name"), &b.name, &mut seen, "name");
            let spec = self.pair(
                &base,
                ("algorithm", Some(b.algorithm.as_str())),
                ("key", Some(&b.key)),
                KeyAlgorithm::parse,
                "\"tdes\" or \"aes\"",
            );
            if let (true, Some((algorithm, key))) = (named, spec) {
                self.keys
                    .push((KeyId::bdk(&b.name), KeySpec::Bdk(algorithm, key)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAN_KEY: &str = "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F";

    fn parse(body: &str) -> Result<KeysFile, KeyError> {
        let text = format!("[journal]\npan_key = \"{PAN_KEY}\"\n{body}");
        KeysFile::from_toml_str(&text, Path::new("keys.toml"))
    }

    #[test]
    fn shipped_keys_file_is_valid_and_says_test_keys() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/keys.toml");
        let text = std::fs::read_to_string(&path).expect("read config/keys.toml");
        assert!(text.starts_with("# TEST KEYS ONLY."));
        let keys = KeysFile::from_toml_str(&text, &path).expect("valid");
        let ids: Vec<String> = keys
            .resolve("keys.toml")
            .expect("resolve")
            .into_iter()
            .map(|(id, _)| id.to_string())
            .collect();
        for id in [
            "acquirer:100001:zpk",
            "acquirer:100002:mac",
            "acquirer:100002:zpk",
            "issuer:north-bank:zpk",
            "issuer:east-bank:zpk",
            "issuer:metro-pay:zpk",
            "bdk:test-tdes",
            "bdk:test-aes",
        ] {
            assert!(ids.iter().any(|i| i == id), "{id} missing from {ids:?}");
        }
    }

    #[test]
    fn journal_only_file_still_loads() {
        let keys = parse("").expect("valid");
        assert!(keys.acquirer.is_empty() && keys.issuer.is_empty() && keys.bdk.is_empty());
        assert_eq!(keys.journal_pan_key().expect("key")[1], 1);
    }

    #[test]
    fn every_problem_is_reported_at_once_without_values() {
        let secret = "ABCDEF0123456789ABCDEF01234567";
        let body = format!(
            r#"
[[acquirer]]
id = "100002"
mac_algorithm = "x9.9"
mac_key = "{secret}"

[[acquirer]]
id = "100002"
zpk = "0123456789ABCDEFFEDCBA9876543210"

[[issuer]]
id = "north:bank"
zpk_algorithm = "aes"
zpk = "zz23456789ABCDEFFEDCBA9876543210"

[[bdk]]
name = "b"
algorithm = "des"
key = "0123456789ABCDEFFEDCBA9876543210"

[[bdk]]
name = "b"
algorithm = "aes"
key = "0123456789ABCDEFFEDCBA9876543210"
"#
        );
        let err = parse(&body).expect_err("invalid");
        let KeyError::Problems(problems) = &err else {
            panic!("expected problems, got {err:?}");
        };
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "acquirer[0].mac_algorithm",
                "acquirer[0].mac_key",
                "acquirer[1].id",
                "acquirer[1].zpk_algorithm",
                "issuer[0].id",
                "issuer[0].zpk",
                "bdk[0].algorithm",
                "bdk[1].name",
            ]
        );
        let text = err.to_string();
        assert!(text.contains("duplicate id \"100002\""), "{text}");
        assert!(text.contains("unknown algorithm \"x9.9\""), "{text}");
        assert_eq!(text.lines().count(), problems.len());
        for value in [secret, "0123456789ABCDEF", "zz2345"] {
            assert!(!text.contains(value), "{text}");
        }
    }

    #[test]
    fn bad_journal_key_is_a_problem() {
        let err = KeysFile::from_toml_str("[journal]\npan_key = \"00\"\n", Path::new("k"))
            .expect_err("invalid");
        assert!(err.to_string().contains("journal.pan_key"), "{err}");
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = parse("[[bdk]]\nname = \"x\"\nalgorithm = \"aes\"\nkey = \"00\"\nkcv = \"1\"\n")
            .expect_err("unknown field");
        assert!(matches!(err, KeyError::Parse { .. }), "{err:?}");
    }

    #[test]
    fn key_ids_parse_and_reject() {
        for ok in [
            "acquirer:100002:mac",
            "issuer:north-bank:zpk",
            "bdk:test-aes",
        ] {
            assert_eq!(ok.parse::<KeyId>().expect(ok).as_str(), ok);
        }
        for bad in [
            "acquirer:100002",
            "issuer::zpk",
            "bdk:",
            "pvk:x",
            "issuer:a:b:zpk",
        ] {
            assert_eq!(bad.parse::<KeyId>(), Err(KeyIdError), "{bad}");
        }
        assert_eq!(
            KeyId::issuer_zpk("north-bank"),
            "issuer:north-bank:zpk".parse().expect("id")
        );
        assert_eq!(KeyId::acquirer_mac("1").purpose(), KeyPurpose::Mac);
        assert_eq!(KeyId::issuer_zpk("x").purpose(), KeyPurpose::Zpk);
        assert_eq!(KeyId::bdk("mac").purpose(), KeyPurpose::Bdk);
    }

    #[test]
    fn debug_shows_no_key_material() {
        let keys = parse(
            "[[bdk]]\nname = \"b\"\nalgorithm = \"aes\"\nkey = \"0123456789ABCDEFFEDCBA9876543210\"\n",
        )
        .expect("valid");
        let shown = format!("{keys:?} {:?}", keys.bdk[0].key);
        assert!(
            !shown.contains("0123") && !shown.contains("0001"),
            "{shown}"
        );
    }
}
