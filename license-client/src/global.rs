//! The process-wide API, shaped like the C functions of the manual: one instance per process,
//! configured from `mxnetapi.ini` next to the executable (when present), every call returning
//! an `i32` (a value, or a negative error code). Blocking; not for use inside an async runtime.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use crate::ClientConfig;
use crate::blocking::RemoteApi;
use license_core::engine::SlotRef;
use license_core::error::ErrorCode;

static API: OnceLock<Option<RemoteApi>> = OnceLock::new();

fn api() -> Option<&'static RemoteApi> {
    API.get_or_init(|| {
        let config = config_next_to_executable();
        match RemoteApi::new(config) {
            Ok(api) => Some(api),
            Err(e) => {
                tracing::error!("cannot start the license client runtime: {e}");
                None
            }
        }
    })
    .as_ref()
}

/// `mxnetapi.ini` in the executable's folder, or the defaults.
fn config_next_to_executable() -> ClientConfig {
    let folders: Vec<_> = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .into_iter()
        .collect();
    match ClientConfig::find(&folders) {
        Ok(found) => found.map(|(_, config)| config).unwrap_or_default(),
        Err(e) => {
            // The error names the file.
            tracing::error!("{e}; using the defaults");
            ClientConfig::default()
        }
    }
}

fn code(r: Result<i32, ErrorCode>) -> i32 {
    r.unwrap_or_else(ErrorCode::code)
}

fn with(f: impl FnOnce(&RemoteApi) -> Result<i32, ErrorCode>) -> i32 {
    code(api().ok_or(ErrorCode::Connect).and_then(f))
}

/// `rInit_MatrixAPI`.
pub fn r_init_matrix_api() -> i32 {
    with(RemoteApi::init)
}

/// `rRelease_MatrixAPI`.
pub fn r_release_matrix_api() -> i32 {
    with(RemoteApi::release)
}

/// `rReset_MatrixAPI`.
pub fn r_reset_matrix_api() {
    if let Some(api) = api() {
        api.reset();
    }
}

/// `rLogIn_MatrixNet`.
pub fn r_login_matrix_net(user_code: i32, app_slot: u16, dng_nr: u16) -> i32 {
    with(|a| {
        a.login(SlotRef {
            dng_nr,
            user_code,
            slot: app_slot,
        })
    })
}

/// `rLogOut_MatrixNet`.
pub fn r_logout_matrix_net(user_code: i32, app_slot: u16, dng_nr: u16) -> i32 {
    with(|a| {
        a.logout(SlotRef {
            dng_nr,
            user_code,
            slot: app_slot,
        })
    })
}

/// `rDongle_Count` (the port argument of the C API is not needed).
pub fn r_dongle_count() -> i32 {
    with(RemoteApi::dongle_count)
}

/// `rDongle_ReadSerNr`.
pub fn r_dongle_read_ser_nr(user_code: i32, dng_nr: u16) -> i32 {
    with(|a| a.read_ser_nr(user_code, dng_nr))
}

/// `rDongle_GetLoginCount`.
pub fn r_dongle_get_login_count(user_code: i32, app_slot: u16, dng_nr: u16) -> i32 {
    with(|a| {
        a.login_count(SlotRef {
            dng_nr,
            user_code,
            slot: app_slot,
        })
    })
}

/// `MxNet_SetIP`.
pub fn mxnet_set_ip(ip: &str) {
    if let Some(api) = api() {
        api.set_ip(ip);
    }
}

/// `MxNet_SetPort`.
pub fn mxnet_set_port(port: u16) {
    if let Some(api) = api() {
        api.set_port(port);
    }
}

/// `MxNet_SetTimeOut` (milliseconds).
pub fn mxnet_set_timeout(millis: u32) {
    if let Some(api) = api() {
        api.set_timeout(Duration::from_millis(u64::from(millis)));
    }
}
