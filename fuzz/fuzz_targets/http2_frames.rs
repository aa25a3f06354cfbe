//! Bytes from a push service's connection as HTTP/2 frames, through the frame parser and,
//! for SETTINGS, their checks: never a panic; a frame accepted within the size we allow.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringcast::providers::pool::frame::{self, Frame, HEAD_LEN, Head, PeerSettings};

fuzz_target!(|bytes: &[u8]| {
    let mut rest = bytes;
    let mut peer = PeerSettings::default();
    while rest.len() >= HEAD_LEN {
        let head = Head::parse(rest[..HEAD_LEN].try_into().expect("nine bytes"));
        let Some(payload) = rest.get(HEAD_LEN..HEAD_LEN + head.len) else {
            break;
        };
        rest = &rest[HEAD_LEN + head.len..];
        match frame::parse(head, payload, 1024) {
            Ok(Frame::Settings(settings)) => {
                let _ = settings.apply(&mut peer);
            }
            Ok(_) => assert!(head.len <= 1024),
            Err(_) => {}
        }
    }
});
