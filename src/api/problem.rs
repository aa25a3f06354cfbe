//! API errors as RFC 9457 problem details (`application/problem+json`), each with a stable
//! `type` that clients can switch on.

use crate::registry::StoreError;
use crate::registry::shards::ShardError;
use crate::registry::validate::FieldError;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

/// Seconds a client should wait before retrying a `503`.
const RETRY_AFTER_SECONDS: u32 = 1;

/// Everything the API can answer with instead of success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No usable credential (`401`).
    #[error("a valid Authorization: Bearer credential is required")]
    Unauthorized,
    /// An identity token issued before its identity was revoked (`401`): the app must get a
    /// new token (sign the user in again), retrying with this one cannot work.
    #[error("the identity was revoked after this token was issued; get a new token")]
    TokenRevoked,
    /// The credential may not do this (`403`).
    #[error("{0}")]
    Forbidden(&'static str),
    /// No such resource within the caller's tenant (`404`).
    #[error("{0}")]
    NotFound(&'static str),
    /// The path exists but does not take this method (`405` with `Allow`).
    #[error("this path takes only {allow}")]
    MethodNotAllowed {
        /// The methods it takes, as the `Allow` header lists them.
        allow: &'static str,
    },
    /// The request body is not the JSON this endpoint takes (`400`).
    #[error("{0}")]
    MalformedBody(String),
    /// The request is well-formed but its values are not acceptable (`422`).
    #[error("the request has invalid fields")]
    Invalid(Vec<FieldError>),
    /// The body is larger than the configured limit (`413`).
    #[error("the request body exceeds {limit} bytes")]
    BodyTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The request head (method, path, headers) is larger than the node takes (`431`).
    #[error("the request head exceeds {limit} bytes")]
    HeadersTooLarge {
        /// The configured limit (`[server] max_header_bytes`).
        limit: usize,
    },
    /// The body is not `application/json` (`415`).
    #[error("the request body must be application/json")]
    UnsupportedMediaType,
    /// The identity has as many devices as allowed (`409`).
    #[error("the identity already has {max} devices; unregister one first")]
    TooManyDevices {
        /// The limit.
        max: u32,
    },
    /// The caller's tenant is over its rate of this kind of request (`429` with
    /// `Retry-After`; src/limits.rs).
    #[error("tenant over its {kind} rate; retry after {retry_after_seconds} s")]
    RateLimited {
        /// `registration` or `call`.
        kind: &'static str,
        /// When a token is back, rounded up to whole seconds.
        retry_after_seconds: u64,
    },
    /// The node or its store cannot serve now; retry later (`503` with `Retry-After`).
    #[error("{0}")]
    Unavailable(&'static str),
    /// A bug or corrupt data; details are in the server log only (`500`).
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// The stable problem type (a URN, so it never needs to resolve).
    pub fn problem_type(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "urn:ringcast:problem:unauthorized",
            ApiError::TokenRevoked => "urn:ringcast:problem:token-revoked",
            ApiError::Forbidden(_) => "urn:ringcast:problem:forbidden",
            ApiError::NotFound(_) => "urn:ringcast:problem:not-found",
            ApiError::MethodNotAllowed { .. } => "urn:ringcast:problem:method-not-allowed",
            ApiError::MalformedBody(_) => "urn:ringcast:problem:malformed-body",
            ApiError::Invalid(_) => "urn:ringcast:problem:invalid-fields",
            ApiError::BodyTooLarge { .. } => "urn:ringcast:problem:body-too-large",
            ApiError::UnsupportedMediaType => "urn:ringcast:problem:unsupported-media-type",
            ApiError::HeadersTooLarge { .. } => "urn:ringcast:problem:headers-too-large",
            ApiError::TooManyDevices { .. } => "urn:ringcast:problem:too-many-devices",
            ApiError::RateLimited { .. } => "urn:ringcast:problem:rate-limited",
            ApiError::Unavailable(_) => "urn:ringcast:problem:unavailable",
            ApiError::Internal => "urn:ringcast:problem:internal",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "Unauthorized",
            ApiError::TokenRevoked => "Token revoked",
            ApiError::Forbidden(_) => "Forbidden",
            ApiError::NotFound(_) => "Not found",
            ApiError::MethodNotAllowed { .. } => "Method not allowed",
            ApiError::MalformedBody(_) => "Malformed request body",
            ApiError::Invalid(_) => "Invalid fields",
            ApiError::BodyTooLarge { .. } => "Request body too large",
            ApiError::UnsupportedMediaType => "Unsupported media type",
            ApiError::HeadersTooLarge { .. } => "Request header fields too large",
            ApiError::TooManyDevices { .. } => "Too many devices",
            ApiError::RateLimited { .. } => "Too many requests",
            ApiError::Unavailable(_) => "Temporarily unavailable",
            ApiError::Internal => "Internal error",
        }
    }
}

/// The problem document (RFC 9457), with ringcast's `errors` extension for field problems.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// Stable problem type URN.
    #[serde(rename = "type")]
    pub problem_type: &'static str,
    /// Short summary of the type.
    pub title: &'static str,
    /// The HTTP status code.
    pub status: u16,
    /// What happened, for this request.
    pub detail: String,
    /// One entry per invalid field (`invalid-fields` only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized | ApiError::TokenRevoked => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::MalformedBody(_) => StatusCode::BAD_REQUEST,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::TooManyDevices { .. } => StatusCode::CONFLICT,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let problem = Problem {
            problem_type: self.problem_type(),
            title: self.title(),
            status: status.as_u16(),
            detail: self.to_string(),
            errors: match self {
                ApiError::Invalid(errors) => errors.clone(),
                _ => Vec::new(),
            },
        };
        let mut response = HttpResponse::build(status);
        response.content_type("application/problem+json");
        match self {
            ApiError::Unavailable(_) => {
                response
                    .insert_header((header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS)));
            }
            ApiError::RateLimited {
                retry_after_seconds,
                ..
            } => {
                response
                    .insert_header((header::RETRY_AFTER, HeaderValue::from(*retry_after_seconds)));
            }
            ApiError::Unauthorized | ApiError::TokenRevoked => {
                response
                    .insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
            }
            ApiError::MethodNotAllowed { allow } => {
                response.insert_header((header::ALLOW, HeaderValue::from_static(allow)));
            }
            _ => {}
        }
        response.json(problem)
    }
}

impl From<FieldError> for ApiError {
    fn from(error: FieldError) -> Self {
        ApiError::Invalid(vec![error])
    }
}

impl From<ShardError> for ApiError {
    fn from(error: ShardError) -> Self {
        match error {
            ShardError::Busy => ApiError::Unavailable("the registry is overloaded; retry shortly"),
            ShardError::Stopped => {
                ApiError::Unavailable("the node is shutting down; retry on another node")
            }
            ShardError::Store(StoreError::Unavailable(reason)) => {
                tracing::warn!(%reason, "store unavailable");
                ApiError::Unavailable("the registration store is unreachable; retry shortly")
            }
            ShardError::Store(StoreError::TooManyDevices { max }) => {
                ApiError::TooManyDevices { max }
            }
            ShardError::Store(StoreError::Corrupt(reason) | StoreError::Bug(reason)) => {
                tracing::error!(%reason, "registry operation failed");
                ApiError::Internal
            }
        }
    }
}

/// Turns actix-web's JSON extractor failures into problems (wired in `api::configure`).
pub fn json_error(error: actix_web::error::JsonPayloadError, limit: usize) -> ApiError {
    use actix_web::error::JsonPayloadError as E;
    match error {
        E::Overflow { .. } | E::OverflowKnownLength { .. } => ApiError::BodyTooLarge { limit },
        E::ContentType => ApiError::UnsupportedMediaType,
        E::Deserialize(error) => ApiError::MalformedBody(format!("invalid JSON: {error}")),
        other => ApiError::MalformedBody(format!("unreadable body: {other}")),
    }
}
