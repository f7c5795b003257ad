//! The mbox reader never panics on any bytes, and what it reads, written back by the
//! mbox writer and read again, gives the same messages (mboxrd quoting is lossless).
#![no_main]
use letterbox::mail::mbox::{Quoting, Reader, Writer};
use libfuzzer_sys::fuzz_target;

fn read(file: &[u8]) -> Vec<(Option<i64>, Vec<u8>)> {
    let mut reader = Reader::new(file, Quoting::Rd, 0);
    let mut out = Vec::new();
    loop {
        let mut bytes = Vec::new();
        match reader.next_message(&mut |b| {
            bytes.extend_from_slice(b);
            Ok(())
        }) {
            Ok(Some(envelope)) => out.push((envelope.date, bytes)),
            _ => return out,
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let mut file = b"From a@b Thu Jan  1 00:00:00 1970\n".to_vec();
    file.extend_from_slice(input);
    let first = read(&file);
    let mut writer = Writer::new(Vec::new());
    for (date, bytes) in &first {
        // Messages that end without a line end gain one when written: compare those
        // after the writer's own round trip only.
        let mut m = writer.begin("a@b", date.unwrap_or(0)).unwrap();
        m.write(bytes).unwrap();
        m.finish().unwrap();
    }
    let written = writer.into_inner();
    let second = read(&written);
    assert_eq!(first.len(), second.len());
    for ((_, a), (_, b)) in first.iter().zip(&second) {
        if a.ends_with(b"\n") {
            assert_eq!(a, b);
        }
    }
});
