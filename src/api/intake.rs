//! Request intake: a node-wide bound on the API requests being served at once.
//!
//! Why: HTTP/2 lets one client open any number of streams, and actix-web advertises no
//! `SETTINGS_MAX_CONCURRENT_STREAMS`. When requests arrive faster than the node's CPU serves
//! them, every accepted stream becomes a waiting handler: at twice the rate a 2-core node can
//! serve, the end-to-end benchmark's client kept 10,000 calls open and the node grew from
//! 40 MiB to 261 MiB while rings queued for seconds behind them. The routers' admission
//! (src/router/admission.rs) cannot help there: the queue is in front of it.
//!
//! So every request counts from the moment the node starts it, and beyond the limit a new one
//! gets `503` with `Retry-After` at once, before its body is read, the least urgent first: other
//! requests (registrations, lists) are refused from half of `[server] max_requests_in_flight`,
//! call ends from three quarters, rings only at the limit. Health, readiness, metrics and the
//! API description are never refused: an overloaded node must stay observable.

use super::problem::ApiError;
use crate::metrics::{self, IntakeRoute};
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};
use futures_util::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// The node's count of requests being served, and its limit. Cloned into every HTTP worker.
#[derive(Clone, Debug)]
pub struct Intake {
    limit: usize,
    in_progress: Arc<AtomicUsize>,
    /// The node is stopping (SIGTERM): call events are refused, `/readyz` fails.
    draining: Arc<AtomicBool>,
}

/// A request being served; dropping it (when its answer is ready) frees its place.
#[derive(Debug)]
pub struct Ticket {
    in_progress: Arc<AtomicUsize>,
}

impl Intake {
    /// Serves at most `limit` requests at once (at least 2, so every route can get one).
    pub fn new(limit: usize) -> Intake {
        let limit = limit.max(2);
        metrics::requests_in_flight_limit(limit as i64);
        Intake {
            limit,
            in_progress: Arc::default(),
            draining: Arc::default(),
        }
    }

    /// From now on call events are refused (`503` with `Retry-After`: call control retries
    /// on another node) and `/readyz` fails, so load balancers stop sending here; requests
    /// already admitted finish (docs/architecture.md, "Cluster semantics": drain).
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Whether the node is draining.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// A ticket for a request of `route`, or `None` when that route is refused right now.
    pub fn admit(&self, route: IntakeRoute) -> Option<Ticket> {
        if self.is_draining() && matches!(route, IntakeRoute::Ring | IntakeRoute::End) {
            metrics::request_refused(route);
            return None;
        }
        let threshold = match route {
            IntakeRoute::Ring => self.limit,
            IntakeRoute::End => self.limit * 3 / 4,
            IntakeRoute::Other => self.limit / 2,
        };
        // Count first, then check: concurrent workers never admit past the threshold together.
        let before = self.in_progress.fetch_add(1, Ordering::AcqRel);
        if before >= threshold {
            self.in_progress.fetch_sub(1, Ordering::AcqRel);
            metrics::request_refused(route);
            return None;
        }
        metrics::requests_in_flight(1);
        Some(Ticket {
            in_progress: Arc::clone(&self.in_progress),
        })
    }

    /// Requests being served now.
    pub fn in_progress(&self) -> usize {
        self.in_progress.load(Ordering::Acquire)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.in_progress.fetch_sub(1, Ordering::AcqRel);
        metrics::requests_in_flight(-1);
    }
}

/// Which share of the limit a request may use; `None` for requests never refused.
pub fn route(method: &Method, path: &str) -> Option<IntakeRoute> {
    if method == Method::GET
        && matches!(path, "/healthz" | "/readyz" | "/metrics" | "/openapi.json")
    {
        return None;
    }
    Some(match path.strip_prefix("/v1/calls") {
        Some("") if method == Method::POST => IntakeRoute::Ring,
        Some(rest) if method == Method::POST && rest.ends_with("/end") => IntakeRoute::End,
        _ => IntakeRoute::Other,
    })
}

/// The most of a refused request's body read before answering, in bytes and time.
const DRAIN_BYTES: usize = 64 * 1024;
const DRAIN_TIME: Duration = Duration::from_millis(100);

/// Reads what the client sends of a refused request's body (it is usually already here)
/// before answering. Refusing with the body unread made h2 close the load generator's
/// connections under overload, hundreds of admitted calls with them: GOAWAY
/// `ENHANCE_YOUR_CALM` "too_many_internal_resets", after 1,024 streams h2 had to reset or
/// refuse on one connection (benches/e2e.sh at twice the maximum rate: 3,650-4,329 calls lost
/// per run without this, none with it). A body larger or slower than the bounds is dropped.
async fn drain(mut request: ServiceRequest) {
    let mut payload = request.take_payload();
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        let mut read = 0;
        while let Some(Ok(chunk)) = payload.next().await {
            read += chunk.len();
            if read > DRAIN_BYTES {
                break;
            }
        }
    })
    .await;
}

/// The middleware: admits or refuses each request before any of its work.
pub async fn limit(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let ticket = match (
        request.app_data::<Intake>(),
        route(request.method(), request.path()),
    ) {
        (Some(intake), Some(route)) => match intake.admit(route) {
            Some(ticket) => Some(ticket),
            None => {
                let why = if intake.is_draining() {
                    "the node is shutting down; retry on another node"
                } else {
                    "the node has too many requests in progress; retry shortly"
                };
                drain(request).await;
                return Err(ApiError::Unavailable(why).into());
            }
        },
        _ => None,
    };
    let response = next.call(request).await;
    drop(ticket);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrations_go_first_then_call_ends_then_rings() {
        let intake = Intake::new(8);
        let held: Vec<Ticket> = (0..4)
            .map(|_| intake.admit(IntakeRoute::Other).expect("room"))
            .collect();
        assert!(intake.admit(IntakeRoute::Other).is_none(), "half full");
        let ends = [
            intake.admit(IntakeRoute::End).expect("room for ends"),
            intake.admit(IntakeRoute::End).expect("room for ends"),
        ];
        assert!(intake.admit(IntakeRoute::End).is_none(), "three quarters");
        let rings = [
            intake.admit(IntakeRoute::Ring).expect("room for rings"),
            intake.admit(IntakeRoute::Ring).expect("room for rings"),
        ];
        assert!(intake.admit(IntakeRoute::Ring).is_none(), "full");
        assert_eq!(intake.in_progress(), 8);
        drop((held, ends, rings));
        assert_eq!(intake.in_progress(), 0);
        assert!(intake.admit(IntakeRoute::Other).is_some());
    }

    #[test]
    fn a_draining_node_refuses_call_events_but_serves_the_rest() {
        let intake = Intake::new(8);
        intake.start_draining();
        assert!(intake.is_draining());
        assert!(intake.admit(IntakeRoute::Ring).is_none());
        assert!(intake.admit(IntakeRoute::End).is_none());
        assert!(intake.admit(IntakeRoute::Other).is_some());
    }

    #[test]
    fn routes_are_told_apart_by_method_and_path() {
        let post = Method::POST;
        assert_eq!(route(&post, "/v1/calls"), Some(IntakeRoute::Ring));
        assert_eq!(route(&post, "/v1/calls/c-1/end"), Some(IntakeRoute::End));
        assert_eq!(
            route(&Method::PUT, "/v1/identities/a/registrations/d"),
            Some(IntakeRoute::Other)
        );
        assert_eq!(route(&Method::GET, "/v1/calls"), Some(IntakeRoute::Other));
        for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
            assert_eq!(route(&Method::GET, path), None, "{path}");
        }
        assert_eq!(route(&post, "/metrics"), Some(IntakeRoute::Other));
    }
}
