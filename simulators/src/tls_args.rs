//! The client TLS options that `acquirer-sim` and `loadgen run` share: `--tls-ca`, `--tls-cert`,
//! `--tls-key` and `--tls-server-name`, for a switch whose acquirer listener has
//! `[listener.tls]`.
//!
//! **Owns:** the flags, their help text and which need which. **Leaves to others:** reading the
//! PEM files and building the rustls configuration ([`switch::client::ClientTls::from_pem_files`]),
//! and the handshake ([`switch::client::AcquirerClient`]). One definition, so the two tools
//! cannot drift apart in what they accept.

use std::path::PathBuf;

use switch::client::ClientTls;
use switch::net::tls::TlsError;

/// `--tls-*`: connect with TLS when `--tls-ca` is given, plain TCP otherwise.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ClientTlsArgs {
    /// Connect with TLS, trusting the CA certificates in this PEM file (for a switch with
    /// `[listener.tls]`).
    #[arg(long, global = true, value_name = "PATH")]
    pub tls_ca: Option<PathBuf>,
    /// The client certificate chain (PEM) to present; its SAN DNS name is the acquirer's
    /// `tls_identity`. Needs --tls-ca and --tls-key.
    #[arg(long, global = true, value_name = "PATH", requires_all = ["tls_ca", "tls_key"])]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, global = true, value_name = "PATH", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The name the switch's certificate must carry (default: the host part of the target).
    #[arg(long, global = true, value_name = "NAME", requires = "tls_ca")]
    pub tls_server_name: Option<String>,
}

impl ClientTlsArgs {
    /// The TLS settings for connections to `target` (`host:port`), or `None` without
    /// `--tls-ca`. An error names the file and what was wrong with it, never its contents.
    pub fn client_tls(&self, target: &str) -> Result<Option<ClientTls>, TlsError> {
        let Some(ca) = &self.tls_ca else {
            return Ok(None);
        };
        let identity = self.tls_cert.as_deref().zip(self.tls_key.as_deref());
        ClientTls::from_pem_files(ca, identity, self.tls_server_name.as_deref(), target).map(Some)
    }
}
