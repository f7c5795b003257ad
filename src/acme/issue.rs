//! One certificate order, start to finish: account, order, challenges, CSR, download.

use crate::config::{Acme, Challenge};
use crate::floor::Shared;
use crate::http::client::Client;
use crate::tls::x509::CertInfo;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The account as saved: the directory it belongs to, and instant-acme's credentials.
#[derive(Serialize, Deserialize)]
struct SavedAccount {
    directory: String,
    credentials: AccountCredentials,
}

/// Requests a certificate for `names` and, once issued, saves and serves it.
pub async fn issue(
    shared: &Arc<Shared>,
    acme: &Acme,
    names: &[String],
    data_dir: &Path,
) -> Result<CertInfo, String> {
    let client = http_client(shared, acme)?;
    let account = account(acme, data_dir, client).await?;
    let mut answered = Vec::new();
    let result = order(shared, acme, &account, names, &mut answered).await;
    for answer in answered {
        match answer {
            Answered::Token(token) => shared.tls.set_http_token(&token, None),
            Answered::Alpn(name) => shared.tls.set_challenge(&name, None),
        }
    }
    let (chain_pem, key_pem) = result?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("the CA's certificate chain: {e}"))?;
    let info = CertInfo::parse(certs.first().ok_or("the CA sent no certificate")?)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| e.to_string())?;
    let certified = crate::tls::certified_key(certs, key)?;
    let (cert_path, key_path) = crate::tls::acme_paths(data_dir);
    crate::tls::write_file(&key_path, key_pem.as_bytes(), 0o600)?;
    crate::tls::write_file(&cert_path, chain_pem.as_bytes(), 0o644)?;
    shared.tls.replace(certified);
    Ok(info)
}

fn http_client(shared: &Shared, acme: &Acme) -> Result<Client, String> {
    let config = shared.config();
    let roots = crate::tls::client::ClientConfigs::new(acme.ca_file.as_deref())?;
    let dns = crate::dns::Resolver::new(config.relay.dns_server_addrs(), roots.verified.clone());
    Ok(Client::new(roots.verified, dns, Duration::from_secs(30)))
}

/// The saved account for this directory, or a new one (saved before use).
async fn account(acme: &Acme, data_dir: &Path, client: Client) -> Result<Account, String> {
    let path = super::dir(data_dir).join("account.json");
    if let Ok(text) = std::fs::read(&path) {
        match serde_json::from_slice::<SavedAccount>(&text) {
            Ok(saved) if saved.directory == acme.directory => {
                return Account::builder_with_http(Box::new(client))
                    .from_credentials(saved.credentials)
                    .await
                    .map_err(|e| format!("{}: {e}", acme.directory));
            }
            Ok(_) => log::info!("acme: new directory {}, new account", acme.directory),
            Err(e) => log::warn!("acme: {}: {e}; creating a new account", path.display()),
        }
    }
    let contact: Vec<&str> = acme.contact.iter().map(String::as_str).collect();
    let (account, credentials) = Account::builder_with_http(Box::new(client))
        .create(
            &NewAccount {
                contact: &contact,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            acme.directory.clone(),
            None,
        )
        .await
        .map_err(|e| format!("{}: creating the account: {e}", acme.directory))?;
    let saved = SavedAccount {
        directory: acme.directory.clone(),
        credentials,
    };
    let text = serde_json::to_vec_pretty(&saved).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(super::dir(data_dir)).map_err(|e| e.to_string())?;
    crate::tls::write_file(&path, &text, 0o600)?;
    log::info!(
        "acme: account {} created at {}",
        account.id(),
        acme.directory
    );
    Ok(account)
}

enum Answered {
    Token(String),
    Alpn(String),
}

/// Places the order and answers its challenges; the chain and key as PEM.
async fn order(
    shared: &Shared,
    acme: &Acme,
    account: &Account,
    names: &[String],
    answered: &mut Vec<Answered>,
) -> Result<(String, String), String> {
    let identifiers: Vec<Identifier> = names.iter().cloned().map(Identifier::Dns).collect();
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(|e| format!("new order: {e}"))?;
    let wanted = match acme.challenge {
        Challenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
        Challenge::Http01 => ChallengeType::Http01,
    };
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.map_err(|e| format!("authorization: {e}"))?;
        match authz.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => return Err(format!("authorization is {other:?}")),
        }
        let mut challenge = authz
            .challenge(wanted.clone())
            .ok_or_else(|| format!("the CA offers no {wanted:?} challenge"))?;
        let name = challenge.identifier().to_string();
        let key_auth = challenge.key_authorization();
        match acme.challenge {
            Challenge::Http01 => {
                shared
                    .tls
                    .set_http_token(&challenge.token, Some(key_auth.as_str().to_string()));
                answered.push(Answered::Token(challenge.token.clone()));
            }
            Challenge::TlsAlpn01 => {
                let cert = alpn_certificate(&name, key_auth.digest().as_ref())?;
                shared.tls.set_challenge(&name, Some(cert));
                answered.push(Answered::Alpn(name.clone()));
            }
        }
        challenge
            .set_ready()
            .await
            .map_err(|e| format!("{name}: challenge: {e}"))?;
    }
    let retries = RetryPolicy::new()
        .initial_delay(Duration::from_millis(500))
        .timeout(Duration::from_secs(90));
    let status = order
        .poll_ready(&retries)
        .await
        .map_err(|e| format!("waiting for validation: {e}"))?;
    if status != OrderStatus::Ready {
        return Err(failure(&mut order, status).await);
    }
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let csr = rcgen::CertificateParams::new(names.to_vec())
        .and_then(|params| params.serialize_request(&key))
        .map_err(|e| format!("CSR: {e}"))?;
    order
        .finalize_csr(csr.der())
        .await
        .map_err(|e| format!("finalize: {e}"))?;
    let chain = order
        .poll_certificate(&retries)
        .await
        .map_err(|e| format!("download: {e}"))?;
    Ok((chain, key.serialize_pem()))
}

/// Why an order did not become ready, from the challenge errors the CA gave.
async fn failure(order: &mut instant_acme::Order, status: OrderStatus) -> String {
    let mut why = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(authz)) = authorizations.next().await {
        let name = authz.identifier().to_string();
        for challenge in &authz.challenges {
            if let Some(problem) = &challenge.error {
                why.push(format!("{name}: {problem}"));
            }
        }
    }
    if why.is_empty() {
        format!("the order is {status:?}")
    } else {
        format!("validation failed: {}", why.join("; "))
    }
}

/// The self-signed certificate of a TLS-ALPN-01 answer (RFC 8737 3): the name, and the
/// SHA-256 of the key authorization in a critical acmeIdentifier extension.
fn alpn_certificate(name: &str, digest: &[u8]) -> Result<Arc<rustls::sign::CertifiedKey>, String> {
    let mut params =
        rcgen::CertificateParams::new(vec![name.to_string()]).map_err(|e| e.to_string())?;
    params
        .custom_extensions
        .push(rcgen::CustomExtension::new_acme_identifier(digest));
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    let key_der = PrivateKeyDer::try_from(key.serialize_der()).map_err(|e| e.to_string())?;
    crate::tls::challenge_key(cert.der().clone(), key_der)
}
