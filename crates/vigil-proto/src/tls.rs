//! TLS for gRPC (NodeAdmin, the sentinels' client API and Raft traffic): the server side with
//! mutual TLS, and the process-wide client side every channel of [`crate::channel`] uses once
//! [`set_client`] was called.
//!
//! The server side is the RESP ports' [`ServerTls`] (the same files, the same reload) with
//! ALPN `h2`, fed to tonic through [`serve`]: each handshake runs in its own task under
//! [`vigil_resp::tls::HANDSHAKE_TIMEOUT`], so a stalled or refused client never holds up the
//! accept loop, and a refused certificate is logged with the peer and the reason. SIGHUP
//! ([`reload_on_sighup`]) re-reads the certificate files for new handshakes and new channels;
//! open connections keep the ones they started with.

use std::future::Future;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::transport::server::Router;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};
use tracing::Instrument;
use vigil_resp::tls::{ServerStream, ServerTls, TlsError, TlsFiles};

/// The server side: `files` with ALPN `h2` (HTTP/2, which gRPC needs), read now.
pub fn server(files: TlsFiles) -> Result<Arc<ServerTls>, TlsError> {
    ServerTls::with_alpn(files, vec![b"h2".to_vec()])
}

/// Re-reads `tls`'s files, and the client configuration of [`set_client`] if any, on every
/// SIGHUP for the life of the process; a bad file keeps the old certificates (and says why).
pub fn reload_on_sighup(tls: Arc<ServerTls>) {
    vigil_resp::tls::on_sighup("gRPC", move || {
        // Both are tried: a bad client side does not hold back the server's new certificate.
        let server = tls.reload();
        let client = reload_client();
        server.and(client)
    });
}

/// Serves `router` on `listener` until `shutdown`: plain, or over TLS with `tls`.
pub async fn serve(
    router: Router,
    listener: TcpListener,
    tls: Option<Arc<ServerTls>>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    match tls {
        None => {
            let incoming = TcpListenerStream::new(listener);
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
        Some(tls) => {
            let incoming = ReceiverStream::new(accept(listener, tls)).map(Ok::<_, std::io::Error>);
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
    }
}

/// Accepts on `listener` and hands over connections whose TLS handshake succeeded, until the
/// receiver is dropped (the server stopped). Tasks log inside the caller's span.
fn accept(listener: TcpListener, tls: Arc<ServerTls>) -> mpsc::Receiver<ServerStream> {
    let (tx, rx) = mpsc::channel(64);
    let span = tracing::Span::current();
    tokio::spawn(
        async move {
            loop {
                let accepted = tokio::select! {
                    _ = tx.closed() => return,
                    a = listener.accept() => a,
                };
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "gRPC accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Raft and admin calls are small and latency-bound.
                let _ = stream.set_nodelay(true);
                let (tls, tx) = (tls.clone(), tx.clone());
                tokio::spawn(
                    async move {
                        match tls.accept(stream).await {
                            Ok(s) => {
                                let _ = tx.send(s).await;
                            }
                            Err(e) => vigil_resp::tls::log_refused(peer, &e),
                        }
                    }
                    .in_current_span(),
                );
            }
        }
        .instrument(span),
    );
    rx
}

/// The client side in use, with the files it was read from (for the reload).
struct Client {
    files: TlsFiles,
    config: ClientTlsConfig,
}

static CLIENT: RwLock<Option<Client>> = RwLock::new(None);

fn read(key: &'static str, file: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(file).map_err(|e| TlsError::File {
        key,
        file: file.to_path_buf(),
        message: e.to_string(),
    })
}

/// The client side of `files`: trusts the CA, presents this process' certificate when it has
/// one. Checked with rustls first (tonic would only find a bad file at the first connection).
fn client_config(files: &TlsFiles) -> Result<ClientTlsConfig, TlsError> {
    files.client_config()?;
    let ca = Certificate::from_pem(read("tls_ca_cert_file", &files.ca_cert_file)?);
    let mut c = ClientTlsConfig::new().ca_certificate(ca);
    if !files.cert_file.as_os_str().is_empty() {
        c = c.identity(Identity::from_pem(
            read("tls_cert_file", &files.cert_file)?,
            read("tls_key_file", &files.key_file)?,
        ));
    }
    Ok(c)
}

/// Makes every gRPC channel this process opens from now on use TLS with `files` (the CA, and
/// the certificate and key when `cert_file` is set).
pub fn set_client(files: TlsFiles) -> Result<(), TlsError> {
    let config = client_config(&files)?;
    *CLIENT.write().unwrap_or_else(|e| e.into_inner()) = Some(Client { files, config });
    Ok(())
}

/// Re-reads the files of [`set_client`] (if it was called) for the channels opened from now on.
pub fn reload_client() -> Result<(), TlsError> {
    let Some(files) = CLIENT
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map(|c| c.files.clone())
    else {
        return Ok(());
    };
    set_client(files)
}

/// The process' client TLS configuration, if any.
pub fn client() -> Option<ClientTlsConfig> {
    CLIENT
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map(|c| c.config.clone())
}
