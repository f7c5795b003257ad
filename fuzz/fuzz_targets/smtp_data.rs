//! DATA decoding must not panic, must give the same result however the input is split,
//! and dot-stuffing what it decoded must decode back to the same message.
#![no_main]
use letterbox::net::dot::{DataDecoder, DotStuffer};
use libfuzzer_sys::fuzz_target;

fn decode(input: &[u8], step: usize) -> (Vec<u8>, usize, bool) {
    let mut decoder = DataDecoder::new();
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < input.len() {
        let end = (pos + step).min(input.len());
        let fed = decoder.feed(&input[pos..end], &mut out);
        pos += fed.consumed;
        if fed.done {
            return (out, pos, true);
        }
    }
    (out, pos, false)
}

fuzz_target!(|input: &[u8]| {
    let whole = decode(input, input.len().max(1));
    let split = decode(input, 3);
    assert_eq!(whole, split);
    let (message, _, _) = whole;
    let mut wire = Vec::new();
    let mut stuffer = DotStuffer::new();
    stuffer.push(&message, &mut wire);
    stuffer.finish(&mut wire);
    let (again, consumed, done) = decode(&wire, wire.len());
    assert!(done && consumed == wire.len());
    // Decoding adds a final CRLF when the message lacked one.
    let mut expected = message.clone();
    if !expected.is_empty() && !expected.ends_with(b"\n") {
        expected.extend_from_slice(b"\r\n");
    }
    assert_eq!(again, expected);
});
