//! `silt-crash`: a short crash-test run (20 SIGKILL cycles) passes, and the verifier catches a
//! database that disagrees with the expected-state log.

use std::process::Command;

fn silt_crash(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_silt-crash"))
        .args(args)
        .output()
        .expect("run silt-crash");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn twenty_kill_cycles_lose_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("crash");
    let dir_s = dir.to_str().unwrap();
    let (code, out, err) = silt_crash(&["--cycles", "20", "--dir", dir_s]);
    println!("{out}{err}");
    assert_eq!(code, 0, "silt-crash failed:\n{out}\n{err}");
    assert!(out.contains("silt-crash: cycles 20,"), "{out}");
    assert!(out.contains("failures 0"), "{out}");
    let verified: u64 = out
        .split("acknowledged writes verified ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no verified count in {out}"));
    assert!(
        verified > 0,
        "no write was acknowledged in 20 cycles: {out}"
    );
    let log = std::fs::read_to_string(dir.join("expected.log")).unwrap();
    assert!(log.lines().any(|l| l.starts_with("D ")), "{log}");

    // A write the log says was acknowledged but the database never saw must be caught.
    let next = log
        .lines()
        .filter_map(|l| l.split(' ').nth(1)?.parse::<u64>().ok())
        .max()
        .unwrap()
        + 1;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("expected.log"))
        .unwrap();
    use std::io::Write;
    writeln!(f, "P {next} +5 +6\nD {next}").unwrap();
    drop(f);
    let (code, out, err) = silt_crash(&["--cycles", "1", "--dir", dir_s]);
    assert_eq!(code, 1, "a lost write went unnoticed:\n{out}\n{err}");
    assert!(err.contains("FAILURE"), "{err}");
    // Caught before the first new cycle, so no later write can mask it.
    assert!(err.contains("before the first cycle"), "{err}");
    assert!(err.contains("key 5"), "{err}");
    assert!(err.contains("key 6"), "{err}");
}

#[test]
fn help_lists_the_options_and_hides_the_child_flag() {
    let (code, out, _) = silt_crash(&["--help"]);
    assert_eq!(code, 0);
    for opt in ["--cycles", "--duration", "--keys", "--seed", "--dir"] {
        assert!(out.contains(opt), "{opt} missing from --help:\n{out}");
    }
    assert!(!out.contains("--child"), "{out}");
}
