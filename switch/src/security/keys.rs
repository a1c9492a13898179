//! The keys file: a TOML file named by `[security].keys_file`, separate from the config so that a
//! deployment can keep it outside the repository with tighter permissions. The shipped
//! `config/keys.toml` holds test keys and says so.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The whole keys file.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysFile {
    /// `[journal]`: keys that protect data at rest.
    pub journal: JournalKeys,
}

/// `[journal]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalKeys {
    /// AES-256 key for PANs in the journal (64 hex characters).
    pub pan_key: String,
}

impl std::fmt::Debug for KeysFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeysFile { .. }")
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
}

impl KeysFile {
    pub fn load(path: &Path) -> Result<KeysFile, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml_str(&text, path)
    }

    pub fn from_toml_str(text: &str, path: &Path) -> Result<KeysFile, KeyError> {
        // The toml error message can quote the offending line, which may hold a key: keep only
        // the position.
        toml::from_str(text).map_err(|e| KeyError::Parse {
            path: path.to_owned(),
            message: match e.span() {
                Some(span) => format!("invalid TOML at byte {}", span.start),
                None => "invalid TOML".to_owned(),
            },
        })
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
}
