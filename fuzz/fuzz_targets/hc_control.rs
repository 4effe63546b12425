//! Hybrid Connections control messages (text frames on the listener's control channel, both
//! directions), and the log redaction applied to the ones that fail: no panic, and what is
//! parsed serialises back to something that parses.
#![no_main]

use hc_protocol::ControlMessage;
use hc_protocol::control::MAX_UNRECOGNIZED_JSON;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let redacted = hc_protocol::redact_for_log(text, MAX_UNRECOGNIZED_JSON);
    assert!(redacted.len() <= MAX_UNRECOGNIZED_JSON);
    if let Ok(message) = ControlMessage::parse(text) {
        let json = message.to_json();
        if !matches!(message, ControlMessage::Unrecognized { .. }) {
            assert!(ControlMessage::parse(&json).is_ok(), "{json}");
        }
    }
});
