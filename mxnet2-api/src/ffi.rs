//! What every exported function shares: a panic never unwinds into the caller (it becomes an
//! error code), and the caller's pointers and counts are checked before use. A null pointer,
//! a negative count or a short buffer is a bad request: -106, the manual's "packet length
//! error", since nothing of the right length can be sent or received with it.

use std::ffi::{CStr, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::client::{ErrorCode, SlotRef};

/// The code for a null pointer, negative count or short buffer.
pub const BAD_BUFFER: ErrorCode = ErrorCode::PacketLength;

/// Runs `body`, turning a panic into `on_panic` (and a line on stderr: a library loaded into
/// someone else's program has no other channel).
pub fn guard<T>(name: &str, on_panic: T, body: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => value,
        Err(_) => {
            eprintln!("mxnet2_api: internal error in {name}; the call failed");
            on_panic
        }
    }
}

/// A `short` result: the value, or the error's code. Values beyond `short` (none of the
/// server's answers for these calls are) saturate rather than wrap.
pub fn short(result: Result<i32, ErrorCode>) -> i16 {
    let value = result.unwrap_or_else(ErrorCode::code);
    i16::try_from(value).unwrap_or(if value < 0 { i16::MIN } else { i16::MAX })
}

/// An `int`/`long` (32-bit) result: the value, or the error's code.
pub fn long(result: Result<i32, ErrorCode>) -> i32 {
    result.unwrap_or_else(ErrorCode::code)
}

/// A dongle number from the caller: negative ones name no dongle (-102).
///
/// # Errors
/// -102 for a negative number.
pub fn dongle_number(dng_nr: i16) -> Result<u16, ErrorCode> {
    u16::try_from(dng_nr).map_err(|_| ErrorCode::NoDongle)
}

/// An AppSlot number from the caller: a negative one has no licences (-31, the server's answer
/// for any AppSlot without seats).
///
/// # Errors
/// -31 for a negative number.
pub fn app_slot(slot: i16) -> Result<u16, ErrorCode> {
    u16::try_from(slot).map_err(|_| ErrorCode::NoLicense)
}

/// The AppSlot a login call names.
///
/// # Errors
/// As [`dongle_number`] and [`app_slot`].
pub fn slot_ref(user_code: i32, slot: i16, dng_nr: i16) -> Result<SlotRef, ErrorCode> {
    Ok(SlotRef {
        dng_nr: dongle_number(dng_nr)?,
        user_code,
        slot: app_slot(slot)?,
    })
}

/// The caller's NUL-terminated string, as UTF-8.
///
/// # Errors
/// -106 for a null pointer; -100 for text that is not UTF-8 (no server has such a name).
///
/// # Safety
/// `text` is null or points to a NUL-terminated string that stays valid during the call.
pub unsafe fn c_string(text: *const c_char) -> Result<String, ErrorCode> {
    if text.is_null() {
        return Err(BAD_BUFFER);
    }
    // SAFETY: not null, and the caller promises a NUL-terminated string valid for the call.
    let text = unsafe { CStr::from_ptr(text) };
    text.to_str()
        .map(str::to_owned)
        .map_err(|_| ErrorCode::Connect)
}

/// The caller's NUL-terminated UTF-16 string (Windows `WCHAR*`).
///
/// # Errors
/// -106 for a null pointer or a string longer than any host name; -100 for invalid UTF-16.
///
/// # Safety
/// `text` is null or points to a NUL-terminated UTF-16 string valid during the call.
pub unsafe fn wide_string(text: *const u16) -> Result<String, ErrorCode> {
    /// Longer than any host name or address; bounds the scan of an unterminated string.
    const MAX: usize = 1024;
    if text.is_null() {
        return Err(BAD_BUFFER);
    }
    let mut units = Vec::new();
    for i in 0..=MAX {
        // SAFETY: the caller promises a NUL-terminated string; we stop at its NUL, so every
        // unit read up to it is inside the string.
        let unit = unsafe { text.add(i).read_unaligned() };
        if unit == 0 {
            return String::from_utf16(&units).map_err(|_| ErrorCode::Connect);
        }
        units.push(unit);
    }
    Err(BAD_BUFFER)
}

/// Copies `values` into the caller's buffer of `capacity` 32-bit variables.
///
/// # Errors
/// -106 for a null buffer or one too short for `values`.
///
/// # Safety
/// `buffer` is null or points to at least `capacity` writable `i32`s.
pub unsafe fn fill(buffer: *mut i32, capacity: usize, values: &[i32]) -> Result<(), ErrorCode> {
    if buffer.is_null() || values.len() > capacity {
        return Err(BAD_BUFFER);
    }
    // SAFETY: not null, at least `capacity >= values.len()` writable i32s (caller's promise),
    // and `values` is our own memory, so the two cannot overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(values.as_ptr(), buffer, values.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_fit_the_declared_types() {
        assert_eq!(short(Ok(3)), 3);
        assert_eq!(short(Err(ErrorCode::NoLicense)), -31);
        assert_eq!(short(Ok(100_000)), i16::MAX);
        assert_eq!(long(Err(ErrorCode::Connect)), -100);
        assert_eq!(dongle_number(-1), Err(ErrorCode::NoDongle));
        assert_eq!(app_slot(-3), Err(ErrorCode::NoLicense));
        assert_eq!(app_slot(7), Ok(7));
    }

    #[test]
    fn a_panic_becomes_the_fallback() {
        assert_eq!(guard("test", -100, || panic!("boom")), -100);
        assert_eq!(guard("test", -100, || 5), 5);
    }

    #[test]
    fn strings_and_buffers_are_checked() {
        // SAFETY: null and valid NUL-terminated strings.
        unsafe {
            assert_eq!(c_string(std::ptr::null()), Err(BAD_BUFFER));
            assert_eq!(c_string(c"10.0.0.7".as_ptr()), Ok("10.0.0.7".to_owned()));
            let wide: Vec<u16> = "host".encode_utf16().chain([0]).collect();
            assert_eq!(wide_string(wide.as_ptr()), Ok("host".to_owned()));
            assert_eq!(wide_string(std::ptr::null()), Err(BAD_BUFFER));
        }
        let mut out = [0i32; 2];
        // SAFETY: `out` holds 2 writable i32s.
        unsafe {
            assert_eq!(fill(out.as_mut_ptr(), 2, &[1, 2, 3]), Err(BAD_BUFFER));
            assert_eq!(fill(out.as_mut_ptr(), 2, &[4, 5]), Ok(()));
            assert_eq!(fill(std::ptr::null_mut(), 2, &[1]), Err(BAD_BUFFER));
        }
        assert_eq!(out, [4, 5]);
    }
}
