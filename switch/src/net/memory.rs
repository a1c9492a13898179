//! An in-process switch [`Runtime`] with no sockets and no disk: on-us issuers only, a journal
//! given by the caller (usually [`crate::journal::MemJournal`]) and an injected clock.
//!
//! **Owns:** assembling a runtime the way [`crate::net::start`] does, minus everything that needs
//! the network (remote issuer links, store-and-forward) or a disk (the file journal, recovery).
//!
//! **Leaves to others:** the request pipeline itself ([`Runtime::handle`] is the same code the
//! listener drives), and any real deployment: this must never back a real switch, since its
//! journal is whatever the caller hands in and its PAN key is a fixed, public test key.
//!
//! **Why:** the pipeline fuzz target (`switch/fuzz`) and the connection tests of
//! [`crate::net::acquirer`] need the whole synchronous core (decode, screen, duplicates, the
//! issuing engine, journaling, encode) driven by bytes, deterministically and fast.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::{Config, IssuerKind};
use crate::decision::security::IssuerKeys;
use crate::journal::Journal;
use crate::net::duplicates::DuplicateWindow;
use crate::net::server::{IssuerHandle, Live, Runtime, SwitchSecurity};
use crate::security::{KeysFile, PanVault, SoftwareSecurityModule};

/// Duplicate keys kept at most: enough for any test, small enough for a long fuzz run.
const DUPLICATE_ENTRIES_MAX: usize = 100_000;

/// A fixed PAN-protection key. Not secret: nothing protected with it leaves the process.
const TEST_PAN_KEY: [u8; 32] = [0x5a; 32];

/// `config` with its remote issuers removed, with their BIN ranges and stand-in entries.
pub fn on_us_only(mut config: Config) -> Config {
    let remote: Vec<String> = config
        .issuers
        .iter()
        .filter(|i| i.kind == IssuerKind::Remote)
        .map(|i| i.id.clone())
        .collect();
    config.issuers.retain(|i| i.kind == IssuerKind::OnUs);
    config.bin_ranges.retain(|b| !remote.contains(&b.issuer));
    config.stand_in.retain(|s| !remote.contains(&s.issuer));
    config
}

/// A runtime for `config`, whose issuers must all be on-us (see [`on_us_only`]); each on-us
/// engine is built from its issuer file (`cards`).
pub fn runtime(
    config: &Config,
    journal: Arc<dyn Journal>,
    clock: Arc<dyn Clock>,
) -> Result<Arc<Runtime>, String> {
    let mut issuers = Vec::with_capacity(config.issuers.len());
    for ic in &config.issuers {
        if ic.kind != IssuerKind::OnUs {
            return Err(format!(
                "issuer {}: remote issuers need links; use on_us_only",
                ic.id
            ));
        }
        let engine = crate::onus::engine_factory(ic, Arc::clone(&journal), Arc::clone(&clock))?;
        issuers.push(IssuerHandle::OnUs {
            id: Arc::from(ic.id.as_str()),
            engine,
        });
    }
    let ids: Vec<Arc<str>> = issuers.iter().map(|i| i.id().clone()).collect();
    let live = Live::build(config, &ids)?;
    // The config's keys file, as the real switch loads it: acquirers that MAC keep doing so.
    let keys = KeysFile::load(&config.security.keys_file).map_err(|e| e.to_string())?;
    let module = SoftwareSecurityModule::from_keys(&keys).map_err(|e| e.to_string())?;
    let security = SwitchSecurity {
        module: Arc::new(module),
        issuers: vec![IssuerKeys::default(); issuers.len()],
    };
    let dup = Arc::new(DuplicateWindow::new(
        Duration::from_secs(config.switch.duplicate_window_s),
        DUPLICATE_ENTRIES_MAX,
    ));
    Ok(Arc::new(Runtime::new(
        live,
        config.listener.dialect.dialect(),
        journal,
        PanVault::new(&TEST_PAN_KEY),
        clock,
        dup,
        issuers,
        security,
        1,
        1,
        CancellationToken::new(),
    )))
}
