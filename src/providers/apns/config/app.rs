//! One APNs app of a tenant (`[tenants.<t>.apps.<app>]` with `platform = "apns"`).

use crate::config::SecretSource;
use crate::config::secret::check_secret;
use serde::{Deserialize, Serialize};

/// An APNs app: its bundle id and one of two credentials, token auth (`team_id`, `key_id`,
/// `key`) or certificate auth (`certificate`, `certificate_key`). Credentials are optional
/// (the app's devices cannot be rung without one), but when given they are checked.
///
/// Required keys are `Option`s checked by [`ApnsAppConfig::problems`] rather than by serde,
/// so a file with several mistakes gets all of them at once.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ApnsAppConfig {
    /// The app's bundle id (VoIP pushes go to `<bundle_id>.voip`).
    #[serde(default)]
    pub bundle_id: Option<String>,
    /// The Apple developer team id (10 characters); the JWT's `iss`.
    #[serde(default)]
    pub team_id: Option<String>,
    /// The id of the `.p8` signing key (10 characters); the JWT's `kid`.
    #[serde(default)]
    pub key_id: Option<String>,
    /// The `.p8` signing key (PKCS#8 PEM).
    #[serde(default)]
    pub key: Option<SecretSource>,
    /// The app's client certificate (PEM chain, leaf first), instead of token auth
    /// (team_id, key_id, key): pushes then carry no JWT (`providers::apns::auth::certificate`).
    #[serde(default)]
    pub certificate: Option<SecretSource>,
    /// The private key of `certificate` (PEM).
    #[serde(default)]
    pub certificate_key: Option<SecretSource>,
}

impl ApnsAppConfig {
    /// Every problem with this app under `at` (`tenants.<t>.apps.<app>`), its secrets read
    /// and parsed the way the provider will parse them.
    pub fn problems(&self, at: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if self.bundle_id.is_none() {
            problems.push(format!("{at}.bundle_id is required for an apns app"));
        }
        // Token auth needs all three; team_id alone is fine (RFC 8599 pn_param names it).
        let half_key = self.key_id.is_some() != self.key.is_some();
        if half_key || (self.key.is_some() && self.team_id.is_none()) {
            problems.push(format!(
                "{at}: APNs token auth needs team_id, key_id and key together"
            ));
        }
        for (field, value) in [("team_id", &self.team_id), ("key_id", &self.key_id)] {
            if value
                .as_ref()
                .is_some_and(|v| v.len() != 10 || !v.bytes().all(|b| b.is_ascii_alphanumeric()))
            {
                problems.push(format!(
                    "{at}.{field}: must be 10 letters or digits, as Apple issues it"
                ));
            }
        }
        if let Some(source) = &self.key {
            check_secret(source, &format!("{at}.key"), &mut problems, |pem| {
                crate::providers::apns::auth::signing_key(pem)
                    .map(drop)
                    .map_err(|error| error.to_string())
            });
        }
        problems.extend(super::check_certificate_auth(
            self.certificate.as_ref(),
            self.certificate_key.as_ref(),
            self.key.is_some(),
            at,
            crate::clock::now_millis() / 1000,
        ));
        problems
    }

    /// The app's secrets by key name (absent ones too).
    pub fn secrets(&self) -> [(&'static str, Option<&SecretSource>); 3] {
        [
            ("key", self.key.as_ref()),
            ("certificate", self.certificate.as_ref()),
            ("certificate_key", self.certificate_key.as_ref()),
        ]
    }

    /// The app's secrets by key name.
    pub fn secrets_mut(&mut self) -> [(&'static str, &mut Option<SecretSource>); 3] {
        [
            ("key", &mut self.key),
            ("certificate", &mut self.certificate),
            ("certificate_key", &mut self.certificate_key),
        ]
    }
}
