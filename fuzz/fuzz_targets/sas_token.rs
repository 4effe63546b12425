//! SAS tokens as the relay reads them from a request (header or query) and verifies them, and
//! token audiences: no input may panic.
#![no_main]

use hc_protocol::sas::Audience;
use hc_protocol::{SasToken, Secret};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(token) = SasToken::parse(text) {
        let _ = token.verify(&Secret::new("key"), 0);
        let audience = token.audience();
        let _ = audience.covers_path("license");
        let _ = audience.names_host_of("relay.example:9443");
    }
    let _ = Audience::parse(text);
});
