//! `[registry.redis]`: which servers the chosen Redis store reaches, and whether this build
//! can reach them as asked.
//!
//! Each Redis store reads one key: `store = "redis"` the `url`, `"redis-cluster"` the `nodes`,
//! `"redis-sentinel"` the `sentinels` (with `sentinel_master`). A key meant for another store
//! is refused rather than ignored, so a half-edited file (say, `sentinels` added but `store`
//! left at `redis`) does not quietly run against the wrong server. The master's login
//! (`master_username`, `master_password`, `master_db`) belongs to Sentinel alone: the other
//! stores carry theirs in their URLs.

use super::{RedisConfig, StoreKind};
use crate::registry::redis::RedisClient;
use crate::registry::redis::pipelined;
use crate::registry::redis::sentinel::MasterLogin;

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
            (
                "master_username",
                store != StoreKind::RedisSentinel && self.master_username.is_some(),
            ),
            (
                "master_password",
                store != StoreKind::RedisSentinel && self.master_password.is_some(),
            ),
            (
                "master_db",
                store != StoreKind::RedisSentinel && self.master_db != 0,
            ),
        ];
        for (key, _) in stray.iter().filter(|(_, stray)| *stray) {
            problems.push(format!(
                "registry.redis.{key} is not used by store = \"{}\": set one of url (redis), \
                 nodes (redis-cluster) or sentinels (redis-sentinel); a single server's \
                 login and db go in its url",
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
        if store != StoreKind::RedisSentinel && self.client == RedisClient::Ringcast {
            // The Sentinels' URLs are the crate's; the master's address comes from them.
            for url in urls {
                if let Err(unsupported) = pipelined::check_url(url) {
                    problems.push(format!("registry.redis.{key}: {unsupported}"));
                }
            }
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
        if store == StoreKind::RedisSentinel
            && let Err(problem) = self.master_login()
        {
            problems.push(problem);
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

    /// How to log in to the master Sentinel names: `master_username`, `master_password` (read
    /// from its file or variable now) and `master_db`. The error names the key and the
    /// source, never the password.
    pub fn master_login(&self) -> Result<MasterLogin, String> {
        if self
            .master_username
            .as_ref()
            .is_some_and(|name| name.trim().is_empty())
        {
            return Err(
                "registry.redis.master_username is empty: leave it out to log in as \
                        the default user"
                    .into(),
            );
        }
        let password = match &self.master_password {
            None => None,
            Some(source) => {
                let secret = source
                    .load()
                    .map_err(|error| format!("registry.redis.master_password: {error}"))?;
                // The client takes a password as a string; say so at start-up, not at the
                // first failover.
                if std::str::from_utf8(secret.expose()).is_err() {
                    return Err(format!(
                        "registry.redis.master_password: {} is not UTF-8",
                        source.describe()
                    ));
                }
                Some(secret)
            }
        };
        Ok(MasterLogin {
            username: self.master_username.clone(),
            password,
            db: i64::from(self.master_db),
        })
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
