//! TLS for the acquirer listener and [`crate::client::AcquirerClient`]: building rustls
//! configurations from PEM files, and reading the names a verified client certificate carries.
//!
//! **Owns:** loading `[listener.tls]` files into a [`rustls::ServerConfig`] (client certificates
//! required and verified when `client_ca_file` is set; stateless session tickets; the cipher
//! suites in the listener's order of preference, `server_provider`), the check of a
//! resumed session's client certificate that rustls leaves out ([`ResumedCheck`]), the
//! client-side config, and [`certificate_names`], the SAN DNS names that `[[acquirer]]
//! tls_identity` is matched against.
//!
//! **Leaves to others:** the handshake and its timeout ([`crate::net::acquirer::serve`]), and what
//! an identity means for the requests on a connection ([`crate::net::admission::Gate`]).
//!
//! **Why this way:** the ring provider is passed explicitly to every builder instead of installing
//! a process-wide default, so the library never depends on which provider some other crate in the
//! binary has installed. Identities are SAN DNS names, not the subject CN: SANs are what webpki
//! parses and what current certificate practice puts names in. Errors name the file and what was
//! wrong with it, never its contents (a key file's bytes must not reach a log).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};

use crate::config::ListenerTlsConfig;

/// Why a TLS configuration could not be built. Each variant names the file, never its contents.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{key}: cannot read PEM certificates from {path}: {reason}")]
    Certificates {
        key: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("{key}: {path} holds no certificate")]
    NoCertificate { key: &'static str, path: PathBuf },
    #[error("{key}: cannot read a PEM private key from {path}: {reason}")]
    PrivateKey {
        key: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("{key}: {path}: a certificate is not a usable trust anchor: {reason}")]
    TrustAnchor {
        key: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("TLS configuration rejected: {0}")]
    Rustls(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in a PEM file (`key` is the config key that named it, for the error).
pub fn load_certificates(
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Certificates {
            key,
            path: path.to_owned(),
            reason: pem_reason(&e),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            key,
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
pub fn load_private_key(
    key: &'static str,
    path: &Path,
) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::PrivateKey {
        key,
        path: path.to_owned(),
        reason: pem_reason(&e),
    })
}

/// What went wrong with a PEM file, without any of its bytes.
fn pem_reason(e: &rustls_pki_types::pem::Error) -> String {
    use rustls_pki_types::pem::Error as E;
    match e {
        E::Io(io) => io.kind().to_string(),
        E::NoItemsFound => "no PEM item of the expected kind".to_owned(),
        E::MissingSectionEnd { .. } | E::IllegalSectionStart { .. } => {
            "malformed PEM section".to_owned()
        }
        E::Base64Decode(_) => "invalid base64 in a PEM section".to_owned(),
        _ => "unreadable PEM".to_owned(),
    }
}

fn roots(key: &'static str, path: &Path) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for cert in load_certificates(key, path)? {
        store.add(cert).map_err(|e| TlsError::TrustAnchor {
            key,
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    }
    Ok(store)
}

/// The listener's server configuration from `[listener.tls]`. With `client_ca_file`, every client
/// must present a certificate that chains to one of its CAs; without it, none is asked for.
pub fn server_config(tls: &ListenerTlsConfig) -> Result<rustls::ServerConfig, TlsError> {
    server_config_named(tls, InputNames::CONFIG)
}

/// [`server_config`] for a program whose operator gave the inputs under other names (e.g.
/// `issuer-sim`'s flags), which its errors use.
pub fn server_config_named(
    tls: &ListenerTlsConfig,
    names: InputNames,
) -> Result<rustls::ServerConfig, TlsError> {
    build_server(tls, names).map(|(config, _)| config)
}

/// What the errors of [`server_config_named`] call each input, so that a message names what the
/// operator wrote: the switch's config keys ([`InputNames::CONFIG`]) or a command's flags.
#[derive(Debug, Clone, Copy)]
pub struct InputNames {
    pub cert_file: &'static str,
    pub key_file: &'static str,
    pub client_ca_file: &'static str,
    pub cipher_suites: &'static str,
}

impl InputNames {
    /// The keys of the switch's `[listener.tls]`.
    pub const CONFIG: InputNames = InputNames {
        cert_file: "listener.tls.cert_file",
        key_file: "listener.tls.key_file",
        client_ca_file: "listener.tls.client_ca_file",
        cipher_suites: "listener.tls.cipher_suites",
    };
}

/// The acquirer listener's TLS: the server configuration, and the check of resumed sessions'
/// client certificates ([`ResumedCheck`]) with the same verifier.
pub struct ListenerTls {
    pub config: Arc<rustls::ServerConfig>,
    /// `None` without `client_ca_file`.
    pub resumed_check: Option<ResumedCheck>,
}

/// [`ListenerTls`] from `[listener.tls]`.
pub fn listener_tls(tls: &ListenerTlsConfig) -> Result<ListenerTls, TlsError> {
    let (config, client_verifier) = build_server(tls, InputNames::CONFIG)?;
    Ok(ListenerTls {
        config: Arc::new(config),
        resumed_check: client_verifier.map(ResumedCheck::new),
    })
}

/// [`reverify_resumed`] with its answers kept for [`RECHECK_AFTER_S`]: a chain found valid is not
/// verified again (a signature check, about 90 µs of CPU on the benchmark machine, half again
/// what a resumed handshake costs the switch) until that long after. So a certificate that
/// expires is refused at most that long after it expires. Bounded: at most [`RECHECKS_MAX`]
/// chains, in two generations of half that. When the newer generation is full it becomes the
/// older and the older one is dropped; a chain found in the older one is copied into the newer.
/// So the terminals that keep resuming keep their answers however many others come and go, and
/// only a chain not seen for a whole generation is verified again.
pub struct ResumedCheck {
    verifier: Arc<dyn ClientCertVerifier>,
    valid: std::sync::Mutex<Generations>,
    /// Chains in one generation.
    generation_max: usize,
}

/// Chain → when it was last verified, kept in two generations.
#[derive(Default)]
struct Generations {
    newer: std::collections::HashMap<Vec<CertificateDer<'static>>, UnixTime>,
    older: std::collections::HashMap<Vec<CertificateDer<'static>>, UnixTime>,
}

/// How long a resumed chain found valid is trusted without checking it again (seconds).
pub const RECHECK_AFTER_S: u64 = 3600;
/// Most chains [`ResumedCheck`] remembers (a few hundred bytes each).
pub const RECHECKS_MAX: usize = 16_384;

impl ResumedCheck {
    pub fn new(verifier: Arc<dyn ClientCertVerifier>) -> ResumedCheck {
        ResumedCheck::with_capacity(verifier, RECHECKS_MAX)
    }

    /// At most `chains_max` chains kept (at least 2: two generations of one).
    pub fn with_capacity(verifier: Arc<dyn ClientCertVerifier>, chains_max: usize) -> ResumedCheck {
        ResumedCheck {
            verifier,
            valid: std::sync::Mutex::new(Generations::default()),
            generation_max: (chains_max / 2).max(1),
        }
    }

    /// Whether a resumed session's `chain` may be served at `now` (see [`reverify_resumed`]).
    pub fn check(&self, chain: Option<&[CertificateDer<'_>]>, now: UnixTime) -> Result<(), String> {
        let Some(chain) = chain else {
            return reverify_resumed(self.verifier.as_ref(), None, now);
        };
        let fresh = |at: &UnixTime| now.as_secs().saturating_sub(at.as_secs()) < RECHECK_AFTER_S;
        let owned = || chain.iter().map(|c| c.clone().into_owned()).collect();
        {
            let mut valid = self.valid.lock().unwrap_or_else(|p| p.into_inner());
            if valid.newer.get(chain).is_some_and(fresh) {
                return Ok(());
            }
            if let Some(at) = valid.older.get(chain).copied().filter(fresh) {
                // Kept with the time it was verified, so it is still checked again on time.
                valid.insert(owned(), at, self.generation_max);
                return Ok(());
            }
        }
        reverify_resumed(self.verifier.as_ref(), Some(chain), now)?;
        let mut valid = self.valid.lock().unwrap_or_else(|p| p.into_inner());
        valid.insert(owned(), now, self.generation_max);
        Ok(())
    }
}

impl Generations {
    fn insert(&mut self, chain: Vec<CertificateDer<'static>>, at: UnixTime, generation_max: usize) {
        self.newer.insert(chain, at);
        if self.newer.len() >= generation_max {
            self.older = std::mem::take(&mut self.newer);
        }
    }
}

/// Checks a resumed session's client certificate chain (`chain`, restored from its ticket) as a
/// full handshake would have, at `now`. rustls does not: a resumed session carries the
/// certificates verified when it began, and each resumption issues fresh tickets with them, so
/// a terminal that reconnects often enough would keep an expired certificate working
/// indefinitely. The error says what failed, never the certificate's contents.
pub fn reverify_resumed(
    verifier: &dyn ClientCertVerifier,
    chain: Option<&[CertificateDer<'_>]>,
    now: UnixTime,
) -> Result<(), String> {
    let Some((leaf, intermediates)) = chain.and_then(<[_]>::split_first) else {
        return Err("the resumed session carries no client certificate".into());
    };
    verifier
        .verify_client_cert(leaf, intermediates, now)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The listener's crypto: the suites of `[listener.tls] cipher_suites` in that order or, by
/// default, ring's suites with those whose handshake hash is SHA-256 first (TLS 1.3:
/// AES-128-GCM, then ChaCha20-Poly1305, then AES-256-GCM with SHA-384). Either way the
/// listener's order decides, not the client's.
///
/// Why the default: a handshake's key schedule and transcript are a few dozen HMACs and hashes
/// of its suite's hash. On processors with SHA instructions (SHA-NI, as the benchmark machine
/// has) ring computes SHA-256 in hardware and SHA-384 in software. rustls's clients, like
/// OpenSSL's by default, list AES-256-GCM-SHA384 first; following them, SHA-384 took 11% of the
/// switch's CPU when terminals dialed per transaction, and the listener's order took 11–16% off
/// its CPU per answer there (docs/benchmarks.md, "Where a resumed handshake's time goes").
/// Without SHA instructions the gain would be smaller (not measured). The cost falls on
/// clients: one that prefers AES-256 gets AES-128, and one that prefers ChaCha20-Poly1305
/// (usually a device without AES instructions) gets AES-128-GCM in software, for a few hundred
/// bytes per transaction.
/// Every TLS 1.3 client implements AES-128-GCM-SHA256 (RFC 8446, 9.1), so none is refused, and
/// an operator whose terminals or policy want another order sets `cipher_suites`.
fn server_provider(
    tls: &ListenerTlsConfig,
    names: InputNames,
) -> Result<Arc<CryptoProvider>, TlsError> {
    let mut provider = rustls::crypto::ring::default_provider();
    if tls.cipher_suites.is_empty() {
        let common = |s: &rustls::SupportedCipherSuite| match s {
            rustls::SupportedCipherSuite::Tls13(t) => &t.common,
            rustls::SupportedCipherSuite::Tls12(t) => &t.common,
        };
        // A stable sort: within each hash, ring's own order.
        provider.cipher_suites.sort_by_key(|s| {
            common(s).hash_provider.algorithm() != rustls::crypto::hash::HashAlgorithm::SHA256
        });
    } else {
        provider.cipher_suites = tls
            .cipher_suites
            .iter()
            .map(|name| {
                crate::config::cipher_suite(name).ok_or_else(|| {
                    TlsError::Rustls(format!("{}: unknown suite {name:?}", names.cipher_suites))
                })
            })
            .collect::<Result<_, _>>()?;
    }
    Ok(Arc::new(provider))
}

/// A TLS 1.2 suite names the kind of key that signs the handshake (`TLS_ECDHE_ECDSA_...`,
/// `TLS_ECDHE_RSA_...`). When `[listener.tls] cipher_suites` lists TLS 1.2 suites and none fits
/// the listener's key, every TLS 1.2 client would fail its handshake: refuse to start instead,
/// saying so. (A TLS 1.3 suite fits any key.)
fn suites_fit_the_key(
    provider: &CryptoProvider,
    key: &PrivateKeyDer<'_>,
    names: InputNames,
) -> Result<(), TlsError> {
    let tls12: Vec<_> = provider
        .cipher_suites
        .iter()
        .filter(|s| s.tls13().is_none())
        .collect();
    if tls12.is_empty() {
        return Ok(());
    }
    let algorithm = rustls::crypto::ring::sign::any_supported_type(key)
        .map_err(|e| TlsError::Rustls(format!("{}: {e}", names.key_file)))?
        .algorithm();
    if tls12
        .iter()
        .any(|s| s.usable_for_signature_algorithm(algorithm))
    {
        return Ok(());
    }
    Err(TlsError::Rustls(format!(
        "{}: no TLS 1.2 suite listed fits the listener's {algorithm:?} key \
         (TLS 1.2 clients could not connect): list one for that key, or none",
        names.cipher_suites
    )))
}

fn build_server(
    tls: &ListenerTlsConfig,
    names: InputNames,
) -> Result<(rustls::ServerConfig, Option<Arc<dyn ClientCertVerifier>>), TlsError> {
    let chain = load_certificates(names.cert_file, &tls.cert_file)?;
    let key = load_private_key(names.key_file, &tls.key_file)?;
    let suites = server_provider(tls, names)?;
    suites_fit_the_key(&suites, &key, names)?;
    let builder = rustls::ServerConfig::builder_with_provider(suites)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let verifier = match &tls.client_ca_file {
        Some(ca) => Some(
            WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots(names.client_ca_file, ca)?),
                provider(),
            )
            .build()
            .map_err(|e| TlsError::Rustls(e.to_string()))?,
        ),
        None => None,
    };
    let builder = match &verifier {
        Some(v) => builder.with_client_cert_verifier(Arc::clone(v)),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    // Stateless session tickets, so that any number of terminals can resume their sessions:
    // without a ticketer rustls keeps resumable sessions in a server-side cache of 256, and with
    // more terminals than that dialing per transaction nearly every handshake was a full one
    // (docs/benchmarks.md, "Terminals that dial per transaction"). The ticket keys are random,
    // held in memory only, and rotate every 6 hours (tickets live 12); a restart invalidates
    // every ticket, and those clients do one full handshake again. TLS 1.2 clients get tickets
    // too (RFC 5077): theirs hold the session's master secret under the ticket key, so that key
    // protects up to 12 hours of their recorded sessions; TLS 1.3 resumptions keep a fresh
    // key exchange. The acquirer side checks a resumed client certificate again
    // ([`reverify_resumed`]).
    config.ticketer =
        rustls::crypto::ring::Ticketer::new().map_err(|e| TlsError::Rustls(e.to_string()))?;
    // The server's order of cipher suites, not the client's (see `server_provider`).
    config.ignore_client_order = true;
    Ok((config, verifier))
}

/// A client configuration trusting the CAs in `ca_file`, presenting `identity` (certificate chain
/// file, private key file) when given.
pub fn client_config(
    ca_file: &Path,
    identity: Option<(&Path, &Path)>,
) -> Result<rustls::ClientConfig, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_root_certificates(roots("tls ca file", ca_file)?);
    match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                load_certificates("tls certificate file", cert)?,
                load_private_key("tls key file", key)?,
            )
            .map_err(|e| TlsError::Rustls(e.to_string())),
        None => Ok(builder.with_no_client_auth()),
    }
}

/// The SAN DNS names of an (already verified) end-entity certificate, lower-cased. Wildcard names
/// are left out: an identity must name exactly one acquirer. A certificate webpki cannot parse
/// has no names.
pub fn certificate_names(cert: &CertificateDer<'_>) -> Vec<String> {
    let Ok(ee) = webpki::EndEntityCert::try_from(cert) else {
        return Vec::new();
    };
    ee.valid_dns_names()
        .filter(|n| !n.starts_with('*'))
        .map(str::to_ascii_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write");
        p
    }

    #[test]
    fn names_are_the_exact_san_dns_names() {
        let mut params = rcgen::CertificateParams::new(vec![
            "Acq-100001.Example".into(),
            "*.wild.example".into(),
        ])
        .expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "cn-is-not-used");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        assert_eq!(
            certificate_names(cert.der()),
            vec!["acq-100001.example".to_owned()]
        );
        assert!(certificate_names(&CertificateDer::from(vec![1, 2, 3])).is_empty());
    }

    /// `[listener.tls]` with a fresh self-signed certificate for `localhost` written into `dir`,
    /// no client certificates asked for.
    fn localhost_listener(dir: &Path) -> ListenerTlsConfig {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        ListenerTlsConfig {
            cert_file: write(dir, "c.pem", &cert.pem()),
            key_file: write(dir, "k.pem", &key.serialize_pem()),
            client_ca_file: None,
            cipher_suites: Vec::new(),
        }
    }

    /// The listener issues stateless session tickets: resumption does not depend on a
    /// server-side cache that more terminals than its 256 places would thrash.
    #[test]
    fn the_listener_resumes_with_stateless_tickets() {
        let dir = tempfile::tempdir().expect("dir");
        let tls = localhost_listener(dir.path());
        let config = server_config(&tls).expect("server config");
        assert!(config.ticketer.enabled());
        assert!(config.send_tls13_tickets > 0);
    }

    /// The listener picks the suite by its own order: a rustls client lists AES-256-GCM-SHA384
    /// first, and gets AES-128-GCM-SHA256, whose handshake hash this processor computes in
    /// hardware.
    #[test]
    fn the_listener_prefers_sha256_suites_over_the_clients_order() {
        let dir = tempfile::tempdir().expect("dir");
        let tls = localhost_listener(dir.path());
        // The self-signed certificate is the client's trust anchor.
        let client_config = Arc::new(client_config(&tls.cert_file, None).expect("client config"));
        assert_eq!(
            client_config.crypto_provider().cipher_suites[0].suite(),
            rustls::CipherSuite::TLS13_AES_256_GCM_SHA384,
            "the client's first choice"
        );
        let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
        let mut client = rustls::ClientConnection::new(client_config, name).expect("client");
        let mut server =
            rustls::ServerConnection::new(Arc::new(server_config(&tls).expect("server config")))
                .expect("server");
        for _ in 0..8 {
            if !client.is_handshaking() && !server.is_handshaking() {
                break;
            }
            let mut wire = Vec::new();
            client.write_tls(&mut wire).expect("client writes");
            server.read_tls(&mut wire.as_slice()).expect("server reads");
            server.process_new_packets().expect("server handshake");
            wire.clear();
            server.write_tls(&mut wire).expect("server writes");
            client.read_tls(&mut wire.as_slice()).expect("client reads");
            client.process_new_packets().expect("client handshake");
        }
        assert!(!client.is_handshaking() && !server.is_handshaking());
        assert_eq!(
            server.negotiated_cipher_suite().map(|s| s.suite()),
            Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256)
        );
        // The default order, and an operator's own (`cipher_suites`), which the listener follows
        // too.
        let tls13 = |p: &CryptoProvider| -> Vec<rustls::CipherSuite> {
            p.cipher_suites
                .iter()
                .filter(|s| s.tls13().is_some())
                .map(|s| s.suite())
                .collect()
        };
        assert_eq!(
            tls13(&server_provider(&tls, InputNames::CONFIG).expect("default")),
            [
                rustls::CipherSuite::TLS13_AES_128_GCM_SHA256,
                rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
                rustls::CipherSuite::TLS13_AES_256_GCM_SHA384,
            ]
        );
        let chacha = ListenerTlsConfig {
            cipher_suites: vec![
                "TLS13_CHACHA20_POLY1305_SHA256".into(),
                "TLS13_AES_128_GCM_SHA256".into(),
            ],
            ..tls.clone()
        };
        assert_eq!(
            tls13(&server_provider(&chacha, InputNames::CONFIG).expect("configured")),
            [
                rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
                rustls::CipherSuite::TLS13_AES_128_GCM_SHA256,
            ]
        );
        // rcgen's keys are ECDSA: TLS 1.2 suites for RSA keys only would strand TLS 1.2 clients.
        let rsa_only = ListenerTlsConfig {
            cipher_suites: vec![
                "TLS13_AES_128_GCM_SHA256".into(),
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".into(),
            ],
            ..tls.clone()
        };
        let e = server_config(&rsa_only)
            .expect_err("no suite for the key")
            .to_string();
        assert!(e.contains("no TLS 1.2 suite") && e.contains("ECDSA"), "{e}");
        let ecdsa = ListenerTlsConfig {
            cipher_suites: vec![
                "TLS13_AES_128_GCM_SHA256".into(),
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256".into(),
            ],
            ..tls.clone()
        };
        assert!(server_config(&ecdsa).is_ok());
        let unknown = ListenerTlsConfig {
            cipher_suites: vec!["TLS13_NULL".into()],
            ..tls
        };
        let e = server_provider(&unknown, InputNames::CONFIG)
            .expect_err("unknown")
            .to_string();
        assert!(e.contains("TLS13_NULL"), "{e}");
    }

    /// A resumed session's client certificate is checked again at the time given: valid inside
    /// its dates, refused once expired, refused when there is none or another CA issued it.
    #[test]
    fn a_resumed_certificate_is_checked_again_at_the_time_given() {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa,
            KeyPair, KeyUsagePurpose,
        };
        let dir = tempfile::tempdir().expect("dir");
        let issuer = || {
            let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
            ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            ca.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("CA key")).expect("CA")
        };
        let leaf_of = |ca: &CertifiedIssuer<'_, KeyPair>| {
            let mut p = CertificateParams::new(vec!["acq-100001.example".into()]).expect("params");
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            p.not_before = rcgen::date_time_ymd(2026, 1, 1);
            p.not_after = rcgen::date_time_ymd(2026, 12, 31);
            p.signed_by(&KeyPair::generate().expect("key"), ca)
                .expect("leaf")
                .der()
                .clone()
        };
        let (ca, other_ca) = (issuer(), issuer());
        let server_key = KeyPair::generate().expect("key");
        let server = CertificateParams::new(vec!["localhost".into()])
            .expect("params")
            .self_signed(&server_key)
            .expect("cert");
        let tls = ListenerTlsConfig {
            cert_file: write(dir.path(), "s.pem", &server.pem()),
            key_file: write(dir.path(), "s.key", &server_key.serialize_pem()),
            client_ca_file: Some(write(dir.path(), "ca.pem", &ca.pem())),
            cipher_suites: Vec::new(),
        };
        let verifier = build_server(&tls, InputNames::CONFIG)
            .expect("listener TLS")
            .1
            .expect("a client verifier with client_ca_file");
        let at = |y, m, d, h, mi| {
            let t = chrono::NaiveDate::from_ymd_opt(y, m, d)
                .and_then(|d| d.and_hms_opt(h, mi, 0))
                .expect("time")
                .and_utc()
                .timestamp();
            UnixTime::since_unix_epoch(std::time::Duration::from_secs(t as u64))
        };
        let chain = [leaf_of(&ca)];
        assert_eq!(
            reverify_resumed(verifier.as_ref(), Some(&chain), at(2026, 6, 1, 12, 0)),
            Ok(())
        );
        let expired = reverify_resumed(verifier.as_ref(), Some(&chain), at(2027, 6, 1, 12, 0))
            .expect_err("expired");
        assert!(expired.to_lowercase().contains("expired"), "{expired}");
        assert!(reverify_resumed(verifier.as_ref(), None, at(2026, 6, 1, 12, 0)).is_err());
        assert!(reverify_resumed(verifier.as_ref(), Some(&[]), at(2026, 6, 1, 12, 0)).is_err());
        let stranger = [leaf_of(&other_ca)];
        assert!(
            reverify_resumed(verifier.as_ref(), Some(&stranger), at(2026, 6, 1, 12, 0)).is_err()
        );
        // Kept answers: a chain found valid at 23:30 is served from the cache until an hour
        // later, then checked again. It expired at midnight: refused from 00:30 on.
        let check = ResumedCheck::new(Arc::clone(&verifier));
        assert_eq!(check.check(Some(&chain), at(2026, 12, 30, 23, 30)), Ok(()));
        assert_eq!(
            check.check(Some(&chain), at(2026, 12, 31, 0, 20)),
            Ok(()),
            "kept"
        );
        assert!(
            check.check(Some(&chain), at(2026, 12, 31, 0, 31)).is_err(),
            "checked again"
        );
        assert!(
            check
                .check(Some(&stranger), at(2026, 12, 30, 23, 30))
                .is_err()
        );
        assert!(check.check(None, at(2026, 12, 30, 23, 30)).is_err());
        // Bounded, keeping the chains in use: two generations of two chains, all verified at
        // 23:30, all expired at midnight. `a` and `b` fill the first generation; `a` is used
        // again at 00:10, after `c` came, and is copied forward with the rotation that follows;
        // `b` is not, and goes with the first generation. At 00:20 `a` is still kept and `b` is
        // verified again and refused. `a` kept the time it was verified, not the time it was
        // copied: at 00:40, more than an hour after 23:30, it is verified again and refused.
        let check = ResumedCheck::with_capacity(Arc::clone(&verifier), 4);
        let (a, b, c) = ([leaf_of(&ca)], [leaf_of(&ca)], [leaf_of(&ca)]);
        for chain in [&a, &b, &c] {
            assert_eq!(check.check(Some(chain), at(2026, 12, 30, 23, 30)), Ok(()));
        }
        assert_eq!(
            check.check(Some(&a), at(2026, 12, 31, 0, 10)),
            Ok(()),
            "kept"
        );
        assert_eq!(
            check.check(Some(&a), at(2026, 12, 31, 0, 20)),
            Ok(()),
            "kept"
        );
        assert!(
            check.check(Some(&b), at(2026, 12, 31, 0, 20)).is_err(),
            "dropped, and checked again"
        );
        assert!(
            check.check(Some(&a), at(2026, 12, 31, 0, 40)).is_err(),
            "an hour after it was verified, checked again"
        );
        // Without client_ca_file there is nothing to check again.
        let open = ListenerTlsConfig {
            client_ca_file: None,
            ..tls
        };
        assert!(listener_tls(&open).expect("TLS").resumed_check.is_none());
    }

    #[test]
    fn errors_name_the_file_and_key_but_not_the_contents() {
        let dir = tempfile::tempdir().expect("dir");
        let secret =
            "-----BEGIN PRIVATE KEY-----\nTOPSECRETnotbase64!!\n-----END PRIVATE KEY-----\n";
        let key = write(dir.path(), "key.pem", secret);
        let empty = write(dir.path(), "cert.pem", "nothing here\n");
        let tls = ListenerTlsConfig {
            cert_file: empty.clone(),
            key_file: key.clone(),
            client_ca_file: None,
            cipher_suites: Vec::new(),
        };
        let e = server_config(&tls).expect_err("no certificate").to_string();
        assert!(
            e.contains("listener.tls.cert_file") && e.contains("cert.pem"),
            "{e}"
        );
        let e = load_private_key("listener.tls.key_file", &key)
            .expect_err("bad key")
            .to_string();
        assert!(
            e.contains("listener.tls.key_file") && e.contains("key.pem"),
            "{e}"
        );
        assert!(!e.contains("TOPSECRET"), "{e}");
        let e = load_certificates("k", &dir.path().join("missing.pem"))
            .expect_err("missing")
            .to_string();
        assert!(e.contains("missing.pem"), "{e}");
    }
}
