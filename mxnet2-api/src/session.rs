//! The session and licence functions the manual declares (sections 6.1–6.7 and 7.3):
//! `rInit_MatrixAPI`, `rRelease_MatrixAPI`, `rReset_MatrixAPI`, `rLogIn_MatrixNet`,
//! `rLogOut_MatrixNet`, `rSetConfig_MatrixNet`, `MxNet_SetIP`, `MxNet_SetPort` and
//! `MxNet_SetTimeOut`. Signatures as in RiBiG's `mxnet2api.h` (Windows and Linux headers of
//! `ribig-inc/mxnet2-api-sample`) and the manual's section 7.3; the semantics are the Rust
//! client's.

// The exported names are the vendor's, not Rust's.
#![allow(non_snake_case)]

use std::ffi::c_char;

use crate::client::ErrorCode;
use crate::ffi::{self, guard, short};
use crate::library::library;

/// `rInit_MatrixAPI`: the first call of the process opens a session with the server, later
/// ones only count (section 6.5). Returns the count (≥ 1) or an error code (-100 cannot
/// connect, ...). On Windows the vendor's declaration takes an `HINSTANCE` (default `NULL`);
/// it is accepted and not used.
#[cfg(windows)]
// SAFETY: the vendor's export name; nothing else in a program that uses this library defines
// it (it replaces the vendor's library).
#[unsafe(no_mangle)]
pub extern "system" fn rInit_MatrixAPI(_instance: *mut std::ffi::c_void) -> i16 {
    init()
}

/// `rInit_MatrixAPI`: the first call of the process opens a session with the server, later
/// ones only count (section 6.5). Returns the count (≥ 1) or an error code (-100 cannot
/// connect, ...).
#[cfg(not(windows))]
// SAFETY: the vendor's export name; nothing else in a program that uses this library defines
// it (it replaces the vendor's library).
#[unsafe(no_mangle)]
pub extern "system" fn rInit_MatrixAPI() -> i16 {
    init()
}

fn init() -> i16 {
    guard("rInit_MatrixAPI", short(Err(ErrorCode::Connect)), || {
        short(library().and_then(|l| l.init()))
    })
}

/// `rRelease_MatrixAPI`: counts down; the last call ends the session on the server. Returns
/// the count left (0 once released), -116 without a session.
// SAFETY: the vendor's export name, defined only by this library in its process.
#[unsafe(no_mangle)]
pub extern "system" fn rRelease_MatrixAPI() -> i16 {
    guard("rRelease_MatrixAPI", short(Err(ErrorCode::Connect)), || {
        short(library().and_then(|l| l.api().release()))
    })
}

/// `rReset_MatrixAPI`: zeroes the counters without telling the server, so the next
/// `rInit_MatrixAPI` opens a new session (section 6.5).
// SAFETY: the vendor's export name, defined only by this library in its process.
#[unsafe(no_mangle)]
pub extern "system" fn rReset_MatrixAPI() {
    guard("rReset_MatrixAPI", (), || {
        if let Ok(l) = library() {
            l.api().reset();
        }
    });
}

/// `rLogIn_MatrixNet`: takes a seat in the AppSlot, or refreshes it (section 6.6: call it
/// periodically, within LoginTimeOut). Every call is sent; the process's login count goes up
/// by one (section 6.7a). Returns the seats left, or -31 no seat, -105 session lost, -116 no
/// session, -102 no such dongle, -100 ...
// SAFETY: the vendor's export name, defined only by this library in its process.
#[unsafe(no_mangle)]
pub extern "system" fn rLogIn_MatrixNet(user_code: i32, app_slot: i16, dng_nr: i16) -> i16 {
    guard("rLogIn_MatrixNet", short(Err(ErrorCode::Connect)), || {
        short(library().and_then(|l| l.api().login(ffi::slot_ref(user_code, app_slot, dng_nr)?)))
    })
}

/// `rLogOut_MatrixNet`: counts the process's logins down; the last one frees the seat on the
/// server. Returns the seats left, or -11 not logged in, ...
// SAFETY: the vendor's export name, defined only by this library in its process.
#[unsafe(no_mangle)]
pub extern "system" fn rLogOut_MatrixNet(user_code: i32, app_slot: i16, dng_nr: i16) -> i16 {
    guard("rLogOut_MatrixNet", short(Err(ErrorCode::Connect)), || {
        short(library().and_then(|l| l.api().logout(ffi::slot_ref(user_code, app_slot, dng_nr)?)))
    })
}

/// `rSetConfig_MatrixNet` (section 7.3): `nAccess = 1` selects the network server and sets its
/// name or address to `nFile`; returns 0. `nAccess = 0` (the local dongle) is not available
/// here: -302. A null `nFile`: -106.
///
/// # Safety
/// `file` is null or a NUL-terminated string valid during the call.
// SAFETY: the vendor's export name, defined only by this library in its process.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn rSetConfig_MatrixNet(access: i16, file: *const c_char) -> i16 {
    guard(
        "rSetConfig_MatrixNet",
        short(Err(ErrorCode::Connect)),
        || {
            short((|| {
                if access != 1 {
                    return Err(ErrorCode::Unsupported);
                }
                // SAFETY: the caller's promise above.
                let host = unsafe { ffi::c_string(file) }?;
                library()?.set_host(&host);
                Ok(0)
            })())
        },
    )
}

/// `MxNet_SetIP` (section 7.3): the server's name or address for the next `rInit_MatrixAPI`,
/// overriding `mxnetapi.ini`. Returns `ip` when taken, null when refused (null or not text).
/// Windows takes `WCHAR*` (UTF-16), as the vendor's Windows header declares.
///
/// # Safety
/// `ip` is null or a NUL-terminated UTF-16 string valid during the call.
#[cfg(windows)]
// SAFETY: the vendor's export name, defined only by this library in its process.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn MxNet_SetIP(ip: *mut u16) -> *mut u16 {
    guard("MxNet_SetIP", std::ptr::null_mut(), || {
        // SAFETY: the caller's promise above.
        match unsafe { ffi::wide_string(ip) } {
            Ok(host) if library().map(|l| l.set_host(&host)).is_ok() => ip,
            _ => std::ptr::null_mut(),
        }
    })
}

/// `MxNet_SetIP` (section 7.3): the server's name or address for the next `rInit_MatrixAPI`,
/// overriding `mxnetapi.ini`. Returns `ip` when taken, null when refused (null or not UTF-8).
///
/// # Safety
/// `ip` is null or a NUL-terminated string valid during the call.
#[cfg(not(windows))]
// SAFETY: the vendor's export name, defined only by this library in its process.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn MxNet_SetIP(ip: *mut c_char) -> *mut c_char {
    guard("MxNet_SetIP", std::ptr::null_mut(), || {
        // SAFETY: the caller's promise above.
        match unsafe { ffi::c_string(ip) } {
            Ok(host) if library().map(|l| l.set_host(&host)).is_ok() => ip,
            _ => std::ptr::null_mut(),
        }
    })
}

/// `MxNet_SetPort` (section 7.3): the server's port for the next `rInit_MatrixAPI`. Returns the
/// port in effect afterwards (the argument when taken; out-of-range values are refused).
// SAFETY: the vendor's export name, defined only by this library in its process.
#[unsafe(no_mangle)]
pub extern "system" fn MxNet_SetPort(port: i32) -> i32 {
    guard("MxNet_SetPort", ErrorCode::Connect.code(), || {
        library().map_or_else(ErrorCode::code, |l| l.set_port(port))
    })
}

/// `MxNet_SetTimeOut` (section 7.3): the connect timeout in milliseconds. Returns the timeout in
/// effect afterwards (the argument when taken; values ≤ 0 are refused).
// SAFETY: the vendor's export name, defined only by this library in its process.
#[unsafe(no_mangle)]
pub extern "system" fn MxNet_SetTimeOut(millis: i32) -> i32 {
    guard("MxNet_SetTimeOut", ErrorCode::Connect.code(), || {
        library().map_or_else(ErrorCode::code, |l| l.set_timeout(millis))
    })
}
