//! Mail address and domain normalisation shared by the store, SMTP and the CLI.
//!
//! Addresses are compared case-insensitively (the whole address is lower-cased): real
//! users expect `Alice@Example.org` and `alice@example.org` to be one mailbox, although
//! RFC 5321 lets a server treat local parts as case-sensitive.

/// Lower-cases and checks a domain name (LDH labels, or UTF-8 labels for SMTPUTF8).
pub fn normalize_domain(domain: &str) -> Option<String> {
    let d = domain.trim().trim_end_matches('.').to_lowercase();
    if d.is_empty() || d.len() > 253 {
        return None;
    }
    let ok = d.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
    });
    ok.then_some(d)
}

/// Lower-cases and checks `local@domain`. Returns `(address, domain)`.
pub fn normalize_address(address: &str) -> Option<(String, String)> {
    let address = address.trim();
    let (local, domain) = address.rsplit_once('@')?;
    if local.is_empty() || local.len() > 64 || local.chars().any(|c| c.is_control() || c == ' ') {
        return None;
    }
    let domain = normalize_domain(domain)?;
    Some((format!("{}@{}", local.to_lowercase(), domain), domain))
}

/// The address with a `+detail` sub-address removed (`alice+lists@x` → `alice@x`).
pub fn without_subaddress(address: &str) -> Option<String> {
    let (local, domain) = address.rsplit_once('@')?;
    let (base, _) = local.split_once('+')?;
    (!base.is_empty()).then(|| format!("{base}@{domain}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        assert_eq!(normalize_domain("Example.ORG."), Some("example.org".into()));
        assert_eq!(normalize_domain("bücher.de"), Some("bücher.de".into()));
        assert_eq!(normalize_domain("a..b"), None);
        assert_eq!(normalize_domain("-a.b"), None);
        assert_eq!(normalize_domain(""), None);
        assert_eq!(normalize_domain("a b"), None);
    }

    #[test]
    fn addresses() {
        assert_eq!(
            normalize_address("Alice@Example.org"),
            Some(("alice@example.org".into(), "example.org".into()))
        );
        assert_eq!(normalize_address("alice"), None);
        assert_eq!(normalize_address("@example.org"), None);
        assert_eq!(normalize_address("a b@example.org"), None);
        assert_eq!(without_subaddress("al+x@d.org"), Some("al@d.org".into()));
        assert_eq!(without_subaddress("al@d.org"), None);
        assert_eq!(without_subaddress("+x@d.org"), None);
    }
}
