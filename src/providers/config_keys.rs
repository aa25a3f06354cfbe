//! The connection keys every provider's `[providers.*]` section shares: `connections`,
//! `max_in_flight`, `request_timeout_ms`, `ping_interval_seconds`, `retry`, `queues`, so a
//! reader who tunes one provider knows all four. The provider-specific names they replace
//! (`connections_per_credential`, `connections_per_host`, `connections_per_origin`) are still
//! read, and named in a start-up warning until the file is updated.

/// The warning for `prefix.old` when a configuration still `used` it, pointing at `new`.
pub fn deprecated(prefix: &str, old: &str, new: &str, used: bool) -> Option<String> {
    used.then(|| {
        format!(
            "{prefix}.{old} is deprecated: name it {prefix}.{new} (the same key in every provider)"
        )
    })
}

#[cfg(test)]
mod tests {
    use crate::providers::apns::config::ApnsConfig;
    use crate::providers::fcm::config::FcmConfig;
    use crate::providers::webpush::config::WebPushProviderConfig;
    use crate::providers::wns::config::WnsConfig;
    use figment::Figment;
    use figment::providers::{Format, Toml};

    /// A provider section read from TOML, as the configuration loader reads it.
    fn read<T: serde::de::DeserializeOwned>(text: &str) -> T {
        Figment::from(Toml::string(text)).extract().unwrap()
    }

    #[test]
    fn every_provider_takes_the_same_keys_and_the_old_names_with_a_warning() {
        let common = r#"connections = 3
max_in_flight = 7
request_timeout_ms = 900
ping_interval_seconds = 12
[retry]
max_retries = 2
[queues]
total = 100
"#;
        let apns: ApnsConfig = read(common);
        let fcm: FcmConfig = read(common);
        let wns: WnsConfig = read(common);
        let webpush: WebPushProviderConfig = read(common);
        assert_eq!(
            [
                apns.connections(),
                fcm.connections(),
                wns.connections(),
                webpush.connections()
            ],
            [3; 4]
        );
        assert_eq!(
            [
                apns.pool_settings().keep_alive_interval,
                fcm.pool_settings().keep_alive_interval,
                crate::providers::wns::client::pool_settings(&wns).keep_alive_interval,
                webpush
                    .pool_settings(crate::providers::pool::guard::AddressGuard::default())
                    .keep_alive_interval,
            ],
            [std::time::Duration::from_secs(12); 4]
        );
        assert!(apns.deprecations("providers.apns").is_empty());

        let apns: ApnsConfig = read("connections_per_credential = 5");
        let fcm: FcmConfig = read("connections_per_credential = 5");
        let wns: WnsConfig = read("connections_per_host = 5");
        let webpush: WebPushProviderConfig = read("connections_per_origin = 5");
        assert_eq!(
            [
                apns.connections(),
                fcm.connections(),
                wns.connections(),
                webpush.connections()
            ],
            [5; 4]
        );
        assert_eq!(
            wns.deprecations("providers.wns"),
            ["providers.wns.connections_per_host is deprecated: name it \
              providers.wns.connections (the same key in every provider)"]
        );
        for warnings in [
            apns.deprecations("p"),
            fcm.deprecations("p"),
            webpush.deprecations("p"),
        ] {
            assert_eq!(warnings.len(), 1, "{warnings:?}");
        }
    }

    #[test]
    fn the_providers_with_many_origins_take_one_name_for_their_http1_connections() {
        let wns: WnsConfig = read("http1_connections = 6");
        let webpush: WebPushProviderConfig = read("http1_connections = 6");
        assert_eq!(
            [wns.http1_connections(), webpush.http1_connections()],
            [6, 6]
        );
        assert!(wns.deprecations("p").is_empty() && webpush.deprecations("p").is_empty());

        let wns: WnsConfig = read("http1_connections_per_host = 2");
        let webpush: WebPushProviderConfig = read("http1_connections_per_origin = 2");
        assert_eq!(
            [wns.http1_connections(), webpush.http1_connections()],
            [2, 2]
        );
        assert_eq!(
            webpush.deprecations("providers.webpush"),
            [
                "providers.webpush.http1_connections_per_origin is deprecated: name it \
              providers.webpush.http1_connections (the same key in every provider)"
            ]
        );
        assert_eq!(wns.deprecations("p").len(), 1);
        let zero: WnsConfig = read("http1_connections_per_host = 0");
        assert!(
            zero.validate("p")
                .iter()
                .any(|e| e.contains("http1_connections")),
            "the old name is validated too"
        );
    }
}
