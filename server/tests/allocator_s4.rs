//! Seed S4 for the server's binaries: `silt-server` and `silt-admin` use the one pinned,
//! statically linked mimalloc, checked like `sst-ingest` by the shared check of the tools'
//! tests (no allocator shared library, mimalloc linked in, `malloc`/`free` defined by the
//! binary so C code allocates through it too).

#[path = "../../tools/tests/allocator_check/mod.rs"]
mod allocator_check;

use std::path::Path;

#[test]
fn silt_server_links_mimalloc_statically() {
    allocator_check::assert_one_static_allocator(Path::new(env!("CARGO_BIN_EXE_silt-server")));
}

#[test]
fn silt_admin_links_mimalloc_statically() {
    allocator_check::assert_one_static_allocator(Path::new(env!("CARGO_BIN_EXE_silt-admin")));
}

#[test]
fn version_names_the_allocator_and_its_version() {
    for (name, bin) in [
        ("silt-server", env!("CARGO_BIN_EXE_silt-server")),
        ("silt-admin", env!("CARGO_BIN_EXE_silt-admin")),
    ] {
        let out = std::process::Command::new(bin)
            .arg("--version")
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        let line = text.trim_end();
        let rest = line
            .strip_prefix(&format!("{name} 0.1.0 (siltdb 0.1.0, allocator mimalloc "))
            .unwrap_or_else(|| panic!("{line:?}"));
        let version = rest.strip_suffix(')').unwrap_or_else(|| panic!("{line:?}"));
        assert_eq!(version.split('.').count(), 3, "{version}");
    }
}
