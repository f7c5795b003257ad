//! TLS for every listener: rustls with the ring provider, TLS 1.2 and 1.3 only.
//!
//! The certificate comes from ACME (`<data_dir>/acme/`, see [`crate::acme`]) once one was
//! issued, else from the configured PEM files or, without `[tls]`, from a self-signed pair
//! generated on first start into `<data_dir>/tls/` (rcgen) and kept there, so clients that
//! pin it keep working across restarts.
//!
//! Every handshake asks [`Certs`] for the certificate, so a renewed certificate (SIGHUP, or
//! ACME) reaches new connections at once while running sessions keep theirs. The web
//! listeners negotiate ALPN: `acme-tls/1` handshakes get the TLS-ALPN-01 challenge
//! certificate for their name (RFC 8737), `http/1.1` the real one. The HTTP-01 answers sit
//! here too: everything an ACME CA is shown to prove we hold the names. The mail listeners
//! negotiate no ALPN, so clients that offer some other protocol are not refused.

pub mod client;
pub mod x509;

use crate::config::Config;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use tokio_rustls::TlsAcceptor;

/// The ALPN protocol of TLS-ALPN-01 challenges.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The certificates handshakes choose from.
#[derive(Debug)]
pub struct Certs {
    current: RwLock<Arc<CertifiedKey>>,
    /// TLS-ALPN-01 challenge certificates by lower-case name.
    challenges: RwLock<HashMap<String, Arc<CertifiedKey>>>,
    /// HTTP-01 answers: token to key authorization (served by [`crate::web`]).
    http_tokens: RwLock<HashMap<String, String>>,
}

/// What one kind of listener serves from [`Certs`]: only the web listeners know
/// `acme-tls/1` and answer with challenge certificates.
#[derive(Debug)]
struct Resolver {
    certs: Arc<Certs>,
    acme: bool,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let acme = self.acme
            && hello
                .alpn()
                .is_some_and(|mut offered| offered.any(|p| p == ACME_TLS_ALPN));
        if acme {
            let name = hello.server_name()?.to_ascii_lowercase();
            return self
                .certs
                .challenges
                .read()
                .expect("tls lock")
                .get(&name)
                .cloned();
        }
        Some(self.certs.current.read().expect("tls lock").clone())
    }
}

/// The TLS server side: one certificate store, two acceptors over it.
pub struct TlsContext {
    certs: Arc<Certs>,
    mail: TlsAcceptor,
    web: TlsAcceptor,
}

impl TlsContext {
    pub fn new(key: Arc<CertifiedKey>) -> Result<TlsContext, String> {
        let certs = Arc::new(Certs {
            current: RwLock::new(key),
            challenges: RwLock::new(HashMap::new()),
            http_tokens: RwLock::new(HashMap::new()),
        });
        let mail = server_config(
            Resolver {
                certs: certs.clone(),
                acme: false,
            },
            Vec::new(),
        )?;
        let web = server_config(
            Resolver {
                certs: certs.clone(),
                acme: true,
            },
            vec![ACME_TLS_ALPN.to_vec(), b"http/1.1".to_vec()],
        )?;
        Ok(TlsContext {
            certs,
            mail: TlsAcceptor::from(Arc::new(mail)),
            web: TlsAcceptor::from(Arc::new(web)),
        })
    }

    /// For the mail protocols (implicit TLS and STARTTLS).
    pub fn acceptor(&self) -> TlsAcceptor {
        self.mail.clone()
    }

    /// For the HTTPS listener: ALPN, with the ACME challenge certificates.
    pub fn web_acceptor(&self) -> TlsAcceptor {
        self.web.clone()
    }

    /// Serves `key` to every handshake from now on.
    pub fn replace(&self, key: Arc<CertifiedKey>) {
        *self.certs.current.write().expect("tls lock") = key;
    }

    /// The certificate served now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.certs.current.read().expect("tls lock").clone()
    }

    /// Adds (or with `None` removes) the TLS-ALPN-01 certificate for `name`.
    pub fn set_challenge(&self, name: &str, key: Option<Arc<CertifiedKey>>) {
        let mut challenges = self.certs.challenges.write().expect("tls lock");
        match key {
            Some(key) => challenges.insert(name.to_ascii_lowercase(), key),
            None => challenges.remove(&name.to_ascii_lowercase()),
        };
    }
}

impl TlsContext {
    /// The HTTP-01 answer for `token`, while an order waits for it.
    pub fn http_token(&self, token: &str) -> Option<String> {
        self.certs
            .http_tokens
            .read()
            .expect("tls lock")
            .get(token)
            .cloned()
    }

    /// Offers (or with `None` withdraws) an HTTP-01 answer.
    pub fn set_http_token(&self, token: &str, answer: Option<String>) {
        let mut tokens = self.certs.http_tokens.write().expect("tls lock");
        match answer {
            Some(a) => tokens.insert(token.to_string(), a),
            None => tokens.remove(token),
        };
    }
}

/// The certificate file `serve` would load first (see [`load`]).
pub fn served_cert_path(config: &Config, data_dir: &Path) -> PathBuf {
    let (acme, _) = acme_paths(data_dir);
    if config.acme.is_some() && acme.exists() {
        acme
    } else {
        cert_paths(config, data_dir).0
    }
}

/// Where ACME keeps the certificate it obtained and its key.
pub fn acme_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    let dir = data_dir.join("acme");
    (dir.join("cert.pem"), dir.join("key.pem"))
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

/// The certificate to serve: ACME's once it has one, else the configured files, else the
/// self-signed pair (generated if needed).
pub fn load(config: &Config, data_dir: &Path) -> Result<Arc<CertifiedKey>, String> {
    if config.acme.is_some() {
        let (cert, key) = acme_paths(data_dir);
        if cert.exists() {
            match load_pair(&cert, &key) {
                Ok(pair) => return Ok(pair),
                Err(e) => log::error!("acme certificate unusable, not serving it: {e}"),
            }
        }
    }
    let (cert_path, key_path) = cert_paths(config, data_dir);
    if config.tls.is_none() && !cert_path.exists() {
        generate_self_signed(&config.hostname, &cert_path, &key_path)?;
        log::info!(
            "generated a self-signed certificate for {} in {}",
            config.hostname,
            cert_path.display()
        );
    }
    load_pair(&cert_path, &key_path)
}

/// Reads a PEM certificate chain and its key, checking that they belong together.
pub fn load_pair(cert_path: &Path, key_path: &Path) -> Result<Arc<CertifiedKey>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .and_then(|iter| iter.collect())
        .map_err(|e| format!("{}: {e}", cert_path.display()))?;
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| format!("{}: {e}", key_path.display()))?;
    certified_key(certs, key).map_err(|e| format!("{}: {e}", cert_path.display()))
}

/// Pairs a chain with its key for the ring provider.
pub fn certified_key(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<CertifiedKey>, String> {
    if certs.is_empty() {
        return Err("no certificate found".into());
    }
    let provider = rustls::crypto::ring::default_provider();
    let key = CertifiedKey::from_der(certs, key, &provider)
        .map_err(|e| format!("certificate and key do not fit: {e}"))?;
    Ok(Arc::new(key))
}

/// Pairs a TLS-ALPN-01 challenge certificate with its key. Not checked as
/// [`certified_key`] does: webpki refuses to parse the critical acmeIdentifier extension,
/// which is the point of the certificate (RFC 8737 3).
pub fn challenge_key(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<CertifiedKey>, String> {
    let provider = rustls::crypto::ring::default_provider();
    let signer = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("challenge key: {e}"))?;
    Ok(Arc::new(CertifiedKey::new(vec![cert], signer)))
}

fn server_config(resolver: Resolver, alpn: Vec<Vec<u8>>) -> Result<ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("tls: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = alpn;
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

pub(crate) fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
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
