//! The Sieve lexer and parser must never panic or recurse without bound, whatever the
//! bytes, and must be pure: the same script gives the same tree (or error) twice.
#![no_main]
use letterbox::sieve::parse::script;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let first = script(input);
    assert_eq!(first, script(input));
});
