//! `letterbox sendmail`'s handling of an arbitrary message (line endings, dot handling,
//! header extraction with -t) and a DSN quoting its header must never panic.
#![no_main]
use letterbox::mail::dsn::{build, Action, RecipientReport, Report};
use letterbox::mail::header_of;
use letterbox::sendmail::{prepare, read_message, Options};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Ok(message) = read_message(input, input.first() == Some(&b'i'), 1 << 20) else {
        return;
    };
    let options = Options {
        extract_recipients: true,
        ..Options::default()
    };
    let prepared = prepare(&message, &options, "root@box.test", "box.test", 0, "u");
    let _ = build(&Report {
        reporting_mta: "box.test",
        to: "root@box.test",
        envid: std::str::from_utf8(input).ok(),
        arrival: 0,
        now: 0,
        recipients: prepared
            .recipients
            .iter()
            .map(|r| RecipientReport {
                address: r.clone(),
                orcpt: None,
                action: Action::Failed,
                status: "5.0.0".into(),
                remote: None,
                diagnostic: Some(String::from_utf8_lossy(input).into_owned()),
                last_attempt: None,
                retry_until: None,
            })
            .collect(),
        original: header_of(&prepared.message),
        original_full: false,
        id: "x",
    });
});
