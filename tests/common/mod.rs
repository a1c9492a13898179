//! Shared harness of the end-to-end tests: the whole stack in one process, the way `switch demo`
//! runs it, every part on its own 127.0.0.1:0 port so traffic really crosses TCP.
//!
//! - [`Stack`]: the default configuration (`config/switch.toml`) with the listener on port 0,
//!   journals in a fresh temporary directory, and each remote issuer pointed at an in-process
//!   [`IssuerHost`] serving its issuer file (`config/issuers/<id>.toml`) with its own journal.
//! - Hosts can be started late, stopped and restarted on the same port and journal directory, and
//!   given [`Faults`].
//! - Raw framing helpers for tests that write bytes themselves.
//! - Keys: hosts get the keys their issuer file names, and clients the keys the switch's config
//!   gives their acquirer (its MAC key, its zone PIN key), all from `config/keys.toml`, the way
//!   the real parties hold them; [`Stack::client_bare`] connects without.
//!
//! Nothing here sleeps or polls to synchronise: every condition a test waits on is a signal the
//! code under test publishes on a `tokio::sync::watch` channel, awaited with [`wait_for`] (check,
//! then await the next change): link readiness ([`IssuerPool::ready_watch`]), a
//! store-and-forward queue's depth ([`Saf::depth_watch`]), an issuer host's requests and
//! checkpoints ([`IssuerHost::requests_watch`], [`IssuerHost::checkpoints_watch`]), and the
//! switch's journal moving ([`SwitchServer::journal_progress`], re-read each time it moves,
//! [`Stack::wait_journal`]). [`WAIT`] bounds every wait so that a missing signal fails the test
//! with what it was waiting for instead of hanging it; it never decides an outcome.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use switch::client::{
    AcquirerClient, ClientConfig, ClientOptions, PinSetup, TerminalKeys, TxnResult,
};
use switch::clock::{Clock, SystemClock};
use switch::config::{Config, IssuerKind, JournalSync};
use switch::domain::{Amount, Currency, Pan, ResponseCode};
use switch::events::Record;
use switch::host::{Faults, HostConfig, HostSecurity, IssuerHost, open_journal};
use switch::iso8583::ISO87_ASCII;
use switch::iso8583::views::AdditionalAmount;
use switch::issuing::{Engine, IssuerFile};
use switch::journal::Journal;
use switch::net::framing::FramingConfig;
use switch::net::issuer::IssuerPool;
use switch::net::saf::Saf;
use switch::net::server::IssuerHandle;
use switch::net::start::{StartOptions, SwitchServer};
use switch::security::{KeyId, KeysFile};
use tempfile::TempDir;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

pub const NORTH: &str = "north-bank";
pub const EAST: &str = "east-bank";
pub const METRO: &str = "metro-pay";

/// Active credit card, limit 10,000.00 (North Bank, stand-in configured).
pub const NB_CREDIT: &str = "4111110000000013";
/// Lost credit card, also on North Bank's negative file.
pub const NB_LOST: &str = "4111110000000021";
/// Expired credit card (2401).
pub const NB_EXPIRED: &str = "4111110000000039";
/// Credit card with a 100.00 limit.
pub const NB_LOW_LIMIT: &str = "4111110000000047";
/// Active debit card, balance 5,000.00 (East Bank, no stand-in).
pub const EB_DEBIT: &str = "6222020000000015";
/// Stolen debit card.
pub const EB_STOLEN: &str = "6222020000000023";
/// Debit card with 10.00.
pub const EB_LOW: &str = "6222020000000031";
/// Prepaid card with 200.00 (Metro Pay, on-us).
pub const MP_PREPAID: &str = "6050010000000013";
/// Prepaid card with 0.00.
pub const MP_EMPTY: &str = "6050010000000021";
/// A valid card number no BIN range covers.
pub const NO_ISSUER: &str = "9999990000000014";

/// Overall deadline for conditions the tests wait on.
pub const WAIT: Duration = Duration::from_secs(10);

/// The workspace root (the root package's manifest directory).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_owned()
    } else {
        root().join(p)
    }
}

/// An amount in CNY from major units, e.g. `cny("12.34")`.
pub fn cny(major: &str) -> Amount {
    Amount::parse_major(major, Currency::CNY).expect("amount")
}

/// `major` in minor units, e.g. `minor("12.34") == 1234`.
pub fn minor(major: &str) -> i64 {
    cny(major).minor()
}

/// The default configuration, ready for a test: listener on 127.0.0.1:0, journal under `dir`,
/// paths made absolute, quick reconnects and patient store-and-forward (advices are not parked
/// while a test keeps an issuer away on purpose).
pub fn base_config(dir: &Path) -> Config {
    let mut c = Config::load(&root().join("config/switch.toml")).expect("config/switch.toml loads");
    c.listener.address = "127.0.0.1:0".into();
    c.journal.dir = dir.join("switch");
    c.security.keys_file = absolute(&c.security.keys_file);
    for ic in &mut c.issuers {
        if let Some(cards) = &ic.cards {
            ic.cards = Some(absolute(cards));
        }
        if ic.kind == IssuerKind::Remote {
            ic.reconnect_backoff_min_ms = 20;
            ic.reconnect_backoff_max_ms = 200;
            ic.saf_retries_max = 1000;
        }
    }
    for si in &mut c.stand_in {
        if let Some(f) = &si.negative_file {
            si.negative_file = Some(absolute(f));
        }
    }
    c
}

/// The process's metrics, read back as Prometheus text. A test binary that reads metrics calls
/// this before any stack starts, so that the recorder is installed before anything counts.
pub fn metrics() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    HANDLE.get_or_init(|| {
        switch::metrics::builder()
            .expect("the switch's bucket bounds are valid")
            .install_recorder()
            .expect("metrics recorder")
    })
}

/// The issuer file of a remote issuer.
pub fn issuer_file(id: &str) -> PathBuf {
    root().join("config/issuers").join(format!("{id}.toml"))
}

/// A fresh engine for issuer `id`, at its published balances.
pub fn fresh_engine(id: &str) -> Arc<Engine> {
    let file = IssuerFile::load(&issuer_file(id)).expect("issuer file loads");
    Arc::new(Engine::from_file(&file).expect("issuer engine builds"))
}

/// The test keys file.
pub fn keys_path() -> PathBuf {
    root().join("config/keys.toml")
}

pub fn keys() -> KeysFile {
    KeysFile::load(&keys_path()).expect("keys load")
}

/// The link keys issuer `id`'s file names, from the test keys file.
pub fn host_security(id: &str) -> Option<HostSecurity> {
    let file = IssuerFile::load(&issuer_file(id)).expect("issuer file loads");
    HostSecurity::load(&file, Some(&keys_path())).expect("issuer keys load")
}

/// Starts an issuer host for `id` on `address`, with a fresh engine that restores the
/// checkpoint in `journal_dir` (if any) and replays the journal after it. Checkpoints are written
/// as the demo and `issuer-sim` write them: at shutdown, and every 100,000 ledger events.
pub async fn start_host(id: &str, address: &str, journal_dir: &Path, faults: Faults) -> IssuerHost {
    start_host_with(id, address, journal_dir, faults, 100_000).await
}

/// [`start_host`] with a checkpoint every `checkpoint_every` ledger events.
pub async fn start_host_with(
    id: &str,
    address: &str,
    journal_dir: &Path,
    faults: Faults,
    checkpoint_every: u64,
) -> IssuerHost {
    start_host_tls(id, address, journal_dir, faults, checkpoint_every, None).await
}

/// [`start_host_with`], accepting the switch's links over TLS when `tls` is given.
pub async fn start_host_tls(
    id: &str,
    address: &str,
    journal_dir: &Path,
    faults: Faults,
    checkpoint_every: u64,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> IssuerHost {
    let engine = fresh_engine(id);
    let (journal, _) =
        open_journal(journal_dir, JournalSync::Always, &engine).expect("issuer journal opens");
    let cfg = HostConfig {
        address: address.to_owned(),
        dialect: &ISO87_ASCII,
        framing: FramingConfig::default(),
        faults,
        checkpoint_dir: Some(journal_dir.to_owned()),
        checkpoint_every,
        checkpoint_pace: switch::journal::WritePace::unpaced(),
        security: host_security(id),
        tls,
        connections_max: switch::host::HOST_CONNECTIONS_MAX_DEFAULT,
        inflight_per_connection_max: switch::host::HOST_INFLIGHT_PER_CONNECTION_MAX_DEFAULT,
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    IssuerHost::start(
        cfg,
        engine,
        journal.clone() as Arc<dyn Journal>,
        Some(journal),
        clock,
    )
    .await
    .expect("issuer host starts")
}

/// A free port on 127.0.0.1 (bound, then released), for a host that starts after the switch.
pub fn reserve_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// Resolves once `cond` holds for the value `rx` carries: checks the current value, then again
/// each time the sender publishes a new one. Panics with `what` if [`WAIT`] passes first, or if
/// the sender goes away with `cond` still false (nothing could ever make it true).
pub async fn wait_for<T: Clone>(
    what: &str,
    rx: &mut watch::Receiver<T>,
    mut cond: impl FnMut(&T) -> bool,
) {
    let waited = tokio::time::timeout(WAIT, async {
        loop {
            // A copy, so that `cond` (which may read files) never holds the channel's lock.
            let value = rx.borrow_and_update().clone();
            if cond(&value) {
                return true;
            }
            if rx.changed().await.is_err() {
                return false;
            }
        }
    })
    .await;
    match waited {
        Ok(true) => {}
        Ok(false) => panic!("the signal went away while waiting for: {what}"),
        Err(_) => panic!("timed out waiting for: {what}"),
    }
}

/// Resolves once `saf` holds no advice: [`wait_for`] on its depth.
pub async fn wait_drained(what: &str, saf: &Saf) {
    wait_for(what, &mut saf.depth_watch(), |&d| d == 0).await;
}

/// One remote issuer's host as the test controls it.
pub struct HostSlot {
    pub addr: SocketAddr,
    pub journal_dir: PathBuf,
    pub host: Option<IssuerHost>,
}

/// How to start a [`Stack`].
pub struct StackBuilder {
    dir: TempDir,
    config: Config,
    faults: BTreeMap<String, Faults>,
    down: Vec<String>,
}

impl StackBuilder {
    /// The switch's `timeout_ms` for issuer `id`.
    pub fn timeout_ms(mut self, id: &str, ms: u64) -> Self {
        self.issuer_mut(id).timeout_ms = ms;
        self
    }

    /// Faults of issuer `id`'s host.
    pub fn faults(mut self, id: &str, f: Faults) -> Self {
        self.faults.insert(id.to_owned(), f);
        self
    }

    /// Issuer `id`'s host does not run when the switch starts (its port is reserved and free).
    pub fn host_down(mut self, id: &str) -> Self {
        self.down.push(id.to_owned());
        self
    }

    /// Any other change to the switch's configuration.
    pub fn configure(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(&mut self.config);
        self
    }

    fn issuer_mut(&mut self, id: &str) -> &mut switch::config::IssuerConfig {
        self.config
            .issuers
            .iter_mut()
            .find(|i| i.id == id)
            .expect("issuer configured")
    }

    /// Starts the hosts (except those down), the switch, and waits until every running host's
    /// link is signed on.
    pub async fn start(mut self) -> Stack {
        let mut hosts = BTreeMap::new();
        let remote: Vec<String> = self
            .config
            .issuers
            .iter()
            .filter(|i| i.kind == IssuerKind::Remote)
            .map(|i| i.id.clone())
            .collect();
        for id in &remote {
            let journal_dir = self.dir.path().join("issuers").join(id);
            let slot = if self.down.contains(id) {
                HostSlot {
                    addr: reserve_port(),
                    journal_dir,
                    host: None,
                }
            } else {
                let faults = self.faults.get(id).copied().unwrap_or_default();
                let host = start_host(id, "127.0.0.1:0", &journal_dir, faults).await;
                HostSlot {
                    addr: host.local_addr(),
                    journal_dir,
                    host: Some(host),
                }
            };
            self.issuer_mut(id).endpoints = vec![slot.addr.to_string()];
            hosts.insert(id.clone(), slot);
        }
        let server = start_switch(&self.config).await;
        let stack = Stack {
            dir: self.dir,
            config: self.config,
            server: Some(server),
            hosts,
        };
        for (id, slot) in &stack.hosts {
            if slot.host.is_some() {
                stack.wait_ready(id).await;
            }
        }
        stack
    }
}

/// Starts a switch on `config` with the default on-us factory and the system clock.
pub async fn start_switch(config: &Config) -> SwitchServer {
    let keys = KeysFile::load(&config.security.keys_file).expect("keys load");
    SwitchServer::start(StartOptions {
        config: config.clone(),
        keys,
        clock: Arc::new(SystemClock),
        on_us: Arc::new(switch::onus::engine_factory),
    })
    .await
    .expect("switch starts")
}

/// The switch, its remote issuers' hosts and their journals, in a temporary directory.
pub struct Stack {
    pub dir: TempDir,
    pub config: Config,
    pub server: Option<SwitchServer>,
    pub hosts: BTreeMap<String, HostSlot>,
}

impl Stack {
    pub fn builder() -> StackBuilder {
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = base_config(dir.path());
        StackBuilder {
            dir,
            config,
            faults: BTreeMap::new(),
            down: Vec::new(),
        }
    }

    /// The default stack, every host up and signed on.
    pub async fn start() -> Stack {
        Stack::builder().start().await
    }

    pub fn server(&self) -> &SwitchServer {
        self.server.as_ref().expect("switch running")
    }

    /// The switch's acquirer listener.
    pub fn addr(&self) -> SocketAddr {
        self.server().local_addr()
    }

    /// The switch's journal directory.
    pub fn journal_dir(&self) -> PathBuf {
        self.config.journal.dir.clone()
    }

    /// Acquirer 100001, terminal TERM0001.
    pub async fn client(&self) -> AcquirerClient {
        self.client_as("100001", "TERM0001").await
    }

    pub async fn client_as(&self, acquirer: &str, terminal: &str) -> AcquirerClient {
        self.client_with(acquirer, terminal, ClientOptions::default())
            .await
    }

    /// A client of `acquirer` with `opts`; when `opts` carries no keys, the acquirer's own
    /// ([`Stack::terminal_keys`] with its zone PIN key).
    pub async fn client_with(
        &self,
        acquirer: &str,
        terminal: &str,
        mut opts: ClientOptions,
    ) -> AcquirerClient {
        if !opts.keys.has_mac() && !opts.keys.has_pin_pad() {
            opts.keys = self.terminal_keys(acquirer, PinSetup::None);
        }
        self.client_bare(acquirer, terminal, opts).await
    }

    /// The terminal keys of `acquirer` as the switch's config names them: its MAC key, and a
    /// PIN pad as `pin` says (its zone PIN key for [`PinSetup::None`], when it has one).
    pub fn terminal_keys(&self, acquirer: &str, pin: PinSetup) -> Arc<TerminalKeys> {
        let a = self.config.acquirers.iter().find(|a| a.id == acquirer);
        let id = |t: Option<&String>| t.map(|t| t.parse::<KeyId>().expect("key id"));
        let mac = id(a.and_then(|a| a.mac_key.as_ref()));
        let pin = match (pin, id(a.and_then(|a| a.pin_key.as_ref()))) {
            (PinSetup::None, Some(zpk)) => PinSetup::Zone(zpk),
            (p, _) => p,
        };
        Arc::new(TerminalKeys::from_keys_file(&keys(), mac.as_ref(), &pin).expect("terminal keys"))
    }

    /// A client with exactly `opts` (no keys unless they carry some).
    pub async fn client_bare(
        &self,
        acquirer: &str,
        terminal: &str,
        opts: ClientOptions,
    ) -> AcquirerClient {
        let cfg = ClientConfig {
            acquirer_id: acquirer.into(),
            terminal_id: terminal.into(),
            ..ClientConfig::default()
        };
        AcquirerClient::connect_with(self.addr(), cfg, opts)
            .await
            .expect("client connects")
    }

    fn remote(&self, id: &str) -> (IssuerPool, Arc<Saf>) {
        self.server()
            .runtime
            .issuers
            .iter()
            .find_map(|h| match h {
                IssuerHandle::Remote {
                    id: hid, pool, saf, ..
                } if **hid == *id => Some((pool.clone(), saf.clone())),
                _ => None,
            })
            .expect("remote issuer")
    }

    /// The switch's link pool to issuer `id`.
    pub fn pool(&self, id: &str) -> IssuerPool {
        self.remote(id).0
    }

    /// The switch's store-and-forward queue for issuer `id`.
    pub fn saf(&self, id: &str) -> Arc<Saf> {
        self.remote(id).1
    }

    /// Issuer `id`'s running host.
    pub fn host(&self, id: &str) -> &IssuerHost {
        self.hosts
            .get(id)
            .and_then(|s| s.host.as_ref())
            .expect("host running")
    }

    /// Resolves once the switch has a signed-on link to issuer `id`.
    pub async fn wait_ready(&self, id: &str) {
        tokio::time::timeout(WAIT, self.pool(id).wait_ready(1))
            .await
            .unwrap_or_else(|_| panic!("issuer {id} did not sign on"))
            .expect("issuer link");
    }

    /// Stops issuer `id`'s host (journal flushed) and waits until the switch's link notices.
    pub async fn stop_host(&mut self, id: &str) {
        let host = self
            .hosts
            .get_mut(id)
            .and_then(|s| s.host.take())
            .expect("host running");
        host.shutdown().await;
        wait_for(
            &format!("the switch's link to {id} goes down"),
            &mut self.pool(id).ready_watch(),
            |&ready| ready == 0,
        )
        .await;
    }

    /// Starts issuer `id`'s host again on its port and journal directory (the journal is
    /// replayed) and waits until the switch's link is signed on.
    pub async fn restart_host(&mut self, id: &str, faults: Faults) {
        let slot = self.hosts.get_mut(id).expect("remote issuer");
        assert!(slot.host.is_none(), "host {id} is still running");
        let host = start_host(id, &slot.addr.to_string(), &slot.journal_dir, faults).await;
        slot.host = Some(host);
        self.wait_ready(id).await;
    }

    /// Resolves once the switch's journal holds a record `matches` accepts, re-reading the
    /// journal each time a group commit moves it (never on a timer); panics with `what` after
    /// [`WAIT`].
    pub async fn wait_journal(&self, what: &str, matches: impl Fn(&Record) -> bool) {
        let dir = self.journal_dir();
        let mut progress = self.server().journal_progress();
        wait_for(what, &mut progress, |_| {
            // The writer may be mid-batch past the published LSN: `read_all` leaves a half-written
            // batch out, and its publication brings a fresh read.
            switch::journal::read_all(&dir).is_ok_and(|recs| {
                recs.iter()
                    .any(|(_, b)| Record::decode(b).is_ok_and(|r| matches(&r)))
            })
        })
        .await;
    }

    /// Issuer `id`'s host's engine: (available, ledger) of `pan` in minor units.
    pub fn host_balances(&self, id: &str, pan: &str) -> (i64, i64) {
        let b = self
            .host(id)
            .engine()
            .balances(&Pan::parse(pan.as_bytes()).expect("pan"))
            .expect("card known");
        (b.available.minor(), b.ledger.minor())
    }

    /// Stops the switch gracefully and returns its journal's records.
    pub async fn shutdown_switch(&mut self) -> Vec<Record> {
        let server = self.server.take().expect("switch running");
        server.shutdown().await;
        journal_records(&self.journal_dir())
    }

    /// Stops everything that still runs.
    pub async fn shutdown(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        for slot in self.hosts.values_mut() {
            if let Some(h) = slot.host.take() {
                h.shutdown().await;
            }
        }
    }
}

/// Every record of the journal in `dir`, decoded.
pub fn journal_records(dir: &Path) -> Vec<Record> {
    switch::journal::read_all(dir)
        .expect("journal reads")
        .into_iter()
        .map(|(_, bytes)| Record::decode(&bytes).expect("journal record decodes"))
        .collect()
}

/// Asserts the response code of a transaction, with the response in the message.
#[track_caller]
pub fn assert_code(r: &TxnResult, code: ResponseCode, what: &str) {
    assert_eq!(
        r.response_code,
        code,
        "{what}: got {} ({:?})",
        r.response_code.as_str(),
        r.response
    );
}

/// Field 54's available and ledger balances, in minor units.
#[track_caller]
pub fn balances_of(r: &TxnResult) -> (i64, i64) {
    let available = r
        .additional_amount(AdditionalAmount::AVAILABLE)
        .expect("field 54 has the available balance");
    let ledger = r
        .additional_amount(AdditionalAmount::LEDGER)
        .expect("field 54 has the ledger balance");
    (available.minor(), ledger.minor())
}

/// A balance inquiry over the switch: (available, ledger) in minor units.
pub async fn inquire(c: &AcquirerClient, pan: &str) -> (i64, i64) {
    let r = c.balance(pan).await.expect("balance inquiry answered");
    assert_code(
        &r,
        ResponseCode::Approved,
        &format!("balance inquiry on {pan}"),
    );
    balances_of(&r)
}

/// `payload` behind a 2-byte big-endian length header.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

/// Reads one 2-byte big-endian framed payload.
pub async fn read_frame<R: AsyncRead + Unpin>(s: &mut R) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len).await?;
    let mut payload = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut payload).await?;
    Ok(payload)
}

/// Writes `payload` framed.
pub async fn write_frame(s: &mut TcpStream, payload: &[u8]) {
    s.write_all(&frame(payload)).await.expect("write frame");
}

/// The field's text in a decoded message.
pub fn text(msg: &switch::iso8583::Message, n: u8) -> Option<String> {
    msg.get(n).map(|v| String::from_utf8_lossy(&v).into_owned())
}
