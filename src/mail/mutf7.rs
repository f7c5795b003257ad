//! Modified UTF-7 mailbox names (RFC 3501 §5.1.3), for IMAP4rev1 clients that have not
//! enabled UTF8=ACCEPT. Names are stored as UTF-8; they are converted at the wire.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// UTF-8 → modified UTF-7.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    let flush = |out: &mut String, pending: &mut Vec<u16>| {
        if pending.is_empty() {
            return;
        }
        out.push('&');
        let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            let chars = chunk.len() + 1;
            for i in 0..chars {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        out.push('-');
        pending.clear();
    };
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut out, &mut pending);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut units = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut units));
        }
    }
    flush(&mut out, &mut pending);
    out
}

/// Modified UTF-7 → UTF-8. Bytes outside printable ASCII are passed through (lenient
/// towards clients that send UTF-8 without enabling it); a malformed `&...-` is an error.
pub fn decode(name: &str) -> Result<String, String> {
    let bad = || format!("Invalid modified UTF-7 in mailbox name {name:?}");
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let end = after.find('-').ok_or_else(bad)?;
        let encoded = &after[..end];
        rest = &after[end + 1..];
        if encoded.is_empty() {
            out.push('&');
            continue;
        }
        let mut bits = 0u32;
        let mut nbits = 0;
        let mut units = Vec::new();
        for b in encoded.bytes() {
            let v = ALPHABET.iter().position(|&a| a == b).ok_or_else(bad)? as u32;
            bits = (bits << 6) | v;
            nbits += 6;
            if nbits >= 16 {
                nbits -= 16;
                units.push((bits >> nbits) as u16);
                bits &= (1 << nbits) - 1;
            }
        }
        // Leftover bits must be zero padding of less than one base64 digit.
        if nbits >= 6 || bits != 0 || units.is_empty() {
            return Err(bad());
        }
        let decoded = String::from_utf16(&units).map_err(|_| bad())?;
        // Printable ASCII must not be encoded; control characters are no names.
        if decoded
            .chars()
            .any(|c| (' '..='~').contains(&c) || c.is_control())
        {
            return Err(bad());
        }
        out.push_str(&decoded);
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for (utf8, wire) in [
            ("INBOX", "INBOX"),
            ("Tom & Jerry", "Tom &- Jerry"),
            ("Entwürfe", "Entw&APw-rfe"),
            ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
            ("😀", "&2D3eAA-"),
        ] {
            assert_eq!(encode(utf8), wire, "{utf8}");
            assert_eq!(decode(wire).unwrap(), utf8, "{wire}");
        }
    }

    #[test]
    fn malformed_is_refused() {
        for bad in [
            "&",
            "&Jjo",
            "&Jjo!-",
            "&AGE-",
            "&2D0-",
            "&U,BTF2-",
            "&ZeVnLIqe",
            "&AAA-",
        ] {
            assert!(decode(bad).is_err(), "{bad}");
        }
        assert_eq!(decode("Entwürfe").unwrap(), "Entwürfe");
    }
}
