//! DKIM (RFC 6376, RFC 8463): keys made by `letterbox dkim generate`, and signing of
//! outbound mail with mail-auth.
//!
//! Keys live in `<data_dir>/dkim/<domain>/<selector>-rsa.rsa.pem` (RSA-2048, PKCS#8) and
//! `<selector>-ed25519.ed25519.pem` (PKCS#8): a DNS name holds one key, so each key gets
//! its own selector. `generate` makes both and prints the two TXT records to publish. A message leaving the queue is signed with every key of its From: domain
//! (else of its envelope sender's domain), when that domain has keys. Many receivers do
//! not check Ed25519 yet, so both signatures go out. Signing needs the whole message in
//! memory, so one message is signed at a time and messages larger than
//! [`MAX_SIGNED_MESSAGE`] go out unsigned.

use crate::store::{chunk_count, QueuedMessage, Store};
use mail_auth::common::crypto::{DkimKey, Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Largest message that is signed (the signer needs all of it at once).
pub const MAX_SIGNED_MESSAGE: u64 = 32 << 20;

/// Header fields covered by the signature (those present are signed).
const SIGNED_HEADERS: [&str; 11] = [
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
];

pub fn key_dir(data_dir: &Path, domain: &str) -> PathBuf {
    data_dir.join("dkim").join(domain.to_ascii_lowercase())
}

/// Makes an RSA-2048 and an Ed25519 key for `domain` under `selector`, writes them (mode
/// 0600, owned like the data directory) and returns the DNS records to publish.
pub fn generate(data_dir: &Path, domain: &str, selector: &str) -> Result<Vec<String>, String> {
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    use std::io::Write;
    let valid = |s: &str| {
        !s.is_empty()
            && s.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
    };
    if !valid(domain) || !valid(selector) {
        return Err("domain and selector must be DNS names".into());
    }
    let dir = key_dir(data_dir, domain);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // Each key needs its own selector: one TXT record per name.
    let (rsa_selector, ed_selector) = (format!("{selector}-rsa"), format!("{selector}-ed25519"));
    let rsa_path = dir.join(format!("{rsa_selector}.rsa.pem"));
    let ed_path = dir.join(format!("{ed_selector}.ed25519.pem"));
    if rsa_path.exists() || ed_path.exists() {
        return Err(format!(
            "keys for selector {selector} of {domain} exist already (pick a new selector to rotate)"
        ));
    }
    let rsa_key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048)
        .map_err(|e| format!("RSA key generation: {e}"))?;
    let rsa_pem = rsa_key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| e.to_string())?;
    let rsa_public = rsa::RsaPublicKey::from(&rsa_key)
        .to_public_key_der()
        .map_err(|e| e.to_string())?;
    let rng = ring::rand::SystemRandom::new();
    let ed_pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|_| "Ed25519 key generation failed".to_string())?;
    let ed_pair = ring::signature::Ed25519KeyPair::from_pkcs8(ed_pkcs8.as_ref())
        .map_err(|_| "Ed25519 key generation failed".to_string())?;
    use ring::signature::KeyPair;
    let ed_public = ed_pair.public_key().as_ref().to_vec();
    let ed_pem = pem_wrap("PRIVATE KEY", ed_pkcs8.as_ref());
    let owner = std::fs::metadata(data_dir).ok();
    for (path, text) in [
        (&rsa_path, rsa_pem.as_bytes()),
        (&ed_path, ed_pem.as_bytes()),
    ] {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode_0600()
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        file.write_all(text)
            .and_then(|_| file.sync_all())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        // The server runs unprivileged: it must be able to read what root wrote.
        if let Some(meta) = &owner {
            use std::os::unix::fs::MetadataExt;
            for p in [path.as_path(), dir.as_path(), dir.parent().unwrap_or(&dir)] {
                let _ = nix::unistd::chown(
                    p,
                    Some(nix::unistd::Uid::from_raw(meta.uid())),
                    Some(nix::unistd::Gid::from_raw(meta.gid())),
                );
            }
        }
    }
    let name = |s: &str| format!("{s}._domainkey.{domain}");
    Ok(vec![
        txt_line(&name(&rsa_selector), &rsa_record(rsa_public.as_bytes())),
        txt_line(&name(&ed_selector), &ed25519_record(&ed_public)),
    ])
}

trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}

impl Mode0600 for std::fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(0o600)
    }
}

fn pem_wrap(label: &str, der: &[u8]) -> String {
    let b64 = crate::auth::encode_base64(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A TXT value as quoted strings of at most 255 octets (RFC 1035 §3.3.14).
fn txt_strings(value: &str) -> String {
    let parts: Vec<String> = value
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    parts.join(" ")
}

/// The DNS record values of the stored keys of `domain`, as (selector, TXT value), RSA first:
/// what `letterbox check` compares with what is published.
pub fn public_records(data_dir: &Path, domain: &str) -> Vec<(String, String)> {
    use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
    let dir = key_dir(data_dir, domain);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    let mut records = Vec::new();
    for name in &names {
        let Ok(pem) = std::fs::read_to_string(dir.join(name)) else {
            continue;
        };
        if let Some(selector) = name.strip_suffix(".rsa.pem") {
            let public = rsa::RsaPrivateKey::from_pkcs8_pem(&pem)
                .ok()
                .and_then(|key| rsa::RsaPublicKey::from(&key).to_public_key_der().ok());
            if let Some(der) = public {
                records.push((selector.to_string(), rsa_record(der.as_bytes())));
            }
        }
    }
    for name in &names {
        if let Some(selector) = name.strip_suffix(".ed25519.pem") {
            use ring::signature::KeyPair;
            let public = std::fs::read(dir.join(name))
                .ok()
                .and_then(|pem| PrivateKeyDer::from_pem_slice(&pem).ok())
                .and_then(|der| {
                    ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der.secret_der())
                        .ok()
                })
                .map(|pair| pair.public_key().as_ref().to_vec());
            if let Some(public) = public {
                records.push((selector.to_string(), ed25519_record(&public)));
            }
        }
    }
    records
}

fn rsa_record(public_der: &[u8]) -> String {
    format!(
        "v=DKIM1; k=rsa; p={}",
        crate::auth::encode_base64(public_der)
    )
}

fn ed25519_record(public: &[u8]) -> String {
    format!(
        "v=DKIM1; k=ed25519; p={}",
        crate::auth::encode_base64(public)
    )
}

/// A TXT record line in zone-file form.
pub fn txt_line(name: &str, value: &str) -> String {
    format!("{name}. IN TXT {}", txt_strings(value))
}

/// The keys of a domain as (selector, key), RSA first.
pub fn load_keys(data_dir: &Path, domain: &str) -> Vec<(String, DkimKey)> {
    let dir = key_dir(data_dir, domain);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut keys = Vec::new();
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let loaded = if let Some(selector) = name.strip_suffix(".rsa.pem") {
            std::fs::read(&path)
                .ok()
                .and_then(|pem| PrivateKeyDer::from_pem_slice(&pem).ok())
                .and_then(|der| RsaKey::<Sha256>::from_key_der(der).ok())
                .map(|k| (0, selector.to_string(), DkimKey::Rsa(k)))
        } else if let Some(selector) = name.strip_suffix(".ed25519.pem") {
            std::fs::read(&path)
                .ok()
                .and_then(|pem| PrivateKeyDer::from_pem_slice(&pem).ok())
                .and_then(|der| Ed25519Key::from_pkcs8_der(der.secret_der()).ok())
                .map(|k| (1, selector.to_string(), DkimKey::Ed25519(k)))
        } else {
            continue;
        };
        match loaded {
            Some(k) => keys.push(k),
            None => log::error!("dkim: cannot load {}", path.display()),
        }
    }
    keys.sort_by_key(|k| k.0);
    keys.into_iter().map(|(_, s, k)| (s, k)).collect()
}

/// `DKIM-Signature:` header fields for `message`, one per key of `domain`.
pub fn sign(message: &[u8], domain: &str, keys: Vec<(String, DkimKey)>) -> Vec<u8> {
    let mut out = Vec::new();
    for (selector, key) in keys {
        let signed = DkimSigner::from_key(key)
            .domain(domain)
            .selector(&selector)
            .headers(SIGNED_HEADERS)
            .sign(message);
        match signed {
            Ok(signature) => out.extend_from_slice(signature.to_header().as_bytes()),
            Err(e) => log::error!("dkim: signing for {domain} with {selector} failed: {e}"),
        }
    }
    out
}

/// The domain to sign for: the From: header's, else the envelope sender's. Mail that
/// came in from outside unauthenticated and is leaving again (a Sieve redirect, a
/// forwarding alias: our own Received: says `with SMTP`, `ESMTP` or `ESMTPS`, no `A`) is
/// signed only for the SRS domain of its sender, and not at all when its From: claims
/// that domain: a forged From: of ours must not leave here with our aligned signature.
/// What we made ourselves (notices, vacation replies) has no Received: of ours.
fn signing_domains(message: &[u8], sender: &str) -> Vec<String> {
    if came_from_outside(message) {
        let Some((local, domain)) = sender.rsplit_once('@') else {
            return Vec::new();
        };
        let domain = domain.to_ascii_lowercase();
        if !crate::delivery::srs::is_srs(local)
            || from_domain(message).as_deref() == Some(domain.as_str())
        {
            return Vec::new();
        }
        return vec![domain];
    }
    let mut domains = Vec::new();
    if let Some(parsed) = mail_parser::MessageParser::new().parse_headers(message) {
        if let Some(address) = parsed
            .from()
            .and_then(|f| f.first())
            .and_then(|a| a.address())
        {
            if let Some((_, d)) = address.rsplit_once('@') {
                domains.push(d.to_ascii_lowercase());
            }
        }
    }
    if let Some((_, d)) = sender.rsplit_once('@') {
        domains.push(d.to_ascii_lowercase());
    }
    domains
}

/// Whether the first Received: field (ours: the message starts with it once the
/// Return-Path is skipped) records an unauthenticated SMTP arrival (RFC 3848).
fn came_from_outside(message: &[u8]) -> bool {
    let Some(first) = crate::mail::header::fields(message).next() else {
        return false;
    };
    if !first.is("received") || !String::from_utf8_lossy(first.raw).contains("(letterbox)") {
        return false;
    }
    let value = String::from_utf8_lossy(&first.value()).into_owned();
    let protocol = value
        .split_whitespace()
        .skip_while(|w| *w != "with")
        .nth(1)
        .unwrap_or("")
        .to_ascii_uppercase();
    matches!(
        protocol.as_str(),
        "SMTP" | "ESMTP" | "ESMTPS" | "UTF8SMTP" | "UTF8SMTPS"
    )
}

fn from_domain(message: &[u8]) -> Option<String> {
    let parsed = mail_parser::MessageParser::new().parse_headers(message)?;
    let address = parsed.from()?.first()?.address()?;
    Some(address.rsplit_once('@')?.1.to_ascii_lowercase())
}

/// The DKIM-Signature header fields for a queued message, or nothing.
pub async fn sign_queued(store: &Arc<Store>, entry: &QueuedMessage) -> Vec<u8> {
    if entry.size - entry.skip > MAX_SIGNED_MESSAGE {
        return Vec::new();
    }
    let dkim_root = store.data_dir().join("dkim");
    if !dkim_root.is_dir() {
        return Vec::new();
    }
    // The signer needs the whole message in memory: one at a time, whatever the number
    // of outbound connections.
    static SIGNING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);
    let Ok(_turn) = SIGNING.acquire().await else {
        return Vec::new();
    };
    let entry = entry.clone();
    let signed = store
        .call(move |store| {
            let mut message = Vec::with_capacity(entry.size as usize);
            for index in 0..chunk_count(entry.size) {
                message.extend_from_slice(&store.read_chunk(entry.blob, index)?);
            }
            message.drain(..(entry.skip as usize).min(message.len()));
            for domain in signing_domains(&message, &entry.sender) {
                let keys = load_keys(store.data_dir(), &domain);
                if !keys.is_empty() {
                    return Ok(sign(&message, &domain, keys));
                }
            }
            Ok(Vec::new())
        })
        .await;
    signed.unwrap_or_else(|e| {
        // The attempt goes on unsigned rather than not at all; the read error will show
        // again when the message itself is streamed.
        log::error!("dkim: reading the message to sign: {e}");
        Vec::new()
    })
}

/// Checks the DKIM signatures of `message` with mail-auth, looking keys up through
/// `dns_servers` (or the system resolver). Returns one line per signature and whether
/// there was at least one and all passed.
pub async fn verify(
    message: &[u8],
    dns_servers: &[std::net::SocketAddr],
) -> Result<(Vec<String>, bool), String> {
    let client = crate::tls::client::ClientConfigs::new(None)?;
    let authenticator =
        crate::dns::Resolver::new(dns_servers.to_vec(), client.verified).authenticator()?;
    let parsed =
        mail_auth::AuthenticatedMessage::parse(message).ok_or("not an RFC 5322 message")?;
    let outputs = authenticator
        .verify_dkim(mail_auth::Parameters::new(&parsed))
        .await;
    let mut lines = Vec::new();
    let mut all_pass = !outputs.is_empty();
    for output in &outputs {
        let pass = matches!(output.result(), mail_auth::DkimResult::Pass);
        all_pass &= pass;
        let who = output
            .signature()
            .map(|s| format!("d={} s={} a={:?}", s.d, s.s, s.a))
            .unwrap_or_else(|| "unparsable signature".into());
        lines.push(format!("{who}: {:?}", output.result()));
    }
    if outputs.is_empty() {
        lines.push("no DKIM signature".into());
    }
    Ok((lines, all_pass))
}

#[cfg(test)]
mod tests {
    use super::signing_domains;

    fn message(protocol: &str, from: &str) -> Vec<u8> {
        format!(
            "Received: from client.test ([192.0.2.1])\r\n\tby mx.example.org (letterbox) with {protocol} id 1;\r\n\
             \tTue, 1 Dec 2026 10:00:00 +0000\r\nFrom: {from}\r\nSubject: x\r\n\r\nbody\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn forwarded_mail_is_not_signed_for_a_from_of_ours() {
        let srs = "SRS0=abcdefgh=aa=remote.test=someone@example.org";
        // Our user's own mail: the From: domain, then the sender's.
        assert_eq!(
            signing_domains(&message("ESMTPSA", "a@example.org"), "a@example.org"),
            ["example.org", "example.org"]
        );
        // Forwarded from outside: only the SRS domain, and nothing for a forged From: of it.
        assert_eq!(
            signing_domains(&message("ESMTPS", "x@remote.test"), srs),
            ["example.org"]
        );
        assert!(signing_domains(&message("ESMTPS", "ceo@example.org"), srs).is_empty());
        assert!(signing_domains(&message("ESMTP", "ceo@example.org"), "").is_empty());
        // What we made ourselves has no Received: of ours.
        assert_eq!(
            signing_domains(b"From: bob@example.org\r\n\r\nAway\r\n", ""),
            ["example.org"]
        );
    }
}
