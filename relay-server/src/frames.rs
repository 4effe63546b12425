//! WebSocket frames on an upgraded connection, below tungstenite's message layer: a tokio
//! codec over tungstenite's own [`FrameHeader`] parser and [`Frame`] writer.
//!
//! The bridge needs this because the message layer interprets the closing handshake: it
//! answers a peer's Close at once and refuses to send anything after it. A Close from a
//! Hybrid Connections peer only means "I have finished sending" (.NET's
//! `HybridConnectionStream.Shutdown()`), and the guide says the rendezvous is relayed without
//! interpretation, so the bridge forwards Close frames like any other and decides itself
//! when a connection is finished. Masking is tungstenite's too: an incoming masked frame is
//! unmasked by formatting it with its mask (the mask is an XOR, so masking again removes it).

use std::io::Cursor;

use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};
use tokio_util::codec::{Decoder, Encoder};

/// A frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The connection failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The bytes are not a WebSocket frame.
    #[error(transparent)]
    Ws(#[from] tungstenite::Error),
    /// A frame is larger than this connection accepts.
    #[error("a frame of {0} bytes exceeds the limit")]
    TooLarge(u64),
}

/// Which end of the WebSocket this codec speaks for: a server (the relay) reads masked
/// frames and writes unmasked ones, a client the other way round (RFC 6455 §5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The relay's end of a sender's or listener's connection.
    Server,
    /// A client's end (test peers that speak frames).
    Client,
}

/// Reads and writes whole frames, payloads unmasked, at most `max_frame` bytes each.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    end: End,
    max_frame: usize,
}

impl FrameCodec {
    /// A codec for `end`, refusing frames above `max_frame` bytes.
    pub fn new(end: End, max_frame: usize) -> Self {
        Self { end, max_frame }
    }
}

/// `frame` with its payload unmasked (and no mask in its header).
fn unmasked(frame: Frame) -> Result<Frame, FrameError> {
    let mut header = frame.header().clone();
    if header.mask.is_none() {
        return Ok(frame);
    }
    let length = frame.payload().len();
    let head = header.len(length as u64);
    let mut out = Vec::with_capacity(head + length);
    frame.format(&mut out)?;
    header.mask = None;
    Ok(Frame::from_payload(header, Bytes::from(out).slice(head..)))
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        let mut cursor = Cursor::new(&src[..]);
        let Some((header, length)) = FrameHeader::parse(&mut cursor)? else {
            return Ok(None);
        };
        let payload_len = usize::try_from(length)
            .ok()
            .filter(|&l| l <= self.max_frame)
            .ok_or(FrameError::TooLarge(length))?;
        // At most 14 bytes (RFC 6455 §5.2).
        let head = usize::try_from(cursor.position()).unwrap_or(usize::MAX);
        let total = head.saturating_add(payload_len);
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        src.advance(head);
        let payload = src.split_to(payload_len).freeze();
        unmasked(Frame::from_payload(header, payload)).map(Some)
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, mut frame: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        frame.header_mut().mask = match self.end {
            End::Server => None,
            End::Client => Some(rand::random()),
        };
        frame.format(&mut dst.writer())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

    use super::*;

    #[test]
    fn masked_frames_round_trip_in_pieces_and_large_ones_are_refused() {
        let mut client = FrameCodec::new(End::Client, 1 << 10);
        let mut server = FrameCodec::new(End::Server, 1 << 10);
        let mut wire = BytesMut::new();
        let data = Frame::message(
            Bytes::from_static(b"hello"),
            OpCode::Data(Data::Binary),
            true,
        );
        client.encode(data.clone(), &mut wire).expect("encode");
        client
            .encode(Frame::close(None), &mut wire)
            .expect("encode close");
        assert_ne!(&wire[wire.len() - 5..], b"hello", "masked on the wire");
        // Byte by byte: nothing is decoded before a frame is complete.
        let mut fed = BytesMut::new();
        let mut got = Vec::new();
        for byte in wire.iter() {
            fed.put_u8(*byte);
            while let Some(frame) = server.decode(&mut fed).expect("decode") {
                got.push(frame);
            }
        }
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].payload(), b"hello");
        assert_eq!(got[0].header().opcode, OpCode::Data(Data::Binary));
        assert_eq!(got[1].header().opcode, data_close());
        // The server writes unmasked frames a client reads as they are.
        let mut back = BytesMut::new();
        server.encode(got.remove(0), &mut back).expect("encode");
        assert_eq!(&back[back.len() - 5..], b"hello");
        let big = Frame::message(vec![0u8; 2 << 10], OpCode::Data(Data::Binary), true);
        let mut wire = BytesMut::new();
        client.encode(big, &mut wire).expect("encode");
        assert!(matches!(
            server.decode(&mut wire),
            Err(FrameError::TooLarge(2048))
        ));
    }

    fn data_close() -> OpCode {
        Frame::close(None).header().opcode
    }
}
