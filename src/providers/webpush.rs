//! Web Push (RFC 8030, encrypted per RFC 8291, authenticated with VAPID per RFC 8292): rings
//! in browsers. Same shape as every provider (`config`, `payload`, `auth`, `client`,
//! `response`), plus `origins`: subscriptions point at many push services, so the provider
//! keeps one dispatcher and pool per origin behind one router-facing actor, the same as
//! WNS's channel hosts ([`crate::providers::origins`]).
//!
//! Endpoints are client-supplied URLs: they are checked at registration (allowlist, HTTPS,
//! resolved address), again before any request (allowlist, HTTPS, origin), and the pool
//! vets every resolved address at connect time ([`crate::providers::pool::guard`]).

pub mod aes128gcm;
pub mod auth;
pub mod client;
pub mod config;
pub mod origins;
pub mod payload;
pub mod response;
