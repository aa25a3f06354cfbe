//! Apple Push Notification service: VoIP pushes that ring iPhones, and alerts for the rest.
//!
//! The protocol facts are in docs/protocols.md, "APNs". The pure parts:
//! [`config`] (hosts, connections, JWT age), [`payload`] (a [`Push`](crate::push::Push) →
//! its path, headers and body, with the size limit checked before sending; the event's
//! headers coded once for all its devices, as
//! [`Fields`](crate::providers::pool::Fields)),
//! [`auth`] (the ES256 provider token, one per team and key, shared by every connection) and
//! [`response`] (status, headers and body → the delivery loop's
//! [`Verdict`](crate::providers::service::Verdict), every documented reason mirrored).
//! [`last_body`] keeps an event's body and coded headers for its other devices.
//! [`client`] joins them to the shared connection pool as a
//! [`PushService`](crate::providers::service::PushService).

pub mod auth;
pub mod client;
pub mod config;
pub mod last_body;
pub mod payload;
pub mod response;
