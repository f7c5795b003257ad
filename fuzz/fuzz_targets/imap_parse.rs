//! The IMAP command parser, the typed command parsers (every command, and APPEND's head)
//! and the argument helpers must never panic, whatever the bytes; neither must
//! ENVELOPE/BODYSTRUCTURE on arbitrary message bytes. The parser is pure: the same bytes
//! must give the same typed command twice.
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
    // BINARY decoding of every part path up to 3 levels.
    for path in [&[][..], &[1], &[2], &[1, 1], &[2, 1, 3]] {
        let _ = letterbox::imap::message::binary_section(input, path);
    }
});
