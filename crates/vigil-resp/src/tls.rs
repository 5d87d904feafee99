//! TLS for RESP ports: certificate loading, a reloadable server configuration, and the stream
//! halves a connection reads and writes whether it is plain TCP or TLS.
//!
//! Certificates come from PEM files named as Redis names its keys (`tls_cert_file`,
//! `tls_key_file`, `tls_ca_cert_file`); [`ServerTls::reload`] re-reads them (SIGHUP) and only
//! handshakes that start afterwards see the new ones, so open connections keep working. The
//! gRPC servers (`vigil_proto::tls`) build on the same [`ServerTls`], with ALPN `h2`.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use parking_lot::RwLock;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// A TLS client configuration (what [`connect`] takes).
pub use rustls::ClientConfig;

/// How long a client has to finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// `tls_auth_clients`: whether clients must present a certificate signed by the CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthClients {
    /// A client certificate is required (Redis' default).
    #[default]
    Yes,
    /// None is asked for.
    No,
    /// One is verified if offered.
    Optional,
}

impl AuthClients {
    /// Parses `yes`, `no` or `optional`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "yes" => Some(AuthClients::Yes),
            "no" => Some(AuthClients::No),
            "optional" => Some(AuthClients::Optional),
            _ => None,
        }
    }
}

/// The certificate files of one process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// `tls_cert_file`: this process' certificate chain (PEM).
    pub cert_file: PathBuf,
    /// `tls_key_file`: its private key (PEM).
    pub key_file: PathBuf,
    /// `tls_ca_cert_file`: the CA that signs peers' and clients' certificates (PEM).
    pub ca_cert_file: PathBuf,
    /// `tls_auth_clients`.
    pub auth_clients: AuthClients,
}

/// Why a TLS configuration could not be built; names the config key and the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no usable PEM item.
    #[error("{key} {file:?}: {message}")]
    File {
        /// The config key naming the file.
        key: &'static str,
        /// The file.
        file: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the combination (a key that does not match the certificate, say).
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn file_err(key: &'static str, file: &Path, message: impl ToString) -> TlsError {
    TlsError::File {
        key,
        file: file.to_path_buf(),
        message: message.to_string(),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn load_certs(key: &'static str, file: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    if file.as_os_str().is_empty() {
        return Err(file_err(key, file, "not set"));
    }
    let data = std::fs::read(file).map_err(|e| file_err(key, file, e))?;
    let certs = CertificateDer::pem_slice_iter(&data)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(key, file, e))?;
    if certs.is_empty() {
        return Err(file_err(key, file, "no certificate in the file"));
    }
    Ok(certs)
}

fn load_key(file: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    const KEY: &str = "tls_key_file";
    if file.as_os_str().is_empty() {
        return Err(file_err(KEY, file, "not set"));
    }
    let data = std::fs::read(file).map_err(|e| file_err(KEY, file, e))?;
    PrivateKeyDer::from_pem_slice(&data).map_err(|e| file_err(KEY, file, e))
}

fn load_roots(file: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    const KEY: &str = "tls_ca_cert_file";
    let mut roots = RootCertStore::empty();
    for c in load_certs(KEY, file)? {
        roots.add(c).map_err(|e| file_err(KEY, file, e))?;
    }
    Ok(Arc::new(roots))
}

impl TlsFiles {
    /// A server configuration from the files (read now).
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let certs = load_certs("tls_cert_file", &self.cert_file)?;
        let key = load_key(&self.key_file)?;
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match self.auth_clients {
            AuthClients::No => builder.with_no_client_auth(),
            auth => {
                let roots = load_roots(&self.ca_cert_file)?;
                let v = WebPkiClientVerifier::builder_with_provider(roots, provider());
                let v = if auth == AuthClients::Optional {
                    v.allow_unauthenticated()
                } else {
                    v
                };
                builder.with_client_cert_verifier(
                    v.build().map_err(|e| TlsError::Config(e.to_string()))?,
                )
            }
        };
        let cfg = builder
            .with_single_cert(certs, key)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        Ok(Arc::new(cfg))
    }

    /// A client configuration: trusts the CA file and presents this process' certificate
    /// (for replication links and probes to servers that require client certificates).
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let roots = load_roots(&self.ca_cert_file)?;
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(roots);
        let cfg = if self.cert_file.as_os_str().is_empty() {
            builder.with_no_client_auth()
        } else {
            let certs = load_certs("tls_cert_file", &self.cert_file)?;
            let key = load_key(&self.key_file)?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| TlsError::Config(e.to_string()))?
        };
        Ok(Arc::new(cfg))
    }
}

/// The server side of an accepted TLS connection.
pub type ServerStream = tokio_rustls::server::TlsStream<TcpStream>;

/// A server's TLS state: the files and the configuration new handshakes use.
pub struct ServerTls {
    files: TlsFiles,
    /// Offered in every configuration built from the files (`h2` for gRPC; none for RESP).
    alpn: Vec<Vec<u8>>,
    current: RwLock<Arc<ServerConfig>>,
    client: RwLock<Arc<ClientConfig>>,
}

impl ServerTls {
    /// Reads the files once.
    pub fn new(files: TlsFiles) -> Result<Arc<Self>, TlsError> {
        Self::with_alpn(files, Vec::new())
    }

    /// [`ServerTls::new`], negotiating one of the `alpn` protocols (in order of preference)
    /// with clients that offer ALPN: `h2` for a gRPC server.
    pub fn with_alpn(files: TlsFiles, alpn: Vec<Vec<u8>>) -> Result<Arc<Self>, TlsError> {
        let current = RwLock::new(server_config(&files, &alpn)?);
        let client = RwLock::new(files.client_config()?);
        Ok(Arc::new(ServerTls {
            files,
            alpn,
            current,
            client,
        }))
    }

    /// Re-reads the files; on error the previous certificates stay in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let s = server_config(&self.files, &self.alpn)?;
        let c = self.files.client_config()?;
        *self.current.write() = s;
        *self.client.write() = c;
        Ok(())
    }

    /// The configuration for outgoing connections (replication, probes).
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.client.read().clone()
    }

    /// Runs the server side of a handshake under [`HANDSHAKE_TIMEOUT`].
    pub async fn accept(&self, stream: TcpStream) -> io::Result<ServerStream> {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.current.read().clone());
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            )),
        }
    }
}

/// The server configuration of `files`, offering `alpn`.
fn server_config(files: &TlsFiles, alpn: &[Vec<u8>]) -> Result<Arc<ServerConfig>, TlsError> {
    let config = files.server_config()?;
    if alpn.is_empty() {
        return Ok(config);
    }
    let mut config = Arc::unwrap_or_clone(config);
    config.alpn_protocols = alpn.to_vec();
    Ok(Arc::new(config))
}

/// Connects over TLS to `host` (checked against the server's certificate) on `stream`.
pub async fn connect(
    config: Arc<ClientConfig>,
    host: &str,
    stream: TcpStream,
) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let connector = tokio_rustls::TlsConnector::from(config);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, connector.connect(name, stream)).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "TLS handshake timed out",
        )),
    }
}

/// Any bidirectional TLS stream over TCP (server or client side).
pub type TlsIo = tokio_rustls::TlsStream<TcpStream>;

/// The read half of a plain or TLS connection.
pub enum ReadHalf {
    /// Plain TCP.
    Tcp(OwnedReadHalf),
    /// TLS.
    Tls(tokio::io::ReadHalf<TlsIo>),
}

/// The write half of a plain or TLS connection.
pub enum WriteHalf {
    /// Plain TCP.
    Tcp(OwnedWriteHalf),
    /// TLS.
    Tls(tokio::io::WriteHalf<TlsIo>),
}

/// Splits a plain TCP stream.
pub fn split_tcp(s: TcpStream) -> (ReadHalf, WriteHalf) {
    let (r, w) = s.into_split();
    (ReadHalf::Tcp(r), WriteHalf::Tcp(w))
}

/// Splits a TLS stream.
pub fn split_tls(s: impl Into<TlsIo>) -> (ReadHalf, WriteHalf) {
    let (r, w) = tokio::io::split(s.into());
    (ReadHalf::Tls(r), WriteHalf::Tls(w))
}

impl WriteHalf {
    /// Writes without waiting; TLS always reports `WouldBlock` (its writes go through the
    /// session buffer, the async path handles them).
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            WriteHalf::Tcp(w) => w.try_write(buf),
            WriteHalf::Tls(_) => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// Whether bytes may sit in a session buffer after a write (and need a flush).
    pub fn is_tls(&self) -> bool {
        matches!(self, WriteHalf::Tls(_))
    }
}

impl AsyncRead for ReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ReadHalf::Tcp(r) => Pin::new(r).poll_read(cx, buf),
            ReadHalf::Tls(r) => Pin::new(r).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for WriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WriteHalf::Tcp(w) => Pin::new(w).poll_write(cx, buf),
            WriteHalf::Tls(w) => Pin::new(w).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Tcp(w) => Pin::new(w).poll_flush(cx),
            WriteHalf::Tls(w) => Pin::new(w).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Tcp(w) => Pin::new(w).poll_shutdown(cx),
            WriteHalf::Tls(w) => Pin::new(w).poll_shutdown(cx),
        }
    }
}

/// Re-reads `tls`'s certificates on every SIGHUP, for the life of the process.
pub fn reload_on_sighup(tls: Arc<ServerTls>) {
    on_sighup("RESP", move || tls.reload());
}

/// Runs `reload` on every SIGHUP, for the life of the process, and logs the outcome naming
/// `what` was reloaded (`RESP`, `gRPC`): one watcher per set of certificates.
pub fn on_sighup(
    what: &'static str,
    mut reload: impl FnMut() -> Result<(), TlsError> + Send + 'static,
) {
    tokio::spawn(async move {
        let kind = tokio::signal::unix::SignalKind::hangup();
        let Ok(mut hup) = tokio::signal::unix::signal(kind) else {
            tracing::warn!(
                what,
                "cannot watch SIGHUP: TLS certificates will not be reloaded"
            );
            return;
        };
        while hup.recv().await.is_some() {
            match reload() {
                Ok(()) => tracing::info!(what, "SIGHUP: TLS certificates reloaded"),
                Err(e) => {
                    tracing::error!(what, error = %e, "SIGHUP: TLS reload failed, keeping the old certificates")
                }
            }
        }
    });
}

/// Logs a failed server-side handshake: a refused certificate is worth a warning that names
/// the peer and the reason (expired, unknown issuer); plain text or a dropped connection is
/// routine (debug).
pub fn log_refused(peer: std::net::SocketAddr, e: &io::Error) {
    let text = e.to_string();
    if text.contains("certificate") {
        tracing::warn!(client = %peer, error = %text, "TLS handshake refused: bad peer certificate");
    } else {
        tracing::debug!(client = %peer, error = %text, "TLS handshake failed, closing connection");
    }
}
