//! One Web Push app of a tenant (`[tenants.<t>.apps.<app>]` with `platform = "webpush"`).

use crate::config::SecretSource;
use crate::config::secret::check_secret;
use serde::{Deserialize, Serialize};

/// A web app: the VAPID key its pushes are signed with and the contact push services may
/// write to (optional: without both its browsers cannot be rung).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WebPushAppConfig {
    /// The VAPID signing key (P-256 PKCS#8 PEM).
    #[serde(default)]
    pub vapid_key: Option<SecretSource>,
    /// The VAPID contact: a `mailto:` or `https:` URI on a public DNS name
    /// ([`crate::providers::webpush::auth::is_vapid_subject`]).
    #[serde(default)]
    pub vapid_subject: Option<String>,
}

impl WebPushAppConfig {
    /// Every problem with this app under `at` (`tenants.<t>.apps.<app>`); the key is parsed by
    /// [`crate::providers::webpush::auth::vapid_key`], as the signer parses it.
    pub fn problems(&self, at: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(subject) = &self.vapid_subject
            && !crate::providers::webpush::auth::is_vapid_subject(subject)
        {
            problems.push(format!(
                "{at}.vapid_subject: {}",
                crate::providers::webpush::auth::SUBJECT_RULE
            ));
        }
        if let Some(source) = &self.vapid_key {
            check_secret(source, &format!("{at}.vapid_key"), &mut problems, |pem| {
                crate::providers::webpush::auth::vapid_key(pem)
                    .map(drop)
                    .map_err(|error| error.to_string())
            });
        }
        problems
    }

    /// The app's secrets by key name (absent ones too).
    pub fn secrets(&self) -> [(&'static str, Option<&SecretSource>); 1] {
        [("vapid_key", self.vapid_key.as_ref())]
    }

    /// The app's secrets by key name.
    pub fn secrets_mut(&mut self) -> [(&'static str, &mut Option<SecretSource>); 1] {
        [("vapid_key", &mut self.vapid_key)]
    }
}
