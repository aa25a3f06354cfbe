//! `[registry.redis]`: which servers the chosen Redis store reaches, and whether this build
//! can reach them as asked.
//!
//! Each Redis store reads one key: `store = "redis"` the `url`, `"redis-cluster"` the `nodes`,
//! `"redis-sentinel"` the `sentinels` (with `sentinel_master`). A key meant for another store
//! is refused rather than ignored, so a half-edited file (say, `sentinels` added but `store`
//! left at `redis`) does not quietly run against the wrong server.

use super::{RedisConfig, StoreKind};

impl RedisConfig {
    /// Every problem with the keys `store` uses (none for the embedded store).
    pub(super) fn problems(&self, store: StoreKind) -> Vec<String> {
        let mut problems = Vec::new();
        if self.owner_buckets == 0 {
            problems.push("registry.redis.owner_buckets must be at least 1".into());
        }
        if store == StoreKind::Embedded {
            return problems;
        }
        let default_url = RedisConfig::default().url;
        let stray = [
            ("url", store != StoreKind::Redis && self.url != default_url),
            (
                "nodes",
                store != StoreKind::RedisCluster && !self.nodes.is_empty(),
            ),
            (
                "sentinels",
                store != StoreKind::RedisSentinel && !self.sentinels.is_empty(),
            ),
        ];
        for (key, _) in stray.iter().filter(|(_, stray)| *stray) {
            problems.push(format!(
                "registry.redis.{key} is not used by store = \"{}\": set one of url (redis), \
                 nodes (redis-cluster) or sentinels (redis-sentinel)",
                store_name(store)
            ));
        }
        let (key, urls) = self.urls(store);
        if urls.is_empty() {
            problems.push(format!(
                "registry.redis.{key} must list at least one server for store = \"{}\"",
                store_name(store)
            ));
        }
        for url in urls {
            problems.extend(url_problem(key, url));
        }
        let tls = urls
            .iter()
            .filter(|url| url.starts_with("rediss://"))
            .count();
        if tls != 0 && tls != urls.len() {
            problems.push(format!(
                "registry.redis.{key} mixes redis:// and rediss://: use one for all"
            ));
        }
        if store == StoreKind::RedisSentinel && self.sentinel_master.trim().is_empty() {
            problems.push(
                "registry.redis.sentinel_master must name the master (as in `sentinel monitor \
                 <name> ...`) for store = \"redis-sentinel\""
                    .into(),
            );
        }
        let files = self.ca_file.is_some() || self.client_cert.is_some();
        if files && tls == 0 {
            problems.push(format!(
                "registry.redis.ca_file/client_cert apply to rediss:// only, and {key} uses \
                 redis://"
            ));
        }
        if let Err(errors) = crate::registry::redis::tls::certificates(self) {
            problems.extend(errors);
        }
        problems
    }

    /// The key `store` reads its servers from, and their URLs.
    pub fn urls(&self, store: StoreKind) -> (&'static str, &[String]) {
        match store {
            StoreKind::Embedded => ("url", &[]),
            StoreKind::Redis => ("url", std::slice::from_ref(&self.url)),
            StoreKind::RedisCluster => ("nodes", &self.nodes),
            StoreKind::RedisSentinel => ("sentinels", &self.sentinels),
        }
    }
}

/// Why this build cannot use `url`, if it cannot.
fn url_problem(key: &str, url: &str) -> Option<String> {
    use ::redis::IntoConnectionInfo;
    if !url.starts_with("redis://") && !url.starts_with("rediss://") {
        return Some(format!(
            "registry.redis.{key}: {url:?} must start with redis:// or rediss://"
        ));
    }
    if url.ends_with("#insecure") {
        // The crate would need `tls-rustls-insecure`, which this build leaves out on purpose.
        return Some(format!(
            "registry.redis.{key}: {url:?} asks to skip certificate checks (#insecure), which \
             this build cannot do; name the server's CA in registry.redis.ca_file instead"
        ));
    }
    match url.into_connection_info() {
        Ok(_) => None,
        Err(error) => Some(format!(
            "registry.redis.{key}: {url:?} is not usable: {error}"
        )),
    }
}

fn store_name(store: StoreKind) -> &'static str {
    match store {
        StoreKind::Embedded => "embedded",
        StoreKind::Redis => "redis",
        StoreKind::RedisCluster => "redis-cluster",
        StoreKind::RedisSentinel => "redis-sentinel",
    }
}
