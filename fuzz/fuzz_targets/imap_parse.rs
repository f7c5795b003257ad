//! The IMAP command parser, the typed command parsers (every command, and APPEND's head)
//! and the argument helpers must never panic, whatever the bytes; neither must
//! ENVELOPE/BODYSTRUCTURE, the address, sort-field and binary-part helpers and the
//! threading algorithms on arbitrary message bytes, nor the IMAP URL parser. The parser is
//! pure: the same bytes must give the same typed command twice.
#![no_main]
use letterbox::imap::parse::{
    append_request, fetch_items, parse_command, parse_date_time, parse_flags, parse_request,
    search_keys, search_return, sequence_set, tag_of, trailing_literal,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let _ = trailing_literal(input);
    let _ = tag_of(input);
    // Typed commands, with mailbox names as modified UTF-7 and as UTF-8.
    for utf8 in [false, true] {
        let first = parse_request(input, utf8);
        assert_eq!(first, parse_request(input, utf8));
        let _ = append_request(input, utf8);
    }
    if let Ok(command) = parse_command(input) {
        let _ = search_keys(&command.args);
        let _ = letterbox::imap::parse::notify::notify(&command.args, false);
        if let Ok((_, rest)) = search_return(&command.args) {
            let _ = search_keys(rest);
        }
        for arg in &command.args {
            let _ = fetch_items(arg);
            let _ = parse_flags(arg);
            if let Ok(text) = arg.text() {
                let _ = sequence_set(&text);
                let _ = parse_date_time(&text);
            }
        }
    }
    let _ = letterbox::mail::structure::describe(input, true);
    let _ = letterbox::mail::address::parse(input);
    let text = String::from_utf8_lossy(input);
    let _ = letterbox::imap::parse::url::imap_url(&text);
    let (base, _) = letterbox::mail::sortkeys::base_subject(&text);
    assert_eq!(letterbox::mail::sortkeys::base_subject(&base).0, base, "base subjects are fixed points");
    // The input as one message, and its lines as the headers of several, threaded.
    let keys: Vec<_> = std::iter::once(input)
        .chain(input.split(|&b| b == b'\n').take(64))
        .map(letterbox::mail::sortkeys::sort_keys)
        .collect();
    let items: Vec<letterbox::imap::thread::Item> = keys
        .iter()
        .enumerate()
        .map(|(i, keys)| letterbox::imap::thread::Item {
            number: i as u32 + 1,
            sent: keys.sent.unwrap_or(0),
            keys,
        })
        .collect();
    let _ = letterbox::imap::thread::references(&items);
    let _ = letterbox::imap::thread::ordered_subject(&items);
    if let Some(rewritten) = letterbox::mail::binary::encode_binary_parts(input) {
        assert!(!rewritten.is_empty());
    }
    // BINARY decoding of every part path up to 3 levels.
    for path in [&[][..], &[1], &[2], &[1, 1], &[2, 1, 3]] {
        let _ = letterbox::imap::message::binary_section(input, path);
    }
});
