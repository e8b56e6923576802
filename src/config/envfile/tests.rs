//! The syntax table of tests/fixtures/env-file: every case read by our parser must give what
//! systemd gives (`.expected`, checked against systemd itself by the system suite), and be
//! refused exactly when `.refused` says so.

use std::path::{Path, PathBuf};

use super::*;

fn table() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/env-file");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/fixtures/env-file")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "env"))
        .collect();
    cases.sort();
    cases
}

/// What `env -0 | LC_ALL=C sort -z` prints for these variables.
fn as_env0(vars: &[(String, String)]) -> Vec<u8> {
    let mut entries: Vec<Vec<u8>> = vars.iter().map(|(k, v)| format!("{k}={v}").into_bytes()).collect();
    entries.sort();
    entries
        .into_iter()
        .flat_map(|mut e| {
            e.push(0);
            e
        })
        .collect()
}

#[test]
fn every_case_of_the_table_reads_as_systemd_reads_it() {
    let cases = table();
    assert!(cases.len() >= 19, "the table has {} cases", cases.len());
    for case in cases {
        let name = case.display().to_string();
        let parsed = parse(&std::fs::read(&case).expect("case"));
        let expected = std::fs::read(format!("{name}.expected")).expect("expected");
        assert_eq!(
            String::from_utf8_lossy(&as_env0(&parsed.vars)),
            String::from_utf8_lossy(&expected),
            "{name}: the variables"
        );
        let refused = std::fs::read_to_string(format!("{name}.refused")).ok();
        let first = parsed.problems.first().map(|p| format!("{p}\n"));
        assert_eq!(first, refused, "{name}: refused or not, and why");
    }
}

#[test]
fn the_secrets_of_the_issue_come_out_byte_for_byte() {
    let parsed = parse(b"MY_API_KEY=sk-ab$cd$1x\nMY_B=\"p@ss$word\"\n");
    assert!(parsed.problems.is_empty());
    assert_eq!(
        parsed.vars,
        vec![("MY_API_KEY".into(), "sk-ab$cd$1x".into()), ("MY_B".into(), "p@ss$word".into())]
    );
}

#[test]
fn problems_never_show_the_line() {
    let parsed = parse(b"sk-ant-secret-value\nexport KEY=sk-ant-other\n");
    let text: Vec<String> = parsed.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(text.len(), 2);
    assert!(text.iter().all(|t| !t.contains("sk-ant")), "{text:?}");
    assert!(text[0].starts_with("line 1: ") && text[1].starts_with("line 2: "), "{text:?}");
}

#[test]
fn any_input_parses_without_panicking() {
    // Every byte in every state: the quotes, escapes and line ends around each other.
    let alphabet = b"A=\"'\\#; \t\r\n$`x\0\xff";
    for a in alphabet {
        for b in alphabet {
            for c in alphabet {
                let input = [b'K', *a, b'=', *b, *c, *a];
                let _ = parse(&input);
            }
        }
    }
}

/// A value as systemd's `write_env_file()` writes it: bare when nothing in it needs quoting,
/// else in double quotes with `"`, `\`, `` ` `` and `$` escaped.
fn systemd_writes(value: &str) -> String {
    let special = |c: char| c.is_control() || " \t\n\r\"\\`$'*?[()<>|&;".contains(c);
    if !value.contains(special) {
        return value.to_string();
    }
    let mut out = String::from("\"");
    for c in value.chars() {
        if "\"\\`$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 2000, ..Default::default() })]

    /// What systemd writes (localectl, hostnamectl use that writer), we read back unchanged.
    #[test]
    fn what_systemd_writes_reads_back(
        vars in proptest::collection::btree_map("[A-Za-z_][A-Za-z0-9_]{0,8}", "[^\0]{0,40}", 0..6),
        crlf in proptest::bool::ANY,
    ) {
        let end = if crlf { "\r\n" } else { "\n" };
        let text: String = vars.iter().map(|(k, v)| format!("{k}={}{end}", systemd_writes(v))).collect();
        let parsed = parse(text.as_bytes());
        proptest::prop_assert!(parsed.problems.is_empty(), "{text:?}: {:?}", parsed.problems);
        let back: std::collections::BTreeMap<String, String> = parsed.vars.into_iter().collect();
        // A bare value loses its trailing whitespace; systemd quotes any value with some.
        proptest::prop_assert_eq!(back, vars, "{:?}", text);
    }
}
