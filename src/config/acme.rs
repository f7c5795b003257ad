//! `[acme]`: certificates from an ACME CA (RFC 8555), see [`crate::acme`].

use serde::Deserialize;
use std::path::PathBuf;

/// Let's Encrypt's production directory.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acme {
    /// The CA's directory URL.
    #[serde(default = "default_directory")]
    pub directory: String,
    /// Contact URLs for the account, e.g. `mailto:postmaster@example.org`.
    #[serde(default)]
    pub contact: Vec<String>,
    /// Names on the certificate; empty means the host name alone.
    #[serde(default)]
    pub domains: Vec<String>,
    /// How the CA checks that we hold the names.
    #[serde(default)]
    pub challenge: Challenge,
    /// Extra roots (PEM) to trust the directory's HTTPS certificate: a private or test CA.
    pub ca_file: Option<PathBuf>,
}

fn default_directory() -> String {
    LETS_ENCRYPT.to_string()
}

/// The challenge types we answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum Challenge {
    /// RFC 8737, on the `https` listener (port 443).
    #[default]
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
    /// RFC 8555 8.3, on the `http` listener (port 80).
    #[serde(rename = "http-01")]
    Http01,
}

impl Acme {
    /// The names to request: `domains`, or the host name.
    pub fn names(&self, hostname: &str) -> Vec<String> {
        let names = if self.domains.is_empty() {
            vec![hostname.to_string()]
        } else {
            self.domains.clone()
        };
        let mut names: Vec<String> = names
            .iter()
            .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
            .collect();
        names.dedup();
        names
    }

    pub(super) fn validate(&self) -> Result<(), String> {
        if !self.directory.starts_with("https://") {
            return Err(format!(
                "directory {:?} must be an https URL",
                self.directory
            ));
        }
        for c in &self.contact {
            if !c.starts_with("mailto:") {
                return Err(format!("contact {c:?} must be a mailto: URL"));
            }
        }
        for d in &self.domains {
            if d.starts_with("*.") {
                return Err(format!(
                    "{d:?}: wildcard names need DNS-01, which letterbox does not do"
                ));
            }
            if crate::address::normalize_domain(d).is_none() {
                return Err(format!("{d:?} is not a domain name"));
            }
        }
        Ok(())
    }
}
