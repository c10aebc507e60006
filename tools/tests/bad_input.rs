//! Every kind of bad input: the exact `file:line:column` in the message, exit code 2, and
//! nothing left in (or beside) `--out`.

mod common;
use common::*;

struct Case {
    format: &'static str,
    name: &'static str,
    text: &'static str,
    extra: &'static [&'static str],
    /// Expected message after the file path.
    want: &'static str,
}

const CASES: &[Case] = &[
    Case {
        format: "csv",
        name: "quote.csv",
        text: "a,1\nb,2\nkey,\"never closed\nc,3\n",
        extra: &[],
        want: ":3:5: unterminated quoted field",
    },
    Case {
        format: "csv",
        name: "stray.csv",
        text: "a,1\nb,x\"y\n",
        extra: &[],
        want: ":2:4: quote inside an unquoted field",
    },
    Case {
        format: "csv",
        name: "after.csv",
        text: "\"a\"b,1\n",
        extra: &[],
        want: ":1:4: unexpected 'b' after closing quote",
    },
    Case {
        format: "csv",
        name: "column.csv",
        text: "key,value\na,1\nlonely\n",
        extra: &["--header"],
        want: ":3:7: missing value column",
    },
    Case {
        format: "tsv",
        name: "extra.tsv",
        text: "a\t1\tsurplus\n",
        extra: &[],
        want: ":1:5: too many columns",
    },
    Case {
        format: "jsonl",
        name: "bad.jsonl",
        text: "{\"key\":\"a\",\"value\":\"1\"}\n{\"key\":\"b\",\"value\":\"2\"\n",
        extra: &[],
        want: ":2:22: invalid JSON: EOF while parsing an object",
    },
    Case {
        format: "jsonl",
        name: "missing.jsonl",
        text: "{\"key\":\"a\"}\n",
        extra: &[],
        want: ":1:1: missing \"value\" member",
    },
    Case {
        format: "csv",
        name: "hex.csv",
        text: "00ff,1\n0a0g,2\n",
        extra: &["--key-encoding", "hex"],
        want: ":2:4: key (hex): invalid hex digit 'g'",
    },
    Case {
        format: "jsonl",
        name: "b64.jsonl",
        text: "{\"key\": \"k\", \"value\": \"no*pe\"}\n",
        extra: &["--value-encoding", "base64"],
        want: ":1:26: value (base64): invalid base64: unexpected byte '*'",
    },
    Case {
        format: "csv",
        name: "empty.csv",
        text: "a,1\n,2\n",
        extra: &[],
        want: ":2:1: empty key",
    },
    Case {
        format: "jsonl",
        name: "empty.jsonl",
        text: "{\"key\": \"\", \"value\": \"2\"}\n",
        extra: &[],
        want: ":1:9: empty key",
    },
];

#[test]
fn each_bad_input_names_file_line_and_column_and_leaves_nothing() {
    for case in CASES {
        let dir = tempfile::tempdir().unwrap();
        let input = write(dir.path(), case.name, case.text);
        let out = dir.path().join("out");
        let run = build(case.format, &[&input], &out, case.extra).expect_code(2);
        let want = format!("{}{}", input.display(), case.want);
        assert!(
            run.stderr.contains(&want),
            "case {}: stderr {:?} does not contain {want:?}",
            case.name,
            run.stderr
        );
        assert!(!run.stderr.contains("panicked"), "{run:?}");
        assert!(!out.exists(), "case {}: --out was created", case.name);
        assert_eq!(
            entries(dir.path()),
            [case.name],
            "case {}: leftovers",
            case.name
        );
    }
}

#[test]
fn invalid_utf8_is_reported_with_its_column() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "latin1.csv", b"ok,1\ncaf\xe9,2\n");
    let out = dir.path().join("out");
    let run = build("csv", &[&input], &out, &[]).expect_code(2);
    assert!(
        run.stderr.contains(&format!(
            "{}:2:4: key (utf8): invalid UTF-8 (byte 0xe9)",
            input.display()
        )),
        "{run:?}"
    );
    assert!(!out.exists());
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.csv");
    let out = dir.path().join("out");
    let run = build("csv", &[&missing], &out, &[]).expect_code(4);
    assert!(run.stderr.contains("nope.csv"), "{run:?}");
    assert!(!out.exists());
    run_args_code(&["build", "--input", "x.csv"], 2);
    run_args_code(&["frobnicate"], 2);

    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("keep"), "x").unwrap();
    let input = write(dir.path(), "d.csv", "a,1\n");
    let run = build("csv", &[&input], &out, &[]).expect_code(2);
    assert!(run.stderr.contains("already exists"), "{run:?}");
    assert_eq!(entries(&out), ["keep"]);
}

fn run_args_code(args: &[&str], code: i32) {
    run(args).expect_code(code);
}

#[test]
fn help_documents_examples_and_exit_codes() {
    let help = run(["--help"]).ok().stdout;
    for want in [
        "Examples:",
        "sst-ingest build --format csv",
        "Exit codes:",
        "1  not found",
        "\\xNN",
    ] {
        assert!(help.contains(want), "--help lacks {want:?}:\n{help}");
    }
}
