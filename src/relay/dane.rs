//! DANE for SMTP (RFC 7672): TLSA records, proven by DNSSEC, pin an MX host's certificate.
//!
//! [`crate::relay::route`] looks up `_<port>._tcp.<mx host>` when the resolver validates
//! DNSSEC (`[relay] dnssec`) and the MX RRset was proven; a proven, non-empty TLSA RRset
//! makes STARTTLS mandatory for that host, with the certificate checked here instead of
//! against the web PKI.
//!
//! - DANE-EE (usage 3) records are matched against the server's own certificate, by full
//!   certificate or SubjectPublicKeyInfo (selector 0, 1), exactly or by SHA-256/SHA-512
//!   (matching 0, 1, 2). Names and dates are not checked, as RFC 7672 3.1.1 says.
//! - PKIX-TA and PKIX-EE (0, 1) are unusable for SMTP (RFC 7672 3.1.3); DANE-TA (2) is not
//!   supported yet and counts as unusable too. With no usable record TLS is still required
//!   but not authenticated (RFC 7672 2.2).
//! - No match is a TLS failure: the mail is deferred, never sent in plain text.

use crate::dns::Tlsa;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;

/// The records this verifier can use.
pub fn usable(records: &[Tlsa]) -> Vec<Tlsa> {
    records
        .iter()
        .filter(|r| r.usage == 3 && r.selector <= 1 && r.matching <= 2)
        .cloned()
        .collect()
}

/// Whether any usable record matches the end-entity certificate `der`.
pub fn matches(records: &[Tlsa], der: &[u8]) -> bool {
    use x509_cert::der::{Decode, Encode};
    let spki = x509_cert::Certificate::from_der(der)
        .ok()
        .and_then(|c| c.tbs_certificate.subject_public_key_info.to_der().ok());
    records.iter().any(|r| {
        let selected: &[u8] = match r.selector {
            0 => der,
            1 => match &spki {
                Some(spki) => spki,
                None => return false,
            },
            _ => return false,
        };
        match r.matching {
            0 => selected == r.data.as_slice(),
            1 => {
                ring::digest::digest(&ring::digest::SHA256, selected).as_ref() == r.data.as_slice()
            }
            2 => {
                ring::digest::digest(&ring::digest::SHA512, selected).as_ref() == r.data.as_slice()
            }
            _ => false,
        }
    })
}

/// Checks a server's certificate against its TLSA records.
#[derive(Debug)]
struct Verifier {
    records: Vec<Tlsa>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.records.is_empty() || matches(&self.records, end_entity) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "DANE: no TLSA record matches the certificate".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A TLS connector that accepts exactly the certificates `records` allow.
pub fn connector(records: &[Tlsa]) -> Result<tokio_rustls::TlsConnector, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Verifier {
            records: usable(records),
            provider,
        }))
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_by_certificate_and_key() {
        let pair = rcgen::generate_simple_self_signed(vec!["mx.example.org".into()]).unwrap();
        let der = pair.cert.der().to_vec();
        let spki = pair.key_pair.public_key_der();
        let sha256 = |b: &[u8]| {
            ring::digest::digest(&ring::digest::SHA256, b)
                .as_ref()
                .to_vec()
        };
        let sha512 = |b: &[u8]| {
            ring::digest::digest(&ring::digest::SHA512, b)
                .as_ref()
                .to_vec()
        };
        let tlsa = |usage, selector, matching, data: Vec<u8>| Tlsa {
            usage,
            selector,
            matching,
            data,
        };
        assert!(matches(&[tlsa(3, 1, 1, sha256(&spki))], &der));
        assert!(matches(&[tlsa(3, 0, 1, sha256(&der))], &der));
        assert!(matches(&[tlsa(3, 0, 2, sha512(&der))], &der));
        assert!(matches(&[tlsa(3, 1, 0, spki.clone())], &der));
        assert!(!matches(&[tlsa(3, 1, 1, sha256(b"other"))], &der));
        assert!(
            !matches(&[tlsa(3, 1, 1, sha256(&der))], &der),
            "selector 1 is the key"
        );
        // Usages 0-2 and unknown selectors or matchings are unusable here.
        let records = [
            tlsa(2, 1, 1, sha256(&spki)),
            tlsa(1, 1, 1, sha256(&spki)),
            tlsa(3, 2, 1, sha256(&spki)),
            tlsa(3, 1, 3, sha256(&spki)),
            tlsa(3, 1, 1, sha256(&spki)),
        ];
        assert_eq!(usable(&records), vec![records[4].clone()]);
    }
}
