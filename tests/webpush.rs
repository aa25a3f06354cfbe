//! Web Push end to end: the SSRF guard at registration (through the real API) and at connect
//! time, and — against the simulator over TLS + HTTP/2 — encrypted, VAPID-signed pushes, to
//! subscriptions made in-process or over HTTP (`POST /wp/subscribe`).

mod support;
mod webpush {
    pub mod delivery;
    pub mod node;
    pub mod registration;
    pub mod subscribe;
}
