//! The ManageSieve command parser and its helpers must never panic, whatever the bytes,
//! and must be pure: the same bytes give the same command twice.
#![no_main]
use letterbox::managesieve::parse::{literal_at_end, lone_string, parse_command, quote};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let first = parse_command(input);
    assert_eq!(first, parse_command(input));
    let _ = literal_at_end(input);
    let _ = lone_string(input);
    // A quoted reply parses back to the same bytes.
    if !input.is_empty() {
        let mut line = b"NOOP ".to_vec();
        line.extend_from_slice(&quote(input));
        line.extend_from_slice(b"\r\n");
        if let Ok(letterbox::managesieve::parse::Command::Noop { tag: Some(tag) }) =
            parse_command(&line)
        {
            assert_eq!(tag.as_bytes(), input);
        }
    }
});
