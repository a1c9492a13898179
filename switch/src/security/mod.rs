//! Key material and card-data protection.
//!
//! Owns the keys file and what is done with keys: today, encrypting PANs before they reach the
//! journal ([`pan_vault`]). Clear keys never leave this module: key types have no `Debug` that
//! prints them, and nothing here logs.

pub mod keys;
pub mod pan_vault;

pub use keys::{KeyError, KeysFile};
pub use pan_vault::{PanVault, ProtectedPan};
