//! Bytes from a push service's connection as HTTP/2 frames: through the frame parser and, for
//! SETTINGS, their checks; then through a client session with three streams open. Never a
//! panic; a frame accepted within the size we allow; a failed session opens nothing more.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use ringcast::providers::pool::frame::{self, Frame, HEAD_LEN, Head, PeerSettings};
use ringcast::providers::pool::session::{OurSettings, Session};

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

    let mut session = Session::new(OurSettings::default());
    let mut settings = Vec::new();
    frame::write_settings(&mut settings, &[]);
    session
        .receive(&mut BytesMut::from(&settings[..]))
        .expect("empty SETTINGS are valid");
    for _ in 0..3 {
        session
            .open(&[0x83], Bytes::from_static(b"{}"))
            .expect("no stream limit yet");
    }
    let mut input = BytesMut::from(bytes);
    let failed = session.receive(&mut input).is_err();
    while session.next_event().is_some() {}
    if failed {
        assert!(!session.can_open());
    }
});
