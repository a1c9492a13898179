//! The whole stack in one process, as `switch demo` starts it: an issuer host for each remote
//! issuer (its own TCP port on 127.0.0.1), and the switch (its on-us issuers inside), each
//! journaling in a temporary folder that is removed when the stack is dropped.
//!
//! The switch's configuration is built here, not read from `config/switch.toml`: listener on
//! `127.0.0.1:0`, one acquirer `100001`, metrics off, the journal's `sync` as asked (`always` for
//! the grid and the tests), a fresh random PAN key, and for each remote issuer
//! `connections_per_endpoint` links with `inflight_max` requests in flight in total.
//!
//! When the cards were generated with `--security` ([`Generated::keys`]), the stack uses their
//! keys file instead: acquirer 100001 must MAC and its PIN blocks are translated, and the remote
//! links are MACed both ways with PIN blocks under each issuer's zone PIN key.
//!
//! When they were generated with `--tls` ([`Generated::tls`]), both hops speak TLS with the test
//! PKI: the acquirer listener requires client certificates, acquirer 100001 identified by its own
//! (`tls_identity`), and the links to the issuer hosts present the switch's link certificate.
//! Clients connect with [`super::pki::TestPki::client_tls`].

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use switch::clock::{Clock, SystemClock};
use switch::config::{AcquirerConfig, BinRangeConfig, Config, JournalSync};
use switch::host::{Faults, HostConfig, HostSecurity, IssuerHost, open_journal};
use switch::iso8583::DialectId;
use switch::issuing::{Engine, IssuerFile};
use switch::journal::Journal;
use switch::net::framing::FramingConfig;
use switch::net::server::IssuerHandle;
use switch::net::start::{StartOptions, SwitchServer};
use switch::security::KeysFile;

use super::gencards::{ACQUIRER, Generated, issuer_config, random_key_hex, secure_issuer};
use super::pki::TestPki;

/// How to start the stack.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// The journal's sync policy, for the switch and the issuer hosts alike.
    pub sync: JournalSync,
    /// The switch's `[journal] group_commit_delay_us` (0: off, the default). The issuer hosts
    /// keep theirs off, as `issuer-sim` does.
    pub group_commit_delay_us: u32,
    /// Links from the switch to each remote issuer host.
    pub remote_links: u32,
    /// Requests in flight to each remote issuer, across its links.
    pub remote_inflight_max: u32,
    /// BIN ranges added to the switch's routing table beside the issuers' own: single 6-digit
    /// BINs counting up from [`EXTRA_BIN_FIRST`], given to the issuers in turn, so routing is
    /// measured with a table of a real network's size (at most [`EXTRA_BIN_RANGES_MAX`]).
    pub extra_bin_ranges: u32,
}

/// The first of the [`StackOptions::extra_bin_ranges`]: above every BIN `gen-cards` uses.
pub const EXTRA_BIN_FIRST: u32 = 700_000;
/// Most extra BIN ranges: the 6-digit BINs from [`EXTRA_BIN_FIRST`] to 999998 (999999 is the
/// mix's unknown BIN, [`super::gencards::UNKNOWN_BIN`], which must stay unrouted).
pub const EXTRA_BIN_RANGES_MAX: u32 = 999_999 - EXTRA_BIN_FIRST;

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            sync: JournalSync::Always,
            group_commit_delay_us: 0,
            remote_links: 1,
            remote_inflight_max: 4096,
            extra_bin_ranges: 0,
        }
    }
}

/// Why the stack did not start.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("stack: {0}")]
    Setup(String),
}

fn setup<E: std::fmt::Display>(what: String) -> impl FnOnce(E) -> StackError {
    move |e| StackError::Setup(format!("{what}: {e}"))
}

/// A running stack. [`Stack::shutdown`] stops it in order; dropping it without shutting down
/// still removes the temporary folder.
pub struct Stack {
    switch: SwitchServer,
    hosts: Vec<(String, IssuerHost)>,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Stack {
    /// Starts an issuer host for each remote issuer of `data`, then the switch routing each
    /// issuer's BIN to it, and waits until every remote link has signed on.
    pub async fn start(data: &Generated, opts: &StackOptions) -> Result<Stack, StackError> {
        let dir = tempfile::Builder::new()
            .prefix("loadgen-stack-")
            .tempdir()
            .map_err(setup("temporary folder".into()))?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let mut config = Config::default();
        config.listener.address = "127.0.0.1:0".into();
        config.journal.dir = dir.path().join("switch");
        config.journal.sync = opts.sync;
        config.journal.group_commit_delay_us = opts.group_commit_delay_us;
        config.metrics.enabled = false;
        config.security.keys_file = match &data.keys {
            Some(keys) => keys.clone(),
            None => dir.path().join("keys.toml"),
        };
        let secure = data.keys.is_some();
        if let Some(pki) = &data.tls {
            config.listener.tls = Some(pki.switch_listener());
        }
        config.acquirers = vec![AcquirerConfig {
            id: ACQUIRER.into(),
            name: "Loadgen Acquiring".into(),
            mac_key: secure.then(|| format!("acquirer:{ACQUIRER}:mac")),
            pin_key: secure.then(|| format!("acquirer:{ACQUIRER}:zpk")),
            tls_identity: data.tls.as_ref().and_then(|pki| pki.identity(ACQUIRER)),
            ..AcquirerConfig::default()
        }];
        let mut hosts = Vec::new();
        for g in &data.issuers {
            let endpoint = match &g.listen {
                Some(_) => {
                    let jdir = dir.path().join("issuers").join(&g.id);
                    let host = start_host(
                        &g.id,
                        &g.file,
                        &jdir,
                        opts.sync,
                        data.tls.as_ref(),
                        clock.clone(),
                    )
                    .await?;
                    let addr = host.local_addr().to_string();
                    hosts.push((g.id.clone(), host));
                    Some(addr)
                }
                None => None,
            };
            let mut ic = issuer_config(
                &g.id,
                &g.name,
                endpoint.as_deref(),
                &g.file,
                opts.remote_links.max(1),
                opts.remote_inflight_max.max(1),
            );
            if secure {
                secure_issuer(&mut ic);
            }
            if let (Some(pki), Some(_)) = (&data.tls, &g.listen) {
                ic.tls = Some(pki.link_tls());
            }
            config.issuers.push(ic);
            config.bin_ranges.push(BinRangeConfig {
                low: g.bin.clone(),
                high: g.bin.clone(),
                issuer: g.id.clone(),
                product: Some(super::gencards::bin_product(g.product)),
            });
        }
        if opts.extra_bin_ranges > EXTRA_BIN_RANGES_MAX {
            return Err(StackError::Setup(format!(
                "extra BIN ranges: at most {EXTRA_BIN_RANGES_MAX}"
            )));
        }
        for (bin, g) in (EXTRA_BIN_FIRST..EXTRA_BIN_FIRST + opts.extra_bin_ranges)
            .zip(data.issuers.iter().cycle())
        {
            config.bin_ranges.push(BinRangeConfig {
                low: bin.to_string(),
                high: bin.to_string(),
                issuer: g.id.clone(),
                product: Some(super::gencards::bin_product(g.product)),
            });
        }
        config.validate("loadgen stack").map_err(|problems| {
            StackError::Setup(format!(
                "switch configuration: {}",
                problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ))
        })?;
        let keys = if secure {
            KeysFile::load(&config.security.keys_file).map_err(setup("keys".into()))?
        } else {
            // A throwaway PAN key for this stack's journal.
            let keys_text = format!("[journal]\npan_key = \"{}\"\n", random_key_hex(32));
            KeysFile::from_toml_str(&keys_text, &config.security.keys_file)
                .map_err(setup("keys".into()))?
        };
        let switch = SwitchServer::start(StartOptions {
            config,
            keys,
            clock,
            on_us: Arc::new(switch::onus::engine_factory),
        })
        .await
        .map_err(setup("switch".into()))?;
        for h in &switch.runtime.issuers {
            if let IssuerHandle::Remote { pool, id, .. } = h {
                match tokio::time::timeout(Duration::from_secs(10), pool.wait_ready(1)).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        return Err(StackError::Setup(format!("issuer {id} link: {e}")));
                    }
                    Err(_) => {
                        return Err(StackError::Setup(format!(
                            "issuer {id} did not sign on within 10 s"
                        )));
                    }
                }
            }
        }
        let addr = switch.local_addr();
        Ok(Stack {
            switch,
            hosts,
            addr,
            dir,
        })
    }

    /// The switch's acquirer listener.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The folder holding every journal.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The issuer hosts, by issuer id.
    pub fn hosts(&self) -> impl Iterator<Item = (&str, &IssuerHost)> {
        self.hosts.iter().map(|(id, h)| (id.as_str(), h))
    }

    /// Stops the switch (drain, sign off, flush the journal), then the issuer hosts, then
    /// removes the journals.
    pub async fn shutdown(self) {
        self.switch.shutdown().await;
        for (_, h) in self.hosts {
            h.shutdown().await;
        }
        drop(self.dir);
    }
}

async fn start_host(
    id: &str,
    file_path: &Path,
    journal_dir: &Path,
    sync: JournalSync,
    tls: Option<&TestPki>,
    clock: Arc<dyn Clock>,
) -> Result<IssuerHost, StackError> {
    let tls = match tls {
        Some(pki) => Some(Arc::new(
            switch::net::tls::server_config(&pki.host_listener())
                .map_err(setup(format!("issuer {id} TLS")))?,
        )),
        None => None,
    };
    let file = IssuerFile::load(file_path)
        .map_err(setup(format!("issuer file {}", file_path.display())))?;
    let security = HostSecurity::load(&file, None).map_err(setup(format!("issuer {id} keys")))?;
    let engine = Arc::new(Engine::from_file(&file).map_err(setup(format!("issuer {id}")))?);
    let (journal, _) =
        open_journal(journal_dir, sync, &engine).map_err(setup(format!("issuer {id} journal")))?;
    let cfg = HostConfig {
        address: "127.0.0.1:0".into(),
        dialect: DialectId::Iso87Ascii.dialect(),
        framing: FramingConfig::default(),
        faults: Faults::default(),
        // The stack never restarts from its journals: no checkpoints.
        checkpoint_dir: None,
        checkpoint_every: 0,
        checkpoint_pace: switch::journal::WritePace::unpaced(),
        security,
        tls,
        connections_max: switch::host::HOST_CONNECTIONS_MAX_DEFAULT,
        inflight_per_connection_max: switch::host::HOST_INFLIGHT_PER_CONNECTION_MAX_DEFAULT,
    };
    IssuerHost::start(
        cfg,
        engine,
        journal.clone() as Arc<dyn Journal>,
        Some(journal),
        clock,
    )
    .await
    .map_err(setup(format!("issuer host {id}")))
}
