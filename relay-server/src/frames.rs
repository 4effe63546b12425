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
//!
//! **Memory.** The codec hands its buffers back when a small frame leaves them empty: after
//! a frame of at most `KEEP_ABOVE` bytes that leaves nothing behind the read buffer is
//! dropped, and such a frame encoded after the previous ones were written gets a buffer of
//! its own size. An idle connection, whose last frames were small ones (a call's answer, a
//! pong, a Close), so holds no read buffer and a few bytes of write buffer. Larger frames
//! keep both buffers, so a bulk transfer reuses them instead of allocating (and faulting in)
//! 64 KiB per frame.
//!
//! The bridge forwards frames without reassembling messages, so the RFC 6455 checks a message
//! layer would make are made here, per frame, and each failure says which close code it
//! earns ([`FrameError::close_code`]): a frame over the limit 1009, text that is not UTF-8
//! (checked across fragments) 1007, and 1002 for a protocol violation — a client frame
//! without a mask (or a server frame with one), a reserved opcode, a reserved bit without an
//! extension, a fragmented or oversized control frame, a continuation with no message to
//! continue or a new message inside a fragmented one.

use std::io::Cursor;

use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};
use tokio_util::codec::{Decoder, Encoder};

/// Largest frame after which the codec lets go of an emptied buffer (see "Memory" above):
/// a licence call's messages are far smaller, a bulk transfer's frames larger.
pub(crate) const KEEP_ABOVE: usize = 4 << 10;

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
    #[error("a frame of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The frame's payload length.
        size: u64,
        /// The limit.
        limit: usize,
    },
    /// A text message is not valid UTF-8.
    #[error("a text message is not valid UTF-8")]
    InvalidUtf8,
    /// The frame breaks the WebSocket protocol (RFC 6455 §5).
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
}

impl FrameError {
    /// The close code this failure earns (RFC 6455 §7.4.1), or `None` when the connection
    /// itself failed and nothing can be sent on it.
    pub fn close_code(&self) -> Option<u16> {
        match self {
            Self::Io(_) | Self::Ws(tungstenite::Error::Io(_)) => None,
            Self::TooLarge { .. } => Some(1009),
            Self::InvalidUtf8 => Some(1007),
            Self::Protocol(_) | Self::Ws(_) => Some(1002),
        }
    }
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
    /// The message being read: `None` between messages.
    message: Option<Message>,
}

/// A fragmented message being read.
#[derive(Debug, Clone)]
enum Message {
    Binary,
    /// A text message and the bytes of a character split across its fragments (at most 3).
    Text(Vec<u8>),
}

impl FrameCodec {
    /// A codec for `end`, refusing frames above `max_frame` bytes.
    pub fn new(end: End, max_frame: usize) -> Self {
        Self {
            end,
            max_frame,
            message: None,
        }
    }

    /// The header checks that need no payload.
    fn check_header(&self, header: &FrameHeader) -> Result<(), FrameError> {
        let masked = header.mask.is_some();
        match (self.end, masked) {
            (End::Server, false) => {
                return Err(FrameError::Protocol("a client frame without a mask"));
            }
            (End::Client, true) => return Err(FrameError::Protocol("a server frame with a mask")),
            _ => {}
        }
        if header.rsv1 || header.rsv2 || header.rsv3 {
            return Err(FrameError::Protocol(
                "a reserved bit set without an extension",
            ));
        }
        match header.opcode {
            OpCode::Data(Data::Reserved(_)) | OpCode::Control(Control::Reserved(_)) => {
                Err(FrameError::Protocol("a reserved opcode"))
            }
            OpCode::Control(_) if !header.is_final => {
                Err(FrameError::Protocol("a fragmented control frame"))
            }
            OpCode::Data(Data::Continue) if self.message.is_none() => Err(FrameError::Protocol(
                "a continuation frame outside a message",
            )),
            OpCode::Data(Data::Text | Data::Binary) if self.message.is_some() => Err(
                FrameError::Protocol("a new message inside a fragmented message"),
            ),
            _ => Ok(()),
        }
    }

    /// Follows the message a data frame belongs to and checks that text is UTF-8, carrying a
    /// character split across fragments to the next one.
    fn follow(&mut self, opcode: OpCode, fin: bool, payload: &[u8]) -> Result<(), FrameError> {
        let message = match opcode {
            OpCode::Data(Data::Text) => Message::Text(Vec::new()),
            OpCode::Data(Data::Binary) => Message::Binary,
            OpCode::Data(Data::Continue) => self.message.take().unwrap_or(Message::Binary),
            _ => return Ok(()),
        };
        let message = match message {
            Message::Binary => Message::Binary,
            Message::Text(carry) => {
                let joined;
                let text = if carry.is_empty() {
                    payload
                } else {
                    joined = [carry.as_slice(), payload].concat();
                    &joined
                };
                match std::str::from_utf8(text) {
                    Ok(_) => Message::Text(Vec::new()),
                    // Cut inside a character that the next fragment may complete.
                    Err(e) if e.error_len().is_none() && !fin => {
                        Message::Text(text[e.valid_up_to()..].to_vec())
                    }
                    Err(_) => return Err(FrameError::InvalidUtf8),
                }
            }
        };
        if !fin {
            self.message = Some(message);
        }
        Ok(())
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
        self.check_header(&header)?;
        if matches!(header.opcode, OpCode::Control(_)) && length > 125 {
            return Err(FrameError::Protocol("a control frame over 125 bytes"));
        }
        let payload_len = usize::try_from(length)
            .ok()
            .filter(|&l| l <= self.max_frame)
            .ok_or(FrameError::TooLarge {
                size: length,
                limit: self.max_frame,
            })?;
        // At most 14 bytes (RFC 6455 §5.2).
        let head = usize::try_from(cursor.position()).unwrap_or(usize::MAX);
        let total = head.saturating_add(payload_len);
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        src.advance(head);
        let payload = src.split_to(payload_len).freeze();
        if src.is_empty() && payload_len <= KEEP_ABOVE {
            // Nothing of the next frame yet after a small one: hold no buffer until it comes
            // (the connection reads through a `ReadAhead`, so the next read is not a tiny one).
            *src = BytesMut::new();
        }
        let (opcode, fin) = (header.opcode, header.is_final);
        let frame = unmasked(Frame::from_payload(header, payload))?;
        self.follow(opcode, fin, frame.payload())?;
        Ok(Some(frame))
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, mut frame: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        frame.header_mut().mask = match self.end {
            End::Server => None,
            End::Client => Some(rand::random()),
        };
        if dst.is_empty() && frame.len() <= KEEP_ABOVE {
            // Everything before was written: let go of a buffer sized for earlier frames, so
            // a connection whose last frame was a small one holds only its bytes.
            *dst = BytesMut::with_capacity(frame.len());
        }
        frame.format(&mut dst.writer())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_let_go_of_when_empty() {
        let mut client = FrameCodec::new(End::Client, 1 << 20);
        let mut server = FrameCodec::new(End::Server, 1 << 20);
        let frame = |n: usize| Frame::message(vec![7u8; n], OpCode::Data(Data::Binary), true);
        let mut wire = BytesMut::new();
        client.encode(frame(64), &mut wire).expect("encode");
        client.encode(frame(3), &mut wire).expect("encode");
        let mut read = BytesMut::with_capacity(64 << 10);
        read.extend_from_slice(&wire);
        assert_eq!(
            server.decode(&mut read).expect("decode").map(|f| f.len()),
            Some(66)
        );
        assert!(read.capacity() > 0, "the next frame is still in the buffer");
        assert!(server.decode(&mut read).expect("decode").is_some());
        assert_eq!(
            read.capacity(),
            0,
            "nothing left: the read buffer is released"
        );
        // A written-out buffer sized for a large frame is replaced by one for the next frame.
        let mut write = BytesMut::with_capacity(256 << 10);
        server.encode(frame(10), &mut write).expect("encode");
        assert_eq!(write.capacity(), 12);
        // Frames queued behind unwritten ones share the buffer.
        server.encode(frame(10), &mut write).expect("encode");
        assert_eq!(write.len(), 24);
    }

    #[test]
    fn large_frames_keep_the_buffers_for_the_next_ones() {
        let mut client = FrameCodec::new(End::Client, 1 << 20);
        let mut server = FrameCodec::new(End::Server, 1 << 20);
        let large = Frame::message(vec![7u8; KEEP_ABOVE + 1], OpCode::Data(Data::Binary), true);
        let mut read = BytesMut::with_capacity(64 << 10);
        client.encode(large.clone(), &mut read).expect("encode");
        assert!(server.decode(&mut read).expect("decode").is_some());
        assert!(read.is_empty());
        assert!(
            read.capacity() > 0,
            "a bulk transfer's read buffer is kept for its next frame"
        );
        let mut write = BytesMut::with_capacity(64 << 10);
        server.encode(large, &mut write).expect("encode");
        assert_eq!(
            write.capacity(),
            64 << 10,
            "a bulk transfer's write buffer is reused"
        );
    }

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
        let err = server.decode(&mut wire).expect_err("too large");
        assert!(
            matches!(err, FrameError::TooLarge { size: 2048, .. }),
            "{err}"
        );
        assert_eq!(err.close_code(), Some(1009));
    }

    /// What a server codec makes of `frames` sent by a client codec (masked) or, with
    /// `masked` false, by a server codec (unmasked).
    fn decode_all(frames: Vec<Frame>, masked: bool) -> Result<Vec<Frame>, FrameError> {
        let mut sender = FrameCodec::new(if masked { End::Client } else { End::Server }, 1 << 10);
        let mut wire = BytesMut::new();
        for frame in frames {
            sender.encode(frame, &mut wire).expect("encode");
        }
        let mut server = FrameCodec::new(End::Server, 1 << 10);
        let mut got = Vec::new();
        while let Some(frame) = server.decode(&mut wire)? {
            got.push(frame);
        }
        Ok(got)
    }

    fn data(payload: &[u8], opcode: Data, fin: bool) -> Frame {
        Frame::message(payload.to_vec(), OpCode::Data(opcode), fin)
    }

    fn code_of(frames: Vec<Frame>, masked: bool) -> Option<u16> {
        decode_all(frames, masked)
            .expect_err("refused")
            .close_code()
    }

    #[test]
    fn text_must_be_utf8_even_across_fragments() {
        // "é" is 0xC3 0xA9: split between two fragments it is still valid.
        let split = vec![
            data(&[b'a', 0xC3], Data::Text, false),
            Frame::ping(vec![1]),
            data(&[0xA9, b'b'], Data::Continue, true),
        ];
        assert_eq!(decode_all(split, true).expect("valid").len(), 3);
        assert_eq!(
            code_of(vec![data(&[0xFF], Data::Text, true)], true),
            Some(1007)
        );
        // A character cut at the end of the message is invalid.
        assert_eq!(
            code_of(vec![data(&[0xC3], Data::Text, true)], true),
            Some(1007)
        );
        let cut = vec![
            data(&[0xC3], Data::Text, false),
            data(b"x", Data::Continue, true),
        ];
        assert_eq!(code_of(cut, true), Some(1007));
        // Binary data is never checked.
        assert!(decode_all(vec![data(&[0xFF], Data::Binary, true)], true).is_ok());
    }

    #[test]
    fn protocol_violations_earn_1002() {
        let unmasked = vec![data(b"x", Data::Binary, true)];
        assert_eq!(code_of(unmasked, false), Some(1002));
        let reserved_opcode = vec![data(b"x", Data::Reserved(3), true)];
        assert_eq!(code_of(reserved_opcode, true), Some(1002));
        let mut rsv = data(b"x", Data::Binary, true);
        rsv.header_mut().rsv1 = true;
        assert_eq!(code_of(vec![rsv], true), Some(1002));
        let mut fragmented_ping = Frame::ping(vec![1]);
        fragmented_ping.header_mut().is_final = false;
        assert_eq!(code_of(vec![fragmented_ping], true), Some(1002));
        let mut big_ping = Frame::ping(vec![0; 126]);
        big_ping.header_mut().is_final = true;
        assert_eq!(code_of(vec![big_ping], true), Some(1002));
        let orphan = vec![data(b"x", Data::Continue, true)];
        assert_eq!(code_of(orphan, true), Some(1002));
        let interleaved = vec![
            data(b"x", Data::Binary, false),
            data(b"y", Data::Binary, true),
        ];
        assert_eq!(code_of(interleaved, true), Some(1002));
        // A reset connection earns no close code: nothing can be sent on it.
        let reset = FrameError::Io(std::io::ErrorKind::ConnectionReset.into());
        assert_eq!(reset.close_code(), None);
    }

    fn data_close() -> OpCode {
        Frame::close(None).header().opcode
    }
}
