//! The crate's examples as a user runs them: built by cargo, found next to this test.

use std::path::PathBuf;
use std::process::Command;

/// Builds example `name` (cargo arguments `features`, e.g. `["--all-features"]`) if
/// needed, and returns the path of its binary.
pub(crate) fn build(name: &str, features: &[&str]) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = Command::new(cargo)
        .args(["build", "--quiet", "--example", name])
        .args(features)
        .status()
        .unwrap_or_else(|e| panic!("run cargo build --example {name}: {e}"));
    assert!(built.success(), "the {name} example builds");
    let exe = std::env::current_exe().expect("this test binary");
    // target/<profile>/deps/<test> -> target/<profile>/examples/<name>
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    let bin = profile_dir.join("examples").join(name);
    assert!(bin.exists(), "{} exists", bin.display());
    bin
}
