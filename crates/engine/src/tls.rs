//! The certificate of the SIP over TLS listeners: read from `[sip.tls]`
//! (PEM), or created self-signed at first start when none is configured,
//! and swapped in place on reload (SIGHUP): handshakes in progress keep the
//! old one, the next ones get the new one.

use arc_swap::ArcSwap;
use permanence_config::TlsFiles;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;
use tracing::info;

/// Errors reading, creating or using a certificate.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The certificate or key file holds nothing usable.
    #[error("{path}: {message}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the key or the configuration.
    #[error("TLS: {0}")]
    Rustls(String),
    /// The self-signed certificate could not be created.
    #[error("cannot create a self-signed certificate: {0}")]
    Generate(String),
}

/// Hands the current certificate to every handshake.
#[derive(Debug)]
struct Resolver(ArcSwap<CertifiedKey>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// The TLS side of the SIP listeners.
pub struct TlsServer {
    acceptor: TlsAcceptor,
    resolver: Arc<Resolver>,
    provider: Arc<CryptoProvider>,
}

impl TlsServer {
    /// Loads the certificate of `files`; when none is configured and the
    /// default files do not exist yet, creates a self-signed one for
    /// `names` (DNS names or IP addresses) first.
    pub fn load(files: &TlsFiles, names: &[String]) -> Result<Self, TlsError> {
        if files.self_signed && !files.cert.exists() && !files.key.exists() {
            create_self_signed(&files.cert, &files.key, names)?;
        }
        // ring: see the workspace Cargo.toml (rustls marks it deprecated
        // for its lack of post-quantum key exchange; aws-lc-rs would need
        // cmake on every build machine).
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = certified_key(files, &provider)?;
        let resolver = Arc::new(Resolver(ArcSwap::from_pointee(key)));
        let config = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Rustls(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            resolver,
            provider,
        })
    }

    /// Re-reads the certificate and key of `files` and uses them for the
    /// next handshakes; on error the current ones stay.
    pub fn reload(&self, files: &TlsFiles) -> Result<(), TlsError> {
        let key = certified_key(files, &self.provider)?;
        self.resolver.0.store(Arc::new(key));
        Ok(())
    }

    /// The acceptor for new connections.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a certificate chain and its private key (PEM).
fn certified_key(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let cert_pem = read(&files.cert)?;
    let key_pem = read(&files.key)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem {
            path: files.cert.clone(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: files.cert.clone(),
            message: "no CERTIFICATE block".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Pem {
        path: files.key.clone(),
        message: e.to_string(),
    })?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::Pem {
            path: files.key.clone(),
            message: e.to_string(),
        })?;
    let ck = CertifiedKey::new(certs, signing);
    ck.keys_match().map_err(|e| TlsError::Pem {
        path: files.key.clone(),
        message: format!("the key does not match the certificate: {e}"),
    })?;
    Ok(ck)
}

/// Creates a self-signed certificate for `names` at `cert` and its key at
/// `key` (mode 0600), with their directories.
fn create_self_signed(cert: &Path, key: &Path, names: &[String]) -> Result<(), TlsError> {
    let mut names: Vec<String> = names.to_vec();
    if !names.iter().any(|n| n == "localhost") {
        names.push("localhost".into());
    }
    let generated = rcgen::generate_simple_self_signed(names.clone())
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    for p in [cert, key] {
        if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| TlsError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
    }
    write_private(key, generated.key_pair.serialize_pem().as_bytes())?;
    std::fs::write(cert, generated.cert.pem()).map_err(|source| TlsError::Io {
        path: cert.to_path_buf(),
        source,
    })?;
    info!(
        event = "tls.self_signed",
        cert = %cert.display(),
        key = %key.display(),
        names = ?names,
        "created a self-signed certificate for SIP over TLS (configure sip.tls.cert and sip.tls.key for a real one)"
    );
    Ok(())
}

/// Writes a file readable by its owner only.
fn write_private(path: &Path, data: &[u8]) -> Result<(), TlsError> {
    use std::io::Write;
    let io = |source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io)?;
    f.write_all(data).map_err(io)?;
    f.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("permanence-tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn self_signed_then_reload() {
        let d = temp_dir("gen");
        let files = TlsFiles {
            cert: d.join("tls/cert.pem"),
            key: d.join("tls/key.pem"),
            self_signed: true,
        };
        let server = TlsServer::load(&files, &["127.0.0.1".into()]).expect("load");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&files.key)
                .expect("key")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let first = server.resolver.0.load_full();
        // A second start reuses the files.
        let again = TlsServer::load(&files, &[]).expect("reload from files");
        assert_eq!(again.resolver.0.load().cert, first.cert);
        // A new certificate on disk is picked up by reload.
        std::fs::remove_file(&files.cert).expect("rm");
        std::fs::remove_file(&files.key).expect("rm");
        create_self_signed(&files.cert, &files.key, &["localhost".into()]).expect("new");
        server.reload(&files).expect("reload");
        assert_ne!(server.resolver.0.load().cert, first.cert);
        // A broken file is refused and the current certificate stays.
        std::fs::write(&files.cert, "not a certificate").expect("write");
        assert!(server.reload(&files).is_err());
        let _ = std::fs::remove_dir_all(&d);
    }
}
