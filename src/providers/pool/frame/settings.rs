//! SETTINGS (RFC 9113 §6.5): the parameters a peer announces, read and checked.

use super::{ErrorCode, FrameError};

/// Setting identifiers (RFC 9113 §6.5.2).
pub mod setting {
    /// The HPACK table the sender's decoder keeps for the receiver's encoder.
    pub const HEADER_TABLE_SIZE: u16 = 0x1;
    /// Whether server push is allowed (a client sends 0).
    pub const ENABLE_PUSH: u16 = 0x2;
    /// How many streams the receiver of the setting may open.
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    /// Each new stream's flow-control window.
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
    /// The largest frame payload the sender accepts.
    pub const MAX_FRAME_SIZE: u16 = 0x5;
    /// The largest header list the sender accepts.
    pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
}

/// A SETTINGS frame's payload: (identifier, value) pairs, six bytes each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings<'a>(&'a [u8]);

impl<'a> Settings<'a> {
    /// The payload, if its length is a multiple of six (otherwise FRAME_SIZE_ERROR).
    pub fn new(payload: &'a [u8]) -> Option<Settings<'a>> {
        payload.len().is_multiple_of(6).then_some(Settings(payload))
    }

    /// The pairs in the order sent (a later value of one identifier replaces an earlier).
    pub fn pairs(&self) -> impl Iterator<Item = (u16, u32)> + 'a {
        self.0.chunks_exact(6).map(|pair| {
            (
                u16::from_be_bytes([pair[0], pair[1]]),
                u32::from_be_bytes([pair[2], pair[3], pair[4], pair[5]]),
            )
        })
    }

    /// Applies the pairs to what we know of the peer, refusing the values RFC 9113 §6.5.2
    /// forbids; unknown identifiers are ignored. Returns the change to the initial stream
    /// window (which applies to every open stream, §6.9.2).
    pub fn apply(&self, peer: &mut PeerSettings) -> Result<i64, FrameError> {
        let before = i64::from(peer.initial_window_size);
        for (id, value) in self.pairs() {
            match id {
                setting::HEADER_TABLE_SIZE => peer.header_table_size = value,
                setting::ENABLE_PUSH if value > 1 => {
                    return Err(error(
                        ErrorCode::PROTOCOL_ERROR,
                        "ENABLE_PUSH other than 0 or 1",
                    ));
                }
                setting::MAX_CONCURRENT_STREAMS => peer.max_concurrent_streams = Some(value),
                setting::INITIAL_WINDOW_SIZE if value > MAX_WINDOW => {
                    return Err(error(
                        ErrorCode::FLOW_CONTROL_ERROR,
                        "INITIAL_WINDOW_SIZE over 2^31-1",
                    ));
                }
                setting::INITIAL_WINDOW_SIZE => peer.initial_window_size = value,
                setting::MAX_FRAME_SIZE
                    if !(MIN_MAX_FRAME_SIZE..=MAX_MAX_FRAME_SIZE).contains(&value) =>
                {
                    return Err(error(
                        ErrorCode::PROTOCOL_ERROR,
                        "MAX_FRAME_SIZE outside 2^14..2^24-1",
                    ));
                }
                setting::MAX_FRAME_SIZE => peer.max_frame_size = value,
                setting::MAX_HEADER_LIST_SIZE => peer.max_header_list_size = Some(value),
                _ => {}
            }
        }
        Ok(i64::from(peer.initial_window_size) - before)
    }
}

/// The largest flow-control window (RFC 9113 §6.9.1).
pub const MAX_WINDOW: u32 = (1 << 31) - 1;
const MIN_MAX_FRAME_SIZE: u32 = 1 << 14;
const MAX_MAX_FRAME_SIZE: u32 = (1 << 24) - 1;

fn error(code: ErrorCode, what: &'static str) -> FrameError {
    FrameError {
        code,
        stream: 0,
        what,
    }
}

/// What the peer's SETTINGS have said so far; the defaults are RFC 9113's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerSettings {
    /// The HPACK table our encoder may use (ours uses none: [`super::super::hpack::encoder`]).
    pub header_table_size: u32,
    /// How many streams we may open at once; `None` until said (then no limit but ours).
    pub max_concurrent_streams: Option<u32>,
    /// Each new stream's send window.
    pub initial_window_size: u32,
    /// The largest frame payload we may send.
    pub max_frame_size: u32,
    /// The largest header list the peer accepts, if it said.
    pub max_header_list_size: Option<u32>,
}

impl Default for PeerSettings {
    fn default() -> PeerSettings {
        PeerSettings {
            header_table_size: 4096,
            max_concurrent_streams: None,
            initial_window_size: 65_535,
            max_frame_size: MIN_MAX_FRAME_SIZE,
            max_header_list_size: None,
        }
    }
}
