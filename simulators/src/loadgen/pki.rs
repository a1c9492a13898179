//! `gen-cards --tls`: a throwaway test PKI for a stack with TLS on both hops (acquirers to the
//! switch, the switch to the issuer hosts).
//!
//! **Owns:** generating and writing, into `<out>/tls/`, a CA (`ca.crt`) and what it signs:
//! - for the acquirer side, the switch's server certificate for `127.0.0.1` and `localhost`
//!   (`switch.crt`, `switch.key`) and one client certificate per acquirer
//!   (`acquirer-<id>.crt`, `acquirer-<id>.key`) whose SAN DNS name is that acquirer's
//!   `tls_identity`;
//! - for the issuer links, the issuer hosts' server certificate for `127.0.0.1` and `localhost`
//!   (`issuer-host.crt`, `issuer-host.key`, shared by every host) and the switch's client
//!   certificate for its links (`switch-link.crt`, `switch-link.key`).
//!
//! Keys are ECDSA P-256 (rcgen's default), the private keys written readable by their owner
//! only.
//!
//! It also says how the files are used ([`TestPki::host_listener`], [`TestPki::link_tls`],
//! [`TestPki::client_tls`]).
//!
//! **Leaves to others:** writing them into the switch configuration ([`super::gencards`]) and
//! the stack ([`super::stack`]), loading the files (`switch::net::tls`), and the handshakes.
//!
//! **Why generated:** measuring what TLS costs must not need a PKI at hand, and nothing secret
//! may be shipped in the repository. These certificates protect nothing: the CA's key is thrown
//! away once the leaves are signed, and every certificate's common name says `TEST`.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use switch::client::ClientTls;
use switch::config::{IssuerTlsConfig, ListenerTlsConfig};
use switch::net::tls::TlsError;

use super::gencards::{GenError, io_error as io};

/// The test PKI of one generated folder.
#[derive(Debug, Clone)]
pub struct TestPki {
    /// The CA certificate: the switch's `client_ca_file` and the clients' `--tls-ca`.
    pub ca: PathBuf,
    /// The switch's certificate chain and key (`[listener.tls]`).
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// Per acquirer: (acquirer id, its SAN DNS name, certificate, key).
    pub clients: Vec<TestClient>,
    /// The issuer hosts' certificate chain and key (`issuer-sim --tls-cert --tls-key`).
    pub host_cert: PathBuf,
    pub host_key: PathBuf,
    /// The switch's client certificate and key for its issuer links (`[issuer.tls]`).
    pub link_cert: PathBuf,
    pub link_key: PathBuf,
}

/// One acquirer's client certificate.
#[derive(Debug, Clone)]
pub struct TestClient {
    /// The acquirer id (field 32).
    pub acquirer: String,
    /// The certificate's SAN DNS name: the acquirer's `tls_identity`.
    pub identity: String,
    /// The certificate (PEM), for `--tls-cert`.
    pub cert: PathBuf,
    /// Its private key (PEM, readable by its owner only), for `--tls-key`.
    pub key: PathBuf,
}

/// The SAN DNS name of `acquirer`'s test client certificate.
pub fn identity_of(acquirer: &str) -> String {
    format!("acq-{acquirer}.loadgen.test")
}

impl TestPki {
    /// Generates the CA, the switch's certificate and a client certificate for each of
    /// `acquirers`, and writes them into `dir` (created if needed).
    pub fn generate(dir: &Path, acquirers: &[&str]) -> Result<TestPki, GenError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let invalid = |e: rcgen::Error| GenError::Invalid {
            what: "test certificate".into(),
            message: e.to_string(),
        };
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(invalid)?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.distinguished_name.push(
            DnType::CommonName,
            "Switchyard loadgen TEST CA (protects nothing)",
        );
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().map_err(invalid)?)
            .map_err(invalid)?;
        let ca_path = dir.join("ca.crt");
        write(&ca_path, &ca.pem(), false)?;

        // One signed leaf: (certificate path, key path).
        let leaf = |sans: Vec<String>, usage: ExtendedKeyUsagePurpose, name: &str| {
            let mut p = CertificateParams::new(sans).map_err(invalid)?;
            p.extended_key_usages = vec![usage];
            p.distinguished_name.push(
                DnType::CommonName,
                format!("{name} (loadgen TEST certificate)"),
            );
            let key = KeyPair::generate().map_err(invalid)?;
            let cert = p.signed_by(&key, &ca).map_err(invalid)?;
            let (cert_path, key_path) = (
                dir.join(format!("{name}.crt")),
                dir.join(format!("{name}.key")),
            );
            write(&cert_path, &cert.pem(), false)?;
            write(&key_path, &key.serialize_pem(), true)?;
            Ok::<_, GenError>((cert_path, key_path))
        };
        let (server_cert, server_key) = leaf(
            vec!["127.0.0.1".into(), "localhost".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
            "switch",
        )?;
        let (host_cert, host_key) = leaf(
            vec!["127.0.0.1".into(), "localhost".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
            "issuer-host",
        )?;
        let (link_cert, link_key) = leaf(
            vec!["switch-link.loadgen.test".into()],
            ExtendedKeyUsagePurpose::ClientAuth,
            "switch-link",
        )?;
        let mut clients = Vec::with_capacity(acquirers.len());
        for a in acquirers {
            let identity = identity_of(a);
            let (cert, key) = leaf(
                vec![identity.clone()],
                ExtendedKeyUsagePurpose::ClientAuth,
                &format!("acquirer-{a}"),
            )?;
            clients.push(TestClient {
                acquirer: (*a).to_owned(),
                identity,
                cert,
                key,
            });
        }
        Ok(TestPki {
            ca: ca_path,
            server_cert,
            server_key,
            clients,
            host_cert,
            host_key,
            link_cert,
            link_key,
        })
    }

    /// `[issuer.tls]` of a remote issuer's links: trust the test CA, present the switch's link
    /// certificate, check the endpoint's IP address on the host's certificate.
    pub fn link_tls(&self) -> IssuerTlsConfig {
        IssuerTlsConfig {
            ca_file: self.ca.clone(),
            cert_file: Some(self.link_cert.clone()),
            key_file: Some(self.link_key.clone()),
            server_name: None,
        }
    }

    /// The switch's acquirer listener (`[listener.tls]`): its certificate, and client
    /// certificates required (chaining to the test CA).
    pub fn switch_listener(&self) -> ListenerTlsConfig {
        ListenerTlsConfig {
            cert_file: self.server_cert.clone(),
            key_file: self.server_key.clone(),
            client_ca_file: Some(self.ca.clone()),
            cipher_suites: Vec::new(),
        }
    }

    /// An issuer host's listener: its certificate, and the switch's link certificate required
    /// (chaining to the test CA).
    pub fn host_listener(&self) -> ListenerTlsConfig {
        ListenerTlsConfig {
            cert_file: self.host_cert.clone(),
            key_file: self.host_key.clone(),
            client_ca_file: Some(self.ca.clone()),
            cipher_suites: Vec::new(),
        }
    }

    /// `acquirer`'s `tls_identity`: its certificate's SAN DNS name, if it has a certificate.
    pub fn identity(&self, acquirer: &str) -> Option<String> {
        self.client(acquirer).map(|c| c.identity.clone())
    }

    /// `acquirer`'s client certificate, if it has one.
    pub fn client(&self, acquirer: &str) -> Option<&TestClient> {
        self.clients.iter().find(|c| c.acquirer == acquirer)
    }

    /// Client TLS for `acquirer` connecting to `target` (`host:port`): trusting the test CA and
    /// presenting the acquirer's certificate (none if it has no certificate here).
    pub fn client_tls(&self, acquirer: &str, target: &str) -> Result<ClientTls, TlsError> {
        let identity = self
            .client(acquirer)
            .map(|c| (c.cert.as_path(), c.key.as_path()));
        ClientTls::from_pem_files(&self.ca, identity, None, target)
    }
}

/// Writes `text` to `path`; a private key readable by its owner only (Unix).
fn write(path: &Path, text: &str, private: bool) -> Result<(), GenError> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt as _;
        o.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut f = o.open(path).map_err(io(path))?;
    // A key file left by an earlier run keeps its mode through `open`: set it again.
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt as _;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io(path))?;
    }
    f.write_all(text.as_bytes()).map_err(io(path))
}
