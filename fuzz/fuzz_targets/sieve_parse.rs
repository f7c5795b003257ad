//! The Sieve lexer, parser and validator must never panic or recurse without bound,
//! whatever the bytes, and must be pure: the same script gives the same result twice.
//! A script that compiles is also run over a small message: the interpreter must end
//! (its step limit) without a panic.
#![no_main]
use letterbox::sieve::input::Input;
use letterbox::sieve::parse::script;
use letterbox::sieve::{compile, run, NoHost};
use libfuzzer_sys::fuzz_target;

const MESSAGE: &[u8] = b"From: A <a+b@example.com>\r\nTo: c@example.org\r\nSubject: hi\r\n\
Date: Tue, 1 Dec 2026 20:00:00 -0500\r\n\r\nbody\r\n";

fuzz_target!(|input: &[u8]| {
    let first = script(input);
    assert_eq!(first, script(input));
    if let Ok(program) = compile(input) {
        let message = Input {
            message: MESSAGE,
            size: MESSAGE.len() as u64,
            envelope_from: "a@example.com",
            envelope_to: "c@example.org",
            now: 0,
            local_zone: 0,
            spam_percent: None,
        };
        let _ = run(&program, &message, &NoHost);
    }
});
