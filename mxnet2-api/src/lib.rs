//! The MxNet2 remote API as a C ABI: a library that exports the functions of the vendor's
//! client library (`mxnet2_api.dll`, `libmxnet2api.so`) with the same names, argument types,
//! calling convention and return codes, so that an existing program can use dongle-relay's
//! license server by having this library dropped in beside it (see `docs/client-library.md`).
//!
//! It is a thin layer over license-core's Rust client, which owns the semantics (sessions,
//! the reference counting of sections 6.5 and 6.7a, periodic logins, error codes):
//!
//! - [`client`]: the one place the Rust client is imported from.
//! - [`library`]: the process-wide instance and its settings (`mxnetapi.ini`, section 7, and
//!   the run-time setters of section 7.3).
//! - [`module_path`]: where this library's code was loaded from (the folder of section 7.1).
//! - [`ffi`]: what every export shares: no panic crosses the ABI, pointers are checked.
//! - [`session`]: the session and licence functions of the manual (sections 6 and 7.3).
//! - [`dongle`]: the dongle queries the server answers.
//! - [`unsupported`]: the rest of the vendor's header, exported so programs that import them
//!   still load; they answer "not available".
//!
//! Every export is `extern "system"`: `__stdcall` on 32-bit Windows, as the vendor's `WINAPI`
//! declarations say, and the platform's C convention elsewhere.

pub mod client;
pub mod dongle;
pub mod ffi;
pub mod library;
pub mod module_path;
pub mod session;
pub mod unsupported;
