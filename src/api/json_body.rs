//! JSON answers serialized into a buffer sized up front.
//!
//! actix-web's `HttpResponseBuilder::json` serializes into a `String` that starts empty and
//! doubles as it grows: the `?wait=true` answer of a ring to five devices (~500 bytes) cost
//! seven allocations and as many copies, on every call.

use actix_web::error::JsonPayloadError;
use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, HttpResponseBuilder};
use serde::Serialize;

/// `value` as the `application/json` body of `builder`'s answer, written into `size_hint`
/// bytes of room (more if it needs them); `500` if `value` cannot be serialized, as
/// `HttpResponseBuilder::json` answers.
pub fn json(
    mut builder: HttpResponseBuilder,
    value: &impl Serialize,
    size_hint: usize,
) -> HttpResponse {
    let mut body = Vec::with_capacity(size_hint);
    match serde_json::to_writer(&mut body, value) {
        Ok(()) => builder.insert_header(ContentType::json()).body(body),
        Err(error) => HttpResponse::from_error(JsonPayloadError::Serialize(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;
    use actix_web::http::{StatusCode, header};

    #[derive(Serialize)]
    struct Answer {
        devices: usize,
        names: Vec<&'static str>,
    }

    fn body(response: HttpResponse) -> (StatusCode, Option<String>, String) {
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|value| value.to_str().unwrap().to_owned());
        let bytes = response.into_body().try_into_bytes().unwrap();
        (
            status,
            content_type,
            String::from_utf8(bytes.to_vec()).unwrap(),
        )
    }

    #[test]
    fn answers_what_actix_json_answers_whatever_the_hint() {
        let answer = Answer {
            devices: 2,
            names: vec!["a\"b", "ç"],
        };
        let expected = body(HttpResponse::Accepted().json(&answer));
        for hint in [0, 8, 4096] {
            assert_eq!(
                body(json(HttpResponse::Accepted(), &answer, hint)),
                expected
            );
        }
    }
}
