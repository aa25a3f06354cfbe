//! One FCM app of a tenant (`[tenants.<t>.apps.<app>]` with `platform = "fcm"`).

use crate::config::SecretSource;
use crate::config::secret::check_secret;
use serde::{Deserialize, Serialize};

/// An Android app: the Firebase project its messages go to, and the service account that
/// may send them (optional: without one its devices cannot be rung).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FcmAppConfig {
    /// The Firebase project id (required; an `Option` so every problem is reported at once).
    #[serde(default)]
    pub project_id: Option<String>,
    /// The service-account JSON (its `token_uri` is honoured).
    #[serde(default)]
    pub service_account: Option<SecretSource>,
}

impl FcmAppConfig {
    /// Every problem with this app under `at` (`tenants.<t>.apps.<app>`); the service account
    /// is read by [`crate::providers::fcm::auth::read_service_account`], the one reader
    /// start-up and reloads use too.
    pub fn problems(&self, at: &str) -> Vec<String> {
        let mut problems = Vec::new();
        match &self.project_id {
            None => problems.push(format!("{at}.project_id is required for an fcm app")),
            // It becomes a path segment of every send: refused here rather than when the
            // router's providers start.
            Some(project) => {
                if let Err(error) = crate::providers::fcm::payload::path(project) {
                    problems.push(format!("{at}.project_id: {error}"));
                }
            }
        }
        if let Some(source) = &self.service_account {
            check_secret(
                source,
                &format!("{at}.service_account"),
                &mut problems,
                |json| {
                    crate::providers::fcm::auth::read_service_account(json)
                        .map(drop)
                        .map_err(|error| error.to_string())
                },
            );
        }
        problems
    }

    /// The app's secrets by key name (absent ones too).
    pub fn secrets(&self) -> [(&'static str, Option<&SecretSource>); 1] {
        [("service_account", self.service_account.as_ref())]
    }

    /// The app's secrets by key name.
    pub fn secrets_mut(&mut self) -> [(&'static str, &mut Option<SecretSource>); 1] {
        [("service_account", &mut self.service_account)]
    }
}
