//! The license server's `mxnet2.ini`: no input may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = license_server::ServerConfig::from_ini_str(text);
    }
});
