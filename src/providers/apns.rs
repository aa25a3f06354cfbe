//! Apple Push Notification service: VoIP pushes that ring iPhones, and alerts for the rest.
//!
//! This step holds the pure parts (the protocol facts are in PROTOCOLS.md, "APNs"):
//! [`config`] (hosts, connections, JWT age), [`payload`] (a [`Push`](crate::push::Push) →
//! path, headers and body, with the size limit checked before sending), [`auth`] (the ES256
//! provider token, one per team and key, shared by every connection) and [`response`] (every
//! documented reason → an action → an [`Outcome`](crate::push::Outcome)). The client that
//! owns the HTTP/2 connections comes next.

pub mod auth;
pub mod config;
pub mod payload;
pub mod response;
