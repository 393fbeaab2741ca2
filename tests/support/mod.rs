//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod fixture;

pub use fixture::*;

use std::process::{Command, Output};

use sha2::{Digest as _, Sha256};

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The kiln binary with a fixed SOURCE_DATE_EPOCH and no access to the real user's credentials.
pub fn kiln_cmd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
    c.env("SOURCE_DATE_EPOCH", "1700000000")
        .env("HOME", std::env::temp_dir().join("kiln-test-home"))
        .env(
            "DOCKER_CONFIG",
            std::env::temp_dir().join("kiln-test-home/.docker"),
        )
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("KILN_REGISTRY_USERNAME")
        .env_remove("KILN_REGISTRY_PASSWORD");
    c
}

pub fn kiln(args: &[&str]) -> Output {
    kiln_cmd().args(args).output().unwrap()
}

/// Run kiln, require success, return stdout.
pub fn kiln_ok(args: &[&str]) -> String {
    let out = kiln(args);
    assert!(
        out.status.success(),
        "kiln {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Run any tool, require success, return stdout.
pub fn run_ok(prog: &str, args: &[&str]) -> String {
    let out = Command::new(prog).args(args).output().unwrap_or_else(|e| {
        panic!("cannot run {prog}: {e} (is it installed? .ci/run installs it)")
    });
    assert!(
        out.status.success(),
        "{prog} {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
