//! Windows Push Notification Services: raw notifications that ring the Windows app.
//!
//! The protocol facts are in docs/protocols.md, "WNS". The same five parts as every provider:
//! [`config`] (token endpoint, channel override for the simulator, connections, retries),
//! [`payload`] (a [`Push`](crate::push::Push) → the `POST <channel URI>` with its `X-WNS-*`
//! headers and the raw JSON body, size checked), [`auth`] (the OAuth2 client credentials: WNS's
//! [`Grant`](crate::providers::oauth::Grant) for the access-token cache it shares with FCM),
//! [`client`] (the [`PushService`](crate::providers::service::PushService) of one channel
//! host, its access token shared with the app's other hosts) and [`response`] (every
//! documented status → the delivery loop's verdict), plus [`origins`]: channels live on many
//! regional hosts, so the provider keeps one dispatcher and pool per host behind one
//! router-facing actor, the same as Web Push's origins ([`crate::providers::origins`]).

pub mod auth;
pub mod client;
pub mod config;
pub mod origins;
pub mod payload;
pub mod response;
