//! License protocol frames as the server reads them from a socket, then the request (or, for
//! a response frame, the reply) each decoded frame carries: no input may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use license_core::protocol::{Command, Frame, Reply, Request};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    // Bounded: every decoded frame consumes at least its header.
    while let Ok(Some((frame, used))) = Frame::decode(rest) {
        if frame.header.response {
            if let Some(command) = Command::from_code(frame.header.command) {
                let _ = Reply::decode(command, &frame.payload);
            }
        } else {
            let _ = Request::decode(frame.header.command, &frame.payload);
        }
        if used == 0 || used > rest.len() {
            break;
        }
        rest = &rest[used..];
    }
});
