//! Scripted behaviour: how slow, how flaky and how strict the simulated service is.
//!
//! A profile is a TOML file (every key optional) so a load test can say "p99 400 ms, 1 % 503,
//! GOAWAY every 1000 streams" without code. Random choices come from one seeded generator,
//! so a run with the same seed and the same request order makes the same choices.

use crate::vocab::Environment;
use figment::Figment;
use figment::providers::{Format, Toml};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// The scripted behaviour of one simulator.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Profile {
    /// Seed of the generator behind latency and injected errors: same seed, same choices.
    pub seed: u64,
    /// `SETTINGS_MAX_CONCURRENT_STREAMS` advertised on every connection; APNs shows
    /// 500–1500, and a sender must read it rather than assume it.
    pub max_concurrent_streams: u32,
    /// `SETTINGS_MAX_CONCURRENT_STREAMS` a new HTTP/2 connection announces until an APNs
    /// request on it shows a valid credential (or a request for another service arrives),
    /// when a second SETTINGS frame raises it to `max_concurrent_streams`: APNs "allows only
    /// one stream until you post a request with a valid authentication token". APNs streams
    /// beyond the announced limit are refused. Equal to `max_concurrent_streams`, the full
    /// limit is announced at once.
    pub initial_max_concurrent_streams: u32,
    /// Shortest added response delay, in milliseconds.
    pub latency_min_ms: u64,
    /// Longest added response delay, in milliseconds (uniform between min and max).
    pub latency_max_ms: u64,
    /// Errors answered instead of judging the request, each with its own probability and
    /// service, so senders' retry and cleanup paths can be exercised.
    pub errors: Vec<InjectedError>,
    /// Device tokens answered as if the app was uninstalled: APNs tokens (hex, any case) with
    /// 410 `Unregistered` (+ `timestamp`), FCM registration tokens (exact) with 404
    /// `UNREGISTERED`. One list, because a load test scripts "these devices are gone"
    /// whatever their platform.
    pub unregistered_tokens: Vec<String>,
    /// Send GOAWAY (graceful) after this many push streams on one connection, as APNs does
    /// when it rotates connections; `None` never does.
    pub goaway_after_streams: Option<u64>,
    /// Probability in `[0, 1]` that a request's connection is dropped (TCP closed, no
    /// GOAWAY, no answer), as a flaky network or a crashed front end does: the sender must
    /// reconnect and must not assume the push was delivered or lost.
    pub reset_rate: f64,
    /// Freeze a connection once it has taken this many push streams: nothing is read or
    /// written (PINGs go unanswered) for `stall_ms`, as a wedged front end looks to a
    /// sender, whose deadlines and PING watchdog must notice; `None` never stalls.
    pub stall_after_streams: Option<u64>,
    /// How long a stall lasts, in milliseconds.
    pub stall_ms: u64,
    /// Throttling in bursts, as a push service rate-limits a sender: of every `every`
    /// push requests (counted over all connections), the first `length` are answered as the
    /// service throttles (APNs and Web Push 429 `TooManyRequests`, FCM 429 `QUOTA_EXCEEDED`,
    /// WNS 406). `None` never throttles.
    pub throttle: Option<Throttle>,
    /// The bundle ids the simulated phones' APNs tokens belong to (the apps of the team).
    /// A push whose topic names another bundle is answered 400 `DeviceTokenNotForTopic`, as
    /// Apple answers a sender configured with a wrong bundle id. Empty: every bundle id.
    pub apns_bundle_ids: Vec<String>,
    /// APNs keys restricted to one environment, by key id (`KEYID = "production"`), as
    /// Apple lets a key be: a push signed with one reaching the other environment's host is
    /// `403 BadEnvironmentKeyInToken`. A key not named serves both.
    pub apns_key_environments: BTreeMap<String, Environment>,
    /// FCM's limit on messages to one registration token in a minute (240 on Android, FCM's
    /// "Throttling and quotas"); past it, `429 QUOTA_EXCEEDED` naming the device's rate. 0
    /// lifts it (a benchmark that repeats one token, as `h2load` does).
    pub fcm_device_messages_per_minute: u32,
    /// The same per hour (5,000 on Android).
    pub fcm_device_messages_per_hour: u32,
    /// Make the WNS and Web Push sides HTTP/1.1-only hosts, as some channel hosts and push
    /// services are (docs/protocols.md, "Transport, for every service"): they are served only on
    /// the HTTP/1.1 listener (ALPN `http/1.1`), and Web Push subscriptions point there; on
    /// the HTTP/2 listener they are answered `421`. The token endpoints are HTTP/1.1-only
    /// whatever this says.
    pub http1_only: bool,
}

/// A recurring burst of 429 answers.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Throttle {
    /// The period, in push requests.
    pub every: u64,
    /// How many requests at the start of each period are throttled.
    pub length: u64,
    /// `Retry-After` sent with each 429, in seconds.
    #[serde(default)]
    pub retry_after_seconds: Option<u64>,
}

impl Default for Profile {
    fn default() -> Self {
        Self {
            seed: 1,
            max_concurrent_streams: 1000,
            initial_max_concurrent_streams: 1,
            latency_min_ms: 0,
            latency_max_ms: 0,
            errors: Vec::new(),
            unregistered_tokens: Vec::new(),
            goaway_after_streams: None,
            reset_rate: 0.0,
            stall_after_streams: None,
            stall_ms: 0,
            throttle: None,
            apns_bundle_ids: Vec::new(),
            apns_key_environments: BTreeMap::new(),
            fcm_device_messages_per_minute: 240,
            fcm_device_messages_per_hour: 5_000,
            http1_only: false,
        }
    }
}

/// Which simulated service a request is for. The server tells by the path; an injected
/// error names the one it hits, so a profile can make FCM flaky while APNs stays healthy.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    /// APNs (`/3/device/...`). The default, so profiles written before FCM keep working.
    #[default]
    Apns,
    /// FCM HTTP v1 (`/v1/projects/{project}/messages:send`).
    Fcm,
    /// The Google OAuth token endpoint (`/token`) FCM access tokens come from.
    Oauth,
    /// WNS: the token endpoint (`/wns/token`) and channels (`/w/...`).
    Wns,
    /// A Web Push service (`/wp/<subscription>`).
    #[serde(rename = "webpush")]
    WebPush,
}

impl Service {
    /// The name used in profiles and records (`apns`, `fcm`, `oauth`).
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Apns => "apns",
            Service::Fcm => "fcm",
            Service::Oauth => "oauth",
            Service::Wns => "wns",
            Service::WebPush => "webpush",
        }
    }
}

/// One kind of injected failure.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InjectedError {
    /// The service whose requests get it; `apns` when absent.
    #[serde(default)]
    pub service: Service,
    /// HTTP status to answer, e.g. 503; for WNS also 200, a notification WNS accepted and
    /// then dropped.
    pub status: u16,
    /// What the body names: Apple's `reason` (`ServiceUnavailable`), FCM's `errorCode`
    /// (`QUOTA_EXCEEDED`; a bare gRPC status such as `UNAUTHENTICATED` gives an error without
    /// FCM details), or the OAuth `error` (`invalid_grant`). `code` is accepted as a synonym,
    /// as FCM calls it that. For WNS, `X-WNS-Error-Description`; with status 200, the
    /// `X-WNS-Status` (`dropped` or `channelthrottled`, [`WNS_DROPS`]).
    #[serde(alias = "code")]
    pub reason: String,
    /// Probability in `[0, 1]` that a request gets this error.
    pub rate: f64,
    /// `Retry-After` to send with it, in seconds. A scripted FCM `QUOTA_EXCEEDED` always
    /// carries one (60 when absent), as FCM does; other errors only when this is set.
    #[serde(default)]
    pub retry_after_seconds: Option<u64>,
}

/// The `X-WNS-Status` values of a notification WNS answers `200` for and does not deliver:
/// `dropped` (an error, a client that refuses notifications, an offline device for an
/// uncached one) and `channelthrottled` (the channel's rate limit).
pub const WNS_DROPS: [&str; 2] = ["dropped", "channelthrottled"];

/// Why a profile could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The file is unreadable or is not a valid profile.
    #[error("profile: {0}")]
    Load(#[from] Box<figment::Error>),
    /// The values parse but make no sense together.
    #[error("profile: {0}")]
    Invalid(String),
}

/// What the profile decided for one request, before the request is judged.
#[derive(Clone, Debug, PartialEq)]
pub struct Script {
    /// Delay before answering.
    pub latency: Duration,
    /// An error to answer instead of judging the request.
    pub error: Option<InjectedError>,
    /// Drop the connection instead of answering.
    pub reset: bool,
}

impl Profile {
    /// Reads a profile from a TOML file; absent keys take their defaults.
    pub fn load(path: &Path) -> Result<Self, ProfileError> {
        let profile: Profile = Figment::new()
            .merge(Toml::file_exact(path))
            .extract()
            .map_err(Box::new)?;
        profile.validate()?;
        Ok(profile)
    }

    /// Rejects contradictory values, reporting all of them at once.
    pub fn validate(&self) -> Result<(), ProfileError> {
        let mut problems = Vec::new();
        if self.max_concurrent_streams == 0 {
            problems.push("max_concurrent_streams must be at least 1".to_owned());
        }
        if self.initial_max_concurrent_streams == 0 {
            problems.push("initial_max_concurrent_streams must be at least 1".to_owned());
        }
        if self.initial_max_concurrent_streams > self.max_concurrent_streams {
            problems
                .push("initial_max_concurrent_streams is above max_concurrent_streams".to_owned());
        }
        if self.latency_min_ms > self.latency_max_ms {
            problems.push("latency_min_ms is above latency_max_ms".to_owned());
        }
        if self.goaway_after_streams == Some(0) {
            problems.push("goaway_after_streams must be at least 1".to_owned());
        }
        for error in &self.errors {
            if !(0.0..=1.0).contains(&error.rate) {
                problems.push(format!("errors: rate of {} is not in [0, 1]", error.reason));
            }
            if error.status == 200 && error.service == Service::Wns {
                // WNS drops a notification with a 200: only its X-WNS-Status tells.
                if !WNS_DROPS.contains(&error.reason.as_str()) {
                    problems.push(format!(
                        "errors: a WNS 200 names an X-WNS-Status of {WNS_DROPS:?}, not {}",
                        error.reason
                    ));
                }
            } else if !(400..=599).contains(&error.status) {
                problems.push(format!("errors: status {} is not an error", error.status));
            }
            // A client keys on FCM's errorCode; a documented code under another status than
            // FCM's would test a combination FCM never sends.
            if error.service == Service::Fcm
                && let Some((status, _)) = super::fcm::documented_status(&error.reason)
                && status != error.status
            {
                problems.push(format!(
                    "errors: FCM answers {} with status {status}, not {}",
                    error.reason, error.status
                ));
            }
        }
        if let Some(throttle) = &self.throttle
            && (throttle.every == 0 || throttle.length > throttle.every)
        {
            problems.push("throttle: every must be at least 1 and length at most every".to_owned());
        }
        if self.stall_after_streams == Some(0) {
            problems.push("stall_after_streams must be at least 1".to_owned());
        }
        if !(0.0..=1.0).contains(&self.reset_rate) {
            problems.push("reset_rate is not in [0, 1]".to_owned());
        }
        for service in [
            Service::Apns,
            Service::Fcm,
            Service::Oauth,
            Service::Wns,
            Service::WebPush,
        ] {
            let total: f64 = self
                .errors
                .iter()
                .filter(|error| error.service == service)
                .map(|error| error.rate)
                .sum();
            if total > 1.0 {
                problems.push(format!(
                    "errors: {} rates add up to {total}, above 1",
                    service.as_str()
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ProfileError::Invalid(problems.join("; ")))
        }
    }

    /// Draws the script of one request to `service` from `rng`: the latency first, then one
    /// uniform draw against the cumulative rates of that service's errors, then one for a
    /// reset; always the same three draws, so changing a rate (or the mix of services) does
    /// not shift the rest of the sequence.
    pub fn script(&self, service: Service, rng: &mut fastrand::Rng) -> Script {
        let latency = Duration::from_millis(
            rng.u64(self.latency_min_ms..=self.latency_max_ms.max(self.latency_min_ms)),
        );
        let draw = rng.f64();
        let mut cumulative = 0.0;
        let error = self
            .errors
            .iter()
            .filter(|error| error.service == service)
            .find(|error| {
                cumulative += error.rate;
                draw < cumulative
            })
            .cloned();
        let reset = rng.f64() < self.reset_rate;
        Script {
            latency,
            error,
            reset,
        }
    }

    /// The answer push request number `n` (1-based, over all connections) gets from the
    /// throttle, if it falls in a burst, as each service throttles a sender: 429
    /// `TooManyRequests` for APNs and Web Push, 429 `QUOTA_EXCEEDED` for FCM, and for WNS
    /// 406 (its "throttle limit exceeded"; WNS keeps 429 for a spent monthly quota).
    pub fn throttled(&self, service: Service, n: u64) -> Option<InjectedError> {
        let throttle = self.throttle.as_ref()?;
        if service == Service::Oauth || n.saturating_sub(1) % throttle.every >= throttle.length {
            return None;
        }
        let (status, reason) = match service {
            Service::Fcm => (429, "QUOTA_EXCEEDED"),
            Service::Wns => (406, "The cloud service exceeded its throttle limit"),
            _ => (429, "TooManyRequests"),
        };
        Some(InjectedError {
            service,
            status,
            reason: reason.to_owned(),
            rate: 1.0,
            retry_after_seconds: throttle.retry_after_seconds,
        })
    }

    /// FCM's per-device limits as the profile sets them.
    pub fn fcm_device_limits(&self) -> super::fcm::device_rate::DeviceLimits {
        super::fcm::device_rate::DeviceLimits {
            per_minute: self.fcm_device_messages_per_minute,
            per_hour: self.fcm_device_messages_per_hour,
        }
    }

    /// Whether this APNs token is scripted as unregistered (hex: case does not matter).
    pub fn is_unregistered(&self, device_token: &str) -> bool {
        self.unregistered_tokens
            .iter()
            .any(|token| token.eq_ignore_ascii_case(device_token))
    }

    /// Whether this FCM registration token is scripted as unregistered (exact: FCM tokens
    /// are case-sensitive).
    pub fn is_unregistered_fcm(&self, registration_token: &str) -> bool {
        self.unregistered_tokens
            .iter()
            .any(|token| token == registration_token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_throttle_answers_in_bursts_as_each_service_throttles() {
        let profile = Profile {
            throttle: Some(Throttle {
                every: 10,
                length: 3,
                retry_after_seconds: Some(1),
            }),
            ..Profile::default()
        };
        let throttled: Vec<u64> = (1..=25)
            .filter(|n| profile.throttled(Service::Apns, *n).is_some())
            .collect();
        assert_eq!(throttled, [1, 2, 3, 11, 12, 13, 21, 22, 23]);
        let apns = profile.throttled(Service::Apns, 1).unwrap();
        assert_eq!(
            (apns.status, apns.reason.as_str()),
            (429, "TooManyRequests")
        );
        assert_eq!(apns.retry_after_seconds, Some(1));
        let fcm = profile.throttled(Service::Fcm, 2).unwrap();
        assert_eq!(fcm.reason, "QUOTA_EXCEEDED");
        assert_eq!(profile.throttled(Service::Wns, 3).unwrap().status, 406);
        assert!(profile.throttled(Service::Oauth, 1).is_none());
        assert!(Profile::default().throttled(Service::Apns, 1).is_none());
        let bad = Profile {
            throttle: Some(Throttle {
                every: 2,
                length: 3,
                retry_after_seconds: None,
            }),
            ..Profile::default()
        };
        assert!(bad.validate().is_err());
    }

    fn flaky() -> Profile {
        Profile {
            latency_min_ms: 5,
            latency_max_ms: 50,
            errors: vec![InjectedError {
                service: Service::Apns,
                status: 503,
                reason: "ServiceUnavailable".into(),
                rate: 0.25,
                retry_after_seconds: None,
            }],
            ..Profile::default()
        }
    }

    #[test]
    fn same_seed_same_script() {
        let profile = flaky();
        let draws = |seed| {
            let mut rng = fastrand::Rng::with_seed(seed);
            (0..100)
                .map(|_| profile.script(Service::Apns, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(draws(7), draws(7));
        assert_ne!(draws(7), draws(8));
    }

    #[test]
    fn latency_and_error_rate_follow_the_profile() {
        let profile = flaky();
        let mut rng = fastrand::Rng::with_seed(3);
        let scripts: Vec<Script> = (0..4000)
            .map(|_| profile.script(Service::Apns, &mut rng))
            .collect();
        assert!(
            scripts
                .iter()
                .all(|s| (5..=50).contains(&(s.latency.as_millis() as u64)))
        );
        let errors = scripts.iter().filter(|s| s.error.is_some()).count();
        assert!((800..1200).contains(&errors), "{errors} errors in 4000");
    }

    #[test]
    fn resets_follow_their_rate() {
        let profile = Profile {
            reset_rate: 0.1,
            ..Profile::default()
        };
        let mut rng = fastrand::Rng::with_seed(5);
        let resets = (0..4000)
            .filter(|_| profile.script(Service::Apns, &mut rng).reset)
            .count();
        assert!((300..500).contains(&resets), "{resets} resets in 4000");
        let broken = Profile {
            reset_rate: 1.5,
            ..Profile::default()
        };
        assert!(broken.validate().is_err());
    }

    #[test]
    fn only_wns_answers_200_for_an_error_and_only_with_a_documented_drop() {
        let answering = |service, status, reason: &str| Profile {
            errors: vec![InjectedError {
                service,
                status,
                reason: reason.into(),
                rate: 1.0,
                retry_after_seconds: None,
            }],
            ..Profile::default()
        };
        for drop in WNS_DROPS {
            assert!(
                answering(Service::Wns, 200, drop).validate().is_ok(),
                "{drop}"
            );
        }
        assert!(answering(Service::Wns, 200, "received").validate().is_err());
        assert!(answering(Service::Apns, 200, "dropped").validate().is_err());
        assert!(answering(Service::Wns, 302, "dropped").validate().is_err());
    }

    #[test]
    fn loads_toml_with_defaults_and_reports_every_problem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(
            &path,
            "max_concurrent_streams = 3\nunregistered_tokens = [\"AB\"]\n\
             apns_bundle_ids = [\"com.example.app\"]\nfcm_device_messages_per_minute = 0\n\
             apns_key_environments = { KEY1234567 = \"sandbox\" }\n\
             [[errors]]\nstatus = 429\nreason = \"TooManyRequests\"\nrate = 0.5\n",
        )
        .unwrap();
        let profile = Profile::load(&path).unwrap();
        assert_eq!(profile.max_concurrent_streams, 3);
        assert_eq!(
            profile.initial_max_concurrent_streams, 1,
            "APNs: one until a valid token"
        );
        assert_eq!(profile.apns_bundle_ids, ["com.example.app"]);
        assert_eq!(
            profile.apns_key_environments["KEY1234567"],
            Environment::Sandbox
        );
        assert_eq!(
            profile.fcm_device_limits(),
            crate::simulator::fcm::device_rate::DeviceLimits {
                per_minute: 0,
                per_hour: 5_000
            }
        );
        assert_eq!(profile.seed, 1);
        assert!(profile.is_unregistered("ab"));

        std::fs::write(
            &path,
            "latency_min_ms = 9\nlatency_max_ms = 1\nmax_concurrent_streams = 0\n",
        )
        .unwrap();
        let message = Profile::load(&path).unwrap_err().to_string();
        assert!(message.contains("latency_min_ms") && message.contains("max_concurrent_streams"));
        std::fs::write(
            &path,
            "max_concurrent_streams = 4\ninitial_max_concurrent_streams = 5\n",
        )
        .unwrap();
        let message = Profile::load(&path).unwrap_err().to_string();
        assert!(
            message.contains("initial_max_concurrent_streams is above"),
            "{message}"
        );
        std::fs::write(&path, "bogus = 1\n").unwrap();
        assert!(Profile::load(&path).is_err());
    }

    #[test]
    fn errors_hit_only_their_service_and_old_profiles_mean_apns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(
            &path,
            "[[errors]]\nstatus = 503\nreason = \"ServiceUnavailable\"\nrate = 1.0\n\
             [[errors]]\nservice = \"fcm\"\nstatus = 429\ncode = \"QUOTA_EXCEEDED\"\n\
             rate = 1.0\nretry_after_seconds = 7\n",
        )
        .unwrap();
        let profile = Profile::load(&path).unwrap();
        assert_eq!(profile.errors[0].service, Service::Apns);
        let mut rng = fastrand::Rng::with_seed(1);
        let apns = profile.script(Service::Apns, &mut rng).error.unwrap();
        assert_eq!(
            (apns.status, apns.reason.as_str()),
            (503, "ServiceUnavailable")
        );
        let fcm = profile.script(Service::Fcm, &mut rng).error.unwrap();
        assert_eq!((fcm.status, fcm.reason.as_str()), (429, "QUOTA_EXCEEDED"));
        assert_eq!(fcm.retry_after_seconds, Some(7));
        assert_eq!(profile.script(Service::Oauth, &mut rng).error, None);
    }

    #[test]
    fn an_fcm_code_under_the_wrong_status_is_refused() {
        let profile = Profile {
            errors: vec![InjectedError {
                service: Service::Fcm,
                status: 500,
                reason: "UNREGISTERED".into(),
                rate: 0.1,
                retry_after_seconds: None,
            }],
            ..Profile::default()
        };
        let message = profile.validate().unwrap_err().to_string();
        assert!(
            message.contains("UNREGISTERED with status 404"),
            "{message}"
        );
    }

    #[test]
    fn fcm_tokens_are_matched_exactly() {
        let profile = Profile {
            unregistered_tokens: vec!["Gone:APA91b".into()],
            ..Profile::default()
        };
        assert!(profile.is_unregistered_fcm("Gone:APA91b"));
        assert!(!profile.is_unregistered_fcm("gone:apa91b"));
    }
}
