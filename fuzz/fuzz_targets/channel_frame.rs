//! A frame a client sends on `/v1/channel`: any text, never a panic (a bad frame closes the
//! connection with a reason; it must not take the node down).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringcast::channel::frame::ClientFrame;

fuzz_target!(|text: &str| {
    let _ = ClientFrame::parse(text);
});
