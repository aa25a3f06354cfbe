//! `[admin]`: the operators' listener (metrics, probes, the API description, reload), kept
//! off the public API's address (docs/architecture.md, "Listeners").

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// Where the admin routes (`/metrics`, `/healthz`, `/readyz`, `/openapi.json`,
/// `POST /admin/reload`) are served.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// The admin listener's address. Loopback by default: metrics and reload are for the
    /// machine's own agents (a Prometheus sidecar, the kubelet's probes reach the pod's
    /// address, so Kubernetes sets `0.0.0.0:9090`). Port 0 picks a free one (tests).
    pub listen: SocketAddr,
    /// Serve the admin routes on the API's listener instead of `listen`: the development
    /// default does, so one port answers everything on a laptop. Never in production: the
    /// API's port faces the internet, and reload must not.
    pub on_api_listener: bool,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            on_api_listener: false,
        }
    }
}
