//! The HTTP API against a real node on a free port: every endpoint, every class of bad input,
//! authentication and tenant isolation, limits per tenant and per connection, restart, and a
//! Redis outage.

mod support;

#[path = "api/auth.rs"]
mod auth;
#[path = "api/bad_input.rs"]
mod bad_input;
#[path = "api/cli.rs"]
mod cli;
#[path = "api/connections.rs"]
mod connections;
#[path = "api/limits.rs"]
mod limits;
#[path = "api/operations.rs"]
mod operations;
#[path = "api/redis_outage.rs"]
mod redis_outage;
#[path = "api/registrations.rs"]
mod registrations;
#[path = "api/ttl_caps.rs"]
mod ttl_caps;
