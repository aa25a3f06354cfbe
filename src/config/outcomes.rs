//! `[outcomes]`: the outcome stream for call control that does not wait (README "Outcome
//! stream"; src/router/outcomes.rs).
//!
//! With `stream = true` every device's outcome is appended to a Redis Stream per tenant. It
//! needs a Redis store: with the embedded store there is no Redis for call control to read,
//! so `stream = true` with it is a configuration error.

use super::StoreKind;
use serde::{Deserialize, Serialize};

/// Where devices' outcomes are published.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OutcomesConfig {
    /// Append every device's outcome to the tenant's stream `{<name>:outcomes:<tenant>}`
    /// (default false).
    pub stream: bool,
    /// The streams' name (key prefix): 1-64 visible ASCII characters, no `{` or `}`.
    pub name: String,
    /// The most entries each tenant's stream keeps (`XADD MAXLEN ~`, approximate): how far
    /// behind call control may fall before it misses outcomes.
    pub max_len: u64,
}

impl Default for OutcomesConfig {
    fn default() -> Self {
        OutcomesConfig {
            stream: false,
            name: "ringcast".into(),
            max_len: 100_000,
        }
    }
}

impl OutcomesConfig {
    /// Everything wrong with the section for `store`.
    pub fn problems(&self, store: StoreKind) -> Vec<String> {
        let mut problems = Vec::new();
        if self.stream && store == StoreKind::Embedded {
            problems.push(
                "outcomes.stream = true needs a Redis store (registry.store = \"redis\", \
                 \"redis-cluster\" or \"redis-sentinel\"): call control reads the stream there"
                    .into(),
            );
        }
        let name = &self.name;
        if name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'{' && b != b'}')
        {
            problems
                .push("outcomes.name must be 1-64 visible ASCII characters without { or }".into());
        }
        if !(1_000..=100_000_000).contains(&self.max_len) {
            problems.push("outcomes.max_len must be 1000..=100000000".into());
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_every_problem_is_reported() {
        assert!(
            OutcomesConfig::default()
                .problems(StoreKind::Embedded)
                .is_empty()
        );
        let bad = OutcomesConfig {
            stream: true,
            name: String::new(),
            max_len: 1,
        };
        assert_eq!(bad.problems(StoreKind::Embedded).len(), 3);
        assert_eq!(bad.problems(StoreKind::RedisCluster).len(), 2);
    }
}
