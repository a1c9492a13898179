//! `issuer-sim --tls-cipher-suites`: the issuer host's TLS listener takes the suites it is given,
//! in its order, and refuses a list the switch's `[listener.tls] cipher_suites` would refuse,
//! naming every problem at once and leaving nothing behind.
//!
//! The host runs as a real process on the default North Bank issuer file with a test PKI from
//! `loadgen gen-cards --tls`'s generator (ECDSA keys); a rustls client offers chosen suites and
//! reports the one negotiated. Every socket read and write has a timeout, so a stalled handshake
//! fails the test instead of hanging it.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::ring::cipher_suite as suites;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{CipherSuite, SupportedCipherSuite};
use simulators::loadgen::pki::TestPki;

fn config(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config")
        .join(path)
}

/// `issuer-sim` on North Bank's file with TLS and `extra` arguments, journaling in `journal`.
fn command(pki: &TestPki, journal: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_issuer-sim"));
    cmd.arg("--config")
        .arg(config("issuers/north-bank.toml"))
        .arg("--keys")
        .arg(config("keys.toml"))
        .args(["--listen", "127.0.0.1:0", "--journal-dir"])
        .arg(journal)
        .arg("--tls-cert")
        .arg(&pki.host_cert)
        .arg("--tls-key")
        .arg(&pki.host_key)
        .args(extra)
        .env("RUST_LOG", "error");
    cmd
}

/// Kills the host when the test ends, passing or not.
struct Host(Child);

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the host: `Ok` with the address it printed, or `Err` with its stderr and exit code if
/// it stopped before listening.
fn start(
    pki: &TestPki,
    journal: &Path,
    extra: &[&str],
) -> Result<(Host, String), (String, Option<i32>)> {
    let mut child = command(pki, journal, extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("issuer-sim starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut host = Host(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("issuer-sim's stdout");
    if line.is_empty() {
        // Closed without a line: the host has stopped.
        let mut stderr = String::new();
        if let Some(mut e) = host.0.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
        }
        let code = host.0.wait().ok().and_then(|s| s.code());
        return Err((stderr, code));
    }
    let addr = line.trim().rsplit(' ').next().expect("address").to_owned();
    assert!(addr.starts_with("127.0.0.1:"), "first line: {line}");
    Ok((host, addr))
}

/// The suite a TLS 1.3 handshake with `addr` settles on when the client offers `offered`, in
/// that order, or the handshake's error.
fn negotiated(
    pki: &TestPki,
    addr: &str,
    offered: &[SupportedCipherSuite],
) -> Result<CipherSuite, String> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = offered.to_vec();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&pki.ca).expect("CA file") {
        roots.add(cert.expect("CA certificate")).expect("CA added");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("127.0.0.1").expect("server name");
    let mut tls = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    let mut tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    tcp.set_write_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    while tls.is_handshaking() {
        tls.complete_io(&mut tcp).map_err(|e| e.to_string())?;
    }
    tls.negotiated_cipher_suite()
        .map(|s| s.suite())
        .ok_or_else(|| "no suite after the handshake".to_owned())
}

#[test]
fn the_issuer_hosts_listener_takes_the_suites_it_is_given() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = TestPki::generate(&dir.path().join("tls"), &["100001"]).expect("test PKI");
    let every = [
        suites::TLS13_AES_256_GCM_SHA384,
        suites::TLS13_AES_128_GCM_SHA256,
        suites::TLS13_CHACHA20_POLY1305_SHA256,
    ];

    // By default, SHA-256 suites first: AES-128-GCM even for a client that lists AES-256 first.
    let (_default, addr) = start(&pki, &dir.path().join("j1"), &[]).expect("listening");
    assert_eq!(
        negotiated(&pki, &addr, &every),
        Ok(CipherSuite::TLS13_AES_128_GCM_SHA256)
    );

    // Given ChaCha20 then AES-256 (spaces around a name are dropped): the listener's order
    // decides, and AES-128 is not offered.
    let (_given, addr) = start(
        &pki,
        &dir.path().join("j2"),
        &[
            "--tls-cipher-suites",
            "TLS13_CHACHA20_POLY1305_SHA256, TLS13_AES_256_GCM_SHA384",
        ],
    )
    .expect("listening");
    assert_eq!(
        negotiated(&pki, &addr, &every),
        Ok(CipherSuite::TLS13_CHACHA20_POLY1305_SHA256)
    );
    assert_eq!(
        negotiated(&pki, &addr, &[suites::TLS13_AES_256_GCM_SHA384]),
        Ok(CipherSuite::TLS13_AES_256_GCM_SHA384)
    );
    let refused = negotiated(&pki, &addr, &[suites::TLS13_AES_128_GCM_SHA256]);
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("HandshakeFailure")),
        "a suite the listener was not given: {refused:?}"
    );
}

/// A list that cannot work stops the host before it creates anything, saying why in the
/// command's own terms.
#[test]
fn a_list_the_switch_would_refuse_stops_the_host_naming_every_problem() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = TestPki::generate(&dir.path().join("tls"), &["100001"]).expect("test PKI");
    let refused = |journal: &str, list: &str| {
        let journal = dir.path().join(journal);
        let Err((stderr, code)) = start(&pki, &journal, &["--tls-cipher-suites", list]) else {
            panic!("the host listened with --tls-cipher-suites {list}");
        };
        assert_eq!(code, Some(2), "{stderr}");
        assert!(!journal.exists(), "it left {}", journal.display());
        stderr
    };

    // The switch's rules, every problem at once.
    let stderr = refused(
        "j1",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS13_NULL_SHA256,TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    );
    let problems: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("--tls-cipher-suites: "))
        .collect();
    assert_eq!(problems.len(), 3, "{stderr}");
    assert!(
        problems[0].contains("unknown suite \"TLS13_NULL_SHA256\""),
        "{stderr}"
    );
    assert!(problems[1].contains("listed twice"), "{stderr}");
    assert!(
        problems[2].contains("at least one TLS 1.3 suite"),
        "{stderr}"
    );

    // A TLS 1.2 suite for RSA keys only, and the host's key is ECDSA: TLS 1.2 clients could
    // not connect.
    let stderr = refused(
        "j2",
        "TLS13_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    );
    assert!(
        stderr.contains("--tls-cipher-suites: no TLS 1.2 suite listed fits"),
        "{stderr}"
    );
    assert!(!stderr.contains("listener.tls"), "{stderr}");

    // A stray comma.
    let stderr = refused("j3", "TLS13_AES_128_GCM_SHA256,");
    assert!(stderr.contains("empty suite name"), "{stderr}");
}
