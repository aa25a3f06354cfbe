//! APNs certificate auth: an app's client certificate (PEM chain + PEM private key) proves
//! the sender on the TLS connection itself, so its pushes carry no JWT (docs/protocols.md, APNs).
//!
//! Apple's push certificates live a year. A lapsed one fails every push of the app with
//! `403 BadCertificate`, so the expiry is read at start-up: an expired certificate is a
//! configuration error, one that expires within the warning window is logged, and the
//! expiry is exported as `ringcast_credential_expiry_seconds` for an alert well before.
//!
//! PEM only. PKCS#12 files are encrypted with 3DES, RC2 or AES-CBC under PKCS#12's own key
//! derivation; ring offers none of those, so every pure-Rust PKCS#12 reader (p12,
//! p12-keystore, pkcs12) brings a second crypto implementation (RustCrypto's des, rc2, cbc,
//! hmac, sha1), which docs/architecture.md rules out. Convert once with
//! `openssl pkcs12 -in cert.p12 -out cert.pem -clcerts -nokeys` and
//! `openssl pkcs12 -in cert.p12 -out key.pem -nocerts -nodes` (add `-legacy` for old files).

use crate::providers::pool::tls::{TlsSetupError, client_config_with_certificate};
use rustls::ClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Why a certificate cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CertificateError {
    /// The certificate PEM holds no certificate, or one that does not parse.
    #[error("the certificate PEM holds no usable certificate: {0}")]
    Certificate(String),
    /// The key PEM holds no private key. The error never includes the key.
    #[error("the certificate key PEM holds no private key (PKCS#8, PKCS#1 or SEC1)")]
    Key,
    /// The certificate has expired.
    #[error("the certificate {subject:?} expired at {not_after} (UNIX seconds)")]
    Expired {
        /// Its subject, to tell which one.
        subject: String,
        /// When it expired.
        not_after: i64,
    },
}

/// How close a certificate is to its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// Valid beyond the warning window.
    Valid,
    /// Valid, but not for longer than the warning window: renew it.
    ExpiresSoon {
        /// Whole days left.
        days_left: u64,
    },
    /// Past its `notAfter`.
    Expired,
}

/// An app's client certificate, parsed once at start-up.
pub struct ApnsCertificate {
    /// The chain sent to APNs, leaf first.
    chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    key: PrivateKeyDer<'static>,
    /// The leaf's `notAfter`, UNIX seconds.
    not_after: i64,
    /// The leaf's subject (Apple's says which app: "Apple Push Services: <bundle id>").
    subject: String,
    /// The topics the leaf covers (subject UID and Apple's topics extension).
    topics: Vec<String>,
}

impl std::fmt::Debug for ApnsCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApnsCertificate")
            .field("subject", &self.subject)
            .field("not_after", &self.not_after)
            .field("topics", &self.topics)
            .field("key", &"[redacted]")
            .finish()
    }
}

impl ApnsCertificate {
    /// The certificate chain of `cert_pem` (leaf first) with the private key of `key_pem`.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, CertificateError> {
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| CertificateError::Certificate(error.to_string()))?;
        let leaf = chain
            .first()
            .ok_or_else(|| CertificateError::Certificate("no CERTIFICATE block".into()))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(leaf)
            .map_err(|error| CertificateError::Certificate(error.to_string()))?;
        let not_after = parsed.validity().not_after.timestamp();
        let subject = parsed.subject().to_string();
        let topics = super::topics::certificate_topics(&parsed);
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| CertificateError::Key)?;
        Ok(ApnsCertificate {
            chain,
            key,
            not_after,
            subject,
            topics,
        })
    }

    /// The leaf's `notAfter`, UNIX seconds: the value of
    /// `ringcast_credential_expiry_seconds`.
    pub fn not_after(&self) -> i64 {
        self.not_after
    }

    /// The leaf's subject.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The topics the certificate covers (its subject UID and Apple's topics extension).
    pub fn topics(&self) -> &[String] {
        &self.topics
    }

    /// Which of the topics ringcast pushes for `bundle_id` (`<bundle>` for alerts,
    /// `<bundle>.voip` for calls) the certificate does not cover: APNs refuses those pushes
    /// with `400 TopicDisallowed`. Empty when it covers both.
    pub fn uncovered_topics(&self, bundle_id: &str) -> Vec<String> {
        [bundle_id.to_owned(), format!("{bundle_id}.voip")]
            .into_iter()
            .filter(|topic| !self.topics.contains(topic))
            .collect()
    }

    /// How close the certificate is to its end at `now` (UNIX seconds), warning `window`
    /// ahead.
    pub fn expiry(&self, now: i64, window: Duration) -> Expiry {
        if now >= self.not_after {
            return Expiry::Expired;
        }
        let left = (self.not_after - now) as u64;
        if left <= window.as_secs() {
            Expiry::ExpiresSoon {
                days_left: left / 86_400,
            }
        } else {
            Expiry::Valid
        }
    }

    /// An error unless the certificate is still valid at `now` (UNIX seconds).
    pub fn check_not_expired(&self, now: i64) -> Result<(), CertificateError> {
        if self.expiry(now, Duration::ZERO) == Expiry::Expired {
            return Err(CertificateError::Expired {
                subject: self.subject.clone(),
                not_after: self.not_after,
            });
        }
        Ok(())
    }

    /// A TLS client configuration presenting this certificate, trusting `roots_pem` (the web
    /// PKI when `None`), ring only. rustls refuses a key that does not match the leaf.
    pub fn client_config(
        &self,
        roots_pem: Option<&Path>,
    ) -> Result<Arc<ClientConfig>, TlsSetupError> {
        client_config_with_certificate(roots_pem, self.chain.clone(), self.key.clone_key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A leaf certificate for `subject` valid from `not_before` to `not_after` (UNIX
    /// seconds), as PEM, with its key.
    pub(crate) fn certificate(subject: &str, not_before: i64, not_after: i64) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, subject);
        params.not_before = time::OffsetDateTime::from_unix_timestamp(not_before).unwrap();
        params.not_after = time::OffsetDateTime::from_unix_timestamp(not_after).unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    const NOW: i64 = 1_800_000_000;
    const DAY: i64 = 86_400;

    #[test]
    fn the_expiry_is_read_and_judged_against_the_warning_window() {
        let (cert, key) = certificate(
            "Apple Push Services: com.example.app",
            NOW - DAY,
            NOW + 20 * DAY,
        );
        let parsed = ApnsCertificate::from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
        assert_eq!(parsed.not_after(), NOW + 20 * DAY);
        assert!(
            parsed
                .subject()
                .contains("Apple Push Services: com.example.app")
        );
        let window = Duration::from_secs(30 * DAY as u64);
        assert_eq!(
            parsed.expiry(NOW, window),
            Expiry::ExpiresSoon { days_left: 20 }
        );
        assert_eq!(
            parsed.expiry(NOW, Duration::from_secs(7 * DAY as u64)),
            Expiry::Valid
        );
        assert_eq!(parsed.expiry(NOW + 20 * DAY, window), Expiry::Expired);
        assert!(parsed.check_not_expired(NOW).is_ok());
        let expired = parsed.check_not_expired(NOW + 21 * DAY).unwrap_err();
        assert!(expired.to_string().contains("expired"), "{expired}");
        assert!(!format!("{parsed:?}").contains("PRIVATE"));
        assert!(parsed.client_config(None).is_ok());
    }

    #[test]
    fn the_topics_are_read_and_the_uncovered_ones_named() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = super::super::topics::push_certificate_params("com.example.app")
            .self_signed(&key)
            .unwrap();
        let parsed =
            ApnsCertificate::from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes())
                .unwrap();
        assert_eq!(parsed.topics(), ["com.example.app", "com.example.app.voip"]);
        assert!(parsed.uncovered_topics("com.example.app").is_empty());
        assert_eq!(
            parsed.uncovered_topics("com.example.other"),
            ["com.example.other", "com.example.other.voip"]
        );
        // A certificate without Apple's fields covers nothing.
        let (bare, bare_key) = certificate("push", NOW - DAY, NOW + DAY);
        let bare = ApnsCertificate::from_pem(bare.as_bytes(), bare_key.as_bytes()).unwrap();
        assert_eq!(bare.uncovered_topics("a.b").len(), 2);
    }

    #[test]
    fn a_pem_without_a_certificate_or_a_key_is_refused() {
        let (cert, key) = certificate("x", NOW - DAY, NOW + DAY);
        assert!(matches!(
            ApnsCertificate::from_pem(key.as_bytes(), key.as_bytes()),
            Err(CertificateError::Certificate(_))
        ));
        assert_eq!(
            ApnsCertificate::from_pem(cert.as_bytes(), cert.as_bytes()).unwrap_err(),
            CertificateError::Key
        );
    }
}
