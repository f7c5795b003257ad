//! The interpreter over small messages: actions, implicit keep, variables, flags, limits.
//! (The Pigeonhole differential corpus in tests/python/test_sieve.py covers much more.)

use super::input::Input;
use super::run::{Action, NoHost, Outcome, MAX_REDIRECTS};
use super::{compile, run};

const MESSAGE: &[u8] = b"From: Alice <alice+news@example.com>\r\n\
To: bob@example.org, Carol <carol@example.net>\r\n\
Subject: =?UTF-8?Q?caf=C3=A9?= [list] weekly\r\n\
Date: Tue, 1 Dec 2026 20:00:00 -0500\r\n\
Message-ID: <m1@example.com>\r\n\
\r\n\
Hello there\r\n";

fn outcome(script: &str) -> Outcome {
    let program = compile(script.as_bytes()).unwrap_or_else(|e| panic!("{script}: {e}"));
    let input = Input {
        message: MESSAGE,
        size: MESSAGE.len() as u64,
        envelope_from: "alice+news@example.com",
        envelope_to: "bob@example.org",
        now: 1_796_171_826,
        local_zone: 0,
        spam_percent: Some(80),
    };
    run(&program, &input, &NoHost)
}

fn store(mailbox: &str, flags: &[&str]) -> Action {
    Action::Store {
        mailbox: mailbox.into(),
        flags: flags.iter().map(|f| f.to_string()).collect(),
        create: false,
    }
}

#[test]
fn implicit_keep_and_its_cancelling() {
    assert_eq!(outcome("").implicit_keep, Some(vec![]));
    let o = outcome(
        "require \"fileinto\"; if header :contains \"subject\" \"café\" { fileinto \"Cafe\"; }",
    );
    assert_eq!(o.actions, [store("Cafe", &[])]);
    assert_eq!(o.implicit_keep, None);
    let o = outcome(
        "require [\"fileinto\", \"copy\"]; fileinto :copy \"A\"; redirect :copy \"x@y.example\";",
    );
    assert_eq!(o.implicit_keep, Some(vec![]));
    assert_eq!(outcome("discard;").actions, [Action::Discard]);
    // keep then fileinto INBOX is one store.
    let o = outcome("require \"fileinto\"; keep; fileinto \"inbox\";");
    assert_eq!(o.actions, [store("INBOX", &[])]);
    assert!(outcome("stop; discard;").implicit_keep.is_some());
}

#[test]
fn addresses_envelope_and_subaddress() {
    for (script, expected) in [
        ("address :domain \"to\" \"example.net\"", true),
        ("address :localpart \"from\" \"alice+news\"", true),
        (
            "address :all :is \"from\" \"Alice <alice+news@example.com>\"",
            false,
        ),
        ("address :user \"from\" \"alice\"", true),
        ("address :detail \"from\" \"news\"", true),
        ("address :detail \"to\" \"\"", false),
        ("envelope :domain \"to\" \"EXAMPLE.org\"", true),
        ("envelope :detail \"from\" \"news\"", true),
        ("header :matches \"subject\" \"caf? *\"", true),
        (
            "header :count \"ge\" :comparator \"i;ascii-numeric\" \"to\" \"2\"",
            false,
        ),
        (
            "address :count \"eq\" :comparator \"i;ascii-numeric\" \"to\" \"2\"",
            true,
        ),
        ("size :under 1K", true),
        ("exists [\"from\", \"date\"]", true),
        ("exists [\"from\", \"x-none\"]", false),
        ("date :originalzone \"date\" \"hour\" \"20\"", true),
        (
            "date :zone \"+0000\" \"date\" \"date\" \"2026-12-02\"",
            true,
        ),
        ("currentdate :zone \"+0100\" \"time\" \"01:37:06\"", true),
        (
            "spamtest :value \"ge\" :comparator \"i;ascii-numeric\" \"8\"",
            true,
        ),
        ("spamtest :percent :is \"80\"", true),
        ("body :contains \"hello\"", true),
        ("body :raw :matches \"Hello*\"", true),
    ] {
        let script = format!(
            "require [\"envelope\", \"subaddress\", \"relational\", \"comparator-i;ascii-numeric\", \
             \"date\", \"spamtestplus\", \"body\"]; if {script} {{ discard; }}"
        );
        assert_eq!(
            outcome(&script).actions == [Action::Discard],
            expected,
            "{script}"
        );
    }
}

#[test]
fn variables_and_match_variables() {
    let o = outcome(
        "require [\"variables\", \"fileinto\"];\n\
         if header :matches \"from\" \"*<*@*>\" { set :lower :upperfirst \"who\" \"${2}\"; }\n\
         set \"n\" \"${who}\"; set :length \"len\" \"${n}\";\n\
         if string :is \"${len}\" \"10\" { fileinto \"people/${n}/${unset}${3}\"; }",
    );
    assert_eq!(o.actions, [store("people/Alice+news/example.com", &[])]);
    let o = outcome("require [\"variables\", \"fileinto\"]; set :quotewildcard \"q\" \"a*b?\"; fileinto \"${q}\";");
    assert_eq!(o.actions, [store("a\\*b\\?", &[])]);
    // Without "variables" a reference is text.
    let o = outcome("require \"fileinto\"; fileinto \"${x}\";");
    assert_eq!(o.actions, [store("${x}", &[])]);
}

#[test]
fn flags() {
    let o = outcome(
        "require [\"imap4flags\", \"fileinto\", \"variables\", \"relational\", \"comparator-i;ascii-numeric\"];\n\
         setflag \"\\\\Seen \\\\Flagged\"; addflag [\"$Work\", \"\\\\seen\"]; removeflag \"\\\\Flagged\";\n\
         fileinto \"A\"; fileinto :flags \"x\" \"B\";\n\
         addflag \"v\" \"one two\"; if hasflag \"v\" \"two\" { fileinto \"C\"; }\n\
         if hasflag :count \"eq\" :comparator \"i;ascii-numeric\" \"2\" { keep; }",
    );
    assert_eq!(
        o.actions,
        [
            store("A", &["\\Seen", "$Work"]),
            store("B", &["x"]),
            store("C", &["\\Seen", "$Work"]),
            store("INBOX", &["\\Seen", "$Work"]),
        ]
    );
    // The implicit keep takes the flags set last.
    let o = outcome("require \"imap4flags\"; addflag \"\\\\Answered\";");
    assert_eq!(o.implicit_keep, Some(vec!["\\Answered".to_string()]));
}

#[test]
fn errors_keep_the_message() {
    for script in [
        "require [\"reject\", \"fileinto\"]; fileinto \"A\"; reject \"no\";",
        "require \"reject\"; reject \"a\"; reject \"b\";",
        "require \"variables\"; set \"a\" \"x\"; redirect \"${a}\";",
    ] {
        let o = outcome(script);
        assert!(o.error.is_some(), "{script}");
        assert!(o.actions.is_empty());
        assert_eq!(o.implicit_keep, Some(vec![]));
    }
    let redirects: String = (0..=MAX_REDIRECTS)
        .map(|i| format!("redirect \"u{i}@example.net\";"))
        .collect();
    assert_eq!(
        outcome(&redirects).error.as_deref(),
        Some("more than 4 redirects")
    );
    // Work is bounded by steps: many costly wildcard matches.
    let mut heavy = String::from("require \"variables\"; set \"v\" \"");
    heavy.push_str(&"a".repeat(4000));
    heavy.push_str("\";");
    for _ in 0..2000 {
        heavy.push_str("if string :matches \"${v}${v}${v}\" \"*a*a*a*b\" { discard; }");
    }
    let o = outcome(&heavy);
    assert_eq!(o.error.as_deref(), Some("the script took too many steps"));
}

#[test]
fn vacation_reply() {
    let o = outcome(
        "require [\"vacation\", \"variables\"]; set \"s\" \"away\";\n\
         vacation :days 3 :subject \"I am ${s}\" :addresses [\"bob@example.org\"] \"Back soon\";",
    );
    let [Action::Vacation(reply)] = o.actions.as_slice() else {
        panic!("{o:?}")
    };
    assert_eq!(reply.seconds, 3 * 86_400);
    assert_eq!(reply.subject.as_deref(), Some("I am away"));
    assert_eq!(reply.reason, "Back soon");
    assert_eq!(o.implicit_keep, Some(vec![]));
    let o = outcome("require \"vacation-seconds\"; vacation :seconds 10 \"x\";");
    let [Action::Vacation(reply)] = o.actions.as_slice() else {
        panic!("{o:?}")
    };
    assert_eq!(reply.seconds, 86_400, "at least a day");
}

/// Scripts by name, for include.
struct Scripts(Vec<(&'static str, &'static str)>);

impl super::run::Host for Scripts {
    fn mailbox_exists(&self, _name: &str) -> bool {
        false
    }
    fn duplicate_seen(&self, _key: &str) -> bool {
        false
    }
    fn include(
        &self,
        _global: bool,
        name: &str,
    ) -> Result<Option<super::program::Program>, String> {
        match self.0.iter().find(|(n, _)| *n == name) {
            Some((_, text)) => compile(text.as_bytes())
                .map(Some)
                .map_err(|e| e.to_string()),
            None => Ok(None),
        }
    }
}

#[test]
fn include_global_return_and_recursion() {
    let host = Scripts(vec![
        (
            "lib",
            "require [\"include\", \"variables\", \"fileinto\"]; global \"box\"; \
             fileinto \"${box}\"; return; discard;",
        ),
        ("self", "require \"include\"; include \"self\";"),
    ]);
    let run_with = |script: &str| {
        let program = compile(script.as_bytes()).unwrap();
        let input = Input {
            message: MESSAGE,
            size: MESSAGE.len() as u64,
            envelope_from: "",
            envelope_to: "bob@example.org",
            now: 0,
            local_zone: 0,
            spam_percent: None,
        };
        run(&program, &input, &host)
    };
    let o = run_with(
        "require [\"include\", \"variables\"]; global \"box\"; set \"box\" \"Lists\";\n\
         include \"lib\"; include :once \"lib\"; include :optional \"missing\"; keep;",
    );
    assert_eq!(o.error, None);
    assert_eq!(o.actions, [store("Lists", &[]), store("INBOX", &[])]);
    assert_eq!(
        run_with("require \"include\"; include \"missing\";")
            .error
            .as_deref(),
        Some("included script \"missing\" does not exist")
    );
    assert_eq!(
        run_with("require \"include\"; include \"self\";")
            .error
            .as_deref(),
        Some("script \"self\" includes itself")
    );
}
