//! Frames: a fixed 36-byte header (magic, version, flags, command, payload length, session id,
//! packet number, time-stamp), the payload (at most [`MAX_PAYLOAD`] bytes) and a 32-byte
//! authentication tag. Decoding never panics; it tells apart "need more bytes", errors after
//! which the stream can go on (the frame's extent is known), and errors that lose the framing.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::ErrorCode;

/// The first four bytes of every frame.
pub const MAGIC: [u8; 4] = *b"MXR2";
/// The protocol version this build speaks.
pub const VERSION: u8 = 1;
/// Header length in bytes.
pub const HEADER_LEN: usize = 36;
/// Tag length in bytes.
pub const TAG_LEN: usize = 32;
/// The largest payload accepted.
pub const MAX_PAYLOAD: usize = 64 * 1024;
/// Flag bit: the frame is an answer.
pub const FLAG_RESPONSE: u8 = 0x01;

/// A frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// An answer (true) or a request.
    pub response: bool,
    /// The command code.
    pub command: u16,
    /// The session id (0 for init and for answers without a session).
    pub session: u64,
    /// The packet number (an answer repeats its request's).
    pub packet: u64,
    /// Unix milliseconds when the frame was sent.
    pub timestamp: u64,
}

impl Header {
    /// The header's bytes for a payload of `len` bytes.
    pub fn to_bytes(&self, len: usize) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let mut b = &mut out[..];
        b.put_slice(&MAGIC);
        b.put_u8(VERSION);
        b.put_u8(if self.response { FLAG_RESPONSE } else { 0 });
        b.put_u16(self.command);
        b.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
        b.put_u64(self.session);
        b.put_u64(self.packet);
        b.put_u64(self.timestamp);
        out
    }
}

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Header.
    pub header: Header,
    /// Payload.
    pub payload: Bytes,
    /// HMAC-SHA256 over header and payload, or zeros where no key exists yet.
    pub tag: [u8; TAG_LEN],
}

/// Why bytes are not a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{code}")]
pub struct FrameError {
    /// The error code to answer.
    pub code: ErrorCode,
    /// True when the frame's extent is unknown, so the connection must close after answering.
    pub fatal: bool,
}

impl FrameError {
    fn fatal(code: ErrorCode) -> Self {
        Self { code, fatal: true }
    }
}

impl Frame {
    /// Total encoded length.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.payload.len() + TAG_LEN
    }

    /// The header bytes as sent (the first part of the authenticated data).
    pub fn header_bytes(&self) -> [u8; HEADER_LEN] {
        self.header.to_bytes(self.payload.len())
    }

    /// Appends the encoding to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.reserve(self.encoded_len());
        dst.put_slice(&self.header_bytes());
        dst.put_slice(&self.payload);
        dst.put_slice(&self.tag);
    }

    /// The encoding.
    pub fn to_bytes(&self) -> Bytes {
        let mut b = BytesMut::new();
        self.encode(&mut b);
        b.freeze()
    }

    /// Decodes one frame from the start of `src`: `Ok(None)` when more bytes are needed,
    /// `Ok(Some((frame, consumed)))`, or an error.
    ///
    /// # Errors
    /// -107 bad magic or flags, -122 unknown version, -106 payload too long (all fatal).
    pub fn decode(src: &[u8]) -> Result<Option<(Frame, usize)>, FrameError> {
        let magic_seen = src.len().min(MAGIC.len());
        if src[..magic_seen] != MAGIC[..magic_seen] {
            return Err(FrameError::fatal(ErrorCode::PacketHeader));
        }
        if src.len() > 4 && src[4] != VERSION {
            return Err(FrameError::fatal(ErrorCode::PacketVersion));
        }
        if src.len() > 5 && src[5] & !FLAG_RESPONSE != 0 {
            return Err(FrameError::fatal(ErrorCode::PacketHeader));
        }
        if src.len() < HEADER_LEN {
            return Ok(None);
        }
        let mut h = &src[6..HEADER_LEN];
        let command = h.get_u16();
        let len = usize::try_from(h.get_u32()).unwrap_or(usize::MAX);
        if len > MAX_PAYLOAD {
            return Err(FrameError::fatal(ErrorCode::PacketLength));
        }
        let header = Header {
            response: src[5] & FLAG_RESPONSE != 0,
            command,
            session: h.get_u64(),
            packet: h.get_u64(),
            timestamp: h.get_u64(),
        };
        let total = HEADER_LEN + len + TAG_LEN;
        if src.len() < total {
            return Ok(None);
        }
        let payload = Bytes::copy_from_slice(&src[HEADER_LEN..HEADER_LEN + len]);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&src[HEADER_LEN + len..total]);
        Ok(Some((
            Frame {
                header,
                payload,
                tag,
            },
            total,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(payload: Vec<u8>) -> Frame {
        Frame {
            header: Header {
                response: false,
                command: 3,
                session: 0x0102_0304_0506_0708,
                packet: 9,
                timestamp: 1_700_000_000_000,
            },
            payload: Bytes::from(payload),
            tag: [0xAB; TAG_LEN],
        }
    }

    #[test]
    fn golden_bytes() {
        let bytes = frame(vec![0xFF, 0xFF, 0xFF, 0xE1, 0, 1, 0, 1]).to_bytes();
        let mut expected = Vec::new();
        expected.extend_from_slice(b"MXR2");
        expected.extend_from_slice(&[1, 0, 0, 3, 0, 0, 0, 8]);
        expected.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 9]);
        expected.extend_from_slice(&1_700_000_000_000u64.to_be_bytes());
        expected.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xE1, 0, 1, 0, 1]);
        expected.extend_from_slice(&[0xAB; 32]);
        assert_eq!(&bytes[..], &expected[..]);
    }

    #[test]
    fn errors() {
        assert_eq!(
            Frame::decode(b"GET / HTTP/1.1\r\n")
                .expect_err("an error")
                .code,
            ErrorCode::PacketHeader
        );
        assert_eq!(Frame::decode(b"MX").expect("ok"), None);
        assert_eq!(
            Frame::decode(b"MXR2\x02").expect_err("an error").code,
            ErrorCode::PacketVersion
        );
        assert_eq!(
            Frame::decode(b"MXR2\x01\x80").expect_err("an error").code,
            ErrorCode::PacketHeader
        );
        let mut big = frame(Vec::new()).to_bytes().to_vec();
        big[8..12].copy_from_slice(&(MAX_PAYLOAD as u32 + 1).to_be_bytes());
        assert_eq!(
            Frame::decode(&big).expect_err("an error").code,
            ErrorCode::PacketLength
        );
    }

    proptest! {
        #[test]
        fn round_trip(payload in proptest::collection::vec(any::<u8>(), 0..512),
                      response: bool, command: u16, session: u64, packet: u64, timestamp: u64,
                      tag: [u8; 32], extra in proptest::collection::vec(any::<u8>(), 0..8)) {
            let f = Frame { header: Header { response, command, session, packet, timestamp },
                payload: Bytes::from(payload), tag };
            let mut bytes = f.to_bytes().to_vec();
            let len = bytes.len();
            for cut in [0, 1, HEADER_LEN - 1, HEADER_LEN, len - 1] {
                prop_assert_eq!(Frame::decode(&bytes[..cut]).expect("ok"), None);
            }
            bytes.extend_from_slice(&extra);
            let (back, used) = Frame::decode(&bytes).expect("ok").expect("ok");
            prop_assert_eq!(used, len);
            prop_assert_eq!(back, f);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = Frame::decode(&bytes);
        }

        #[test]
        fn arbitrary_after_magic_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut b = b"MXR2\x01".to_vec();
            b.extend_from_slice(&bytes);
            if let Ok(Some((f, used))) = Frame::decode(&b) {
                prop_assert!(used <= b.len());
                prop_assert_eq!(f.encoded_len(), used);
            }
        }
    }
}
