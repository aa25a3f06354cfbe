//! Which topics an APNs client certificate may push to.
//!
//! Apple binds a push certificate to one app: its subject's UID (OID
//! 0.9.2342.19200300.100.1.1) is the app's bundle id, and Apple's topics extension (OID
//! 1.2.840.113635.100.6.3.6) lists every topic the certificate covers, e.g.
//! `com.example.app`, `com.example.app.voip`, `com.example.app.complication`. APNs refuses a
//! push whose `apns-topic` is none of them with `400 TopicDisallowed`. The extension's value
//! is a DER SEQUENCE alternating a topic (UTF8String) and a SEQUENCE naming its kind
//! (`topic`, `voip`, `complication`); only the topic strings matter here.

use super::certificate::ApnsCertificate;
use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::ber::BerObject;
use x509_parser::der_parser::oid::Oid;

/// The subject attribute holding the bundle id (`UID`, RFC 4519 `userId`).
pub const UID_OID: &[u64] = &[0, 9, 2342, 19_200_300, 100, 1, 1];
/// Apple's topics extension.
pub const TOPICS_OID: &[u64] = &[1, 2, 840, 113_635, 100, 6, 3, 6];

/// The topics a certificate covers: its subject UID, then the topics extension's entries, each
/// once. Empty for a certificate that names none (it covers no topic at all).
pub fn certificate_topics(certificate: &X509Certificate<'_>) -> Vec<String> {
    let mut topics: Vec<String> = Vec::new();
    let mut add = |topic: &str| {
        if !topic.is_empty() && !topics.iter().any(|known| known == topic) {
            topics.push(topic.to_owned());
        }
    };
    if let Ok(uid) = Oid::from(UID_OID) {
        for attribute in certificate.subject().iter_by_oid(&uid) {
            if let Ok(bundle) = attribute.as_str() {
                add(bundle);
            }
        }
    }
    let Ok(topics_oid) = Oid::from(TOPICS_OID) else {
        return topics;
    };
    for extension in certificate.extensions() {
        if extension.oid != topics_oid {
            continue;
        }
        // A malformed extension covers nothing more: APNs would not honour it either.
        if let Ok((_, value)) = x509_parser::der_parser::parse_der(extension.value)
            && let Ok(entries) = value.as_sequence()
        {
            entries
                .iter()
                .filter_map(|entry: &BerObject<'_>| entry.as_str().ok())
                .for_each(&mut add);
        }
    }
    topics
}

/// Logs a warning naming the app when its certificate does not cover `<bundle>` or
/// `<bundle>.voip`: APNs would refuse those pushes with `400 TopicDisallowed`. The count of
/// uncovered topics is exported too (`ringcast_credential_topics_uncovered`, 0 when all are
/// covered), for an alert that does not depend on somebody reading the start-up log. A warning, not a
/// configuration error: the topics are read from Apple's own extension, and a node must not
/// refuse to start over a form of it this parser does not know; a real mismatch still shows
/// at once as `misconfigured` outcomes and their alert.
pub fn warn_uncovered(tenant: &str, app: &str, bundle_id: &str, certificate: &ApnsCertificate) {
    let uncovered = certificate.uncovered_topics(bundle_id);
    crate::metrics::credential_topics_uncovered(
        crate::vocab::Platform::Apns,
        tenant,
        app,
        uncovered.len(),
    );
    if !uncovered.is_empty() {
        tracing::warn!(tenant, app, bundle_id, ?uncovered, covered = ?certificate.topics(),
            "APNs client certificate does not cover the app's topics: APNs refuses those \
             pushes with 400 TopicDisallowed (is it another app's certificate?)");
    }
}

/// The topics of a DER certificate; `None` when it does not parse.
pub fn der_certificate_topics(der: &[u8]) -> Option<Vec<String>> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(certificate_topics(&certificate))
}

/// The value of Apple's topics extension for `bundle`: `<bundle>` (kind `topic`) and
/// `<bundle>.voip` (kind `voip`), as Apple issues them to a VoIP-capable app. For test and
/// simulator certificates: ringcast itself only reads the extension.
pub fn topics_extension_value(bundle: &str) -> Vec<u8> {
    let voip = format!("{bundle}.voip");
    let mut entries = Vec::new();
    for (topic, kind) in [(bundle, "topic"), (voip.as_str(), "voip")] {
        entries.extend(der(0x0c, topic.as_bytes()));
        entries.extend(der(0x30, &der(0x0c, kind.as_bytes())));
    }
    der(0x30, &entries)
}

/// One DER TLV: `tag`, the definite length (short or long form), `content`.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|byte| *byte == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// `params` made a push certificate for `bundle` as Apple makes one: the CN Apple uses, the
/// bundle id as UID, and the topics extension with `<bundle>` and `<bundle>.voip`.
pub fn push_certificate_params(bundle: &str) -> rcgen::CertificateParams {
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("Apple Push Services: {bundle}"),
    );
    params
        .distinguished_name
        .push(rcgen::DnType::CustomDnType(UID_OID.to_vec()), bundle);
    params
        .custom_extensions
        .push(rcgen::CustomExtension::from_oid_content(
            TOPICS_OID,
            topics_extension_value(bundle),
        ));
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_uid_and_the_topics_extension_are_the_topics() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = push_certificate_params("com.example.app")
            .self_signed(&key)
            .unwrap();
        assert_eq!(
            der_certificate_topics(cert.der()).unwrap(),
            ["com.example.app", "com.example.app.voip"]
        );
    }

    /// A push certificate for `bundle`'s topics, loaded as an app's would be.
    fn certificate_for(bundle: &str) -> ApnsCertificate {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = push_certificate_params(bundle).self_signed(&key).unwrap();
        ApnsCertificate::from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes()).unwrap()
    }

    /// What `warn_uncovered` logs for an app of `bundle_id` holding a certificate for
    /// `com.example.app`.
    fn warning_for(bundle_id: &str) -> String {
        let loaded = certificate_for("com.example.app");
        let log = crate::logging::MemoryLog::default();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(log.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            warn_uncovered("acme", "ios", bundle_id, &loaded);
        });
        log.text()
    }

    #[test]
    fn another_apps_certificate_is_warned_about_naming_the_app() {
        let logged = warning_for("com.example.phone");
        assert!(
            logged.contains("WARN")
                && logged.contains("tenant=\"acme\"")
                && logged.contains("app=\"ios\"")
                && logged.contains("com.example.phone.voip")
                && logged.contains("TopicDisallowed"),
            "{logged}"
        );
        assert_eq!(
            warning_for("com.example.app"),
            "",
            "its own app: no warning"
        );
    }

    #[test]
    fn the_uncovered_topics_are_exported_per_app() {
        let loaded = certificate_for("com.example.app");
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        metrics::with_local_recorder(&recorder, || {
            warn_uncovered("acme", "ios", "com.example.phone", &loaded);
            warn_uncovered("acme", "app", "com.example.app", &loaded);
        });
        let text = recorder.handle().render();
        let value = |app: &str| {
            text.lines()
                .find(|line| {
                    line.starts_with("ringcast_credential_topics_uncovered{")
                        && line.contains(&format!("app=\"{app}\""))
                })
                .and_then(|line| line.rsplit(' ').next())
                .map(|value| value.parse::<f64>().unwrap())
        };
        assert_eq!(value("ios"), Some(2.0), "another app's certificate: {text}");
        assert_eq!(value("app"), Some(0.0), "its own: {text}");
    }

    #[test]
    fn a_certificate_naming_no_topic_covers_none_and_long_values_encode() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Apple Push Services: x");
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            der_certificate_topics(cert.der()).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(der_certificate_topics(b"not a certificate"), None);

        // A bundle id long enough for the long length form round-trips too.
        let bundle = format!("com.example.{}", "a".repeat(200));
        let cert = push_certificate_params(&bundle).self_signed(&key).unwrap();
        assert_eq!(
            der_certificate_topics(cert.der()).unwrap(),
            [bundle.clone(), format!("{bundle}.voip")]
        );
    }
}
