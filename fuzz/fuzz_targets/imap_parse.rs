//! The IMAP command parser and the argument helpers must never panic, whatever the bytes;
//! neither must ENVELOPE/BODYSTRUCTURE on arbitrary message bytes.
#![no_main]
use letterbox::imap::parse::{
    fetch_items, parse_command, parse_date_time, parse_flags, search_keys, search_return,
    sequence_set, trailing_literal,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let _ = trailing_literal(input);
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
    let _ = letterbox::imap::structure::describe(input, true);
    // BINARY decoding of every part path up to 3 levels.
    for path in [&[][..], &[1], &[2], &[1, 1], &[2, 1, 3]] {
        let _ = letterbox::imap::message::binary_section(input, path);
    }
});
