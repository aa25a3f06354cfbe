//! ringcast: push dispatch for voice and video calling.
//!
//! The whole design, with a ring followed from the API to the bytes on the wire, is in
//! `docs/architecture.md`; what each push service requires, and what ringcast does with each
//! of its answers, in `docs/protocols.md`.
//!
//! # Layout
//!
//! - [`cli`] parses the command line; [`app`] wires a node together and shuts it down, its
//!   public listener optionally over TLS ([`app::tls`]); [`admin`] is the operators'
//!   listener (metrics, probes, live reload).
//! - [`config`] is the typed, layered configuration; [`tenant`] turns its tenants into the
//!   credential table every request is checked against; [`plan`] is the one start-up step
//!   from a configuration to tenants and provider credentials (`serve` runs it,
//!   `check-config` prints it); [`limits`] holds each tenant's
//!   request rates (token buckets, `429` beyond them).
//! - [`api`] is the HTTP API (actix-web): auth, registrations, health, OpenAPI, problem+json.
//! - [`registry`] keeps who can be reached: the `Registration` model, request validation, the
//!   `Store` trait with its embedded (redb) and Redis / Redis Cluster implementations (one
//!   Redis server over ringcast's own pipelined connection by default), and the registry
//!   shard actors (one per core).
//! - [`vocab`] is the crate's vocabulary (time, platform and environment, identity, priority,
//!   outcome), a leaf every other module may import.
//! - [`push`] is what travels between router and providers: `Push` and its payload.
//! - [`simulator`] stands in for the push services (APNs, FCM with Google's OAuth token
//!   endpoint, WNS, Web Push) over real TLS, HTTP/2 and (where the real hosts speak only that)
//!   HTTP/1.1, with scripted latency and failures, and records what it accepted. Behind the
//!   `simulator` feature (default; a production build leaves it out).
//! - [`router`] turns call events into pushes: claims the event as a lease (it rings once,
//!   and still rings when its node dies), looks up the callee's devices, fans out one push
//!   per device, withdraws rings when a call ends (on every node), and drains at shutdown.
//! - [`channel`] is the internal push channel: devices hold a WebSocket (`GET /v1/channel`)
//!   and a ring reaches them over it first; an ack in time spares the platform push.
//! - [`providers`] turns a `Push` into a push service's request and its answer into an
//!   `Outcome`: one folder per service (APNs, FCM, WNS, Web Push), and the shared machinery every
//!   service uses — [`providers::dispatcher`] (the provider actor: priority queues, shedding),
//!   [`providers::delivery`] (send, judge, retry), [`providers::pool`] (K HTTP/2 connections),
//!   [`providers::origins`] (a dispatcher per origin, for WNS's hosts and Web Push's push
//!   services) and [`providers::retry`].
//! - [`loadgen`] drives a node (or a fleet) with registrations and call events at a set rate,
//!   open loop, and reports API and delivery latency (joined from the simulator's records).
//!   Behind the `loadgen` feature (default; a production build leaves it out).
//! - [`metrics`] names every Prometheus instrument and renders `/metrics`; [`clock`],
//!   [`decimal`] (numbers written without `core::fmt` on the call path), [`logging`],
//!   [`outbox`] (the write buffer of the connections that batch their callers' writes) and
//!   [`sha256`] (every digest) are the small shared pieces.
//!
//! A registration travels: HTTP worker → [`api::auth`] (tenant from the credential) →
//! [`registry::validate`] (bad input stops here, nothing changed) → the identity's shard
//! ([`registry::shards`], picked by a stable hash; a bounded mailbox) → the `Store`, atomically
//! per identity.
//!
//! A call travels: `POST /v1/calls` ([`api::calls`], server keys only) → the callee's shard's
//! [`router::Router`] (claim, lookup, fan-out) → that shard's provider dispatchers (one batch
//! each; a ring that finds the queues full is a `503`) → [`providers::delivery`] over the
//! shard's own HTTP/2 connections → one `Outcome` per device, back to the caller with
//! `?wait=true`, and a dead token back to the store.

pub mod admin;
pub mod api;
pub mod app;
pub mod channel;
pub mod cli;
pub mod clock;
pub mod config;
pub mod decimal;
pub mod limits;
#[cfg(feature = "loadgen")]
pub mod loadgen;
pub mod logging;
pub mod metrics;
pub mod outbox;
pub mod plan;
pub mod providers;
pub mod push;
pub mod registry;
pub mod router;
pub mod sha256;
#[cfg(feature = "simulator")]
pub mod simulator;
pub mod tenant;
pub mod vocab;
