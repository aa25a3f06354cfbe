//! Build script: records the git commit for `ringcast_build_info{git_sha}`.
//!
//! `RINGCAST_GIT_SHA` set at build time wins (a container build without `.git`); otherwise
//! `git rev-parse --short HEAD`; otherwise `unknown`. Never fails the build.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (output.status.success() && !text.is_empty()).then(|| text.to_owned())
}

fn main() {
    println!("cargo:rerun-if-env-changed=RINGCAST_GIT_SHA");
    // Rebuild when HEAD moves: a commit or checkout rewrites the worktree's HEAD log.
    for path in ["HEAD", "logs/HEAD"] {
        if let Some(file) = git(&["rev-parse", "--git-path", path]) {
            println!("cargo:rerun-if-changed={file}");
        }
    }
    let sha = std::env::var("RINGCAST_GIT_SHA")
        .ok()
        .filter(|sha| !sha.is_empty())
        .or_else(|| git(&["rev-parse", "--short", "HEAD"]))
        .filter(|sha| sha.chars().all(|c| c.is_ascii_alphanumeric()))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=RINGCAST_GIT_SHA={sha}");
}
