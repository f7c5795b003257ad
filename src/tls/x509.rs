//! What renewal and `letterbox check` need to know of a certificate: its lifetime and names.

use x509_cert::der::oid::AssociatedOid;
use x509_cert::der::Decode;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;

/// A certificate's validity window (Unix seconds) and DNS names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub not_before: i64,
    pub not_after: i64,
    pub names: Vec<String>,
    pub issuer: String,
}

impl CertInfo {
    pub fn parse(der: &[u8]) -> Result<CertInfo, String> {
        let cert =
            x509_cert::Certificate::from_der(der).map_err(|e| format!("certificate: {e}"))?;
        let tbs = &cert.tbs_certificate;
        let secs = |t: x509_cert::time::Time| t.to_unix_duration().as_secs() as i64;
        let mut names = Vec::new();
        for ext in tbs.extensions.iter().flatten() {
            if ext.extn_id != SubjectAltName::OID {
                continue;
            }
            let san = SubjectAltName::from_der(ext.extn_value.as_bytes())
                .map_err(|e| format!("subjectAltName: {e}"))?;
            for name in san.0 {
                if let GeneralName::DnsName(dns) = name {
                    names.push(dns.to_string().to_ascii_lowercase());
                }
            }
        }
        Ok(CertInfo {
            not_before: secs(tbs.validity.not_before),
            not_after: secs(tbs.validity.not_after),
            names,
            issuer: tbs.issuer.to_string(),
        })
    }

    /// Whether `name` is on the certificate (a `*.` name covers one label).
    pub fn covers(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.names.iter().any(|n| {
            *n == name
                || n.strip_prefix("*.")
                    .is_some_and(|base| name.split_once('.').is_some_and(|(_, rest)| rest == base))
        })
    }

    /// When renewal is due: two thirds into the lifetime.
    pub fn renew_at(&self) -> i64 {
        self.not_before + (self.not_after - self.not_before) * 2 / 3
    }

    /// Whether a CA (not we) issued `der` for `host`: what MTA-STS senders will accept.
    pub fn trusted_for(der: &[u8], host: &str) -> bool {
        !CertInfo::self_signed(der) && CertInfo::parse(der).is_ok_and(|info| info.covers(host))
    }

    /// Whether the issuer and subject are the same (ours, self-signed).
    pub fn self_signed(der: &[u8]) -> bool {
        x509_cert::Certificate::from_der(der)
            .is_ok_and(|c| c.tbs_certificate.issuer == c.tbs_certificate.subject)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rcgen_certificates() {
        let pair = rcgen::generate_simple_self_signed(vec![
            "mail.example.org".to_string(),
            "*.example.net".to_string(),
        ])
        .unwrap();
        let der = pair.cert.der();
        let info = CertInfo::parse(der).unwrap();
        assert_eq!(info.names, ["mail.example.org", "*.example.net"]);
        assert!(info.covers("MAIL.example.org."));
        assert!(info.covers("mx.example.net"));
        assert!(!info.covers("a.b.example.net"));
        assert!(!info.covers("example.org"));
        assert!(info.not_after > info.not_before);
        assert!(CertInfo::self_signed(der));
        assert!(CertInfo::parse(b"\x30\x03\x02\x01\x01").is_err());
    }
}
