//! The credential one connection carries, for a push service that binds its credential to
//! the connection rather than to the request.
//!
//! APNs is such a service: Apple judges a provider token per connection, and a connection
//! that changes its token within 20 minutes of the last change is refused with
//! `429 TooManyProviderTokenUpdates` (docs/protocols.md, APNs). So which token a push
//! carries depends on the connection it leaves on, and is decided when the stream is leased
//! ([`crate::providers::service::PushService::bind`]), not when the request is built.
//!
//! Each connection gets a fresh, empty cell when it opens; every stream leased on it shares
//! the cell. The pool only keeps it: what goes in is the service's business.

use crate::vocab::UnixMillis;
use http::HeaderValue;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The credential a connection carries, and since when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bound {
    /// The header value every request on the connection carries (`authorization`); `None`
    /// for a credential that needs none (an APNs client certificate).
    pub authorization: Option<HeaderValue>,
    /// Which credential it is, as the service names it (an APNs token's mint time).
    pub credential: u64,
    /// Which configured credential issued it, as the service counts them (a reload that
    /// replaces an app's key bumps it): a connection still carrying a replaced one's token
    /// takes the new one's.
    pub issuer: u64,
    /// When the connection first carried it.
    pub since: UnixMillis,
}

/// One connection's [`Bound`] credential: empty until the service binds one.
#[derive(Debug, Default)]
pub struct BoundCredential(Mutex<Option<Bound>>);

impl BoundCredential {
    /// The cell, locked. Held for a comparison and a clone, never across an await; it is
    /// only contended by pushes leaving on the same connection at the same moment.
    pub fn lock(&self) -> MutexGuard<'_, Option<Bound>> {
        // A poisoned cell is taken over: it is only ever replaced whole.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
