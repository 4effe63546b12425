//! PROXY protocol v2 headers as the license server reads them from the relay-listener (client
//! address and site TLV): no input may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = license_server::server::proxy_header::parse(data);
});
