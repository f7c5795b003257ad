//! The backup archive reader never panics on any bytes and never hands out a file name
//! that leaves the restore directory; the migration client's response tokenizer never
//! panics either.
#![no_main]
use letterbox::backup::archive::{check_name, ArchiveReader, MAGIC};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let mut stream = MAGIC.to_vec();
    stream.extend_from_slice(input);
    if let Ok(reader) = ArchiveReader::new(&stream[..]) {
        let _ = reader.read_all(
            &mut |name, _mode| {
                assert!(check_name(name).is_ok());
                assert!(!name.starts_with('/') && !name.split('/').any(|p| p == ".."));
                Ok(None)
            },
            &mut |_| {},
        );
    }
    let mut tokens = Vec::new();
    let _ = letterbox::migrate::client::tokenize(input, &mut tokens);
});
