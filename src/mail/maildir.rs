//! Maildir names (cr.yp.to/proto/maildir.html, Dovecot's Maildir++ folders and keyword
//! letters): pure functions from names to flags and back.
//!
//! A message file is `cur/<unique>:2,<info>`: info letters `D` draft, `F` flagged, `P`
//! passed (forwarded), `R` replied, `S` seen, `T` trashed, in ASCII order; Dovecot adds
//! `a`..`z` for the keywords its `dovecot-keywords` file numbers 0..25. A Maildir++ tree
//! keeps INBOX at its root and each folder in `.<name>`, with `.` between levels and
//! names in modified UTF-7, as Dovecot writes them.

/// IMAP system flags, as the store's bits (see `store::flags`).
pub mod bits {
    pub const SEEN: u8 = 1;
    pub const ANSWERED: u8 = 2;
    pub const FLAGGED: u8 = 4;
    pub const DELETED: u8 = 8;
    pub const DRAFT: u8 = 16;
}

/// The keyword Maildir's `P` (passed) stands for.
pub const FORWARDED: &str = "$Forwarded";
/// Keyword letters Dovecot has: `a` to `z`.
pub const KEYWORD_LETTERS: usize = 26;

/// The unique part of a file name (before `:2,` or `:`), which stays when flags change.
pub fn unique(name: &str) -> &str {
    name.split_once(':').map_or(name, |(u, _)| u)
}

/// System flags, whether `P` was set, and keyword letters' indexes from a file name.
pub fn parse_info(name: &str) -> (u8, bool, Vec<usize>) {
    let Some((_, info)) = name.split_once(":2,") else {
        return (0, false, Vec::new());
    };
    let mut flags = 0;
    let mut passed = false;
    let mut keywords = Vec::new();
    for c in info.chars() {
        match c {
            'D' => flags |= bits::DRAFT,
            'F' => flags |= bits::FLAGGED,
            'P' => passed = true,
            'R' => flags |= bits::ANSWERED,
            'S' => flags |= bits::SEEN,
            'T' => flags |= bits::DELETED,
            'a'..='z' => keywords.push(c as usize - 'a' as usize),
            _ => {}
        }
    }
    (flags, passed, keywords)
}

/// The info part (`:2,...`) for these flags and keyword letters' indexes.
pub fn info(flags: u8, passed: bool, keywords: &[usize]) -> String {
    let mut s = String::from(":2,");
    for (bit, c) in [(bits::DRAFT, 'D'), (bits::FLAGGED, 'F')] {
        if flags & bit != 0 {
            s.push(c);
        }
    }
    if passed {
        s.push('P');
    }
    for (bit, c) in [
        (bits::ANSWERED, 'R'),
        (bits::SEEN, 'S'),
        (bits::DELETED, 'T'),
    ] {
        if flags & bit != 0 {
            s.push(c);
        }
    }
    let mut letters: Vec<usize> = keywords
        .iter()
        .copied()
        .filter(|&k| k < KEYWORD_LETTERS)
        .collect();
    letters.sort_unstable();
    letters.dedup();
    for k in letters {
        s.push((b'a' + k as u8) as char);
    }
    s
}

/// Dovecot's `dovecot-keywords` file: `<index> <keyword>` lines.
pub fn parse_keywords_file(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .filter_map(|line| {
            let (n, word) = line.split_once(' ')?;
            let n: usize = n.parse().ok()?;
            (n < KEYWORD_LETTERS && !word.is_empty()).then(|| (n, word.to_string()))
        })
        .collect()
}

/// The `dovecot-keywords` text for keywords numbered in this order.
pub fn keywords_file(keywords: &[String]) -> String {
    keywords
        .iter()
        .take(KEYWORD_LETTERS)
        .enumerate()
        .map(|(i, k)| format!("{i} {k}\n"))
        .collect()
}

/// The mailbox a Maildir++ folder directory (`.A.B`) holds (`A/B`); None for other names.
pub fn folder_mailbox(dir_name: &str) -> Option<String> {
    let name = dir_name.strip_prefix('.')?;
    if name.is_empty() || name.split('.').any(str::is_empty) {
        return None;
    }
    let name = name.replace('.', "/");
    Some(super::mutf7::decode(&name).unwrap_or(name))
}

/// The Maildir++ directory name of a mailbox (`A/B` is `.A.B`); INBOX lives at the root
/// (None). A `.` inside a level, which Maildir++ cannot say, becomes `_`.
pub fn mailbox_folder(mailbox: &str) -> Option<String> {
    if mailbox.eq_ignore_ascii_case("INBOX") {
        return None;
    }
    let levels: Vec<String> = mailbox
        .split('/')
        .map(|l| super::mutf7::encode(&l.replace('.', "_")))
        .collect();
    Some(format!(".{}", levels.join(".")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_round_trip() {
        let name = "1700000000.M1P2.host,S=120:2,FPRSab";
        assert_eq!(unique(name), "1700000000.M1P2.host,S=120");
        let (flags, passed, keywords) = parse_info(name);
        assert_eq!(flags, bits::FLAGGED | bits::ANSWERED | bits::SEEN);
        assert!(passed);
        assert_eq!(keywords, vec![0, 1]);
        assert_eq!(info(flags, passed, &keywords), ":2,FPRSab");
        assert_eq!(info(bits::DRAFT | bits::DELETED, false, &[]), ":2,DT");
        assert_eq!(parse_info("1700000000.x.host"), (0, false, vec![]));
    }

    #[test]
    fn folders() {
        assert_eq!(folder_mailbox(".Archive.2024"), Some("Archive/2024".into()));
        assert_eq!(folder_mailbox("cur"), None);
        assert_eq!(folder_mailbox(".."), None);
        assert_eq!(mailbox_folder("Archive/2024"), Some(".Archive.2024".into()));
        assert_eq!(mailbox_folder("inbox"), None);
        assert_eq!(mailbox_folder("v1.2"), Some(".v1_2".into()));
        assert_eq!(
            mailbox_folder("Entwürfe/A&B"),
            Some(".Entw&APw-rfe.A&-B".into())
        );
        assert_eq!(
            folder_mailbox(".Entw&APw-rfe.A&-B"),
            Some("Entwürfe/A&B".into())
        );
        let text = keywords_file(&["$Important".into(), "work".into()]);
        assert_eq!(text, "0 $Important\n1 work\n");
        assert_eq!(
            parse_keywords_file(&text),
            vec![(0, "$Important".into()), (1, "work".into())]
        );
    }
}
