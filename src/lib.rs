//! ringcast: push dispatch for voice and video calling.
//!
//! # Layout
//!
//! - [`cli`] parses the command line; [`app`] wires a node together and shuts it down.
//! - [`config`] is the typed, layered configuration; [`tenant`] turns its tenants into the
//!   credential table every request is checked against.
//! - [`api`] is the HTTP API (actix-web): auth, registrations, health, OpenAPI, problem+json.
//! - [`registry`] keeps who can be reached: the `Registration` model, request validation, the
//!   `Store` trait with its embedded (redb) and Redis / Redis Cluster implementations, and the
//!   registry shard actors (one per core).
//! - [`push`] is the vocabulary between router and providers: `Push`, `Priority`, `Outcome`.
//! - [`simulator`] stands in for the push services (APNs, FCM and Google's OAuth token
//!   endpoint) over real TLS + HTTP/2, with scripted latency and failures, and records what
//!   it accepted.
//! - [`providers`] turns a `Push` into a push service's request and its answer into an
//!   `Outcome`: one folder per service (APNs and FCM so far), plus the shared
//!   [`providers::retry`].
//! - [`clock`] and [`logging`] are the small shared pieces.
//!
//! A registration travels: HTTP worker → [`api::auth`] (tenant from the credential) →
//! [`registry::validate`] (bad input stops here, nothing changed) → the identity's shard
//! ([`registry::shards`], picked by a stable hash; a bounded mailbox) → the `Store`, atomically
//! per identity. Call events, providers and metrics come with their own modules.
#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod logging;
pub mod providers;
pub mod push;
pub mod registry;
pub mod simulator;
pub mod tenant;
