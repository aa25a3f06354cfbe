//! The compact binary form of a registration, shared by every store.
//!
//! Memory is the cost that matters at a carrier (tens of millions of registrations, see
//! docs/architecture.md): JSON values cost more than twice as much as this. The layout is fixed-width up
//! front so that the Redis Lua scripts can read the times and compare the address without a
//! decoder:
//!
//! ```text
//! offset  size  field
//!      0     1  format version (1)
//!      1     1  platform (0 apns, 1 fcm, 2 wns, 3 webpush)
//!      2     1  environment (0 production, 1 sandbox)
//!      3     1  flags (bit 0: disable_internal_push; bit 1: an APNs alert token follows)
//!      4     8  created_at, ms, little-endian       (Lua: struct.unpack('<I8', rec, 5))
//!     12     8  updated_at, ms, little-endian       (Lua: offset 13)
//!     20     8  expires_at, ms, little-endian       (Lua: offset 21)
//!     28     2  token length n, little-endian       ┐ the "address field": what the
//!     30     n  token bytes (APNs raw, FCM, WNS URI, ┘ owner index and dead-token checks compare
//!               Web Push endpoint)
//!   30+n    81  Web Push only: p256dh (65) + auth (16)
//!      …     1  app id length m, then m bytes
//!      …     1  APNs with flag bit 1 only: alert token length k (32..=100), then k bytes
//! ```
//!
//! The device id is not in the value: it is the key (embedded) or the hash field (Redis).
//!
//! The APNs regular (alert) token came later: it is a tail behind the app id, announced by a
//! flag bit, so a record without one is byte for byte what it was before (an absent alert
//! token costs nothing), every record written before it still decodes, and the header the
//! Lua scripts read did not move. A registration with an alert token costs 1 + k bytes more.

use super::registration::{Environment, Platform, PushAddress, Registration};
use thiserror::Error;

/// The format version written by [`encode`].
const VERSION: u8 = 1;
/// Flag bit: the device asked not to be woken for pushes it does not show.
const FLAG_DISABLE_INTERNAL_PUSH: u8 = 1;
/// Flag bit: an APNs alert token follows the app id.
const FLAG_ALERT_TOKEN: u8 = 2;
/// Byte offset of the environment byte.
pub const ENVIRONMENT_OFFSET: usize = 2;
/// Byte offset of `created_at`.
pub const CREATED_AT_OFFSET: usize = 4;
/// Byte offset of `updated_at`.
pub const UPDATED_AT_OFFSET: usize = 12;
/// Byte offset of `expires_at`.
pub const EXPIRES_AT_OFFSET: usize = 20;
/// Byte offset of the address field (token length + token).
pub const ADDRESS_OFFSET: usize = 28;

/// A stored value that cannot be read back: a bug or foreign data, never a user error.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("undecodable registration record: {0}")]
pub struct DecodeError(&'static str);

/// Encodes everything but the device id.
pub fn encode(registration: &Registration) -> Vec<u8> {
    let address = &registration.address;
    let token = address.token_bytes();
    let mut out =
        Vec::with_capacity(ADDRESS_OFFSET + 2 + token.len() + 81 + 1 + registration.app.len());
    out.push(VERSION);
    out.push(platform_byte(address.platform()));
    out.push(environment_byte(registration.environment));
    let alert_token = address.alert_token();
    let mut flags = 0;
    if registration.disable_internal_push {
        flags |= FLAG_DISABLE_INTERNAL_PUSH;
    }
    if alert_token.is_some() {
        flags |= FLAG_ALERT_TOKEN;
    }
    out.push(flags);
    out.extend_from_slice(&registration.created_at.to_le_bytes());
    out.extend_from_slice(&registration.updated_at.to_le_bytes());
    out.extend_from_slice(&registration.expires_at.to_le_bytes());
    out.extend_from_slice(&address_field(address));
    if let PushAddress::WebPush { p256dh, auth, .. } = address {
        out.extend_from_slice(p256dh);
        out.extend_from_slice(auth);
    }
    // App ids are validated to at most 64 bytes (config), so the length fits a byte.
    out.push(registration.app.len() as u8);
    out.extend_from_slice(registration.app.as_bytes());
    if let Some(alert_token) = alert_token {
        // Validated to 32..=100 bytes, so the length fits a byte.
        out.push(alert_token.len() as u8);
        out.extend_from_slice(alert_token);
    }
    out
}

/// The platform's byte at offset 1 of a record. The stores also key their owner index by it
/// (the same token bytes on two platforms are two tokens), so this is the one place that
/// numbers the platforms and a record's byte 1 can be compared with an owner key as is.
pub fn platform_byte(platform: Platform) -> u8 {
    match platform {
        Platform::Apns => 0,
        Platform::Fcm => 1,
        Platform::Wns => 2,
        Platform::Webpush => 3,
    }
}

/// The environment's byte at [`ENVIRONMENT_OFFSET`] of a record.
pub fn environment_byte(environment: Environment) -> u8 {
    match environment {
        Environment::Production => 0,
        Environment::Sandbox => 1,
    }
}

/// The address field as it stands at [`ADDRESS_OFFSET`]: the token's length and bytes. The
/// stores compare it to tell whether a record still holds a given token.
pub fn address_field(address: &PushAddress) -> Vec<u8> {
    let token = address.token_bytes();
    // Tokens are validated to at most a few KiB, far below u16::MAX.
    let mut field = Vec::with_capacity(2 + token.len());
    field.extend_from_slice(&(token.len() as u16).to_le_bytes());
    field.extend_from_slice(token);
    field
}

/// The APNs alert token a record holds, if any, without decoding the rest (the stores' owner
/// index needs it). Web Push records never carry one, so their keys need not be skipped.
pub fn alert_token(record: &[u8]) -> Result<Option<&[u8]>, DecodeError> {
    let flags = *record.get(3).ok_or(DecodeError("truncated header"))?;
    if flags & FLAG_ALERT_TOKEN == 0 {
        return Ok(None);
    }
    let mut reader = Reader {
        bytes: record,
        at: ADDRESS_OFFSET,
    };
    let token_len = u16::from_le_bytes(reader.array::<2>()?) as usize;
    reader.take(token_len)?;
    let app_len = reader.take(1)?[0] as usize;
    reader.take(app_len)?;
    let len = reader.take(1)?[0] as usize;
    Ok(Some(reader.take(len)?))
}

/// Reads `expires_at` without decoding the rest (the sweep and the filters need only this).
pub fn expires_at(record: &[u8]) -> Result<u64, DecodeError> {
    read_u64(record, EXPIRES_AT_OFFSET)
}

/// Decodes a record written by [`encode`], giving it back its device id (moved in when the
/// caller owns it: a registration read for a ring is one allocation fewer).
pub fn decode(device_id: impl Into<String>, record: &[u8]) -> Result<Registration, DecodeError> {
    let mut reader = Reader {
        bytes: record,
        at: 0,
    };
    if reader.take(1)?[0] != VERSION {
        return Err(DecodeError("unknown version"));
    }
    let platform = reader.take(1)?[0];
    let environment = match reader.take(1)?[0] {
        0 => Environment::Production,
        1 => Environment::Sandbox,
        _ => return Err(DecodeError("unknown environment")),
    };
    let flags = reader.take(1)?[0];
    let created_at = read_u64(record, CREATED_AT_OFFSET)?;
    let updated_at = read_u64(record, UPDATED_AT_OFFSET)?;
    let expires_at = read_u64(record, EXPIRES_AT_OFFSET)?;
    reader.at = ADDRESS_OFFSET;
    let token_len = u16::from_le_bytes(reader.array::<2>()?) as usize;
    let token = reader.take(token_len)?;
    let text = || String::from_utf8(token.to_vec()).map_err(|_| DecodeError("token is not UTF-8"));
    let mut address = match platform {
        0 => PushAddress::Apns {
            token: token.to_vec(),
            alert_token: None,
        },
        1 => PushAddress::Fcm { token: text()? },
        2 => PushAddress::Wns { channel: text()? },
        3 => PushAddress::WebPush {
            endpoint: text()?,
            p256dh: reader.array::<65>()?,
            auth: reader.array::<16>()?,
        },
        _ => return Err(DecodeError("unknown platform")),
    };
    let app_len = reader.take(1)?[0] as usize;
    let app = String::from_utf8(reader.take(app_len)?.to_vec())
        .map_err(|_| DecodeError("app is not UTF-8"))?;
    if flags & FLAG_ALERT_TOKEN != 0 {
        let PushAddress::Apns { alert_token, .. } = &mut address else {
            return Err(DecodeError("alert token on a non-APNs record"));
        };
        let len = reader.take(1)?[0] as usize;
        *alert_token = Some(reader.take(len)?.to_vec());
    }
    Ok(Registration {
        device_id: device_id.into(),
        app,
        address,
        environment,
        disable_internal_push: flags & FLAG_DISABLE_INTERNAL_PUSH != 0,
        created_at,
        updated_at,
        expires_at,
    })
}

fn read_u64(record: &[u8], offset: usize) -> Result<u64, DecodeError> {
    let bytes = record
        .get(offset..offset + 8)
        .ok_or(DecodeError("truncated header"))?;
    let mut array = [0; 8];
    array.copy_from_slice(bytes);
    Ok(u64::from_le_bytes(array))
}

/// A cursor over a record that fails instead of panicking on truncated input.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .at
            .checked_add(len)
            .ok_or(DecodeError("length overflow"))?;
        let slice = self
            .bytes
            .get(self.at..end)
            .ok_or(DecodeError("truncated"))?;
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut array = [0; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(address: PushAddress) -> Registration {
        Registration {
            device_id: "phone-1".into(),
            app: "com.example.voip".into(),
            address,
            environment: Environment::Sandbox,
            disable_internal_push: true,
            created_at: 1_700_000_000_000,
            updated_at: 1_700_000_100_000,
            expires_at: 1_700_086_400_000,
        }
    }

    #[test]
    fn every_platform_round_trips() {
        let addresses = [
            PushAddress::Apns {
                token: vec![0xab; 32],
                alert_token: None,
            },
            PushAddress::Apns {
                token: vec![0xab; 32],
                alert_token: Some(vec![0xcd; 32]),
            },
            PushAddress::Fcm {
                token: "fcm:token-1".into(),
            },
            PushAddress::Wns {
                channel: "https://db5.notify.windows.com/?token=x".into(),
            },
            PushAddress::WebPush {
                endpoint: "https://fcm.googleapis.com/fcm/send/abc".into(),
                p256dh: [4; 65],
                auth: [7; 16],
            },
        ];
        for address in addresses {
            let registration = sample(address);
            let record = encode(&registration);
            assert_eq!(decode("phone-1", &record), Ok(registration.clone()));
            assert_eq!(alert_token(&record), Ok(registration.address.alert_token()));
            assert_eq!(expires_at(&record), Ok(registration.expires_at));
            assert_eq!(
                &record
                    [ADDRESS_OFFSET..ADDRESS_OFFSET + 2 + registration.address.token_bytes().len()],
                address_field(&registration.address).as_slice()
            );
        }
    }

    #[test]
    fn an_apns_registration_is_compact() {
        // 28 header + 2 + 32 token + 1 + 16 app: the budget behind docs/architecture.md's memory target.
        assert_eq!(
            encode(&sample(PushAddress::Apns {
                token: vec![1; 32],
                alert_token: None
            }))
            .len(),
            79
        );
        // An alert token costs its length byte and its bytes, nothing else.
        assert_eq!(
            encode(&sample(PushAddress::Apns {
                token: vec![1; 32],
                alert_token: Some(vec![2; 32])
            }))
            .len(),
            79 + 1 + 32
        );
    }

    #[test]
    fn a_record_written_before_alert_tokens_still_decodes() {
        // An APNs record as the codec wrote it before alert tokens existed: version 1,
        // production, flags 1 (disable_internal_push), three times, the token, the app.
        let mut old = vec![1, 0, 0, 1];
        old.extend_from_slice(&1_700_000_000_000u64.to_le_bytes());
        old.extend_from_slice(&1_700_000_100_000u64.to_le_bytes());
        old.extend_from_slice(&1_700_086_400_000u64.to_le_bytes());
        old.extend_from_slice(&32u16.to_le_bytes());
        old.extend_from_slice(&[0x5a; 32]);
        old.push(3);
        old.extend_from_slice(b"ios");
        let decoded = decode("phone", &old).unwrap();
        assert_eq!(
            decoded.address,
            PushAddress::Apns {
                token: vec![0x5a; 32],
                alert_token: None
            }
        );
        assert_eq!(decoded.app, "ios");
        assert!(decoded.disable_internal_push);
        assert_eq!(decoded.environment, Environment::Production);
        assert_eq!(decoded.updated_at, 1_700_000_100_000);
        // And a registration without an alert token is still written exactly so.
        assert_eq!(encode(&decoded), old);
    }

    #[test]
    fn an_alert_token_flag_on_another_platform_is_an_error() {
        let mut record = encode(&sample(PushAddress::Fcm { token: "t".into() }));
        record[3] |= FLAG_ALERT_TOKEN;
        record.extend_from_slice(&[1, 7]);
        assert!(decode("d", &record).is_err());
    }

    #[test]
    fn truncated_or_foreign_records_are_errors_not_panics() {
        let record = encode(&sample(PushAddress::Fcm { token: "t".into() }));
        for cut in 0..record.len() {
            assert!(decode("d", &record[..cut]).is_err(), "cut at {cut}");
        }
        let mut foreign = record.clone();
        foreign[0] = 9;
        assert!(decode("d", &foreign).is_err());
    }
}
