//! `issuer-sim --tls-cipher-suites`: the issuer host's TLS listener takes the suites it is given,
//! in its order, and refuses a list the switch's `[listener.tls] cipher_suites` would refuse,
//! naming every problem at once.
//!
//! The host runs as a real process on the default North Bank issuer file with a test PKI from
//! `loadgen gen-cards --tls`'s generator; a rustls client offers chosen suites and reports the
//! one negotiated.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use rustls::crypto::ring::cipher_suite as suites;
use rustls::{CipherSuite, SupportedCipherSuite};
use rustls_pki_types::ServerName;
use rustls_pki_types::pem::PemObject;
use simulators::loadgen::pki::TestPki;

fn config(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config")
        .join(path)
}

/// `issuer-sim` on North Bank's file with TLS and `extra` arguments.
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

/// Starts the host and returns it with the address it printed.
fn start(pki: &TestPki, journal: &Path, extra: &[&str]) -> (Host, String) {
    let mut child = command(pki, journal, extra)
        .stdout(Stdio::piped())
        // A host that fails to start says why in the test's output.
        .stderr(Stdio::inherit())
        .spawn()
        .expect("issuer-sim starts");
    let stdout = child.stdout.take().expect("stdout");
    let host = Host(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("issuer-sim prints its address");
    let addr = line.trim().rsplit(' ').next().expect("address").to_owned();
    assert!(addr.starts_with("127.0.0.1:"), "first line: {line}");
    (host, addr)
}

/// The suite a TLS 1.3 handshake with `addr` settles on when the client offers `offered`, in
/// that order; `None` if the handshake fails.
async fn negotiated(
    pki: &TestPki,
    addr: &str,
    offered: &[SupportedCipherSuite],
) -> Option<CipherSuite> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = offered.to_vec();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(&pki.ca).expect("CA file") {
        roots.add(cert.expect("CA certificate")).expect("CA added");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("127.0.0.1").expect("server name");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .ok()?;
    tls.get_ref().1.negotiated_cipher_suite().map(|s| s.suite())
}

#[tokio::test]
async fn the_issuer_hosts_listener_takes_the_suites_it_is_given() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = TestPki::generate(&dir.path().join("tls"), &["100001"]).expect("test PKI");
    let every = [
        suites::TLS13_AES_256_GCM_SHA384,
        suites::TLS13_AES_128_GCM_SHA256,
        suites::TLS13_CHACHA20_POLY1305_SHA256,
    ];

    // By default, SHA-256 suites first: AES-128-GCM even for a client that lists AES-256 first.
    let (_default, addr) = start(&pki, &dir.path().join("j1"), &[]);
    assert_eq!(
        negotiated(&pki, &addr, &every).await,
        Some(CipherSuite::TLS13_AES_128_GCM_SHA256)
    );

    // Given ChaCha20 then AES-256: the listener's order decides, and AES-128 is not offered.
    let (_given, addr) = start(
        &pki,
        &dir.path().join("j2"),
        &[
            "--tls-cipher-suites",
            "TLS13_CHACHA20_POLY1305_SHA256,TLS13_AES_256_GCM_SHA384",
        ],
    );
    assert_eq!(
        negotiated(&pki, &addr, &every).await,
        Some(CipherSuite::TLS13_CHACHA20_POLY1305_SHA256)
    );
    assert_eq!(
        negotiated(&pki, &addr, &[suites::TLS13_AES_256_GCM_SHA384]).await,
        Some(CipherSuite::TLS13_AES_256_GCM_SHA384)
    );
    assert_eq!(
        negotiated(&pki, &addr, &[suites::TLS13_AES_128_GCM_SHA256]).await,
        None,
        "a suite the listener was not given"
    );
}

#[test]
fn a_list_the_switch_would_refuse_stops_the_host_naming_every_problem() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = TestPki::generate(&dir.path().join("tls"), &["100001"]).expect("test PKI");
    let out = command(
        &pki,
        &dir.path().join("j"),
        &[
            "--tls-cipher-suites",
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS13_NULL_SHA256,TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        ],
    )
    .output()
    .expect("issuer-sim runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
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
}
