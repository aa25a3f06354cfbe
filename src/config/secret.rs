//! Secrets: values that must never reach a log line, a `Debug` dump or an error message.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;

/// A secret value. `Debug` and `Display` print `[redacted]`, so a secret can sit in any
/// struct that derives `Debug` without leaking.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps bytes that must stay secret.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Secret(bytes.into())
    }

    /// The secret's bytes, for the one place that needs them (hashing, signing, verifying).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Where a secret comes from: a file or an environment variable, never the config file itself
/// (config files get copied, committed and pasted into tickets).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum SecretSource {
    /// Read the file (surrounding whitespace trimmed).
    File(PathBuf),
    /// Read the environment variable.
    Env(String),
}

impl SecretSource {
    /// Reads the secret. The error names the source, never the value.
    pub fn load(&self) -> Result<Secret, String> {
        let raw = match self {
            SecretSource::File(path) => std::fs::read(path)
                .map_err(|error| format!("cannot read {}: {error}", path.display()))?,
            SecretSource::Env(name) => std::env::var(name)
                .map_err(|_| format!("environment variable {name} is not set or not UTF-8"))?
                .into_bytes(),
        };
        let trimmed = raw.trim_ascii();
        if trimmed.is_empty() {
            return Err(format!("{} is empty", self.describe()));
        }
        Ok(Secret::new(trimmed))
    }

    /// Names the source for error messages.
    pub fn describe(&self) -> String {
        match self {
            SecretSource::File(path) => format!("file {}", path.display()),
            SecretSource::Env(name) => format!("environment variable {name}"),
        }
    }
}

/// Reads `source` and runs `check` on its bytes; a problem of either is pushed under `at`.
pub fn check_secret(
    source: &SecretSource,
    at: &str,
    problems: &mut Vec<String>,
    check: impl FnOnce(&[u8]) -> Result<(), String>,
) {
    match source.load() {
        Ok(secret) => {
            if let Err(problem) = check(secret.expose()) {
                problems.push(format!("{at}: {problem}"));
            }
        }
        Err(problem) => problems.push(format!("{at}: {problem}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?} {secret}"), "[redacted] [redacted]");
    }

    #[test]
    fn file_secrets_are_trimmed_and_empty_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "  abc\n").unwrap();
        assert_eq!(
            SecretSource::File(path.clone()).load().unwrap().expose(),
            b"abc"
        );
        std::fs::write(&path, "\n").unwrap();
        assert!(
            SecretSource::File(path)
                .load()
                .unwrap_err()
                .contains("empty")
        );
        let missing = SecretSource::File(dir.path().join("nope"))
            .load()
            .unwrap_err();
        assert!(missing.contains("cannot read"), "{missing}");
    }
}
