//! TLS for gRPC (NodeAdmin, the sentinels' client API and Raft traffic): the server side with
//! mutual TLS, and the process-wide client side every channel of [`crate::channel`] uses once
//! [`set_client`] was called.
//!
//! tonic builds its TLS configuration once: gRPC certificates are read at start-up (a restart
//! picks up new ones; SIGHUP reloads only the RESP ports').

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// The PEM files of one process, as its config names them.
#[derive(Debug, Clone, Default)]
pub struct GrpcTlsFiles {
    /// `tls_cert_file`.
    pub cert_file: PathBuf,
    /// `tls_key_file`.
    pub key_file: PathBuf,
    /// `tls_ca_cert_file`.
    pub ca_cert_file: PathBuf,
    /// Whether callers must present a certificate signed by the CA (`tls_auth_clients`).
    pub require_client_cert: bool,
}

fn read(key: &str, file: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(file).map_err(|e| format!("{key} {file:?}: {e}"))
}

impl GrpcTlsFiles {
    /// The server side: this process' identity, callers verified against the CA.
    pub fn server(&self) -> Result<ServerTlsConfig, String> {
        let id = Identity::from_pem(
            read("tls_cert_file", &self.cert_file)?,
            read("tls_key_file", &self.key_file)?,
        );
        let ca = Certificate::from_pem(read("tls_ca_cert_file", &self.ca_cert_file)?);
        Ok(ServerTlsConfig::new()
            .identity(id)
            .client_ca_root(ca)
            .client_auth_optional(!self.require_client_cert))
    }

    /// The client side: trusts the CA, presents this process' certificate when it has one.
    pub fn client(&self) -> Result<ClientTlsConfig, String> {
        let ca = Certificate::from_pem(read("tls_ca_cert_file", &self.ca_cert_file)?);
        let mut c = ClientTlsConfig::new().ca_certificate(ca);
        if !self.cert_file.as_os_str().is_empty() {
            c = c.identity(Identity::from_pem(
                read("tls_cert_file", &self.cert_file)?,
                read("tls_key_file", &self.key_file)?,
            ));
        }
        Ok(c)
    }
}

static CLIENT: OnceLock<ClientTlsConfig> = OnceLock::new();

/// Makes every gRPC channel this process opens from now on use TLS with `config` (set once).
pub fn set_client(config: ClientTlsConfig) {
    let _ = CLIENT.set(config);
}

/// The process' client TLS configuration, if any.
pub fn client() -> Option<&'static ClientTlsConfig> {
    CLIENT.get()
}
