//! The JSON the generator sends and reads on every call, as typed structs: serialized and
//! parsed without building a `serde_json::Value` tree (a map and a `String` per field), and
//! the answer's strings borrowed from its body. At the knee of `benches/e2e.sh` the
//! generator shares the machine's cores with the node it measures, so its cost per call is
//! taken from the node.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// `POST /v1/calls`.
#[derive(Debug, Serialize)]
pub struct RingBody<'a> {
    /// The call (and event) id.
    pub call_id: &'a str,
    /// Who is called.
    pub callee: &'a str,
    /// Who calls.
    pub caller: Caller,
    /// A video call.
    pub video: bool,
    /// How long the devices ring.
    pub ring_timeout_seconds: u64,
}

/// The caller every generated call shows.
#[derive(Debug, Serialize)]
pub struct Caller {
    /// The caller's number.
    pub id: &'static str,
    /// The caller's name.
    pub display_name: &'static str,
}

/// The generator's caller.
pub const CALLER: Caller = Caller {
    id: "+15550100",
    display_name: "Load Generator",
};

/// `POST /v1/calls/{call_id}/end`.
#[derive(Debug, Serialize)]
pub struct EndBody<'a> {
    /// Who was called.
    pub callee: &'a str,
    /// `cancelled`, `answered_elsewhere`, ...
    pub reason: &'a str,
    /// The device that answered, for `answered_elsewhere`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<&'a str>,
}

/// What the report counts of a ring's answer (`outcomes` only with `?wait=true`). Unknown
/// fields are ignored: the node may add some.
#[derive(Debug, Deserialize)]
pub struct RingAnswer<'a> {
    /// Devices the event reached.
    #[serde(default)]
    pub devices: u64,
    /// One outcome per device.
    #[serde(default, borrow)]
    pub outcomes: Vec<DeviceOutcome<'a>>,
}

/// One device's outcome. `Cow`: a string with an escape in it cannot be borrowed.
#[derive(Debug, Deserialize)]
pub struct DeviceOutcome<'a> {
    /// `delivered`, `rejected`, ...
    #[serde(default, borrow)]
    pub outcome: Option<Cow<'a, str>>,
    /// Why, where there is a reason.
    #[serde(default, borrow)]
    pub reason: Option<Cow<'a, str>>,
    /// The device's push service.
    #[serde(default, borrow)]
    pub platform: Option<Cow<'a, str>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_the_apis_json() {
        let ring = RingBody {
            call_id: "run-1",
            callee: "e2e-7",
            caller: CALLER,
            video: true,
            ring_timeout_seconds: 30,
        };
        assert_eq!(
            serde_json::to_value(&ring).unwrap(),
            serde_json::json!({"call_id": "run-1", "callee": "e2e-7",
                "caller": {"id": "+15550100", "display_name": "Load Generator"},
                "video": true, "ring_timeout_seconds": 30})
        );
        let end = EndBody {
            callee: "e2e-7",
            reason: "cancelled",
            device_id: None,
        };
        assert_eq!(
            serde_json::to_string(&end).unwrap(),
            r#"{"callee":"e2e-7","reason":"cancelled"}"#
        );
    }

    #[test]
    fn an_answer_is_read_with_escapes_and_unknown_fields() {
        let body = br#"{"event_id":"c","devices":2,"duplicate":false,"outcomes":[
            {"device_id":"d0","platform":"apns","outcome":"delivered"},
            {"device_id":"d1","outcome":"rejected","reason":"quota \"x\""}]}"#;
        let answer: RingAnswer = serde_json::from_slice(body).unwrap();
        assert_eq!(answer.devices, 2);
        assert_eq!(answer.outcomes[0].platform.as_deref(), Some("apns"));
        assert_eq!(answer.outcomes[1].platform, None);
        assert_eq!(answer.outcomes[1].reason.as_deref(), Some("quota \"x\""));
        // A 202 without ?wait=true has no outcomes.
        let answer: RingAnswer = serde_json::from_slice(br#"{"devices":0}"#).unwrap();
        assert!(answer.outcomes.is_empty());
    }
}
