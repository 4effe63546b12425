//! A tokio codec for frames: reads whole frames out of a byte stream (bounded by
//! [`MAX_PAYLOAD`](super::MAX_PAYLOAD)) and writes them.

use bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::frame::{Frame, FrameError};

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The bytes are not a frame.
    #[error("bad frame: {0}")]
    Frame(#[from] FrameError),
    /// The connection failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// The frame codec.
#[derive(Debug, Clone, Copy, Default)]
pub struct FrameCodec;

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        match Frame::decode(src)? {
            Some((frame, used)) => {
                src.advance(used);
                Ok(Some(frame))
            }
            None => {
                // Reserve for the rest of a frame whose header is known, so a large frame is
                // read in few syscalls (the length is bounded by the decoder).
                if src.len() >= super::frame::HEADER_LEN {
                    let len = u32::from_be_bytes([src[8], src[9], src[10], src[11]]);
                    let total = super::frame::HEADER_LEN
                        + usize::try_from(len).unwrap_or(0)
                        + super::frame::TAG_LEN;
                    src.reserve(total.saturating_sub(src.len()));
                }
                Ok(None)
            }
        }
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = CodecError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        frame.encode(dst);
        Ok(())
    }
}
