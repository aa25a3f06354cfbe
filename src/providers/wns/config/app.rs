//! One Windows app of a tenant (`[tenants.<t>.apps.<app>]` with `platform = "wns"`).

use crate::config::SecretSource;
use crate::config::secret::check_secret;
use serde::{Deserialize, Serialize};

/// A Windows app: its package SID and the client credential its access token is asked for
/// with (optional: without a secret its devices cannot be rung).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WnsAppConfig {
    /// The package SID (`ms-app://...`); required.
    #[serde(default)]
    pub package_sid: Option<String>,
    /// The client secret.
    #[serde(default)]
    pub client_secret: Option<SecretSource>,
    /// Where the app's access token comes from; default `[providers.wns] token_url` (the
    /// legacy `https://login.live.com/accesstoken.srf`). Apps registered in Microsoft Entra
    /// ID use `https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token`
    /// ([`super::check_app_auth`]).
    #[serde(default)]
    pub token_url: Option<String>,
    /// The OAuth scope asked for; default what the endpoint grants (`notify.windows.com`, or
    /// `https://wns.windows.com/.default` at Entra ID).
    #[serde(default)]
    pub scope: Option<String>,
    /// The OAuth client id; default the package SID. At Entra ID, the app's application
    /// (client) id.
    #[serde(default)]
    pub client_id: Option<String>,
}

impl WnsAppConfig {
    /// Every problem with this app under `at` (`tenants.<t>.apps.<app>`).
    pub fn problems(&self, at: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if self.package_sid.is_none() {
            problems.push(format!("{at}.package_sid is required for a wns app"));
        }
        if let Some(source) = &self.client_secret {
            check_secret(
                source,
                &format!("{at}.client_secret"),
                &mut problems,
                |_| Ok(()),
            );
        }
        problems.extend(super::check_app_auth(
            self.token_url.as_deref(),
            self.scope.as_deref(),
            self.client_id.as_deref(),
            at,
        ));
        problems
    }

    /// How the app gets its access token, defaults filled in from `provider`; `None` for an
    /// app without a package SID.
    pub fn auth(&self, provider: &super::WnsConfig) -> Option<super::WnsAppAuth> {
        let package_sid = self.package_sid.as_deref()?;
        Some(super::WnsAppAuth::of(
            package_sid,
            self.token_url.as_deref(),
            self.scope.as_deref(),
            self.client_id.as_deref(),
            provider,
        ))
    }

    /// The app's secrets by key name (absent ones too).
    pub fn secrets(&self) -> [(&'static str, Option<&SecretSource>); 1] {
        [("client_secret", self.client_secret.as_ref())]
    }

    /// The app's secrets by key name.
    pub fn secrets_mut(&mut self) -> [(&'static str, &mut Option<SecretSource>); 1] {
        [("client_secret", &mut self.client_secret)]
    }
}
