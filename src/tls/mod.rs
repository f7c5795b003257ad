//! TLS for every listener: rustls with the ring provider, TLS 1.2 and 1.3 only.
//!
//! The certificate comes from the configured PEM files or, without `[tls]`, from a
//! self-signed pair generated on first start into `<data_dir>/tls/` (rcgen) and kept there,
//! so clients that pin it keep working across restarts. SIGHUP swaps in a fresh
//! configuration; sessions already running keep the one they started with.

pub mod client;

use crate::config::Config;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use tokio_rustls::TlsAcceptor;

/// The current TLS server configuration, replaceable at run time.
pub struct TlsContext {
    current: RwLock<TlsAcceptor>,
}

impl TlsContext {
    pub fn new(acceptor: TlsAcceptor) -> TlsContext {
        TlsContext {
            current: RwLock::new(acceptor),
        }
    }

    pub fn acceptor(&self) -> TlsAcceptor {
        self.current.read().expect("tls lock").clone()
    }

    pub fn replace(&self, acceptor: TlsAcceptor) {
        *self.current.write().expect("tls lock") = acceptor;
    }
}

/// Paths of the certificate and key in use.
pub fn cert_paths(config: &Config, data_dir: &Path) -> (PathBuf, PathBuf) {
    match &config.tls {
        Some(files) => (files.cert.clone(), files.key.clone()),
        None => {
            let dir = data_dir.join("tls");
            (dir.join("cert.pem"), dir.join("key.pem"))
        }
    }
}

/// Builds an acceptor from the configured files, generating the self-signed pair if needed.
pub fn load(config: &Config, data_dir: &Path) -> Result<TlsAcceptor, String> {
    let (cert_path, key_path) = cert_paths(config, data_dir);
    if config.tls.is_none() && !cert_path.exists() {
        generate_self_signed(&config.hostname, &cert_path, &key_path)?;
        log::info!(
            "generated a self-signed certificate for {} in {}",
            config.hostname,
            cert_path.display()
        );
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|iter| iter.collect())
        .map_err(|e| format!("{}: {e}", cert_path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate found", cert_path.display()));
    }
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| format!("{}: {e}", key_path.display()))?;
    let server = server_config(certs, key)?;
    Ok(TlsAcceptor::from(Arc::new(server)))
}

fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("tls: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls: certificate and key do not fit: {e}"))?;
    Ok(config)
}

fn generate_self_signed(hostname: &str, cert_path: &Path, key_path: &Path) -> Result<(), String> {
    let mut names = vec![hostname.to_string()];
    if hostname != "localhost" {
        names.push("localhost".to_string());
    }
    let pair = rcgen::generate_simple_self_signed(names).map_err(|e| format!("rcgen: {e}"))?;
    if let Some(dir) = cert_path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    write_file(key_path, pair.key_pair.serialize_pem().as_bytes(), 0o600)?;
    write_file(cert_path, pair.cert.pem().as_bytes(), 0o644)
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    file.write_all(bytes)
        .and_then(|_| file.sync_all())
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_is_generated_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("lb-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = Config::embedded_default();
        load(&config, &dir).unwrap();
        let (cert, key) = cert_paths(&config, &dir);
        let first = std::fs::read(&cert).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        load(&config, &dir).unwrap();
        assert_eq!(std::fs::read(&cert).unwrap(), first);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
