//! TLS on the data port (`--tls-cert-file`, `--tls-key-file`), with rustls and the ring provider.
//!
//! The certificate and key are PEM files, typically a Kubernetes Secret of type
//! `kubernetes.io/tls` mounted as a volume (`tls.crt`, `tls.key`, issued by cert-manager or the
//! operator's CA). cert-manager renews such a Secret in place, so the files are re-read every
//! [`RELOAD_EVERY`] (polled, for the reason `auth` gives) and a changed pair is served to new
//! connections without a restart. A pair that does not load (half-written, key and certificate
//! that don't match) is logged and the pair in force is kept; at start it refuses to start.
//!
//! A plain-HTTP request on a TLS port gets a one-line `400` saying the port speaks TLS, rather
//! than a connection closed for no stated reason.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// How often the certificate and key files are re-read.
pub use crate::reload::RELOAD_EVERY;

/// The first byte of a TLS handshake record; anything else on a TLS port is not TLS.
pub const HANDSHAKE_RECORD: u8 = 0x16;

/// Why a certificate, key or CA file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} {path} holds no usable PEM {expected}: {reason}")]
    Pem {
        what: &'static str,
        path: PathBuf,
        expected: &'static str,
        reason: String,
    },
    #[error("the key {key} does not fit the certificate {cert}: {reason}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("cannot set up TLS: {0}")]
    Config(String),
}

/// The ring provider, used for both the server and the peer client.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificate served, swapped in place when the files change.
#[derive(Debug)]
pub struct ReloadingCert {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Served>,
}

#[derive(Debug)]
struct Served {
    /// The files' bytes it was loaded from, to see a change.
    files: (Vec<u8>, Vec<u8>),
    key: Arc<CertifiedKey>,
}

impl ReloadingCert {
    /// Loads the pair; refuses when it does not load.
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Arc<Self>, TlsError> {
        let provider = provider();
        let files = (
            read("certificate file", cert_file)?,
            read("key file", key_file)?,
        );
        let key = certified_key(&files, cert_file, key_file, &provider)?;
        Ok(Arc::new(ReloadingCert {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            provider,
            current: RwLock::new(Served { files, key }),
        }))
    }

    /// Re-reads both files once; returns whether a new pair is now served.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let files = (
            read("certificate file", &self.cert_file)?,
            read("key file", &self.key_file)?,
        );
        if self.current.read().files == files {
            return Ok(false);
        }
        let key = certified_key(&files, &self.cert_file, &self.key_file, &self.provider)?;
        *self.current.write() = Served { files, key };
        Ok(true)
    }

    /// Re-reads the files every [`RELOAD_EVERY`] until `stop`.
    pub async fn reload_until(self: Arc<Self>, stop: CancellationToken) {
        // cert-manager writes both files at once, but a reader may catch the gap: the pair in
        // force stays until both parse and match.
        crate::reload::every_tick_blocking_until("TLS certificate", stop, move || self.reload())
            .await;
    }

    /// An acceptor serving whatever pair is in force at each handshake (HTTP/1.1 only).
    pub fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().key.clone())
    }
}

/// The CA certificates in a PEM file (`--tls-ca-file`), at least one.
pub fn ca_certificates(path: &Path) -> Result<Vec<Vec<u8>>, TlsError> {
    ca_certificates_in(path, &read("CA file", path)?)
}

/// The CA certificates in `bytes`, the content of the CA file at `path`.
pub fn ca_certificates_in(path: &Path, bytes: &[u8]) -> Result<Vec<Vec<u8>>, TlsError> {
    let pem = |reason: String| TlsError::Pem {
        what: "CA file",
        path: path.to_owned(),
        expected: "CERTIFICATE",
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(bytes)
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem("no certificate in it".to_owned()));
    }
    Ok(certs)
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

fn certified_key(
    (cert_pem, key_pem): &(Vec<u8>, Vec<u8>),
    cert_file: &Path,
    key_file: &Path,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what: "certificate file",
            path: cert_file.to_owned(),
            expected: "CERTIFICATE",
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            what: "certificate file",
            path: cert_file.to_owned(),
            expected: "CERTIFICATE",
            reason: "no certificate in it".to_owned(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::Pem {
        what: "key file",
        path: key_file.to_owned(),
        expected: "PRIVATE KEY",
        reason: e.to_string(),
    })?;
    let mismatch = |reason: String| TlsError::Mismatch {
        cert: cert_file.to_owned(),
        key: key_file.to_owned(),
        reason,
    };
    let certified =
        CertifiedKey::from_der(certs, key, provider).map_err(|e| mismatch(e.to_string()))?;
    Ok(Arc::new(certified))
}

/// The answer to a plain-HTTP request on a TLS port.
pub const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
content-type: text/plain\r\nconnection: close\r\ncontent-length: 55\r\n\r\n\
this port serves HTTPS only: use an https:// address.\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_http_answer_has_its_stated_length() {
        let text = std::str::from_utf8(PLAIN_HTTP_ANSWER).unwrap_or_default();
        let (_, body) = text.split_once("\r\n\r\n").unwrap_or_default();
        assert_eq!(body.len(), 55);
    }
}
