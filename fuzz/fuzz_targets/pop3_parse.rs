//! The POP3 command parser must never panic, whatever the line.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|line: &[u8]| {
    let _ = letterbox::pop3::parse::parse_command(line);
});
