//! HTTPS: the server's certificate and key, the TLS listener, and their
//! reload. `cairn serve --tls-cert FILE --tls-key FILE` serves every route
//! (the API, `/metrics`, WebSocket streams) over TLS on its one listener,
//! with HTTP/2 and HTTP/1.1 offered by ALPN.
//!
//! [`ServerTls::load`] reads both PEM files and refuses them (the server
//! does not start) unless the key fits the certificate. The rustls
//! configuration asks a resolver for the certificate on every handshake,
//! and the resolver hands out whatever [`ServerTls::reload`] last put in
//! it: a reload (on SIGHUP, [`ServerTls::reload_on_hangup`]) swaps the
//! certificate for new handshakes while the listener and the connections
//! already open go on untouched. A reload that fails — a missing,
//! half-written or mismatched file — changes nothing and says why.
//!
//! Each connection's handshake runs in that connection's own task (the
//! first read of [`TlsConnection`] drives it), not in the accept loop, so a
//! slow or silent client delays no one else; it gets
//! [`limits::TLS_HANDSHAKE_TIMEOUT`] to finish. A client that sends plain
//! HTTP to this port is answered `400 malformed_http` in plain HTTP,
//! saying to use `https://`, and the connection is closed.
//!
//! *Invariant:* key material never reaches a log line or an error
//! message: errors about the key file name the file and the kind of
//! problem, never its content.

use std::fmt;
use std::future::Future;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{ready, Context, Poll};

use axum::serve::Listener;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::limits;

/// ALPN protocols offered, preferred first.
const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Where the server's certificate chain and private key are (PEM files).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain: the server's certificate first, then any
    /// intermediates.
    pub certificate: PathBuf,
    /// The private key of the first certificate (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Why the TLS files cannot be used. No message quotes the key file's
/// content.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read the TLS {kind} file {}: {source}", path.display())]
    Read {
        /// `certificate` or `key`.
        kind: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A file is far larger than any certificate chain or key.
    #[error(
        "the TLS {kind} file {} is larger than {} bytes",
        path.display(),
        limits::TLS_FILE_BYTES_MAX
    )]
    TooLarge {
        /// `certificate` or `key`.
        kind: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// The certificate file holds no usable PEM certificate.
    #[error("the TLS certificate file {} holds no PEM certificate: {reason}", path.display())]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What is wrong (about the PEM structure; certificates are public).
        reason: String,
    },
    /// The key file holds no usable PEM private key.
    #[error("the TLS key file {} holds no usable private key: {reason}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong, in words of ours (never the file's content).
        reason: &'static str,
    },
    /// The key does not belong to the certificate, or rustls cannot use
    /// the pair.
    #[error(
        "the TLS key in {} does not fit the certificate in {}: {reason}",
        key.display(),
        certificate.display()
    )]
    Unusable {
        /// The certificate file.
        certificate: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls' reason (which names no key material).
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("cannot configure TLS: {0}")]
    Config(String),
}

/// What was loaded, for the log: enough to tell one certificate from
/// another after a reload, and nothing secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedCertificate {
    /// Certificates in the chain.
    pub chain_len: usize,
    /// SHA-256 of the server certificate's DER, in lowercase hexadecimal
    /// (as `openssl x509 -noout -fingerprint -sha256` shows it, without
    /// colons).
    pub sha256_fingerprint: String,
}

impl fmt::Display for LoadedCertificate {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "certificate sha256 {} ({} in the chain)",
            self.sha256_fingerprint, self.chain_len
        )
    }
}

/// The server's TLS: its files, the certificate in use, and the acceptor
/// that serves it. Cheap to clone; clones share the certificate.
#[derive(Clone)]
pub struct ServerTls {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: Arc<CurrentCertificate>,
    acceptor: TlsAcceptor,
}

impl ServerTls {
    /// Reads both files and prepares the TLS configuration; fails if a
    /// file is missing, is not PEM, or the key does not fit the
    /// certificate.
    pub fn load(files: TlsFiles) -> Result<ServerTls, TlsError> {
        // rustls 0.23.48 deprecates its ring provider because ring offers
        // no post-quantum key exchange (X25519MLKEM768); that takes
        // aws-lc-rs, whose C build (cmake) the workspace avoids. Classical
        // X25519 and the P-curves remain (ARCHITECTURE.md, Dependencies).
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (certified, loaded) = read_certified_key(&files, &provider)?;
        let current = Arc::new(CurrentCertificate {
            certified: RwLock::new(Arc::new(certified)),
            loaded: RwLock::new(loaded),
        });
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsError::Config(error.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&current) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|name| name.to_vec()).collect();
        Ok(ServerTls {
            files,
            provider,
            current,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// The files this TLS is read from.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The certificate in use.
    pub fn loaded(&self) -> LoadedCertificate {
        self.current
            .loaded
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Reads both files again and, if they are usable, serves the new
    /// certificate to every handshake from now on; connections already
    /// open keep theirs. On error nothing changes.
    pub fn reload(&self) -> Result<LoadedCertificate, TlsError> {
        let (certified, loaded) = read_certified_key(&self.files, &self.provider)?;
        // Both under their locks one after the other: a handshake never
        // holds more than the first, so there is no lock order to keep.
        *self
            .current
            .certified
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(certified);
        *self
            .current
            .loaded
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = loaded.clone();
        Ok(loaded)
    }

    /// Reloads on every SIGHUP until the runtime ends, logging the
    /// outcome (a failure keeps the certificate in use, and says why).
    pub fn reload_on_hangup(&self) -> io::Result<JoinHandle<()>> {
        let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        let tls = self.clone();
        Ok(tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                let reloading = tls.clone();
                match tokio::task::spawn_blocking(move || reloading.reload()).await {
                    Ok(Ok(loaded)) => tracing::info!(
                        certificate = %tls.files.certificate.display(),
                        key = %tls.files.key.display(),
                        "SIGHUP: TLS files reloaded; new connections get {loaded}"
                    ),
                    Ok(Err(error)) => tracing::error!(
                        "SIGHUP: TLS files not reloaded, the previous certificate stays in use: {error}"
                    ),
                    Err(error) => tracing::error!("SIGHUP: the TLS reload panicked: {error}"),
                }
            }
        }))
    }

    /// A listener that speaks TLS on the connections `tcp` accepts.
    pub(crate) fn listener(&self, tcp: TcpListener) -> TlsListener {
        TlsListener {
            tcp,
            acceptor: self.acceptor.clone(),
        }
    }
}

/// The certificate handed to each handshake, swapped by a reload.
#[derive(Debug)]
struct CurrentCertificate {
    certified: RwLock<Arc<CertifiedKey>>,
    loaded: RwLock<LoadedCertificate>,
}

impl ResolvesServerCert for CurrentCertificate {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self
                .certified
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        ))
    }
}

/// Reads the chain and the key and checks that they belong together.
fn read_certified_key(
    files: &TlsFiles,
    provider: &CryptoProvider,
) -> Result<(CertifiedKey, LoadedCertificate), TlsError> {
    let certificate_pem = read_bounded("certificate", &files.certificate)?;
    let chain = CertificateDer::pem_slice_iter(&certificate_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsError::Certificate {
            path: files.certificate.clone(),
            reason: error.to_string(),
        })?;
    let Some(server_certificate) = chain.first() else {
        return Err(TlsError::Certificate {
            path: files.certificate.clone(),
            reason: "no -----BEGIN CERTIFICATE----- section".to_string(),
        });
    };
    let loaded = LoadedCertificate {
        chain_len: chain.len(),
        sha256_fingerprint: hex(
            ring::digest::digest(&ring::digest::SHA256, server_certificate).as_ref(),
        ),
    };
    let key_pem = read_bounded("key", &files.key)?;
    // The PEM parser's own errors may quote the file's lines: they are
    // replaced by words of ours, so no part of a key reaches a message.
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|error| TlsError::Key {
        path: files.key.clone(),
        reason: match error {
            rustls_pki_types::pem::Error::NoItemsFound => {
                "no -----BEGIN PRIVATE KEY----- (or RSA or EC PRIVATE KEY) section"
            }
            _ => "the file is not well-formed PEM",
        },
    })?;
    let certified =
        CertifiedKey::from_der(chain, key, provider).map_err(|error| TlsError::Unusable {
            certificate: files.certificate.clone(),
            key: files.key.clone(),
            reason: error.to_string(),
        })?;
    Ok((certified, loaded))
}

/// The file's bytes, refusing one larger than [`limits::TLS_FILE_BYTES_MAX`].
fn read_bounded(kind: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    let read_error = |source| TlsError::Read {
        kind,
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(limits::TLS_FILE_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > limits::TLS_FILE_BYTES_MAX {
        return Err(TlsError::TooLarge {
            kind,
            path: path.to_path_buf(),
        });
    }
    Ok(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A TCP listener whose connections speak TLS.
pub(crate) struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl Listener for TlsListener {
    type Io = TlsConnection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, address) = Listener::accept(&mut self.tcp).await;
        // TLS records are written as they are sealed; without this a small
        // answer's last record can wait for the client's delayed ACK.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(peer = %address, "cannot set TCP_NODELAY: {error}");
        }
        let acceptor = self.acceptor.clone();
        let handshake = async move {
            match tokio::time::timeout(limits::TLS_HANDSHAKE_TIMEOUT, handshake(acceptor, stream))
                .await
            {
                Ok(outcome) => outcome,
                Err(_elapsed) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the TLS handshake took too long",
                )),
            }
        };
        let connection = TlsConnection {
            state: ConnectionState::Handshaking(Box::pin(handshake)),
            peer: address,
        };
        (connection, address)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Listener::local_addr(&self.tcp)
    }
}

/// The handshake of one connection, bounded in time.
type Handshake = dyn Future<Output = io::Result<tokio_rustls::server::TlsStream<TcpStream>>> + Send;

/// A TLS connection starts with a handshake record (content type 22); a
/// plain HTTP request starts with its method's capital letters.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Completes the TLS handshake, or, if the client speaks plain HTTP to
/// this port, answers it with a JSON error that says to use `https://`
/// (rather than TLS alert bytes it would show as garbage) and fails.
async fn handshake(
    acceptor: TlsAcceptor,
    mut stream: TcpStream,
) -> io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
    let mut first_byte = [0u8; 1];
    let peeked = stream.peek(&mut first_byte).await?;
    if peeked == 1 && first_byte[0] != TLS_HANDSHAKE_RECORD && first_byte[0].is_ascii_uppercase() {
        use tokio::io::AsyncWriteExt;
        stream.write_all(&plain_http_answer()).await?;
        stream.shutdown().await?;
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "plain HTTP on the HTTPS port",
        ));
    }
    acceptor.accept(stream).await
}

/// `400 malformed_http` for a plain HTTP request to the HTTPS port.
fn plain_http_answer() -> Vec<u8> {
    let error = crate::error::ApiError::new(
        cairn_api::ErrorCode::MalformedHttp,
        "this port serves HTTPS only: use an https:// URL",
    );
    let body = serde_json::to_vec(&error.body()).unwrap_or_default();
    let mut answer = format!(
        "HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(&body);
    answer
}

/// One TLS connection: the handshake runs on its first read or write (in
/// the connection's own task), then bytes pass through rustls.
pub(crate) struct TlsConnection {
    state: ConnectionState,
    peer: SocketAddr,
}

enum ConnectionState {
    Handshaking(Pin<Box<Handshake>>),
    Established(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// The handshake failed; the error was returned once already.
    Failed,
}

impl TlsConnection {
    /// Drives the handshake to its end; ready with the stream once it is
    /// established.
    fn poll_established(
        &mut self,
        context: &mut Context<'_>,
    ) -> Poll<io::Result<&mut tokio_rustls::server::TlsStream<TcpStream>>> {
        if let ConnectionState::Handshaking(handshake) = &mut self.state {
            let outcome = ready!(handshake.as_mut().poll(context));
            match outcome {
                Ok(stream) => self.state = ConnectionState::Established(Box::new(stream)),
                Err(error) => {
                    // A client that does not speak TLS (plain HTTP to the
                    // HTTPS port), distrusts the certificate or stays
                    // silent: routine, and only the client can fix it.
                    tracing::debug!(peer = %self.peer, "TLS handshake failed: {error}");
                    self.state = ConnectionState::Failed;
                    return Poll::Ready(Err(error));
                }
            }
        }
        match &mut self.state {
            ConnectionState::Established(stream) => Poll::Ready(Ok(stream)),
            _ => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the TLS handshake failed",
            ))),
        }
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let stream = ready!(self.get_mut().poll_established(context))?;
        Pin::new(stream).poll_read(context, buffer)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<io::Result<usize>> {
        let stream = ready!(self.get_mut().poll_established(context))?;
        Pin::new(stream).poll_write(context, buffer)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let stream = ready!(self.get_mut().poll_established(context))?;
        Pin::new(stream).poll_write_vectored(context, buffers)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        let stream = ready!(self.get_mut().poll_established(context))?;
        Pin::new(stream).poll_flush(context)
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().state {
            ConnectionState::Established(stream) => {
                Pin::new(stream.as_mut()).poll_shutdown(context)
            }
            // Nothing was said over TLS: dropping the socket closes it.
            _ => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate for `localhost`, written as PEM files.
    fn write_certificate(dir: &Path, name: &str) -> TlsFiles {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
            .expect("rcgen makes a certificate");
        let files = TlsFiles {
            certificate: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        };
        std::fs::write(&files.certificate, certified.cert.pem()).unwrap();
        std::fs::write(&files.key, certified.signing_key.serialize_pem()).unwrap();
        files
    }

    #[test]
    fn a_reload_swaps_the_certificate_and_a_failed_one_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_certificate(dir.path(), "first");
        let tls = ServerTls::load(files.clone()).unwrap();
        let first = tls.loaded();
        assert_eq!(first.chain_len, 1);
        assert_eq!(first.sha256_fingerprint.len(), 64);

        let second_files = write_certificate(dir.path(), "second");
        std::fs::copy(&second_files.certificate, &files.certificate).unwrap();
        std::fs::copy(&second_files.key, &files.key).unwrap();
        let second = tls.reload().unwrap();
        assert_ne!(second, first);
        assert_eq!(tls.loaded(), second);

        // A half-written key file: the reload fails, the certificate stays.
        std::fs::write(&files.key, "-----BEGIN PRIVATE KEY-----\nAAAA").unwrap();
        let error = tls.reload().unwrap_err();
        assert!(matches!(error, TlsError::Key { .. }), "{error}");
        assert!(!error.to_string().contains("AAAA"), "{error}");
        assert_eq!(tls.loaded(), second);
    }

    #[test]
    fn unusable_files_are_refused_with_their_reason() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_certificate(dir.path(), "server");
        let other = write_certificate(dir.path(), "other");

        let missing = TlsFiles {
            certificate: dir.path().join("absent.crt"),
            key: files.key.clone(),
        };
        let error = ServerTls::load(missing).err().unwrap();
        assert!(error.to_string().contains("absent.crt"), "{error}");

        let swapped = TlsFiles {
            certificate: files.key.clone(),
            key: files.certificate.clone(),
        };
        let error = ServerTls::load(swapped).err().unwrap();
        assert!(matches!(error, TlsError::Certificate { .. }), "{error}");

        let key_is_a_certificate = TlsFiles {
            certificate: files.certificate.clone(),
            key: files.certificate.clone(),
        };
        let error = ServerTls::load(key_is_a_certificate).err().unwrap();
        assert!(matches!(error, TlsError::Key { .. }), "{error}");

        let mismatched = TlsFiles {
            certificate: files.certificate.clone(),
            key: other.key.clone(),
        };
        let error = ServerTls::load(mismatched).err().unwrap();
        assert!(matches!(error, TlsError::Unusable { .. }), "{error}");
        let key_text = std::fs::read_to_string(&other.key).unwrap();
        let key_body = key_text.lines().nth(1).unwrap();
        assert!(!error.to_string().contains(key_body), "{error}");
    }
}
