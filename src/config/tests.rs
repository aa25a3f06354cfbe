// figment::Jail's closures return figment::Error, which is large; it is test-only plumbing.
#![allow(clippy::result_large_err)]

use super::*;
use figment::Jail;

/// A file of this repository, read by absolute path: the Jail tests move the working directory.
fn repository_file(path: &str) -> String {
    let absolute = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&absolute).unwrap_or_else(|e| panic!("{}: {e}", absolute.display()))
}

/// The development default and every file it names, in a jail whose working directory is
/// the repository's layout.
fn development_default_in(jail: &mut Jail) -> figment::error::Result<()> {
    jail.create_dir("config/dev")?;
    jail.create_file(DEFAULT_CONFIG_FILE, &repository_file(DEFAULT_CONFIG_FILE))?;
    for file in [
        "config/dev/identity-token-hs256.secret",
        "config/dev/apns-dev-key.p8",
        "config/dev/simulator-cert.pem",
        "config/dev/fcm-service-account.json",
        "config/dev/wns-dev-client.secret",
        "config/dev/vapid-dev-key.pem",
    ] {
        jail.create_file(file, &repository_file(file))?;
    }
    Ok(())
}

#[test]
fn the_development_default_loads_and_validates() {
    Jail::expect_with(|jail| {
        development_default_in(jail)?;
        let config = Config::load(None).map_err(|e| e.to_string())?;
        let plan = crate::plan::Plan::build(&config).map_err(|e| e.to_string())?;
        assert_eq!(
            plan.providers.len(),
            4,
            "one app of each platform has a provider"
        );
        assert_eq!(config.registry.store, StoreKind::Embedded);
        assert!(config.tenants.contains_key("demo"));
        // The development default rings through the simulator, not Apple, Google or
        // Microsoft, and trusts only the simulator's certificate for each.
        let simulator = "https://127.0.0.1:8443";
        let providers = &config.providers;
        assert_eq!(providers.apns.production_url, simulator);
        assert_eq!(providers.fcm.base_url, simulator);
        // Token endpoints on the simulator's HTTP/1.1-only listener, as Microsoft's speak
        // only HTTP/1.1.
        assert_eq!(providers.wns.token_url, "https://127.0.0.1:8444/wns/token");
        assert_eq!(providers.wns.channel_base_url.as_deref(), Some(simulator));
        // Relative to config/ (the file's folder), made absolute.
        let here = std::env::current_dir().map_err(|e| e.to_string())?;
        let dev_cert = Some(here.join("config/dev/simulator-cert.pem"));
        for roots in [
            &providers.apns.trusted_roots,
            &providers.fcm.trusted_roots,
            &providers.wns.trusted_roots,
            &providers.webpush.trusted_roots,
        ] {
            assert_eq!(roots, &dev_cert);
        }
        assert_eq!(config.webpush.allowed_hosts, ["127.0.0.1:8443"]);
        assert_eq!(config.webpush.allowed_private_addresses, ["127.0.0.1:8443"]);
        Ok(())
    });
}

#[test]
fn every_demo_app_has_the_credential_the_simulator_accepts() {
    Jail::expect_with(|jail| {
        development_default_in(jail)?;
        let config = Config::load(None).map_err(|e| e.to_string())?;
        let here = std::env::current_dir().map_err(|e| e.to_string())?;
        let apps = &config.tenants["demo"].apps;
        let (
            AppConfig::Apns(ios),
            AppConfig::Fcm(android),
            AppConfig::Wns(windows),
            AppConfig::Webpush(web),
        ) = (
            &apps["ios"],
            &apps["android"],
            &apps["windows"],
            &apps["web"],
        )
        else {
            return Err("the demo apps are ios, android, windows and web, in that order".into());
        };
        assert_eq!(ios.team_id.as_deref(), Some(crate::config::dev::APNS_TEAM));
        assert_eq!(ios.key_id.as_deref(), Some(crate::config::dev::APNS_KEY_ID));
        assert!(ios.key.is_some());
        assert_eq!(
            android.service_account,
            Some(SecretSource::File(
                here.join(crate::config::dev::FCM_SERVICE_ACCOUNT)
            ))
        );
        // The simulator accepts the account for its own project; its token endpoint is the
        // one the account names, on the simulator.
        let account: serde_json::Value =
            serde_json::from_str(&repository_file(crate::config::dev::FCM_SERVICE_ACCOUNT))
                .map_err(|e| e.to_string())?;
        assert_eq!(
            android.project_id.as_deref(),
            account["project_id"].as_str()
        );
        assert_eq!(account["token_uri"], "https://127.0.0.1:8444/token");
        assert_eq!(
            windows.package_sid.as_deref(),
            Some(crate::config::dev::WNS_PACKAGE_SID)
        );
        assert_eq!(
            windows.client_secret,
            Some(SecretSource::File(
                here.join(crate::config::dev::WNS_CLIENT_SECRET)
            ))
        );
        assert!(web.vapid_key.is_some() && web.vapid_subject.is_some());
        // Each credential loads: the providers will start for all four platforms.
        let tenants = crate::tenant::Tenants::build(&config).map_err(|e| e.join("; "))?;
        assert!(!tenants.is_empty());
        for source in [
            &android.service_account,
            &windows.client_secret,
            &web.vapid_key,
        ] {
            let secret = source.as_ref().map(SecretSource::load).transpose()?;
            assert!(secret.is_some_and(|s| !s.expose().is_empty()));
        }
        Ok(())
    });
}

#[test]
fn the_end_to_end_benchmark_moves_every_provider_with_environment_variables() {
    // benches/e2e.sh runs the development default against a simulator on a free port, with
    // exactly these overrides: lists and a tenant app's secret file included.
    Jail::expect_with(|jail| {
        development_default_in(jail)?;
        jail.create_file("fcm-copy.json", "{}")?;
        let sim = "https://127.0.0.1:9443";
        jail.set_env("RINGCAST__PROVIDERS__FCM__BASE_URL", sim);
        jail.set_env(
            "RINGCAST__PROVIDERS__WNS__TOKEN_URL",
            format!("{sim}/wns/token"),
        );
        jail.set_env("RINGCAST__PROVIDERS__WNS__CHANNEL_BASE_URL", sim);
        jail.set_env("RINGCAST__WEBPUSH__ALLOWED_HOSTS", "[127.0.0.1:9443]");
        jail.set_env(
            "RINGCAST__WEBPUSH__ALLOWED_PRIVATE_ADDRESSES",
            "[127.0.0.1:9443]",
        );
        jail.set_env(
            "RINGCAST__TENANTS__DEMO__APPS__ANDROID__SERVICE_ACCOUNT__FILE",
            "fcm-copy.json",
        );
        let config = Config::load(None).map_err(|e| e.to_string())?;
        assert_eq!(config.providers.fcm.base_url, sim);
        assert_eq!(config.providers.wns.token_url, format!("{sim}/wns/token"));
        assert_eq!(config.providers.wns.channel_base_url.as_deref(), Some(sim));
        assert_eq!(config.webpush.allowed_hosts, ["127.0.0.1:9443"]);
        assert_eq!(config.webpush.allowed_private_addresses, ["127.0.0.1:9443"]);
        let android = config.tenants["demo"].apps["android"].as_fcm().unwrap();
        assert_eq!(
            android.service_account,
            Some(SecretSource::File("fcm-copy.json".into()))
        );
        assert_eq!(android.project_id.as_deref(), Some("ringcast-demo"));
        Ok(())
    });
}

#[test]
fn without_a_default_file_the_built_in_defaults_apply() {
    Jail::expect_with(|_| {
        let config = Config::load(None).map_err(|e| e.to_string())?;
        assert_eq!(config, Config::default());
        Ok(())
    });
}

#[test]
fn the_examples_parse_and_name_every_missing_secret() {
    // Inside a Jail, as every config load in these tests: the Jail's lock keeps another
    // test's RINGCAST__ variables out of this process environment while it loads.
    Jail::expect_with(|_| {
        the_examples_name_every_missing_secret();
        Ok(())
    });
}

fn the_examples_name_every_missing_secret() {
    for file in [
        "config/production.example.toml",
        "config/cluster.example.toml",
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        let config = Config::load(Some(&path)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_ne!(config.registry.store, StoreKind::Embedded, "{file}");
        assert!(config.tenants["acme"].apps.len() >= 2);
        assert!(config.providers.apns.max_in_flight >= 1);
        assert_eq!(
            config.intake.durable,
            file.contains("cluster"),
            "{file}: durable intake is the cluster's default"
        );
        // The secrets live on the production machine, not here: each one is reported.
        let ConfigErrors(problems) = crate::plan::Plan::tenants(&config).unwrap_err();
        for key in [
            "server_keys[1]",
            "identity_tokens",
            "apps.phone-ios.key",
            "apps.phone-android.service_account",
        ] {
            assert!(
                problems.iter().any(|p| p.contains(key)),
                "{file}: no problem about {key} in {problems:#?}"
            );
        }
    }
}

#[test]
fn environment_variables_override_files() {
    Jail::expect_with(|jail| {
        jail.create_dir("config")?;
        jail.create_file(
            "config/ringcast.toml",
            "[registry]\nstore = \"embedded\"\nshards = 3\n",
        )?;
        jail.set_env("RINGCAST__REGISTRY__STORE", "redis-cluster");
        jail.set_env(
            "RINGCAST__REGISTRY__REDIS__NODES",
            "[\"redis://127.0.0.1:7000\"]",
        );
        jail.set_env("RINGCAST__SERVER__LISTEN", "0.0.0.0:9090");
        let config = Config::load(None).map_err(|e| e.to_string())?;
        assert_eq!(config.registry.store, StoreKind::RedisCluster);
        assert_eq!(config.registry.redis.nodes, ["redis://127.0.0.1:7000"]);
        assert_eq!(
            config.registry.shards, 3,
            "the file still applies where env is silent"
        );
        assert_eq!(config.server.listen.port(), 9090);
        Ok(())
    });
}

#[test]
fn a_named_file_replaces_the_default_and_must_exist() {
    Jail::expect_with(|jail| {
        jail.create_dir("config")?;
        jail.create_file(
            "config/ringcast.toml",
            "[tenants.demo]\nserver_keys = [{ env = \"X\" }]\n",
        )?;
        jail.create_file("prod.toml", "[registry]\nstore = \"redis\"\n")?;
        let config = Config::load(Some(Path::new("prod.toml"))).map_err(|e| e.to_string())?;
        assert!(
            config.tenants.is_empty(),
            "the demo tenant must not leak into a named config"
        );
        let missing = Config::load(Some(Path::new("nope.toml"))).unwrap_err();
        assert!(missing.to_string().contains("does not exist"));
        Ok(())
    });
}

#[test]
fn unknown_keys_are_errors() {
    Jail::expect_with(|jail| {
        jail.create_file("typo.toml", "[registry]\nstroe = \"redis\"\n")?;
        let error = Config::load(Some(Path::new("typo.toml")))
            .unwrap_err()
            .to_string();
        assert!(error.contains("stroe"), "{error}");
        Ok(())
    });
}

#[test]
fn every_problem_is_reported_at_once() {
    Jail::expect_with(|jail| {
        jail.create_file("short.secret", "too-short")?;
        jail.create_file(
            "bad.toml",
            r#"
            [server]
            max_requests_in_flight = 3

            [registry]
            store = "redis-cluster"
            mailbox_capacity = 0

            [registry.redis]
            owner_buckets = 0

            [webpush]
            allowed_hosts = ["https://push.example/path"]

            [tenants.Bad_Tenant]
            server_keys = [{ sha256 = "abc" }]
            max_ttl_seconds = 10

            [tenants.b]
            server_keys = [{ sha256 = "fc1d4dafe5b2f4792ad6631fc26f4c5f4a7b375e88e6bfab363d68a5d1e62d6c" }]
            [tenants.b.identity_tokens]
            algorithm = "HS256"
            key = { file = "short.secret" }
            [tenants.b.apps.ios]
            platform = "apns"
            team_id = "SHORT"
            key_id = "KEYID12345"

            [tenants.b.apps.android]
            platform = "fcm"
            project_id = "Not/A-Project"

            [tenants.c]
            server_keys = [{ sha256 = "fc1d4dafe5b2f4792ad6631fc26f4c5f4a7b375e88e6bfab363d68a5d1e62d6c" }]

            [providers.apns]
            production_url = "api.push.apple.com"
            jwt_refresh_seconds = 600
            trusted_roots = "missing-roots.pem"
            [providers.apns.queues]
            p0 = 0

            [providers.fcm]
            base_url = "http://127.0.0.1:8443"
            max_in_flight = 0
            "#,
        )?;
        let config = Config::load(Some(Path::new("bad.toml"))).map_err(|e| e.to_string())?;
        let ConfigErrors(problems) = crate::plan::Plan::tenants(&config).unwrap_err();
        let expected = [
            "server.max_requests_in_flight",
            "registry.mailbox_capacity",
            "registry.redis.nodes",
            "registry.redis.owner_buckets",
            "webpush.allowed_hosts",
            "tenants.Bad_Tenant: tenant id",
            "tenants.Bad_Tenant.max_ttl_seconds",
            "tenants.Bad_Tenant.server_keys[0]",
            "tenants.b.identity_tokens: an HS256 secret must be at least 32 bytes",
            "tenants.b.apps.ios.bundle_id is required",
            "tenants.b.apps.ios: APNs token auth needs team_id, key_id and key together",
            "tenants.b.apps.ios.team_id",
            "also a key of tenant",
            "providers.apns.production_url",
            "providers.apns.jwt_refresh_seconds",
            "providers.apns.queues.p0",
            "providers.apns.trusted_roots",
            "tenants.b.apps.android.project_id: project id \"Not/A-Project\"",
            "providers.fcm.base_url must be an https:// URL",
            "providers.fcm.max_in_flight",
        ];
        for needle in expected {
            assert!(
                problems.iter().any(|p| p.contains(needle)),
                "missing {needle:?} in {problems:#?}"
            );
        }
        Ok(())
    });
}

#[test]
fn web_push_settings_load_and_bad_ones_are_named() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "webpush.toml",
            r#"
            [webpush]
            allowed_private_addresses = ["127.0.0.1:8443", "localhost"]

            [providers.webpush]
            max_origins = 0
            vapid_validity_seconds = 90000
            "#,
        )?;
        jail.set_env("RINGCAST__PROVIDERS__WEBPUSH__CONNECTIONS_PER_ORIGIN", "2");
        let config = Config::load(Some(Path::new("webpush.toml"))).map_err(|e| e.to_string())?;
        assert_eq!(config.providers.webpush.connections(), 2);
        let error = config.validate().unwrap_err().to_string();
        for named in [
            "webpush.allowed_private_addresses",
            "\"localhost\"",
            "providers.webpush.max_origins",
            "providers.webpush.vapid_validity_seconds",
        ] {
            assert!(error.contains(named), "{named} missing from: {error}");
        }
        assert!(!error.contains("127.0.0.1:8443"), "{error}");
        Ok(())
    });
}

#[test]
fn relative_paths_in_a_file_are_relative_to_its_folder() {
    Jail::expect_with(|jail| {
        jail.create_dir("etc/keys")?;
        jail.create_file(
            "etc/keys/tokens.secret",
            "0123456789abcdef0123456789abcdef-secret",
        )?;
        jail.create_file(
            "etc/node.toml",
            r#"
            [registry.embedded]
            path = "data/registry.redb"
            [providers.apns]
            trusted_roots = "/etc/ssl/egress.pem"
            [providers.fcm]
            trusted_roots = "keys/missing-roots.pem"
            [tenants.t]
            server_keys = [{ file = "keys/server.key" }]
            [tenants.t.identity_tokens]
            algorithm = "HS256"
            key = { file = "keys/tokens.secret" }
            "#,
        )?;
        let here = std::env::current_dir().map_err(|e| e.to_string())?;
        let etc = here.join("etc");
        let config = Config::load(Some(Path::new("etc/node.toml"))).map_err(|e| e.to_string())?;
        assert_eq!(
            config.registry.embedded.path,
            etc.join("data/registry.redb")
        );
        assert_eq!(
            config.providers.apns.trusted_roots.as_deref(),
            Some(Path::new("/etc/ssl/egress.pem")),
            "absolute paths stay as they are"
        );
        let tenant = &config.tenants["t"];
        assert_eq!(
            tenant.server_keys,
            [ServerKeySource::File(etc.join("keys/server.key"))]
        );
        assert_eq!(
            tenant.identity_tokens.as_ref().map(|tokens| &tokens.key),
            Some(&SecretSource::File(etc.join("keys/tokens.secret")))
        );
        // The errors name the file that was looked for, resolved.
        let error = crate::plan::Plan::tenants(&config).unwrap_err().to_string();
        for missing in ["keys/server.key", "keys/missing-roots.pem"] {
            let resolved = etc.join(missing);
            assert!(
                error.contains(&resolved.display().to_string()),
                "{} missing from: {error}",
                resolved.display()
            );
        }
        assert!(
            !error.contains("tokens.secret"),
            "that one was found: {error}"
        );

        // A path from the environment is the shell's: relative to the working directory.
        jail.set_env("RINGCAST__REGISTRY__EMBEDDED__PATH", "elsewhere.redb");
        let config = Config::load(Some(Path::new("etc/node.toml"))).map_err(|e| e.to_string())?;
        assert_eq!(config.registry.embedded.path, Path::new("elsewhere.redb"));
        Ok(())
    });
}

#[test]
fn the_admin_listener_must_not_take_the_api_address() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "same.toml",
            "[server]\nlisten = \"127.0.0.1:7000\"\n[admin]\nlisten = \"127.0.0.1:7000\"\n",
        )?;
        let config = Config::load(Some(Path::new("same.toml"))).map_err(|e| e.to_string())?;
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("admin.listen 127.0.0.1:7000"), "{error}");
        assert_eq!(Config::default().admin.listen.to_string(), "127.0.0.1:9090");
        assert!(!Config::default().admin.on_api_listener);
        Ok(())
    });
}

#[test]
fn rediss_is_accepted_and_only_what_this_build_cannot_do_is_refused() {
    let mut config = Config::default();
    config.registry.store = StoreKind::Redis;
    config.registry.redis.url = "rediss://redis.internal:6380/0".into();
    assert!(config.validate().is_ok(), "{:?}", config.validate());
    config.registry.redis.url = "rediss://redis.internal:6380/0#insecure".into();
    let error = config.validate().unwrap_err().to_string();
    assert!(
        error.contains("#insecure") && error.contains("cannot do"),
        "{error}"
    );

    config.registry.redis.url = RedisConfig::default().url;
    config.registry.store = StoreKind::RedisCluster;
    config.registry.redis.nodes = vec!["rediss://a:6379".into(), "rediss://b:6379".into()];
    assert!(config.validate().is_ok(), "{:?}", config.validate());
    config.registry.redis.nodes = vec!["redis://a:6379".into(), "rediss://b:6379".into()];
    let error = config.validate().unwrap_err().to_string();
    assert!(error.contains("mixes redis:// and rediss://"), "{error}");
    config.registry.redis.nodes = vec!["http://a:6379".into()];
    let error = config.validate().unwrap_err().to_string();
    assert!(
        error.contains("\"http://a:6379\" must start with"),
        "{error}"
    );
}

#[test]
fn each_redis_store_reads_its_own_key_and_refuses_the_others() {
    let mut config = Config::default();
    config.registry.store = StoreKind::RedisSentinel;
    let error = config.validate().unwrap_err().to_string();
    assert!(
        error.contains("registry.redis.sentinels must list"),
        "{error}"
    );
    assert!(
        error.contains("registry.redis.sentinel_master must name"),
        "{error}"
    );

    config.registry.redis.sentinels = vec!["redis://127.0.0.1:26379".into()];
    config.registry.redis.sentinel_master = "mymaster".into();
    assert!(config.validate().is_ok(), "{:?}", config.validate());

    // The same file with `store` left at "redis": the sentinels would be ignored.
    config.registry.store = StoreKind::Redis;
    let error = config.validate().unwrap_err().to_string();
    assert!(
        error.contains("registry.redis.sentinels is not used by store = \"redis\""),
        "{error}"
    );
    config.registry.redis.sentinels.clear();
    config.registry.store = StoreKind::RedisCluster;
    config.registry.redis.nodes = vec!["redis://a:6379".into()];
    config.registry.redis.url = "redis://elsewhere:6379/".into();
    let error = config.validate().unwrap_err().to_string();
    assert!(error.contains("registry.redis.url is not used"), "{error}");
}

/// `client` picks the Redis stores' client: read from the file by its name, valid for every
/// Redis store, and `"ringcast"` refuses a URL it cannot serve.
#[test]
fn the_redis_client_is_read_for_every_redis_store_and_checks_its_urls() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "node.toml",
            r#"
            [registry]
            store = "redis"
            [registry.redis]
            client = "redis-rs"
            url = "redis://:pw@127.0.0.1:6379/2"
            "#,
        )?;
        let config = Config::load(Some(Path::new("node.toml"))).map_err(|e| e.to_string())?;
        assert_eq!(config.registry.redis.client, RedisClient::RedisRs);
        assert!(config.validate().is_ok(), "{:?}", config.validate());
        Ok(())
    });
    let mut config = Config::default();
    assert_eq!(config.registry.redis.client, RedisClient::Ringcast);
    config.registry.store = StoreKind::Redis;
    config.registry.redis.url = "redis://127.0.0.1:6379/?protocol=resp3".into();
    let error = config.validate().unwrap_err().to_string();
    assert!(
        error.contains("registry.redis.url: RESP3 (protocol=resp3) is not supported"),
        "{error}"
    );
    config.registry.redis.client = RedisClient::RedisRs;
    assert!(config.validate().is_ok(), "{:?}", config.validate());

    // A cluster's nodes: either client, and the own one checks every node's URL.
    config.registry.redis.url = RedisConfig::default().url;
    config.registry.store = StoreKind::RedisCluster;
    config.registry.redis.nodes = vec![
        "redis://a:6379".into(),
        "redis://b:6379/?protocol=resp3".into(),
    ];
    assert!(config.validate().is_ok(), "{:?}", config.validate());
    config.registry.redis.client = RedisClient::Ringcast;
    let error = config.validate().unwrap_err().to_string();
    assert!(
        error.contains("registry.redis.nodes: RESP3 (protocol=resp3) is not supported"),
        "{error}"
    );
    config.registry.redis.nodes.pop();
    assert!(config.validate().is_ok(), "{:?}", config.validate());

    // Sentinel's master is one server: either client may speak to it.
    config.registry.redis.nodes = Vec::new();
    config.registry.store = StoreKind::RedisSentinel;
    config.registry.redis.sentinels = vec!["redis://a:26379".into()];
    config.registry.redis.sentinel_master = "ringcast".into();
    for client in [RedisClient::RedisRs, RedisClient::Ringcast] {
        config.registry.redis.client = client;
        assert!(
            config.validate().is_ok(),
            "{client:?}: {:?}",
            config.validate()
        );
    }
}

#[test]
fn the_masters_login_is_sentinels_alone_and_its_password_is_read_at_validation() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.registry.store = StoreKind::RedisSentinel;
    config.registry.redis.sentinels = vec!["redis://127.0.0.1:26379".into()];
    config.registry.redis.sentinel_master = "mymaster".into();
    config.registry.redis.master_username = Some("ringcast".into());
    config.registry.redis.master_password =
        Some(SecretSource::File(dir.path().join("missing.password")));
    config.registry.redis.master_db = 2;
    let error = config.validate().unwrap_err().to_string();
    assert!(
        error.contains("registry.redis.master_password: cannot read"),
        "{error}"
    );

    let password = dir.path().join("master.password");
    std::fs::write(&password, "s3cret-master-pw\n").unwrap();
    config.registry.redis.master_password = Some(SecretSource::File(password));
    assert!(config.validate().is_ok(), "{:?}", config.validate());
    let login = config.registry.redis.master_login().unwrap();
    assert_eq!(
        login.password.as_ref().unwrap().expose(),
        b"s3cret-master-pw"
    );
    assert_eq!((login.username.as_deref(), login.db), (Some("ringcast"), 2));
    assert!(!format!("{login:?}").contains("s3cret"), "{login:?}");

    config.registry.redis.master_username = Some(" ".into());
    let error = config.validate().unwrap_err().to_string();
    assert!(error.contains("master_username is empty"), "{error}");

    // The same keys with another store: its login lives in its URL, so they are refused.
    config.registry.redis.master_username = Some("ringcast".into());
    config.registry.redis.sentinels.clear();
    config.registry.store = StoreKind::Redis;
    let error = config.validate().unwrap_err().to_string();
    for key in ["master_username", "master_password", "master_db"] {
        assert!(
            error.contains(&format!(
                "registry.redis.{key} is not used by store = \"redis\""
            )),
            "{key}: {error}"
        );
    }
}

#[test]
fn the_master_password_file_is_relative_to_the_config_file() {
    Jail::expect_with(|jail| {
        std::fs::create_dir_all("etc/keys").map_err(|e| e.to_string())?;
        jail.create_file("etc/keys/master.password", "pw")?;
        jail.create_file(
            "etc/node.toml",
            r#"
            [registry]
            store = "redis-sentinel"
            [registry.redis]
            sentinels = ["redis://127.0.0.1:26379"]
            sentinel_master = "ringcast"
            master_password = { file = "keys/master.password" }
            master_db = 1
            "#,
        )?;
        let here = std::env::current_dir().map_err(|e| e.to_string())?;
        let config = Config::load(Some(Path::new("etc/node.toml"))).map_err(|e| e.to_string())?;
        assert_eq!(
            config.registry.redis.master_password,
            Some(SecretSource::File(here.join("etc/keys/master.password")))
        );
        assert!(config.validate().is_ok(), "{:?}", config.validate());
        Ok(())
    });
}

#[test]
fn redis_tls_files_are_read_and_checked_at_validation() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.registry.store = StoreKind::Redis;
    config.registry.redis.url = "rediss://redis.internal:6380/0".into();
    config.registry.redis.ca_file = Some(dir.path().join("missing-ca.pem"));
    config.registry.redis.client_cert = Some(dir.path().join("client.pem"));
    let error = config.validate().unwrap_err().to_string();
    assert!(
        error.contains("registry.redis.ca_file: cannot read") && error.contains("missing-ca.pem"),
        "{error}"
    );
    assert!(
        error.contains("client_cert and client_key go together"),
        "{error}"
    );

    let ca = rcgen::generate_simple_self_signed(vec!["redis.internal".into()]).unwrap();
    let client = rcgen::generate_simple_self_signed(vec!["ringcast".into()]).unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["other".into()]).unwrap();
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    config.registry.redis.ca_file = Some(write("ca.pem", ca.cert.pem()));
    config.registry.redis.client_cert = Some(write("client.pem", client.cert.pem()));
    config.registry.redis.client_key =
        Some(write("client.key", client.signing_key.serialize_pem()));
    assert!(config.validate().is_ok(), "{:?}", config.validate());

    // A key that is not the certificate's.
    config.registry.redis.client_key = Some(write("other.key", other.signing_key.serialize_pem()));
    let error = config.validate().unwrap_err().to_string();
    assert!(error.contains("client_cert and client_key"), "{error}");
    config.registry.redis.ca_file = Some(write("not-pem.pem", "hello".into()));
    let error = config.validate().unwrap_err().to_string();
    assert!(error.contains("registry.redis TLS files"), "{error}");

    // TLS files with a plain redis:// URL would silently go unused.
    config.registry.redis.client_key = None;
    config.registry.redis.client_cert = None;
    config.registry.redis.ca_file = Some(dir.path().join("ca.pem"));
    config.registry.redis.url = "redis://redis.internal:6379/0".into();
    let error = config.validate().unwrap_err().to_string();
    assert!(error.contains("apply to rediss:// only"), "{error}");
}

#[test]
fn connection_limits_out_of_range_are_each_reported() {
    let mut server = ServerConfig::default();
    assert!(
        server.connection_problems().is_empty(),
        "the defaults are valid"
    );
    server.client_request_timeout_ms = 500;
    server.max_streams_per_connection = 0;
    server.max_header_bytes = 256 * 1024;
    server.keep_alive_seconds = 0;
    let problems = server.connection_problems();
    assert_eq!(problems.len(), 3, "{problems:?}");
    for name in [
        "client_request_timeout_ms",
        "max_streams_per_connection",
        "max_header_bytes",
    ] {
        assert!(
            problems.iter().any(|problem| problem.contains(name)),
            "{name} in {problems:?}"
        );
    }
}

#[test]
fn a_key_of_another_platform_is_refused_by_name() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "wrong.toml",
            r#"
            [tenants.b]
            server_keys = [{ sha256 = "fc1d4dafe5b2f4792ad6631fc26f4c5f4a7b375e88e6bfab363d68a5d1e62d6c" }]
            [tenants.b.apps.ios]
            platform = "apns"
            bundle_id = "com.example.phone"
            project_id = "wrong-platform-field"
            "#,
        )?;
        let error = Config::load(Some(Path::new("wrong.toml")))
            .unwrap_err()
            .to_string();
        assert!(error.contains("project_id"), "{error}");
        assert!(error.contains("tenants.b.apps.ios"), "{error}");
        Ok(())
    });
}

#[test]
fn an_app_of_each_platform_loads_from_the_same_keys_as_before() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "apps.toml",
            r#"
            [tenants.b]
            server_keys = [{ sha256 = "fc1d4dafe5b2f4792ad6631fc26f4c5f4a7b375e88e6bfab363d68a5d1e62d6c" }]
            [tenants.b.apps.ios]
            platform = "apns"
            bundle_id = "com.example.phone"
            team_id = "ABCDE12345"
            [tenants.b.apps.android]
            platform = "fcm"
            project_id = "example-phone"
            [tenants.b.apps.windows]
            platform = "wns"
            package_sid = "ms-app://s-1-15-2-example"
            scope = "notify.windows.com"
            [tenants.b.apps.web]
            platform = "webpush"
            vapid_subject = "mailto:ops@example.com"
            "#,
        )?;
        let config = Config::load(Some(Path::new("apps.toml"))).map_err(|e| e.to_string())?;
        let apps = &config.tenants["b"].apps;
        let platforms: Vec<_> = apps.values().map(AppConfig::platform).collect();
        use crate::vocab::Platform::{Apns, Fcm, Webpush, Wns};
        assert_eq!(platforms, [Fcm, Apns, Webpush, Wns], "by app id");
        assert_eq!(
            apps["ios"].as_apns().and_then(|a| a.team_id.as_deref()),
            Some("ABCDE12345")
        );
        assert_eq!(
            apps["windows"],
            AppConfig::Wns(WnsAppConfig {
                package_sid: Some("ms-app://s-1-15-2-example".into()),
                scope: Some("notify.windows.com".into()),
                ..Default::default()
            })
        );
        crate::plan::Plan::tenants(&config).map_err(|e| e.to_string())?;
        Ok(())
    });
}
