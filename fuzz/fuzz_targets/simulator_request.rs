//! The simulator's request parsing: a fuzz-chosen request (method, path, headers, body)
//! judged by each service's rules as the simulator judges it. With `authorized`, the request
//! carries a credential the service accepts (an APNs provider token signed with the
//! development key, an FCM access token the simulator issued), so the fuzzer reaches the
//! rules behind authentication. Never a panic: a load test must not be able to crash it.
#![no_main]

use http::Method;
use libfuzzer_sys::fuzz_target;
use ringcast::providers::apns::auth::ProviderTokenCache;
use ringcast::simulator::apns::{self, ApnsKey, ApnsRequest, ConnectionToken};
use ringcast::simulator::oauth::{self, AccessTokens, FcmAccount};
use ringcast::simulator::webpush::{self, Subscriptions, WebPushRequest, vapid::VerifiedTokens};
use ringcast::simulator::{fcm, wns};
use ringcast_fuzz::{NOW, headers, repository};
use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

/// The services' state, built once: the development APNs key and FCM account, an FCM
/// access token issued at `NOW`, one WNS app.
struct Services {
    apns_keys: Vec<ApnsKey>,
    apns_authorization: String,
    fcm_accounts: Vec<FcmAccount>,
    fcm_tokens: AccessTokens,
    fcm_authorization: String,
    wns_apps: Vec<wns::WnsApp>,
}

static SERVICES: LazyLock<Services> = LazyLock::new(|| {
    let read = |file: &str| std::fs::read_to_string(repository().join(file)).expect(file);
    let apns_keys = vec![
        ApnsKey::from_pem(
            "DEVTEAM123",
            "DEVKEY1234",
            &read("config/dev/apns-dev-key.pub.pem"),
        )
        .expect("the development APNs public key"),
    ];
    let signer = ProviderTokenCache::new(
        "DEVTEAM123",
        "DEVKEY1234",
        read("config/dev/apns-dev-key.p8").as_bytes(),
        Duration::from_secs(30 * 60),
    )
    .expect("the development APNs key");
    let token = signer.token(NOW).expect("a provider token");
    let apns_authorization = token
        .authorization
        .expect("token auth")
        .to_str()
        .expect("ascii")
        .to_owned();
    let account = FcmAccount::from_pem(
        "ringcast-demo@ringcast-demo.iam.gserviceaccount.com",
        "ringcast-demo",
        &read("config/dev/fcm-service-account.pub.pem"),
    )
    .expect("the development FCM account");
    let fcm_tokens = AccessTokens::default();
    let (access, _) = fcm_tokens.issue(&account, NOW, Duration::from_secs(3600));
    Services {
        apns_keys,
        apns_authorization,
        fcm_accounts: vec![account],
        fcm_tokens,
        fcm_authorization: format!("Bearer {access}"),
        wns_apps: vec![wns::WnsApp {
            package_sid: "ms-app://s-1-15-2-ringcast-demo".into(),
            client_secret: "secret".into(),
        }],
    }
});

/// Which service, which method, whether to add the accepted credential, then the path,
/// headers and body of the request.
type Request<'a> = (u8, u8, bool, String, Vec<(String, String)>, &'a [u8]);

const METHODS: [Method; 4] = [Method::POST, Method::GET, Method::PUT, Method::DELETE];

fuzz_target!(|input: Request<'_>| {
    let (service, method, authorized, path, pairs, body) = input;
    let services = &*SERVICES;
    let method = &METHODS[usize::from(method) % METHODS.len()];
    let mut headers = headers(&pairs);
    let now_secs = NOW / 1000;
    match service % 6 {
        0 => {
            if authorized {
                let value = http::HeaderValue::from_str(&services.apns_authorization).unwrap();
                headers.insert(http::header::AUTHORIZATION, value);
            }
            let request = ApnsRequest {
                method,
                path: &path,
                headers: &headers,
                body,
                authority: Some("api.push.apple.com"),
                bundle_ids: &[],
                key_environments: &BTreeMap::new(),
            };
            let mut connection = ConnectionToken::default();
            let _ = apns::judge(request, &services.apns_keys, now_secs, &mut connection);
        }
        1 => {
            if authorized {
                let value = http::HeaderValue::from_str(&services.fcm_authorization).unwrap();
                headers.insert(http::header::AUTHORIZATION, value);
            }
            let request = fcm::FcmRequest {
                method,
                path: &path,
                headers: &headers,
                body,
            };
            let _ = fcm::judge(request, &services.fcm_tokens, NOW);
        }
        2 => {
            let _ = oauth::judge_assertion(
                body,
                &services.fcm_accounts,
                "https://oauth2.googleapis.com/token",
                now_secs,
            );
        }
        3 => {
            let _ = wns::judge_token_request(&path, body, &services.wns_apps);
        }
        4 => {
            let _ = wns::judge_notification(&headers, body, authorized);
            let _ = wns::channel_token(&path);
        }
        _ => {
            let request = WebPushRequest {
                method,
                path: &path,
                origin: "https://push.example.net",
                headers: &headers,
                body,
            };
            let _ = webpush::judge(
                request,
                &Subscriptions::default(),
                &VerifiedTokens::default(),
                |_| false,
                now_secs,
            );
        }
    }
});
