//! End to end over TLS: the real switch with `[listener.tls]` and a client CA, and acquirers
//! identified by their client certificates (`[[acquirer]] tls_identity`, a SAN DNS name).
//!
//! Every certificate is generated here at test time with rcgen (a CA, the switch's certificate
//! for 127.0.0.1 and localhost, and one client certificate per acquirer plus one that names no
//! acquirer), written to the stack's temporary directory; nothing is shipped.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::*;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use switch::client::{AcquirerClient, ClientConfig, ClientOptions, ClientTls, TxnKind, TxnOptions};
use switch::config::ListenerTlsConfig;
use switch::domain::ResponseCode;

/// The sum of a counter's series whose labels include every `label="value"` in `labels` (every
/// test of this binary counts into the same recorder, so tests compare before and after).
fn counter(name: &str, labels: &[(&str, &str)]) -> u64 {
    metrics()
        .render()
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn violations(reason: &str) -> u64 {
    counter(
        "switchyard_security_violations_total",
        &[("party", "acquirer"), ("reason", reason)],
    )
}

/// Held for the whole of every test that fails a handshake on purpose, and so moves
/// `switchyard_tls_handshake_failures_total`. The counter has no label naming the stack (its only
/// label is the reason), and all tests of this binary share one recorder and run in parallel:
/// without this, one test's "the counter went up" could be another test's failure. The other tests
/// complete their handshakes and never touch it. Each holder shuts its stack down before it lets
/// go: shutdown waits for every connection task, so a failure counted late (a connection the client
/// gave up on before the switch judged it) lands in its own test, not the next holder's.
static HANDSHAKE_FAILURES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Held by each test that asserts an exact count of
/// `switchyard_security_violations_total{reason="certificate_mismatch"}`: two such tests running
/// in parallel would each see the other's violations.
static CERTIFICATE_MISMATCHES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Held by each test that asserts an exact count of
/// `switchyard_tls_handshakes_total{kind="resumed"}` (taken after `CERTIFICATE_MISMATCHES` by a
/// test that holds both).
static RESUMPTIONS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn handshake_failures() -> u64 {
    counter("switchyard_tls_handshake_failures_total", &[])
}

const IDENTITY_1: &str = "acq-100001.switchyard.test";
const IDENTITY_2: &str = "acq-100002.switchyard.test";

/// Test PKI files in one temporary directory, removed with it.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A CA, the server's certificate and one client certificate per name in `clients`
    /// (`<name>.crt`, `<name>.key`), each client certificate carrying its name as SAN DNS name.
    fn generate(clients: &[&str]) -> Pki {
        let tmp = tempfile::tempdir().expect("PKI directory");
        let dir = tmp.path();
        let write = |name: &str, text: String| {
            std::fs::write(dir.join(name), text).expect("write test PKI file")
        };
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(
            DnType::CommonName,
            "Switchyard TEST CA (generated at test time)",
        );
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("CA key"))
            .expect("CA certificate");
        write("ca.crt", ca.pem());

        let leaf = |sans: Vec<String>, usage: ExtendedKeyUsagePurpose, file: &str| {
            let mut p = CertificateParams::new(sans).expect("leaf params");
            p.extended_key_usages = vec![usage];
            p.distinguished_name.push(DnType::CommonName, file);
            let key = KeyPair::generate().expect("leaf key");
            let cert = p.signed_by(&key, &ca).expect("leaf certificate");
            write(&format!("{file}.crt"), cert.pem());
            write(&format!("{file}.key"), key.serialize_pem());
        };
        leaf(
            vec!["localhost".into(), "127.0.0.1".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
            "server",
        );
        for c in clients {
            leaf(
                vec![(*c).to_owned()],
                ExtendedKeyUsagePurpose::ClientAuth,
                c,
            );
        }
        Pki { dir: tmp }
    }

    /// Client TLS trusting the test CA, presenting `client`'s certificate if given.
    fn client(&self, client: Option<&str>) -> ClientTls {
        let (cert, key) = (
            client.map(|c| self.path(&format!("{c}.crt"))),
            client.map(|c| self.path(&format!("{c}.key"))),
        );
        let identity = cert.as_deref().zip(key.as_deref());
        let config = switch::net::tls::client_config(&self.path("ca.crt"), identity)
            .expect("client TLS config");
        ClientTls {
            config: Arc::new(config),
            server_name: "127.0.0.1".into(),
        }
    }
}

/// The default stack with TLS on the listener, client certificates required, and identities for
/// both acquirers.
async fn tls_stack() -> (Stack, Pki) {
    tls_stack_with(|_| {}).await
}

/// [`tls_stack`] with one more change to the switch's configuration.
async fn tls_stack_with(more: impl FnOnce(&mut switch::config::Config)) -> (Stack, Pki) {
    metrics();
    let pki = Pki::generate(&[IDENTITY_1, IDENTITY_2, "nobody.switchyard.test"]);
    let stack = Stack::builder()
        .configure(|c| {
            c.listener.tls = Some(ListenerTlsConfig {
                cert_file: pki.path("server.crt"),
                key_file: pki.path("server.key"),
                client_ca_file: Some(pki.path("ca.crt")),
                cipher_suites: Vec::new(),
            });
            for a in &mut c.acquirers {
                a.tls_identity = match a.id.as_str() {
                    "100001" => Some(IDENTITY_1.to_uppercase()),
                    "100002" => Some(IDENTITY_2.into()),
                    _ => None,
                };
            }
            more(c);
            c.validate("e2e_tls").expect("TLS config validates");
        })
        .start()
        .await;
    (stack, pki)
}

/// A client of `acquirer` over TLS presenting `cert`'s certificate, with the acquirer's own keys.
async fn tls_client(stack: &Stack, pki: &Pki, acquirer: &str, cert: &str) -> AcquirerClient {
    let opts = ClientOptions {
        tls: Some(pki.client(Some(cert))),
        ..ClientOptions::default()
    };
    stack.client_with(acquirer, "TERM0001", opts).await
}

fn opts() -> TxnOptions {
    TxnOptions::new().expiry("3012")
}

#[tokio::test]
async fn a_certified_acquirer_is_served_over_tls() {
    let (stack, pki) = tls_stack().await;
    for (acquirer, cert) in [("100001", IDENTITY_1), ("100002", IDENTITY_2)] {
        let c = tls_client(&stack, &pki, acquirer, cert).await;
        let r = c
            .purchase(NB_CREDIT, cny("12.00"), opts())
            .await
            .expect("answered");
        assert_eq!(r.response_code, ResponseCode::Approved, "{acquirer}: {r:?}");
    }
}

#[tokio::test]
async fn a_certificate_cannot_send_as_another_acquirer() {
    let _counting = CERTIFICATE_MISMATCHES.lock().await;
    let (stack, pki) = tls_stack().await;
    let mismatch = violations("certificate_mismatch");
    let mac = violations("mac_missing") + violations("mac_invalid");
    // 100001's certificate, requests naming 100002 (correctly MACed with 100002's key, so the
    // certificate is the only thing wrong with them). The 63 is not MACed: the connection is not
    // 100002's, so the switch does not sign for it; hence the raw exchange.
    let c = tls_client(&stack, &pki, "100002", IDENTITY_1).await;
    for (n, amount) in [(1, "12.00"), (2, "13.00")] {
        let p = c
            .prepare(TxnKind::Purchase, NB_CREDIT, Some(cny(amount)), opts())
            .expect("prepared");
        let answer = c.send_raw(p.payload.clone()).await.expect("answered");
        assert_eq!(
            answer.get(39).as_deref(),
            Some(&b"63"[..]),
            "request {n}: {answer:?}"
        );
        // The connection stays open and keeps refusing: it cannot be re-bound.
        assert_eq!(violations("certificate_mismatch"), mismatch + n);
    }
    assert_eq!(violations("mac_missing") + violations("mac_invalid"), mac);
}

#[tokio::test]
async fn a_certificate_of_no_acquirer_is_refused() {
    let (stack, pki) = tls_stack().await;
    let unknown = violations("certificate_unknown");
    let c = tls_client(&stack, &pki, "100001", "nobody.switchyard.test").await;
    let r = c
        .purchase(NB_CREDIT, cny("12.00"), opts())
        .await
        .expect("answered");
    assert_eq!(r.response_code, ResponseCode::SecurityViolation, "{r:?}");
    assert_eq!(violations("certificate_unknown"), unknown + 1);
}

/// Connects and makes one purchase as 100001 with `tls`; the error, if either step failed.
async fn try_purchase(stack: &Stack, tls: Option<ClientTls>) -> Result<ResponseCode, String> {
    let cfg = ClientConfig {
        acquirer_id: "100001".into(),
        ..ClientConfig::default()
    };
    let options = ClientOptions {
        tls,
        ..ClientOptions::default()
    };
    let c = AcquirerClient::connect_with(stack.addr(), cfg, options)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    c.purchase(NB_CREDIT, cny("12.00"), opts())
        .await
        .map(|r| r.response_code)
        .map_err(|e| format!("purchase: {e}"))
}

/// Waits until the switch closes `tcp` (end of stream or a reset), discarding what comes first
/// (a TLS alert). The switch counts a failed handshake before it closes the connection
/// (`tls_connection` in `switch::net::acquirer`), so once this returns the failure is counted.
/// The client's own refusal is no such proof: it may come from the alert, which the switch sends
/// before it counts.
async fn closed_by_switch(mut tcp: tokio::net::TcpStream) {
    use tokio::io::AsyncReadExt;
    let mut rest = Vec::new();
    let read = tokio::time::timeout(WAIT, tcp.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the switch kept the connection open");
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused_at_the_handshake() {
    let _counter = HANDSHAKE_FAILURES.lock().await;
    let (stack, pki) = tls_stack().await;
    let failures = handshake_failures();
    // With TLS 1.3 the client may think the handshake done before the server has judged its
    // (missing) certificate, so the refusal shows at connect or at the first request.
    let outcome = try_purchase(&stack, Some(pki.client(None))).await;
    assert!(
        outcome.is_err(),
        "answered without a certificate: {outcome:?}"
    );
    // The same handshake on a socket of our own, to see the switch close it.
    let tcp = tokio::net::TcpStream::connect(stack.addr())
        .await
        .expect("TCP connect");
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").expect("server name");
    let connector = tokio_rustls::TlsConnector::from(pki.client(None).config);
    match connector.connect(name, tcp).into_fallible().await {
        Ok(tls) => closed_by_switch(tls.into_inner().0).await,
        Err((_, tcp)) => closed_by_switch(tcp).await,
    }
    assert!(handshake_failures() > failures, "the refusal is counted");
    stack.shutdown().await;
}

#[tokio::test]
async fn plain_tcp_to_the_tls_listener_is_closed_and_counted() {
    let _counter = HANDSHAKE_FAILURES.lock().await;
    let (stack, _pki) = tls_stack().await;
    let errors = || {
        counter(
            "switchyard_tls_handshake_failures_total",
            &[("reason", "error")],
        )
    };
    let before = errors();
    let outcome = try_purchase(&stack, None).await;
    assert!(outcome.is_err(), "plain TCP was answered: {outcome:?}");
    // A plain frame on a socket of our own, to see the switch close it.
    let mut tcp = tokio::net::TcpStream::connect(stack.addr())
        .await
        .expect("TCP connect");
    write_frame(
        &mut tcp,
        b"0800822000000000000004000000000000001125221800000001301",
    )
    .await;
    closed_by_switch(tcp).await;
    assert!(errors() > before, "the plain connection is counted");
    stack.shutdown().await;
}

#[tokio::test]
async fn a_handshake_not_finished_within_read_timeout_is_closed_and_counted() {
    let _counter = HANDSHAKE_FAILURES.lock().await;
    let (stack, _pki) = tls_stack_with(|c| c.listener.read_timeout_ms = 200).await;
    let timeouts = || {
        counter(
            "switchyard_tls_handshake_failures_total",
            &[("reason", "timeout")],
        )
    };
    let before = timeouts();
    // Connects and says nothing: the switch must give up on the handshake by itself.
    let silent = tokio::net::TcpStream::connect(stack.addr())
        .await
        .expect("TCP connect");
    closed_by_switch(silent).await;
    assert!(timeouts() > before, "the timeout is counted");
    stack.shutdown().await;
}

#[tokio::test]
async fn issuer_links_run_over_tls() {
    metrics();
    let pki = Pki::generate(&[]);
    let mut stack = Stack::builder()
        .host_down(NORTH)
        .configure(|c| {
            let north = c
                .issuers
                .iter_mut()
                .find(|i| i.id == NORTH)
                .expect("north-bank configured");
            // The host's certificate is checked against the endpoint's IP address (127.0.0.1).
            north.tls = Some(switch::config::IssuerTlsConfig {
                ca_file: pki.path("ca.crt"),
                cert_file: None,
                key_file: None,
                server_name: None,
            });
            c.validate("e2e_tls").expect("issuer TLS config validates");
        })
        .start()
        .await;
    let server = switch::net::tls::server_config(&ListenerTlsConfig {
        cert_file: pki.path("server.crt"),
        key_file: pki.path("server.key"),
        client_ca_file: None,
        cipher_suites: Vec::new(),
    })
    .expect("host TLS config");
    let slot = stack.hosts.get_mut(NORTH).expect("north-bank slot");
    let host = start_host_tls(
        NORTH,
        &slot.addr.to_string(),
        &slot.journal_dir,
        Default::default(),
        100_000,
        Some(Arc::new(server)),
    )
    .await;
    slot.host = Some(host);
    stack.wait_ready(NORTH).await;
    let r = stack
        .client()
        .await
        .purchase(NB_CREDIT, cny("12.00"), opts())
        .await
        .expect("answered");
    assert_eq!(r.response_code, ResponseCode::Approved, "{r:?}");
}

#[test]
fn tls_config_problems_are_reported_together_by_key() {
    let dir = tempfile::tempdir().expect("dir");
    let mut c = base_config(dir.path());
    c.listener.tls = Some(ListenerTlsConfig {
        cert_file: dir.path().join("missing-server.crt"),
        key_file: dir.path().join("missing-server.key"),
        client_ca_file: None,
        cipher_suites: Vec::new(),
    });
    c.acquirers[0].tls_identity = Some("acq.example".into());
    let remote = c
        .issuers
        .iter()
        .position(|i| i.kind == switch::config::IssuerKind::Remote)
        .expect("a remote issuer");
    let on_us = c
        .issuers
        .iter()
        .position(|i| i.kind == switch::config::IssuerKind::OnUs)
        .expect("an on-us issuer");
    let issuer_tls = switch::config::IssuerTlsConfig {
        ca_file: dir.path().join("missing-ca.crt"),
        cert_file: Some(root().join("Cargo.toml")),
        key_file: None,
        server_name: Some("not a name".into()),
    };
    c.issuers[remote].tls = Some(issuer_tls.clone());
    c.issuers[on_us].tls = Some(issuer_tls);
    let problems = c.validate("test").expect_err("invalid").to_vec();
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    for key in [
        "listener.tls.cert_file".to_owned(),
        "listener.tls.key_file".to_owned(),
        "acquirer[0].tls_identity".to_owned(),
        format!("issuer[{remote}].tls.ca_file"),
        format!("issuer[{remote}].tls.cert_file"),
        format!("issuer[{remote}].tls.server_name"),
        format!("issuer[{on_us}].tls"),
    ] {
        assert!(keys.contains(&key.as_str()), "{key} missing from {keys:?}");
    }
    // Contents are never quoted: only paths and the rule.
    assert!(
        problems.iter().all(|p| !p.message.contains("[workspace]")),
        "{problems:#?}"
    );
}

/// A new connection to `stack` as acquirer `acquirer`'s TERM0001, over TLS with `terminal`'s
/// settings (its sessions included).
async fn connect_over(stack: &Stack, terminal: &ClientTls, acquirer: &str) -> AcquirerClient {
    let options = ClientOptions {
        tls: Some(terminal.clone()),
        ..ClientOptions::default()
    };
    stack.client_with(acquirer, "TERM0001", options).await
}

/// A purchase on North Bank's credit card over a new connection of `terminal` as acquirer
/// 100001: approved. The connection closes when it returns.
async fn approved_purchase(stack: &Stack, terminal: &ClientTls, amount: &str) {
    let c = connect_over(stack, terminal, "100001").await;
    let r = c
        .purchase(NB_CREDIT, cny(amount), opts())
        .await
        .expect("answered");
    assert_eq!(r.response_code, ResponseCode::Approved, "{r:?}");
}

/// A terminal that reconnects resumes its TLS session (a stateless ticket, no certificate
/// exchanged), and the resumed session is still bound to the acquirer its certificate names:
/// served as that acquirer, refused (63) when naming another. One `ClientTls` is one terminal's
/// session cache. Most other tests build a fresh one per connection and never resume; those
/// that do resume take `RESUMPTIONS` first, as this one does, so the counts are exact.
#[tokio::test]
async fn a_resumed_session_keeps_its_certificates_identity() {
    let _counting = CERTIFICATE_MISMATCHES.lock().await;
    let _resuming = RESUMPTIONS.lock().await;
    let (stack, pki) = tls_stack().await;
    let terminal = pki.client(Some(IDENTITY_1));
    let resumed = || counter("switchyard_tls_handshakes_total", &[("kind", "resumed")]);
    let first = resumed();
    // The first connection's handshake is full; its answer comes after the session tickets.
    approved_purchase(&stack, &terminal, "12.00").await;
    assert_eq!(resumed(), first);

    // The switch counts a handshake when it completes on its side, after the client's: an
    // answer on the connection comes later still.
    approved_purchase(&stack, &terminal, "13.00").await;
    assert_eq!(resumed(), first + 1, "the second connection resumes");

    let mismatch = violations("certificate_mismatch");
    let c = connect_over(&stack, &terminal, "100002").await;
    let p = c
        .prepare(TxnKind::Purchase, NB_CREDIT, Some(cny("14.00")), opts())
        .expect("prepared");
    let answer = c.send_raw(p.payload.clone()).await.expect("answered");
    assert_eq!(answer.get(39).as_deref(), Some(&b"63"[..]), "{answer:?}");
    assert_eq!(resumed(), first + 2);
    assert_eq!(violations("certificate_mismatch"), mismatch + 1);
}

/// `ClientTls::with_own_sessions` is one more terminal: it resumes only the sessions it was given
/// itself, never another's. (loadgen gives every connection slot one, so that hundreds of
/// emulated terminals do not take each other's few tickets.) Clones of one `ClientTls` are one
/// terminal and share its sessions; `without_resumption` is a terminal that never resumes
/// (`loadgen run --tls-no-resumption`).
#[tokio::test]
async fn a_terminal_with_its_own_sessions_resumes_only_its_own() {
    let _resuming = RESUMPTIONS.lock().await;
    let (stack, pki) = tls_stack().await;
    let first = pki.client(Some(IDENTITY_1));
    let second = first.with_own_sessions();
    let resumed = || counter("switchyard_tls_handshakes_total", &[("kind", "resumed")]);
    // By the time a purchase is answered, the switch has counted its connection's handshake.
    let before = resumed();
    approved_purchase(&stack, &first, "21.00").await;
    assert_eq!(resumed(), before, "a first connection shakes hands in full");
    approved_purchase(&stack, &first.clone(), "22.00").await;
    assert_eq!(
        resumed(),
        before + 1,
        "a clone is the same terminal, and resumes"
    );
    approved_purchase(&stack, &second, "23.00").await;
    assert_eq!(
        resumed(),
        before + 1,
        "the other terminal has no session of its own yet, and takes none of the first's"
    );
    approved_purchase(&stack, &second, "24.00").await;
    assert_eq!(resumed(), before + 2, "then it resumes its own");
    // `without_resumption`: a terminal that never resumes, whatever it was given.
    let never = first.without_resumption();
    approved_purchase(&stack, &never, "25.00").await;
    approved_purchase(&stack, &never, "26.00").await;
    assert_eq!(resumed(), before + 2, "every handshake a full one");
}
