//! `/v1/calls`: an incoming call rings the callee's devices; its end stops them ringing.
//!
//! Server keys only: an identity token may manage its own registrations, never ring people.
//! `202` answers at once with how many devices the event reached; `?wait=true` answers `200`
//! with one outcome per device once each push has one (or the wait limit passes).

use super::ApiState;
use super::auth::{Caller, Scope};
use super::json_body::json;
use super::problem::{ApiError, Problem};
use crate::config::tenant::MAX_RING_TIMEOUT_SECONDS;
use crate::metrics::{self, EventOutcome};
use crate::push::EndReason;
use crate::registry::validate::{FieldError, Seconds, validate_device_id, validate_identity};
use crate::router::fanout::{CallEvent, Caller as CallerId, EndEvent};
use crate::router::{DeviceOutcome, RouteError, Routed, RoutersError};
use crate::vocab::{IdentityKey, Platform, PushKind};
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};

/// The longest a call id or event id may be, in bytes (it becomes `apns-collapse-id` and the
/// Web Push `Topic`; longer ids are hashed there).
pub const MAX_CALL_ID_LEN: usize = 128;
/// The longest caller id or display name, in characters.
pub const MAX_CALLER_LEN: usize = 256;
/// The longest `?wait=true` waits for outcomes: a ring's deadline is at most 300 s, but a
/// missed-call notice's is a day, and no HTTP client waits that long.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// Who calls.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallerBody {
    /// The caller's id (a number or user id), 1-256 characters.
    pub id: String,
    /// What the callee's phone shows, up to 256 characters.
    #[serde(default)]
    pub display_name: String,
}

/// An incoming call.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallRequest {
    /// The call, as call control names it: 1-128 visible ASCII characters.
    pub call_id: String,
    /// The identity whose devices ring.
    pub callee: String,
    /// Who calls.
    pub caller: CallerBody,
    /// Video or voice.
    #[serde(default)]
    pub video: bool,
    /// How long the phones ring (1-300 s; default: the tenant's, 45 s unless configured). A
    /// whole number (`45.0` is `45`).
    #[schema(value_type = Option<u64>)]
    pub ring_timeout_seconds: Option<Seconds>,
    /// The idempotency key: the same event id twice rings once (default: the call id).
    pub event_id: Option<String>,
}

/// Why the call ended before it was answered here.
#[derive(Clone, Copy, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EndReasonBody {
    /// The caller hung up.
    Cancelled,
    /// Another device answered (name it in `device_id`).
    AnsweredElsewhere,
    /// Another device declined (name it in `device_id`).
    DeclinedElsewhere,
    /// Nobody answered: a missed-call notice goes to every device.
    Missed,
}

/// The end of a call.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndRequest {
    /// The identity whose devices were ringing.
    pub callee: String,
    /// Why the call ended.
    pub reason: EndReasonBody,
    /// The device that answered or declined: it gets no "call ended" push.
    pub device_id: Option<String>,
    /// Who called (shown in the missed-call notice).
    pub caller: Option<CallerBody>,
    /// Video or voice.
    #[serde(default)]
    pub video: bool,
    /// The idempotency key (default: `<call id>:<reason>`).
    pub event_id: Option<String>,
}

impl CallRequest {
    /// The event this body describes for `tenant`, whose `default_ring_timeout` (seconds)
    /// applies when the body names none; or every field that is wrong.
    pub fn into_event(
        self,
        tenant: &str,
        default_ring_timeout: u64,
    ) -> Result<CallEvent, Vec<FieldError>> {
        let mut errors = Vec::new();
        check(
            &mut errors,
            validate_identity(&self.callee).map_err(rename("callee")),
        );
        check(&mut errors, call_id("call_id", &self.call_id));
        if let Some(event_id) = &self.event_id {
            check(&mut errors, call_id("event_id", event_id));
        }
        check(&mut errors, caller_fields("caller", &self.caller));
        let ring_timeout = match self.ring_timeout_seconds.as_ref().map(Seconds::whole) {
            None => default_ring_timeout,
            Some(Ok(seconds)) => seconds,
            Some(Err(message)) => {
                errors.push(FieldError::new("ring_timeout_seconds", message));
                default_ring_timeout
            }
        };
        if !(1..=MAX_RING_TIMEOUT_SECONDS).contains(&ring_timeout) {
            errors.push(FieldError::new(
                "ring_timeout_seconds",
                format!("must be 1..={MAX_RING_TIMEOUT_SECONDS} (got {ring_timeout})"),
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(CallEvent {
            event_id: self.event_id.unwrap_or_else(|| self.call_id.clone()),
            call_id: self.call_id,
            callee: IdentityKey::new(tenant, self.callee).into(),
            caller: CallerId {
                id: self.caller.id,
                display_name: self.caller.display_name,
            },
            video: self.video,
            ring_timeout: Duration::from_secs(ring_timeout),
        })
    }
}

impl From<EndReasonBody> for EndReason {
    fn from(reason: EndReasonBody) -> EndReason {
        match reason {
            EndReasonBody::Cancelled => EndReason::Cancelled,
            EndReasonBody::AnsweredElsewhere => EndReason::AnsweredElsewhere,
            EndReasonBody::DeclinedElsewhere => EndReason::DeclinedElsewhere,
            EndReasonBody::Missed => EndReason::Missed,
        }
    }
}

impl EndRequest {
    /// The end of the call `call` for `tenant` that this body describes, or every field that
    /// is wrong.
    pub fn into_event(self, call: String, tenant: &str) -> Result<EndEvent, Vec<FieldError>> {
        let mut errors = Vec::new();
        check(&mut errors, call_id("call_id", &call));
        check(
            &mut errors,
            validate_identity(&self.callee).map_err(rename("callee")),
        );
        if let Some(device_id) = &self.device_id {
            check(&mut errors, validate_device_id(device_id));
        }
        if let Some(event_id) = &self.event_id {
            check(&mut errors, call_id("event_id", event_id));
        }
        if let Some(who) = &self.caller {
            check(&mut errors, caller_fields("caller", who));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let reason = EndReason::from(self.reason);
        let caller = self.caller.map_or_else(
            || CallerId {
                id: String::new(),
                display_name: String::new(),
            },
            |who| CallerId {
                id: who.id,
                display_name: who.display_name,
            },
        );
        Ok(EndEvent {
            event_id: self
                .event_id
                .unwrap_or_else(|| format!("{call}:{}", reason.label())),
            call_id: call,
            callee: IdentityKey::new(tenant, self.callee).into(),
            reason,
            device_id: self.device_id,
            caller,
            video: self.video,
        })
    }
}

/// `?wait=true`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    /// Answer once every device's push has an outcome (at most 60 s), instead of at once.
    #[serde(default)]
    pub wait: bool,
}

/// The answer to a call event.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallAccepted {
    /// The event id (the call id unless one was given).
    pub event_id: String,
    /// How many devices the event reached (0 when the callee has none: not an error).
    pub devices: usize,
    /// The event was seen before (on any node): nothing was sent again.
    pub duplicate: bool,
    /// For a duplicate: how far the node that owns the event got.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<ProgressView>,
    /// With `?wait=true`: one outcome per device.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcomes: Option<Vec<DeviceOutcomeView>>,
}

/// How far an event got on the node that owns it, as a duplicate is told. While the owner
/// lives it keeps going; if it dies before `finished`, the same event sent again after its
/// lease lapsed (`[cluster] lease_ms`) is taken over and rings the devices not in `done`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProgressView {
    /// The devices whose push already has an outcome.
    pub done: Vec<String>,
    /// Every device has an outcome: the event will not ring again.
    pub finished: bool,
}

/// What became of one device's push.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceOutcomeView {
    /// The device.
    pub device_id: String,
    /// Its push service (left out for a device reached over the internal push channel only:
    /// connected, not registered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// `delivered`, `delivered_internal` (acked over the internal push channel: no platform
    /// push was sent), `expired`, `shed`, `withdrawn`, `no_alert_token`, `dead_token`,
    /// `misconfigured`, `credential_problem`, `rejected` (README, "Outcomes"), or `pending`
    /// (no outcome within the wait limit).
    pub outcome: &'static str,
    /// Why, where there is a reason (the push service's, or ringcast's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Ring every device of the callee.
#[utoipa::path(
    post,
    path = "/v1/calls",
    params(WaitQuery),
    request_body = CallRequest,
    responses(
        (status = 202, description = "Accepted: pushes are on their way", body = CallAccepted),
        (status = 200, description = "With ?wait=true: every device's outcome", body = CallAccepted),
        (status = 400, description = "Malformed JSON or unknown field", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a server key", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Queues full or store unreachable: nothing was rung; retry after Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
    tag = "calls"
)]
pub async fn ring(
    state: web::Data<ApiState>,
    caller: Caller,
    query: web::Query<WaitQuery>,
    body: web::Json<CallRequest>,
) -> Result<HttpResponse, ApiError> {
    server_key_only(&caller)?;
    let event = body
        .into_inner()
        .into_event(&caller.tenant.id, caller.tenant.ring_timeout_seconds)
        .map_err(|errors| {
            metrics::event(PushKind::IncomingCall, EventOutcome::Invalid);
            ApiError::Invalid(errors)
        })?;
    let routed = counted(PushKind::IncomingCall, state.routers.ring(event).await)?;
    tracing::info!(tenant = %caller.tenant.id, event_id = %routed.event_id,
        devices = routed.devices.len(), duplicate = routed.duplicate, "call routed");
    answer(routed, query.wait).await
}

/// Stop the callee's devices ringing, or tell them of a missed call.
#[utoipa::path(
    post,
    path = "/v1/calls/{call_id}/end",
    params(("call_id" = String, Path, description = "The call"), WaitQuery),
    request_body = EndRequest,
    responses(
        (status = 202, description = "Accepted: pushes are on their way", body = CallAccepted),
        (status = 200, description = "With ?wait=true: every device's outcome", body = CallAccepted),
        (status = 400, description = "Malformed JSON or unknown field", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a server key", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unreachable or node overloaded; retry after Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
    tag = "calls"
)]
pub async fn end(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<WaitQuery>,
    body: web::Json<EndRequest>,
) -> Result<HttpResponse, ApiError> {
    server_key_only(&caller)?;
    let body = body.into_inner();
    let kind = EndReason::from(body.reason).kind();
    let event = body
        .into_event(path.into_inner(), &caller.tenant.id)
        .map_err(|errors| {
            metrics::event(kind, EventOutcome::Invalid);
            ApiError::Invalid(errors)
        })?;
    let label = event.reason.label();
    let routed = counted(kind, state.routers.end(event).await)?;
    tracing::info!(tenant = %caller.tenant.id, event_id = %routed.event_id,
        devices = routed.devices.len(), duplicate = routed.duplicate, reason = label,
        "call end routed");
    answer(routed, query.wait).await
}

/// `202` at once, or `200` with every device's outcome.
async fn answer(routed: Routed, wait: bool) -> Result<HttpResponse, ApiError> {
    let devices = routed.devices.len();
    let progress = routed.progress.map(|progress| ProgressView {
        done: progress.done,
        finished: progress.finished,
    });
    if !wait {
        let accepted = CallAccepted {
            event_id: routed.event_id,
            devices,
            duplicate: routed.duplicate,
            progress,
            outcomes: None,
        };
        return Ok(json(HttpResponse::Accepted(), &accepted, ANSWER_BYTES));
    }
    let until = tokio::time::Instant::now() + MAX_WAIT;
    let mut outcomes = Vec::with_capacity(devices);
    for device in routed.devices {
        let outcome = match device.outcome {
            DeviceOutcome::Known(outcome) => Some(outcome),
            // Past the limit an outcome that came meanwhile is still taken: the timeout polls
            // the ticket before it looks at the clock.
            DeviceOutcome::Pending(ticket) => match tokio::time::timeout_at(until, ticket).await {
                Ok(Ok(outcome)) => Some(outcome),
                _ => None,
            },
        };
        outcomes.push(DeviceOutcomeView {
            device_id: device.device_id,
            platform: device.platform,
            outcome: outcome.as_ref().map_or("pending", |o| o.label()),
            reason: outcome.as_ref().and_then(|o| o.reason()).map(str::to_owned),
        });
    }
    let answered = CallAccepted {
        event_id: routed.event_id,
        devices,
        duplicate: routed.duplicate,
        progress,
        outcomes: Some(outcomes),
    };
    let size = ANSWER_BYTES + OUTCOME_BYTES * devices;
    Ok(json(HttpResponse::Ok(), &answered, size))
}

/// Room for an answer without outcomes (an event id of at most 128 characters, the count,
/// `duplicate`, a short `progress`), and for each device's outcome (its id, platform and
/// outcome, a reason now and then): sized so that most answers are written without growing
/// the buffer.
const ANSWER_BYTES: usize = 256;
const OUTCOME_BYTES: usize = 128;

/// Only a server key may ring people.
fn server_key_only(caller: &Caller) -> Result<(), ApiError> {
    match caller.scope {
        Scope::Server => Ok(()),
        Scope::Identity(_) => Err(ApiError::Forbidden(
            "only a server key may send call events; an identity token may not ring people",
        )),
    }
}

/// A call or event id: 1-128 visible ASCII characters (it becomes a collapse id).
fn call_id(field: &str, id: &str) -> Result<(), FieldError> {
    if id.is_empty() || id.len() > MAX_CALL_ID_LEN || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(FieldError::new(
            field,
            format!("must be 1-{MAX_CALL_ID_LEN} visible ASCII characters"),
        ));
    }
    Ok(())
}

/// The caller's id (1-256 characters) and name (up to 256), without control characters.
fn caller_fields(field: &str, caller: &CallerBody) -> Result<(), FieldError> {
    let fits = |text: &str, min: usize| {
        let count = text.chars().count();
        (min..=MAX_CALLER_LEN).contains(&count) && !text.chars().any(char::is_control)
    };
    if !fits(&caller.id, 1) {
        return Err(FieldError::new(
            &format!("{field}.id"),
            format!("must be 1-{MAX_CALLER_LEN} characters, no control characters"),
        ));
    }
    if !fits(&caller.display_name, 0) {
        return Err(FieldError::new(
            &format!("{field}.display_name"),
            format!("must be at most {MAX_CALLER_LEN} characters, no control characters"),
        ));
    }
    Ok(())
}

/// Collects a field problem.
fn check(errors: &mut Vec<FieldError>, result: Result<(), FieldError>) {
    if let Err(error) = result {
        errors.push(error);
    }
}

/// Renames a field problem (the identity validator says `identity`).
fn rename(field: &'static str) -> impl Fn(FieldError) -> FieldError {
    move |error| FieldError::new(field, error.message)
}

/// Counts the event's outcome (`ringcast_events_total`) and turns a failure into the API's
/// answer.
fn counted(kind: PushKind, routed: Result<Routed, RoutersError>) -> Result<Routed, ApiError> {
    let outcome = match &routed {
        Ok(routed) if routed.duplicate => EventOutcome::Duplicate,
        Ok(routed) if routed.devices.is_empty() => EventOutcome::NoDevices,
        Ok(_) => EventOutcome::Accepted,
        Err(
            RoutersError::Route(RouteError::Overloaded | RouteError::Shed(_)) | RoutersError::Busy,
        ) => EventOutcome::Busy,
        Err(RoutersError::Route(RouteError::Store(_)) | RoutersError::Stopped) => {
            EventOutcome::Unavailable
        }
    };
    metrics::event(kind, outcome);
    routed.map_err(route_error)
}

/// The API's answer to a routing failure.
fn route_error(error: RoutersError) -> ApiError {
    match error {
        RoutersError::Route(RouteError::Overloaded) => {
            ApiError::Unavailable("the push queues are full: nothing was rung; retry shortly")
        }
        RoutersError::Route(RouteError::Shed(_)) => {
            ApiError::Unavailable("the node is overloaded: nothing was sent; retry shortly")
        }
        RoutersError::Route(RouteError::Store(store)) => {
            ApiError::from(crate::registry::shards::ShardError::Store(store))
        }
        RoutersError::Busy => ApiError::Unavailable("the router is overloaded; retry shortly"),
        RoutersError::Stopped => {
            ApiError::Unavailable("the node is shutting down; retry on another node")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::DevicePush;
    use crate::vocab::Outcome;
    use tokio::sync::oneshot;

    fn device(id: &str, outcome: DeviceOutcome) -> DevicePush {
        DevicePush {
            device_id: id.into(),
            platform: Some(Platform::Apns),
            outcome,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_waited_answer_keeps_what_came_within_the_limit_and_the_rest_is_pending() {
        let (_held, never) = oneshot::channel();
        let (answer_now, answered) = oneshot::channel();
        let (gone, dropped) = oneshot::channel::<Outcome>();
        let routed = Routed {
            event_id: "call-1".into(),
            duplicate: false,
            progress: None,
            devices: vec![
                device("known", DeviceOutcome::Known(Outcome::Shed)),
                // Awaited first, and never answered: the wait runs out on it ...
                device("never", DeviceOutcome::Pending(never)),
                // ... before this one is awaited, though its outcome came meanwhile.
                device("answered", DeviceOutcome::Pending(answered)),
                // The dispatcher stopped without an outcome.
                device("dropped", DeviceOutcome::Pending(dropped)),
            ],
        };
        answer_now.send(Outcome::Delivered).unwrap();
        drop(gone);
        let started = tokio::time::Instant::now();
        let response = answer(routed, true).await.unwrap();
        assert_eq!(started.elapsed(), MAX_WAIT, "one wait, of the limit");
        let body = actix_web::body::to_bytes(response.into_body())
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let outcomes: Vec<(&str, &str)> = body["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|view| {
                (
                    view["device_id"].as_str().unwrap(),
                    view["outcome"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            outcomes,
            [
                ("known", "shed"),
                ("never", "pending"),
                ("answered", "delivered"),
                ("dropped", "pending"),
            ]
        );
        assert_eq!(body["devices"], 4);
    }
}
