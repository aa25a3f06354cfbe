//! The registration phase: every device of the scenario registered before the first call,
//! `register_concurrency` at a time, with stable device ids and tokens so that a rerun
//! refreshes the same registrations (or reuses them) instead of adding new ones.
//!
//! With `webpush_subscribe_url`, a Web Push device's registration first asks the simulator
//! for a subscription, inside the same concurrent slot: a million devices are registered in
//! one pass, each subscription registered as soon as it is made.

use super::client::ApiClient;
use super::failure;
use super::report::RegistrationReport;
use super::subscriber::Subscriber;
use super::{LoadgenError, Scenario};
use bytes::Bytes;
use http::Method;
use indicatif::{ProgressBar, ProgressDrawTarget};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The hex digits every token of device `device` of identity `identity` is made from: unique
/// per device and prefix, stable across runs (so a rerun refreshes rather than duplicates).
/// The prefix must be in it: a token belongs to one identity, so another run's identities
/// registering the same tokens would take them away from these. `benches/registry_memory.rs`
/// stores the same registrations directly.
pub fn device_token_digits(scenario: &Scenario, identity: usize, device: usize) -> String {
    let prefix = scenario
        .identity_prefix
        .bytes()
        .fold(0x811c_9dc5u32, |hash, byte| {
            (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
        });
    format!(
        "{:016x}{prefix:08x}{identity:08x}{device:04x}",
        scenario.seed
    )
}

/// The registration body of device `device` of identity `identity`.
fn registration_body(scenario: &Scenario, identity: usize, device: usize) -> serde_json::Value {
    let unique = device_token_digits(scenario, identity, device);
    match scenario.platform_of(identity, device) {
        "fcm" => json!({"platform": "fcm", "app": "android", "token": format!("loadgen:{unique}")}),
        "wns" => json!({"platform": "wns", "app": "windows",
            "token": format!("https://db5p.notify.windows.com/w/?token={unique}")}),
        "webpush" => json!({"platform": "webpush", "app": "web",
            "endpoint": format!("https://fcm.googleapis.com/fcm/send/{unique}"),
            "keys": {
                "p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM",
                "auth": "tBHItJI5svbpez7KI4CCXg"}}),
        // The PushKit token for the rings and the app's regular token for the call-ended
        // notices, both production tokens by the simulator's rule (`simulator::apns`: a
        // regular token's second byte is 0xa1).
        _ => json!({"platform": "apns", "app": "ios",
            "token": format!("{unique:0>64}"), "alert_token": format!("00a1{unique:0>60}"),
            "environment": "production"}),
    }
}

/// A registration body, or what it waits for.
enum Body {
    /// Known already.
    Ready(Bytes),
    /// A Web Push device's, once the simulator has made its subscription.
    Subscribe(Arc<Subscriber>),
}

impl Body {
    /// The body to PUT.
    async fn make(self) -> Result<Bytes, super::subscriber::SubscribeError> {
        match self {
            Body::Ready(body) => Ok(body),
            Body::Subscribe(subscriber) => {
                let subscription = subscriber.subscribe().await?;
                Ok(Bytes::from(subscription.registration_body().to_string()))
            }
        }
    }
}

/// Registers every device, `register_concurrency` at a time.
pub async fn register(
    scenario: &Scenario,
    client: &Arc<ApiClient>,
    show: bool,
) -> Result<RegistrationReport, LoadgenError> {
    let devices: Vec<(usize, usize)> = (0..scenario.identities)
        .flat_map(|identity| (0..scenario.devices_of(identity)).map(move |d| (identity, d)))
        .collect();
    let bar = if show {
        ProgressBar::with_draw_target(Some(devices.len() as u64), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    bar.set_message("registering");
    let subscriber = match &scenario.webpush_subscribe_url {
        Some(url) => Some(Arc::new(Subscriber::new(
            url,
            scenario.simulator_cert(),
            Duration::from_millis(scenario.request_timeout_ms),
        )?)),
        None => None,
    };
    let started = Instant::now();
    let errors: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let slots = Arc::new(tokio::sync::Semaphore::new(scenario.register_concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    for (identity, device) in devices.iter().copied() {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break; // never closed
        };
        while tasks.try_join_next().is_some() {}
        let path = format!(
            "/v1/identities/{}/registrations/d{device}",
            scenario.identity(identity)
        );
        let body = match &subscriber {
            Some(subscriber) if scenario.platform_of(identity, device) == "webpush" => {
                Body::Subscribe(subscriber.clone())
            }
            _ => Body::Ready(Bytes::from(
                registration_body(scenario, identity, device).to_string(),
            )),
        };
        let (client, errors, bar) = (client.clone(), errors.clone(), bar.clone());
        tasks.spawn(async move {
            let failed = match body.make().await {
                Ok(body) => failure(&client.send(Method::PUT, &path, body).await),
                Err(error) => Some(error.kind()),
            };
            if let Some(kind) = failed {
                let mut errors = errors
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                *errors.entry(kind).or_default() += 1;
            }
            bar.inc(1);
            drop(slot);
        });
    }
    while tasks.join_next().await.is_some() {}
    bar.finish_and_clear();
    let errors = std::mem::take(
        &mut *errors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    let failed: u64 = errors.values().sum();
    if failed == devices.len() as u64 {
        return Err(LoadgenError::Registration(format!("{errors:?}")));
    }
    Ok(RegistrationReport {
        registered: true,
        devices: devices.len() as u64 - failed,
        seconds: started.elapsed().as_secs_f64(),
        errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_per_device_and_prefix() {
        // A token belongs to one identity: two runs with different prefixes on one node must
        // not register the same tokens, or the second takes the first one's devices away.
        let a = Scenario {
            platforms: BTreeMap::from([("apns".to_owned(), 1), ("fcm".to_owned(), 1)]),
            ..Scenario::default()
        };
        let b = Scenario {
            identity_prefix: "other".into(),
            ..a.clone()
        };
        let mut tokens = std::collections::HashSet::new();
        for scenario in [&a, &b] {
            for identity in 0..50 {
                for device in 0..3 {
                    let body = registration_body(scenario, identity, device);
                    assert!(tokens.insert(body["token"].to_string()), "{body}");
                    if body["platform"] == "apns" {
                        assert_eq!(body["token"].as_str().map(str::len), Some(64));
                    }
                }
            }
        }
        assert_eq!(
            registration_body(&a, 3, 1),
            registration_body(&a, 3, 1),
            "stable across runs"
        );
    }
}
