//! Key material and card-data protection.
//!
//! Owns the keys file ([`keys`]) and everything done with keys: encrypting PANs before they reach
//! the journal ([`pan_vault`]), and the security module ([`hsm`]) that computes MACs
//! ([`mac`]), translates PIN blocks ([`pinblock`]) between zones and from DUKPT terminals
//! ([`dukpt`]), and lends the issuing engine a clear PIN block for the length of one
//! verification. It leaves where MACs and PIN blocks sit in a message to the codec and the network
//! path, which call in with bytes and key names.
//!
//! Clear keys never leave this module: key types have no `Debug` that prints them, they are wiped
//! on drop, and nothing here logs. The terminal-side helpers (`pinblock::encrypt_*`,
//! `dukpt::*_encrypt_pin`) take clear keys because they play a PIN pad, for simulators and tests.

mod blocks;
pub mod dukpt;
pub mod hsm;
pub mod keys;
pub mod mac;
pub mod pan_vault;
pub mod pinblock;
#[cfg(test)]
mod tests;

pub use dukpt::{DukptError, KsnError};
pub use hsm::{
    PinSource, SecurityError, SecurityModule, SecurityModuleExt, SoftwareSecurityModule,
};
pub use keys::{
    KeyAlgorithm, KeyError, KeyId, KeyIdError, KeyKind, KeyPurpose, KeysFile, MacAlgorithm,
};
pub use mac::{MAC_LEN, MacInputError, mac_input, split_mac};
pub use pan_vault::{PanVault, ProtectedPan};
pub use pinblock::{EncryptedPinBlock, PinBlockError};
