//! `spawn_app`: a real node on a free port, with two tenants, over the store a test picks.

use ringcast::app::BackgroundNode;
use ringcast::config::{
    ApnsAppConfig, AppConfig, Config, FcmAppConfig, IdentityTokenConfig, SecretSource,
    ServerKeySource, StoreKind, TenantConfig, TokenAlgorithm, WnsAppConfig,
};
use ringcast::registry::Platform;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// Tenant A's server key.
pub const KEY_A: &str = "tenant-a-server-key-0001";
/// Tenant B's server key.
pub const KEY_B: &str = "tenant-b-server-key-0002";
/// The HS256 secret of tenant A's identity tokens.
pub const TOKEN_SECRET_A: &str = "tenant-a-identity-token-secret-0123456789";
/// A valid APNs token.
pub const APNS_TOKEN: &str = "a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1";

/// Which store a node under test uses.
pub enum TestStore {
    /// A redb file at this path.
    Embedded(PathBuf),
    /// Redis at this URL.
    Redis(String),
}

/// A running node and a client for it.
pub struct TestApp {
    pub node: BackgroundNode,
    pub client: reqwest::Client,
    /// Keeps the identity-token secret file (and an embedded store) alive.
    _dir: tempfile::TempDir,
}

/// The node's configuration: tenants `a` and `b`, each with one app per platform.
pub fn test_config(store: TestStore, dir: &std::path::Path) -> Config {
    let secret_file = dir.join("tenant-a-hs256.secret");
    std::fs::write(&secret_file, TOKEN_SECRET_A).unwrap();
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.workers = 2;
    config.server.shutdown_timeout_seconds = 5;
    // One port per test node: the admin routes (/metrics, /readyz, ...) beside the API, as in
    // the development default. tests/operators covers the separate admin listener.
    config.admin.on_api_listener = true;
    config.registry.shards = 2;
    config.registry.store_timeout_ms = 1_000;
    match store {
        TestStore::Embedded(path) => config.registry.embedded.path = path,
        TestStore::Redis(url) => {
            config.registry.store = StoreKind::Redis;
            config.registry.redis.url = url;
            config.registry.redis.command_timeout_ms = 500;
            config.registry.redis.connect_timeout_ms = 500;
        }
    }
    for (id, key) in [("a", KEY_A), ("b", KEY_B)] {
        let mut apps = BTreeMap::new();
        let ios = ApnsAppConfig {
            bundle_id: Some("com.example.phone".into()),
            team_id: Some("TEAMID1234".into()),
            ..Default::default()
        };
        apps.insert("ios".to_owned(), AppConfig::Apns(ios));
        let android = FcmAppConfig {
            project_id: Some("example-phone".into()),
            ..Default::default()
        };
        apps.insert("android".to_owned(), AppConfig::Fcm(android));
        let windows = WnsAppConfig {
            package_sid: Some("ms-app://s-1-15-2-example".into()),
            ..Default::default()
        };
        apps.insert("windows".to_owned(), AppConfig::Wns(windows));
        apps.insert("web".to_owned(), AppConfig::new(Platform::Webpush));
        let identity_tokens = (id == "a").then(|| IdentityTokenConfig {
            algorithm: TokenAlgorithm::HS256,
            key: SecretSource::File(secret_file.clone()),
            issuer: None,
            audience: None,
            leeway_seconds: 0,
            max_lifetime_seconds: 86_400,
        });
        let tenant = TenantConfig {
            server_keys: vec![ServerKeySource::Sha256(hex::encode(Sha256::digest(key)))],
            identity_tokens,
            max_ttl_seconds: if id == "a" { 15_552_000 } else { 86_400 },
            ttl_caps: Vec::new(),
            ring_timeout_seconds: 45,
            apps,
            limits: Default::default(),
        };
        config.tenants.insert(id.to_owned(), tenant);
    }
    config
}

/// Starts a node over a fresh embedded store.
pub async fn spawn_app() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::Embedded(dir.path().join("registry.redb"));
    spawn_with(test_config(store, dir.path()), dir).await
}

/// Starts a node with `config`; `dir` lives as long as the app.
pub async fn spawn_with(config: Config, dir: tempfile::TempDir) -> TestApp {
    let node = tokio::task::spawn_blocking(move || BackgroundNode::spawn(config))
        .await
        .unwrap()
        .expect("node starts");
    TestApp {
        node,
        client: reqwest::Client::new(),
        _dir: dir,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.node.url())
    }

    /// `PUT` a registration with `credential`; returns the status and the JSON body.
    pub async fn register(
        &self,
        credential: &str,
        identity: &str,
        device: &str,
        body: &Value,
    ) -> (u16, Value) {
        let path = format!("/v1/identities/{identity}/registrations/{device}");
        self.send_json(&self.client, reqwest::Method::PUT, credential, &path, body)
            .await
    }

    /// `POST` `body` as JSON to `path` with `credential` over `client` (the app's, or one
    /// whose connection is new); returns the status and the JSON body.
    pub async fn post(
        &self,
        client: &reqwest::Client,
        credential: &str,
        path: &str,
        body: &Value,
    ) -> (u16, Value) {
        self.send_json(client, reqwest::Method::POST, credential, path, body)
            .await
    }

    /// Sends `body` as JSON to `path` with `method` and `credential` over `client`; returns
    /// the status and the JSON body.
    async fn send_json(
        &self,
        client: &reqwest::Client,
        method: reqwest::Method,
        credential: &str,
        path: &str,
        body: &Value,
    ) -> (u16, Value) {
        let response = client
            .request(method, self.url(path))
            .bearer_auth(credential)
            .json(body)
            .send()
            .await
            .unwrap();
        status_and_json(response).await
    }

    /// Lists an identity's registrations.
    pub async fn list(&self, credential: &str, identity: &str) -> (u16, Value) {
        let response = self
            .client
            .get(self.url(&format!("/v1/identities/{identity}/registrations")))
            .bearer_auth(credential)
            .send()
            .await
            .unwrap();
        status_and_json(response).await
    }

    /// Sends a request with any method, path and credential.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        credential: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self.client.request(method, self.url(path));
        if let Some(credential) = credential {
            request = request.bearer_auth(credential);
        }
        status_and_json(request.send().await.unwrap()).await
    }

    /// The device ids an identity has (tenant A's view unless `credential` says otherwise).
    pub async fn devices(&self, credential: &str, identity: &str) -> Vec<String> {
        let (status, body) = self.list(credential, identity).await;
        assert_eq!(status, 200, "{body}");
        body["registrations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["device_id"].as_str().unwrap().to_owned())
            .collect()
    }

    pub async fn stop(self) {
        self.node.stop().await.unwrap();
    }
}

/// Reads a response as (status, JSON or Null), checking that errors are problem+json.
pub async fn status_and_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    if status >= 400 {
        assert_eq!(
            content_type.as_deref(),
            Some("application/problem+json"),
            "{status}: {text}"
        );
    }
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A registration body for an APNs device.
pub fn apns_body(token: &str) -> Value {
    json!({"platform": "apns", "app": "ios", "token": token})
}

/// An identity token of tenant A for `identity`, expiring `exp_in` seconds from now.
pub fn identity_token(identity: &str, exp_in: i64, secret: &str) -> String {
    let now = unix_seconds();
    identity_token_issued(identity, now, now + exp_in, secret)
}

/// An identity token of tenant A for `identity`, issued at `iat` and expiring at `exp` (UNIX
/// seconds).
pub fn identity_token_issued(identity: &str, iat: i64, exp: i64, secret: &str) -> String {
    let claims = json!({"iss": "a", "sub": identity, "iat": iat, "exp": exp});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// Waits until the wall clock has entered a later second than now, and returns that second:
/// the earliest `iat` a token issued after something that just happened can carry.
pub async fn next_second() -> i64 {
    let now = unix_seconds();
    loop {
        let second = unix_seconds();
        if second > now {
            return second;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// The wall clock in UNIX seconds, as identity tokens count time.
pub fn unix_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
