//! `switch check-config` end to end: the shipped configuration is ok; a configuration whose
//! parties name keys the keys file does not hold, or whose on-us issuer file is missing, is
//! refused with every problem at once (exit 1), naming the setting and the key id but never a
//! key's value.
//!
//! Runs from the workspace root, where `config/switch.toml`'s relative paths resolve.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

fn check(config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_switch"))
        .current_dir(root())
        .arg("--config")
        .arg(config)
        .arg("check-config")
        .env("RUST_LOG", "warn")
        .output()
        .expect("switch runs")
}

#[test]
fn the_shipped_configuration_is_ok() {
    let o = check(Path::new("config/switch.toml"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "ok");
}

#[test]
fn missing_and_misused_keys_and_a_missing_issuer_file_are_all_reported() {
    let shipped =
        std::fs::read_to_string(root().join("config/switch.toml")).expect("shipped config");
    // Acquirer 100002's and East Bank's MAC keys are renamed to ids the keys file lacks (the
    // ids themselves are well formed, so only the keys file can tell), and Metro Pay's issuer
    // file does not exist.
    let broken = shipped
        .replace(
            "mac_key = \"acquirer:100002:mac\"",
            "mac_key = \"acquirer:100009:mac\"",
        )
        .replace(
            "mac_key = \"issuer:east-bank:mac\"",
            "mac_key = \"issuer:north-bank:mac\"",
        )
        .replace(
            "cards = \"config/issuers/metro-pay.toml\"",
            "cards = \"config/issuers/no-such-issuer.toml\"",
        );
    assert_ne!(broken, shipped);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("switch.toml");
    std::fs::write(&path, broken).expect("write");
    let o = check(&path);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("mac_key") && err.contains("acquirer:100009:mac is not in the keys file"),
        "{err}"
    );
    assert!(
        err.contains("issuer[1].mac_key: issuer:north-bank:mac is not in the keys file"),
        "{err}"
    );
    assert!(
        err.contains("issuer[2].cards (metro-pay)") && err.contains("no-such-issuer.toml"),
        "{err}"
    );
    // No key value of the test keys file appears.
    let keys = std::fs::read_to_string(root().join("config/keys.toml")).expect("keys");
    for line in keys
        .lines()
        .filter(|l| l.contains("key = \"") || l.contains("zpk = \""))
    {
        if let Some(value) = line.split('"').nth(1) {
            assert!(!err.contains(value), "a key value leaked: {err}");
        }
    }
}
