//! Which provider token a push carries: the one its connection carries, changed only as
//! often as Apple lets a connection change it.
//!
//! Apple judges provider tokens per connection (Apple developer forums, threads 674772 and
//! 675879; pushy issue 682): a token older than an hour is refused, and a connection that
//! changes its token within 20 minutes of the last change is answered
//! `429 TooManyProviderTokenUpdates`. One token shared by every connection and replaced for
//! all at once breaks the second rule for any connection opened shortly before the
//! replacement (after a GOAWAY, a reset, a reload), so each connection keeps its own
//! ([`BoundCredential`], a cell the pool gives every connection):
//!
//! - a connection with no token takes the cache's newest, which is at most 35 minutes old
//!   ([`ProviderTokenCache::token`]);
//! - it keeps it until the token is `jwt_refresh_seconds` old *and* it has carried it 20
//!   minutes, then takes the newest. Started at most 35 minutes old, the token is at most 55
//!   minutes old when the 20 minutes are up: never an hour;
//! - a token APNs refused as expired is left at once
//!   ([`ProviderTokenCache::refresh_expired`] marks it), since keeping it fails every push;
//! - so is a token of a key a reload replaced. The reload retires the app's connections, but
//!   a push may already hold a stream on one; it goes out with the new key, as every push
//!   after a reload must (the old key may be revoked: that was often the reason to rotate).
//!   Apple may answer that change with 429, and the push is retried on a new connection.
//!
//! Order on the wire: a connection belongs to one router's thread, and ringcast's own HTTP/2
//! client writes a request's header block as the send is first polled, right after the
//! stamp, so tokens reach Apple in the order they were stamped. With the `h2` client
//! (`http2_client = "h2"`), a send may wait for the connection between the two; two pushes
//! stamped across a change of token could then arrive older-token second, and that push is
//! answered 429 and retried: once per connection and half hour at most.

use super::{MAX_JWT_REFRESH, MIN_JWT_REFRESH, NO_TOKEN, ProviderTokenCache};
use crate::providers::pool::{Bound, BoundCredential};
use crate::vocab::UnixMillis;
use std::sync::atomic::Ordering;

impl ProviderTokenCache {
    /// The token a push leaving on `connection` at `now` carries (`authorization: None`
    /// with certificate auth), recorded as the connection's when it is new to it. `issuer`
    /// is the generation of the app's credential this cache belongs to.
    pub fn for_connection(
        &self,
        connection: &BoundCredential,
        issuer: u64,
        now: UnixMillis,
    ) -> Bound {
        let Some(inner) = &self.inner else {
            return Bound {
                authorization: NO_TOKEN.authorization,
                credential: NO_TOKEN.minted_at,
                issuer,
                since: now,
            };
        };
        let refused_through = inner.refused_through.load(Ordering::Acquire);
        let mut carried = connection.lock();
        if let Some(bound) = carried.as_ref()
            && bound.issuer == issuer
            && keeps(bound, now, inner.refresh_age_ms, refused_through)
        {
            return bound.clone();
        }
        let token = match self.token(now) {
            Ok(token) => token,
            Err(error) => {
                // Signing with a key that parsed at start-up does not fail; were it to, the
                // connection keeps what it has (APNs will say if it is too old), and one that
                // has nothing goes bare: APNs answers `403 MissingProviderToken`, a credential
                // problem, counted and alerted on like any refused credential.
                tracing::error!(%error, "cannot sign a new APNs provider token");
                return carried.clone().unwrap_or(Bound {
                    authorization: None,
                    credential: 0,
                    issuer,
                    since: now,
                });
            }
        };
        let since = match carried.as_ref() {
            // Still the newest (a refused token the cache may not yet replace): no change.
            Some(bound) if bound.credential == token.minted_at && bound.issuer == issuer => {
                bound.since
            }
            _ => now,
        };
        let bound = Bound {
            authorization: token.authorization,
            credential: token.minted_at,
            issuer,
            since,
        };
        *carried = Some(bound.clone());
        bound
    }
}

/// Whether a connection keeps carrying `bound` at `now`: APNs has not refused it, it is
/// under Apple's hour (less the margin), and it is either younger than the refresh age or
/// carried for less than the 20 minutes a connection must keep a token.
fn keeps(bound: &Bound, now: UnixMillis, refresh_age_ms: u64, refused_through: u64) -> bool {
    let age = now.saturating_sub(bound.credential);
    let carried = now.saturating_sub(bound.since);
    bound.credential > refused_through
        && age < MAX_JWT_REFRESH.as_millis() as u64
        && (age < refresh_age_ms || carried < MIN_JWT_REFRESH.as_millis() as u64)
}

#[cfg(test)]
mod tests;
