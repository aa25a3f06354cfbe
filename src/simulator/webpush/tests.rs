//! The Web Push rules against requests built by ringcast's own provider code.

use super::*;
use crate::providers::webpush::auth::VapidSigner;
use crate::providers::webpush::payload::encrypt;
use std::time::Duration;

const ORIGIN: &str = "https://127.0.0.1:8443";
const NOW: u64 = 1_700_000_000;

fn signer() -> VapidSigner {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    VapidSigner::new(
        pair.serialize_pem().as_bytes(),
        "mailto:ops@example.com",
        Duration::from_secs(12 * 3600),
    )
    .unwrap()
}

struct Sent {
    headers: http::HeaderMap,
    body: Vec<u8>,
}

fn request(sub: &NewSubscription, signer: &VapidSigner, plaintext: &[u8]) -> Sent {
    let p256dh: [u8; 65] = URL_SAFE_NO_PAD
        .decode(&sub.p256dh)
        .unwrap()
        .try_into()
        .unwrap();
    let auth: [u8; 16] = URL_SAFE_NO_PAD
        .decode(&sub.auth)
        .unwrap()
        .try_into()
        .unwrap();
    let body = encrypt(plaintext, &p256dh, &auth).unwrap().to_vec();
    let token = signer.token(ORIGIN, NOW * 1000).unwrap();
    let mut headers = http::HeaderMap::new();
    headers.insert("authorization", token.header.parse().unwrap());
    headers.insert("ttl", "45".parse().unwrap());
    headers.insert("urgency", "high".parse().unwrap());
    headers.insert("topic", "abc_DEF-123".parse().unwrap());
    headers.insert("content-encoding", "aes128gcm".parse().unwrap());
    Sent { headers, body }
}

fn judge_at(subs: &Subscriptions, path: &str, sent: &Sent, origin: &str, now: u64) -> Verdict {
    // A fresh memory of verified tokens per request: every rule is seen as on first sight.
    judge_remembering(
        subs,
        &vapid::VerifiedTokens::default(),
        path,
        sent,
        origin,
        now,
    )
}

fn judge_remembering(
    subs: &Subscriptions,
    verified: &vapid::VerifiedTokens,
    path: &str,
    sent: &Sent,
    origin: &str,
    now: u64,
) -> Verdict {
    judge(
        WebPushRequest {
            method: &http::Method::POST,
            path,
            origin,
            headers: &sent.headers,
            body: &sent.body,
        },
        subs,
        verified,
        |id| id == "gone",
        now,
    )
}

/// The status a verdict answers with.
fn status(verdict: Verdict) -> u16 {
    match verdict {
        Verdict::Accept(_) => 201,
        Verdict::Reject { status, .. } => status,
    }
}

fn path(sub: &NewSubscription) -> String {
    format!("{PATH_PREFIX}{}", sub.id)
}

#[test]
fn a_browser_decrypts_what_ringcast_encrypts() {
    let subs = Subscriptions::default();
    let sub = subs.subscribe(ORIGIN, None, None).unwrap();
    assert_eq!(sub.endpoint, format!("{ORIGIN}/wp/{}", sub.id));
    let sent = request(&sub, &signer(), br#"{"v":1,"type":"incoming_call"}"#);
    match judge_at(&subs, &path(&sub), &sent, ORIGIN, NOW) {
        Verdict::Accept(delivered) => {
            assert_eq!(delivered.payload["type"], "incoming_call");
            assert_eq!((delivered.ttl, delivered.urgency.as_str()), (45, "high"));
            assert_eq!(delivered.topic.as_deref(), Some("abc_DEF-123"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn vapid_is_checked_for_audience_expiry_and_key() {
    let subs = Subscriptions::default();
    let signer = signer();
    let sub = subs.subscribe(ORIGIN, None, None).unwrap();
    let sent = request(&sub, &signer, b"{}");
    // Another origin's token.
    assert_eq!(
        status(judge_at(&subs, &path(&sub), &sent, "https://other:1", NOW)),
        401
    );
    // Expired, and too far ahead (a 12 h token seen 13 h early).
    assert_eq!(
        status(judge_at(&subs, &path(&sub), &sent, ORIGIN, NOW + 13 * 3600)),
        401
    );
    assert_eq!(
        status(judge_at(&subs, &path(&sub), &sent, ORIGIN, NOW - 13 * 3600)),
        401
    );
    // No Authorization.
    let mut bare = request(&sub, &signer, b"{}");
    bare.headers.remove("authorization");
    assert_eq!(
        status(judge_at(&subs, &path(&sub), &bare, ORIGIN, NOW)),
        401
    );
    // A subscription bound to another application server key refuses ours.
    let other = self::signer();
    let bound = subs
        .subscribe(ORIGIN, Some(other.public_key()), None)
        .unwrap();
    let sent = request(&bound, &signer, b"{}");
    assert_eq!(
        status(judge_at(&subs, &path(&bound), &sent, ORIGIN, NOW)),
        403
    );
    let sent = request(&bound, &other, b"{}");
    assert_eq!(
        status(judge_at(&subs, &path(&bound), &sent, ORIGIN, NOW)),
        201
    );
}

/// `sent` re-signed by hand with `subject` as its VAPID `sub` (ringcast's signer refuses
/// such subjects, so it cannot make them).
fn with_subject(sent: &Sent, subject: &str) -> Sent {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let key = jsonwebtoken::EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap();
    let claims = serde_json::json!({"aud": ORIGIN, "exp": NOW + 3600, "sub": subject});
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    let jwt = jsonwebtoken::encode(&header, &claims, &key).unwrap();
    let public = URL_SAFE_NO_PAD.encode(pair.public_key_raw());
    let mut headers = sent.headers.clone();
    let authorization = format!("vapid t={jwt}, k={public}");
    headers.insert("authorization", authorization.parse().unwrap());
    Sent {
        headers,
        body: sent.body.clone(),
    }
}

#[test]
fn a_vapid_subject_apple_cannot_reach_is_refused_as_apple_refuses_it() {
    let subs = Subscriptions::default();
    let sub = subs.subscribe(ORIGIN, None, None).unwrap();
    let sent = request(&sub, &signer(), b"{}");
    let verdict = |subject| {
        judge_at(
            &subs,
            &path(&sub),
            &with_subject(&sent, subject),
            ORIGIN,
            NOW,
        )
    };
    for good in ["mailto:ops@example.com", "https://carrier.com/contact"] {
        assert_eq!(status(verdict(good)), 201, "{good}");
    }
    for bad in [
        "mailto:ops@localhost",
        "mailto:relay@box.local",
        "mailto:security@gateway.invalid",
        "https://localhost:8443",
        "mailto: <ops@example.com>",
    ] {
        match verdict(bad) {
            Verdict::Reject { status, reason } => {
                assert_eq!((status, reason), (403, "BadJwtToken"), "{bad}");
            }
            Verdict::Accept(_) => panic!("{bad} accepted"),
        }
    }
}

#[test]
fn headers_size_and_subscriptions_are_enforced() {
    let subs = Subscriptions::default();
    let signer = signer();
    let sub = subs.subscribe(ORIGIN, None, None).unwrap();
    let reason = |verdict: Verdict| match verdict {
        Verdict::Accept(_) => "accepted",
        Verdict::Reject { reason, .. } => reason,
    };
    let mut no_ttl = request(&sub, &signer, b"{}");
    no_ttl.headers.remove("ttl");
    assert_eq!(
        reason(judge_at(&subs, &path(&sub), &no_ttl, ORIGIN, NOW)),
        "MissingTTL"
    );
    let mut gzip = request(&sub, &signer, b"{}");
    gzip.headers
        .insert("content-encoding", "aesgcm".parse().unwrap());
    assert_eq!(
        reason(judge_at(&subs, &path(&sub), &gzip, ORIGIN, NOW)),
        "UnsupportedContentEncoding"
    );
    let mut big = request(&sub, &signer, b"{}");
    big.body = vec![0; MAX_BODY + 1];
    assert_eq!(
        reason(judge_at(&subs, &path(&sub), &big, ORIGIN, NOW)),
        "PayloadTooLarge"
    );
    let mut garbled = request(&sub, &signer, b"{}");
    let last = garbled.body.len() - 1;
    garbled.body[last] ^= 1;
    assert_eq!(
        reason(judge_at(&subs, &path(&sub), &garbled, ORIGIN, NOW)),
        "DecryptionFailed"
    );
    let sent = request(&sub, &signer, b"{}");
    assert_eq!(
        reason(judge_at(&subs, "/wp/unknown", &sent, ORIGIN, NOW)),
        "NoSuchSubscription"
    );
    assert_eq!(
        reason(judge_at(&subs, "/wp/gone", &sent, ORIGIN, NOW)),
        "Unsubscribed"
    );
}

#[test]
fn subscribe_options_are_an_empty_body_or_a_pages_options_object() {
    assert_eq!(
        SubscribeOptions::from_body(b"").unwrap(),
        SubscribeOptions::default()
    );
    assert_eq!(
        SubscribeOptions::from_body(b" \n").unwrap(),
        SubscribeOptions::default()
    );
    let options =
        SubscribeOptions::from_body(br#"{"userVisibleOnly": true, "applicationServerKey": "AbC"}"#)
            .unwrap();
    assert_eq!(options.application_server_key.as_deref(), Some("AbC"));
    assert_eq!(options.user_visible_only, Some(true));
    // snake_case is not the Push API's spelling: refused rather than silently unbound.
    assert!(SubscribeOptions::from_body(br#"{"application_server_key": "AbC"}"#).is_err());
    assert!(SubscribeOptions::from_body(b"key=AbC").is_err());
}

#[test]
fn keys_that_browsers_refuse_and_the_reserved_id_are_refused() {
    let subs = Subscriptions::default();
    let signer = signer();
    // A compressed point (33 bytes) and a 65-byte value that is not an uncompressed point.
    let compressed = URL_SAFE_NO_PAD.encode([2u8; 33]);
    let not_uncompressed = URL_SAFE_NO_PAD.encode([5u8; 65]);
    for key in [
        compressed.as_str(),
        not_uncompressed.as_str(),
        "not base64!",
    ] {
        assert!(subs.subscribe(ORIGIN, Some(key), None).is_err(), "{key}");
    }
    assert!(
        subs.subscribe(ORIGIN, Some(signer.public_key()), None)
            .is_ok()
    );
    let reserved = subs.subscribe(ORIGIN, None, Some("subscribe")).unwrap_err();
    assert!(reserved.contains("reserved"), "{reserved}");
}

#[test]
fn a_new_subscription_serializes_as_push_subscription_to_json() {
    let subs = Subscriptions::default();
    let sub = subs.subscribe(ORIGIN, None, None).unwrap();
    let json = sub.to_json();
    assert_eq!(json["endpoint"], format!("{ORIGIN}/wp/{}", sub.id));
    assert_eq!(json["expirationTime"], serde_json::Value::Null);
    assert_eq!(json["keys"]["p256dh"], sub.p256dh);
    assert_eq!(json["keys"]["auth"], sub.auth);
    assert_eq!(
        json.as_object().map(serde_json::Map::len),
        Some(3),
        "nothing but the browser's fields: {json}"
    );
}

#[test]
fn a_remembered_token_still_has_its_claims_checked_on_every_request() {
    let subs = Subscriptions::default();
    let verified = vapid::VerifiedTokens::default();
    let signer = signer();
    let sub = subs.subscribe(ORIGIN, None, None).unwrap();
    let sent = request(&sub, &signer, b"{}");
    let at = |origin: &str, now: u64| {
        status(judge_remembering(
            &subs,
            &verified,
            &path(&sub),
            &sent,
            origin,
            now,
        ))
    };
    // Verified once, then remembered: the same token is still refused at another origin,
    // once expired, and too early; and accepted again where it is valid.
    assert_eq!(at(ORIGIN, NOW), 201);
    assert_eq!(at("https://other:1", NOW), 401);
    assert_eq!(at(ORIGIN, NOW + 13 * 3600), 401);
    assert_eq!(at(ORIGIN, NOW - 13 * 3600), 401);
    assert_eq!(at(ORIGIN, NOW), 201);
    // A token whose signature does not hold is refused however often it comes: one
    // character inside the signature changed (not the last, whose low bits are padding).
    let mut forged = request(&sub, &signer, b"{}");
    let header = forged.headers["authorization"].to_str().unwrap().to_owned();
    let (token, key) = header.split_once(", k=").unwrap();
    let mut token = token.to_owned().into_bytes();
    let inside = token.len() - 10;
    token[inside] = if token[inside] == b'A' { b'B' } else { b'A' };
    let forged_header = format!("{}, k={key}", String::from_utf8(token).unwrap());
    forged
        .headers
        .insert("authorization", forged_header.parse().unwrap());
    for _ in 0..2 {
        let verdict = judge_remembering(&subs, &verified, &path(&sub), &forged, ORIGIN, NOW);
        assert_eq!(status(verdict), 401);
    }
}
