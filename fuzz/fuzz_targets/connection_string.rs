//! Azure-style connection strings (command line, environment, configuration files): no input
//! may panic, and no parse error may repeat a key it was given.
#![no_main]

use hc_protocol::ConnectionString;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(parsed) = text.parse::<ConnectionString>() {
        let _ = parsed.to_secret_string();
    }
});
