//! The rest of the vendor's remote header (RiBiG's `C++/mxnet2api.h` in
//! `ribig-inc/mxnet2-api-sample`; the local twins are in TDi's `MXAPI.H`): functions the
//! license server does not answer — writing the dongle, its key and driver flags, in-dongle
//! encryption, model, version and memory size, detection time, LPT and driver versions. They
//! are exported so that a program importing them still loads (a missing import stops a Windows
//! program before `main`), and each answers -302, "not available" (docs/error-codes.md).
//! `rGetVersionAPI` reports this library's version and `rSetW95Access` does nothing.

// The exported names are the vendor's, not Rust's.
#![allow(non_snake_case)]

use crate::client::ErrorCode;

const NOT_AVAILABLE_SHORT: i16 = -302;
const NOT_AVAILABLE_LONG: i32 = -302;

// The constants are that error code's number; checked at compile time.
const _: () = assert!(ErrorCode::Unsupported.code() == NOT_AVAILABLE_LONG);

/// `rGetVersionAPI`: this library's version as `major << 16 | minor`.
// SAFETY: the vendor's export name, defined only by this library in its process.
#[unsafe(no_mangle)]
pub extern "system" fn rGetVersionAPI() -> i32 {
    let part = |s: &str| s.parse::<i32>().unwrap_or(0) & 0xFFFF;
    part(env!("CARGO_PKG_VERSION_MAJOR")) << 16 | part(env!("CARGO_PKG_VERSION_MINOR"))
}

/// `rSetW95Access`: a Windows 95 setting; nothing to do.
// SAFETY: the vendor's export name, defined only by this library in its process.
#[unsafe(no_mangle)]
pub extern "system" fn rSetW95Access(_flag: i16) {}

/// Defines exports that take the vendor's arguments and answer -302 without reading them.
macro_rules! not_available {
    ($($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty = $value:expr;)*) => {
        $(
            $(#[$doc])*
            // SAFETY: the vendor's export name, defined only by this library in its process;
            // the arguments (pointers included) are never read.
            #[unsafe(no_mangle)]
            pub extern "system" fn $name($(_: $ty),*) -> $ret {
                $value
            }
        )*
    };
}

not_available! {
    /// `rGetVersionDRV`: no dongle driver on the client; -302.
    fn rGetVersionDRV() -> i32 = NOT_AVAILABLE_LONG;
    /// `rGetVersionDRV_USB`: no dongle driver on the client; -302.
    fn rGetVersionDRV_USB() -> i32 = NOT_AVAILABLE_LONG;
    /// `rGetPortAdr`: no LPT port; -302.
    fn rGetPortAdr(port: i16) -> i16 = NOT_AVAILABLE_SHORT;
    /// `rPausePrinterActivity`: no LPT port; -302.
    fn rPausePrinterActivity() -> i16 = NOT_AVAILABLE_SHORT;
    /// `rResumePrinterActivity`: no LPT port; -302.
    fn rResumePrinterActivity() -> i16 = NOT_AVAILABLE_SHORT;
    /// `rGetConfig_MatrixNet`: -302.
    fn rGetConfig_MatrixNet(category: i16) -> i32 = NOT_AVAILABLE_LONG;
    /// `rDongle_Version`: not answered by the server; -302.
    fn rDongle_Version(dng_nr: i16, port: i16) -> i32 = NOT_AVAILABLE_LONG;
    /// `rDongle_Model`: not answered by the server; -302.
    fn rDongle_Model(dng_nr: i16, port: i16) -> i32 = NOT_AVAILABLE_LONG;
    /// `rDongle_MemSize`: not answered by the server; -302.
    fn rDongle_MemSize(dng_nr: i16, port: i16) -> i16 = NOT_AVAILABLE_SHORT;
    /// `rDongle_WriteData`: the remote API is read-only here; -302.
    fn rDongle_WriteData(user_code: i32, data: *mut i32, count: i16, dng_nr: i16, port: i16)
        -> i16 = NOT_AVAILABLE_SHORT;
    /// `rDongle_WriteDataEx`: the remote API is read-only here; -302.
    fn rDongle_WriteDataEx(user_code: i32, data: *mut i32, fpos: i16, count: i16, dng_nr: i16,
        port: i16) -> i16 = NOT_AVAILABLE_SHORT;
    /// `rDongle_WriteKey`: -302.
    fn rDongle_WriteKey(user_code: i32, key: *mut i32, dng_nr: i16, port: i16)
        -> i16 = NOT_AVAILABLE_SHORT;
    /// `rDongle_GetKeyFlag`: -302.
    fn rDongle_GetKeyFlag(user_code: i32, dng_nr: i16, port: i16) -> i16 = NOT_AVAILABLE_SHORT;
    /// `rDongle_EncryptData`: -302.
    fn rDongle_EncryptData(user_code: i32, block: *mut i32, dng_nr: i16, port: i16)
        -> i16 = NOT_AVAILABLE_SHORT;
    /// `rDongle_DecryptData`: -302.
    fn rDongle_DecryptData(user_code: i32, block: *mut i32, dng_nr: i16, port: i16)
        -> i16 = NOT_AVAILABLE_SHORT;
    /// `rDongle_SetDriverFlag`: -302.
    fn rDongle_SetDriverFlag(user_code: i32, flag: i16, dng_nr: i16, port: i16)
        -> i16 = NOT_AVAILABLE_SHORT;
    /// `rDongle_GetDriverFlag`: -302.
    fn rDongle_GetDriverFlag(user_code: i32, dng_nr: i16, port: i16) -> i16 = NOT_AVAILABLE_SHORT;
    /// `rDongle_GetDetectTime`: the server does not report when it detected the dongle; -302.
    fn rDongle_GetDetectTime(user_code: i32, time: *mut i32, dng_nr: i16, port: i16)
        -> i32 = NOT_AVAILABLE_LONG;
}
