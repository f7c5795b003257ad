//! The checks of [`super::program::compile`]: what a script becomes, and what it may not
//! do, error by error.

use super::program::*;

fn casemap(kind: MatchKind) -> Match {
    Match {
        kind,
        comparator: Comparator::AsciiCasemap,
    }
}

#[test]
fn a_script_becomes_a_program() {
    let program = compile(
        b"require [\"fileinto\", \"copy\", \"envelope\"];\n\
          if header :contains [\"Subject\", \"X-Spam\"] \"[SPAM]\" { fileinto :copy \"Junk\"; stop; }\n\
          elsif envelope :domain :is \"from\" \"example.net\" { redirect \"a@example.org\"; }\n\
          elsif anyof (size :over 1M, not exists \"date\") { discard; }\n\
          else { keep; }\n",
    )
    .unwrap();
    assert_eq!(program.required, ["fileinto", "copy", "envelope"]);
    let [Command::If {
        branches,
        otherwise,
    }] = program.commands.as_slice()
    else {
        panic!("one if: {:?}", program.commands)
    };
    assert_eq!(
        branches[0],
        (
            Test::Header {
                matching: casemap(MatchKind::Contains),
                index: None,
                names: vec!["Subject".into(), "X-Spam".into()],
                keys: vec!["[SPAM]".into()],
            },
            vec![
                Command::FileInto {
                    mailbox: "Junk".into(),
                    copy: true,
                    create: false,
                    flags: None,
                },
                Command::Stop
            ]
        )
    );
    assert_eq!(
        branches[1].0,
        Test::Envelope {
            part: AddressPart::Domain,
            matching: casemap(MatchKind::Is),
            names: vec!["from".into()],
            keys: vec!["example.net".into()],
        }
    );
    assert_eq!(
        branches[2].0,
        Test::AnyOf(vec![
            Test::Size {
                over: true,
                limit: 1 << 20
            },
            Test::Not(Box::new(Test::Exists(vec!["date".into()])))
        ])
    );
    assert_eq!(
        otherwise.as_deref(),
        Some(&[Command::Keep { flags: None }][..])
    );
    let program =
        compile(b"if address :comparator \"i;octet\" :localpart :matches \"from\" \"*bob*\" {}")
            .unwrap();
    let [Command::If { branches, .. }] = program.commands.as_slice() else {
        panic!()
    };
    assert_eq!(
        branches[0].0,
        Test::Address {
            part: AddressPart::LocalPart,
            index: None,
            matching: Match {
                kind: MatchKind::Matches,
                comparator: Comparator::Octet
            },
            names: vec!["from".into()],
            keys: vec!["*bob*".into()],
        }
    );
}

/// Every prefix of a script, and the script with any byte replaced, compiles or
/// fails with an error: never a panic (the fuzz target does the same at random).
#[test]
fn damaged_scripts_fail_cleanly() {
    let script: &[u8] = b"require [\"fileinto\", \"copy\"]; # c\r\n/* b */\n\
        if anyof (header :contains [\"a\", \"b\"] \"x\\\"y\", size :under 2K) {\n\
        fileinto :copy \"F\"; } elsif not exists \"z\" { redirect text:\n..x\n.\n; }\n";
    assert!(compile(script).is_err(), "redirect to an invalid address");
    for end in 0..script.len() {
        let _ = compile(&script[..end]);
    }
    for i in 0..script.len() {
        for b in [
            b'"', b'{', b'}', b'(', b')', b'[', b']', b':', b'\\', b'\n', b'*', b'/', b'#', 0xff,
        ] {
            let mut damaged = script.to_vec();
            damaged[i] = b;
            let _ = compile(&damaged);
        }
    }
}

#[test]
fn what_a_script_may_not_do() {
    let error = |s: &str| compile(s.as_bytes()).unwrap_err().to_string();
    for (script, expected) in [
        (
            "fileinto \"x\";",
            "line 1, column 1: fileinto needs require \"fileinto\"",
        ),
        (
            "require \"vacation2\";",
            "line 1, column 9: unsupported extension \"vacation2\"",
        ),
        (
            "keep; require \"fileinto\";",
            "line 1, column 7: require must come before other commands",
        ),
        ("elsif true {}", "line 1, column 1: elsif without an if"),
        (
            "if true {} else {} else {}",
            "line 1, column 20: else after else",
        ),
        ("if true;", "line 1, column 1: if needs a block"),
        ("if \"x\" {}", "line 1, column 4: if takes only a test"),
        (
            "frobnicate;",
            "line 1, column 1: unknown command frobnicate",
        ),
        ("if frob {}", "line 1, column 4: unknown test frob"),
        (
            "if size 10 {}",
            "line 1, column 4: size needs one of :over and :under",
        ),
        (
            "if size :over :under 1 {}",
            "line 1, column 4: size needs one of :over and :under",
        ),
        (
            "if header :is :contains \"a\" \"b\" {}",
            "line 1, column 15: only one match type may be given",
        ),
        (
            "if header :is :is \"a\" \"b\" {}",
            "line 1, column 15: :is given twice",
        ),
        (
            "if header \"a\" :is \"b\" {}",
            "line 1, column 15: :is must come before header's other arguments",
        ),
        (
            "if header :comparator \"i;frob\" \"a\" \"b\" {}",
            "line 1, column 23: unknown comparator \"i;frob\"",
        ),
        (
            "if header \"a b\" \"c\" {}",
            "line 1, column 4: invalid header field name \"a b\"",
        ),
        (
            "if header \"a\" {}",
            "line 1, column 4: header needs a string list",
        ),
        (
            "if exists \"a\" \"b\" {}",
            "line 1, column 15: too many arguments for exists",
        ),
        (
            "if exists :over \"a\" {}",
            "line 1, column 11: exists has no :over",
        ),
        (
            "redirect [\"a@b.example\"];",
            "line 1, column 10: redirect needs a string here",
        ),
        (
            "redirect \"not an address\";",
            "line 1, column 1: redirect to an invalid address \"not an address\"",
        ),
        (
            "require \"envelope\"; if envelope \"cc\" \"x\" {}",
            "line 1, column 24: unknown envelope part \"cc\"",
        ),
        (
            "redirect :copy \"a@b.example\";",
            "line 1, column 10: :copy needs require \"copy\"",
        ),
        (
            "if not (true, false) {}",
            "line 1, column 4: not needs one test",
        ),
        (
            "if anyof true {}",
            "line 1, column 4: anyof needs a list of tests",
        ),
        ("keep { stop; }", "line 1, column 1: keep takes no block"),
        (
            "if true {} else true {}",
            "line 1, column 12: else takes no test",
        ),
        // The grammar lets a test end with a test: "true false" is true given a test.
        (
            "if anyof (true false) {}",
            "line 1, column 11: true takes no test",
        ),
    ] {
        assert_eq!(error(script), expected, "{script}");
    }
}
