//! The dongle queries the license server answers: `rDongle_Count`, `rDongle_Find`,
//! `rDongle_ReadSerNr`, `rDongle_ReadData`, `rDongle_ReadDataEx`, `rDongle_GetLoginCount`,
//! `rDongle_GetLoginCountEx`, and `rDongle_Exit`. Signatures from the TDi `MXAPI.H` (the local
//! API these mirror) and RiBiG's `mxnet2api.h` (`ribig-inc/mxnet2-api-sample`, `C++/` for
//! Windows, `C-Linux/` for Linux, which differ in the login counts' return type). The `port`
//! argument (85 = USB in every sample) names where the server's dongle sits; the server has one
//! set of dongles, so it is accepted and not used.

// The exported names are the vendor's, not Rust's.
#![allow(non_snake_case)]

use std::cell::RefCell;
use std::ffi::{CString, c_char};

use crate::client::ErrorCode;
use crate::ffi::{self, BAD_BUFFER, guard, long, short};
use crate::library::library;

/// The port number `rDongle_Find` reports: USB, as in every public sample.
pub const USB_PORT: i16 = 85;

/// The type of `rDongle_GetLoginCount(Ex)`'s result: `_mxINT32` in the Windows header,
/// `_mxINT16` in the Linux one.
#[cfg(windows)]
pub type LoginCount = i32;
/// The type of `rDongle_GetLoginCount(Ex)`'s result: `_mxINT32` in the Windows header,
/// `_mxINT16` in the Linux one.
#[cfg(not(windows))]
pub type LoginCount = i16;

#[cfg(windows)]
fn login_count(result: Result<i32, ErrorCode>) -> LoginCount {
    long(result)
}

#[cfg(not(windows))]
fn login_count(result: Result<i32, ErrorCode>) -> LoginCount {
    short(result)
}

thread_local! {
    /// The client names `rDongle_GetLoginCountEx` last returned on this thread: the caller gets
    /// a pointer into it, valid until its thread's next call of that function.
    static NAMES: RefCell<CString> = RefCell::new(CString::default());
}

/// `rDongle_Count`: the number of dongles at the server, or an error code.
// SAFETY: the vendor's export name, defined only by this library in its process.
#[unsafe(no_mangle)]
pub extern "system" fn rDongle_Count(_port: i16) -> i16 {
    guard("rDongle_Count", short(Err(ErrorCode::Connect)), || {
        short(library().and_then(|l| l.api().dongle_count()))
    })
}

/// `rDongle_Find`: the port the dongles are at — 85 (USB) when the server has any, 0 when it has
/// none — or an error code.
// SAFETY: the vendor's export name, defined only by this library in its process.
#[unsafe(no_mangle)]
pub extern "system" fn rDongle_Find() -> i16 {
    guard("rDongle_Find", short(Err(ErrorCode::Connect)), || {
        short(
            library()
                .and_then(|l| l.api().dongle_count())
                .map(|n| if n > 0 { i32::from(USB_PORT) } else { 0 }),
        )
    })
}

/// `rDongle_Exit`: nothing to clean up on the client; 0.
// SAFETY: the vendor's export name, defined only by this library in its process.
#[unsafe(no_mangle)]
pub extern "system" fn rDongle_Exit() -> i16 {
    0
}

/// `rDongle_ReadSerNr`: the dongle's serial number (> 0), or an error code.
// SAFETY: the vendor's export name, defined only by this library in its process.
#[unsafe(no_mangle)]
pub extern "system" fn rDongle_ReadSerNr(user_code: i32, dng_nr: i16, _port: i16) -> i32 {
    guard("rDongle_ReadSerNr", ErrorCode::Connect.code(), || {
        long((|| {
            let dng_nr = ffi::dongle_number(dng_nr)?;
            library()?.api().read_ser_nr(user_code, dng_nr)
        })())
    })
}

/// `rDongle_ReadData`: `count` data variables from the first into `data`; see
/// [`rDongle_ReadDataEx`].
///
/// # Safety
/// `data` is null or points to at least `count` writable 32-bit integers.
// SAFETY: the vendor's export name, defined only by this library in its process.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn rDongle_ReadData(
    user_code: i32,
    data: *mut i32,
    count: i16,
    dng_nr: i16,
    port: i16,
) -> i16 {
    // SAFETY: the same promise, passed on.
    unsafe { rDongle_ReadDataEx(user_code, data, 0, count, dng_nr, port) }
}

/// `rDongle_ReadDataEx`: `count` data variables from variable `fpos` (the server counts from 0)
/// into `data`. Returns how many were read (fewer when the dongle's memory ends first), or -106
/// for a null `data` or a negative `fpos`/`count`, -102 no such dongle, ...
///
/// # Safety
/// `data` is null or points to at least `count` writable 32-bit integers.
// SAFETY: the vendor's export name, defined only by this library in its process.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn rDongle_ReadDataEx(
    user_code: i32,
    data: *mut i32,
    fpos: i16,
    count: i16,
    dng_nr: i16,
    _port: i16,
) -> i16 {
    guard("rDongle_ReadDataEx", short(Err(ErrorCode::Connect)), || {
        short((|| {
            let (Ok(fpos), Ok(count)) = (u16::try_from(fpos), u16::try_from(count)) else {
                return Err(BAD_BUFFER);
            };
            if data.is_null() {
                return Err(BAD_BUFFER);
            }
            let dng_nr = ffi::dongle_number(dng_nr)?;
            let values = library()?.api().read_data(user_code, dng_nr, fpos, count)?;
            // SAFETY: `data` holds `count` writable i32s (the caller's promise); `fill`
            // refuses more values than that.
            unsafe { ffi::fill(data, usize::from(count), &values) }?;
            Ok(i32::try_from(values.len()).unwrap_or(i32::MAX))
        })())
    })
}

/// `rDongle_GetLoginCount`: the number of seats taken in the AppSlot, or an error code.
// SAFETY: the vendor's export name, defined only by this library in its process.
#[unsafe(no_mangle)]
pub extern "system" fn rDongle_GetLoginCount(
    user_code: i32,
    app_slot: i16,
    dng_nr: i16,
    _port: i16,
) -> LoginCount {
    guard(
        "rDongle_GetLoginCount",
        login_count(Err(ErrorCode::Connect)),
        || {
            login_count((|| {
                let at = ffi::slot_ref(user_code, app_slot, dng_nr)?;
                library()?.api().login_count(at)
            })())
        },
    )
}

/// `rDongle_GetLoginCountEx`: as [`rDongle_GetLoginCount`], and `*names` is set to the
/// seat holders' client names separated by tabs (empty when none; null after an error). The
/// text belongs to the library and stays valid until the same thread calls this function again.
/// A null `names`: -106.
///
/// # Safety
/// `names` is null or points to a writable `char*`.
// SAFETY: the vendor's export name, defined only by this library in its process.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn rDongle_GetLoginCountEx(
    user_code: i32,
    app_slot: i16,
    dng_nr: i16,
    _port: i16,
    names: *mut *mut c_char,
) -> LoginCount {
    guard(
        "rDongle_GetLoginCountEx",
        login_count(Err(ErrorCode::Connect)),
        || {
            if names.is_null() {
                return login_count(Err(BAD_BUFFER));
            }
            let result = (|| {
                let at = ffi::slot_ref(user_code, app_slot, dng_nr)?;
                library()?.api().login_count_ex(at)
            })();
            let (value, text) = match result {
                Ok((count, list)) => (Ok(count), Some(list.join("\t"))),
                Err(code) => (Err(code), None),
            };
            let pointer = text.map_or(std::ptr::null_mut(), |text| {
                // Names come from the server; a NUL inside one would cut the list short, so it
                // is dropped rather than trusted.
                let text = CString::new(text.replace('\0', "")).unwrap_or_default();
                NAMES.with(|cell| {
                    *cell.borrow_mut() = text;
                    cell.borrow().as_ptr().cast_mut()
                })
            });
            // SAFETY: `names` is not null and points to a writable `char*` (the caller's promise).
            unsafe { names.write(pointer) };
            login_count(value)
        },
    )
}
