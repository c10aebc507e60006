//! Helpers for the end-to-end tests: run the built `sst-ingest` binary as a user would.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The result of one run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stdout_bytes: Vec<u8>,
    pub stderr: String,
}

impl Run {
    /// Panics with the whole run when the exit code is not `code`.
    #[track_caller]
    pub fn expect_code(self, code: i32) -> Run {
        assert_eq!(self.code, code, "unexpected exit code: {self:#?}");
        self
    }

    #[track_caller]
    pub fn ok(self) -> Run {
        self.expect_code(0)
    }
}

/// The binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sst-ingest"))
}

/// Runs `sst-ingest args...` (stdin closed, stderr not a terminal: no progress bars).
pub fn run<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let output = Command::new(bin())
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run sst-ingest");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stdout_bytes: output.stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Shorthand for a path argument.
pub fn p(path: &Path) -> &OsStr {
    path.as_os_str()
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write input");
    path
}

/// Entries of `dir` (names), sorted.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Builds `inputs` into `out` with extra arguments; panics unless it succeeds.
pub fn build(format: &str, inputs: &[&Path], out: &Path, extra: &[&str]) -> Run {
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("build"),
        OsStr::new("--format"),
        OsStr::new(format),
    ];
    for input in inputs {
        args.push(OsStr::new("--input"));
        args.push(p(input));
    }
    args.push(OsStr::new("--out"));
    args.push(p(out));
    args.extend(extra.iter().map(OsStr::new));
    run(args)
}

/// `sst-ingest db --db DB args...`
pub fn db(db: &Path, args: &[&str]) -> Run {
    let mut all: Vec<&OsStr> = vec![OsStr::new("db"), OsStr::new("--db"), p(db)];
    all.extend(args.iter().map(OsStr::new));
    run(all)
}
