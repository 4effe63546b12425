//! A blocking wrapper of [`crate::RemoteApi`] for synchronous programs: each call runs on the
//! wrapper's own small runtime. Do not call it from inside an async runtime (use the async API
//! there).

use std::time::Duration;

use crate::ClientConfig;
use license_core::engine::SlotRef;
use license_core::error::ErrorCode;

/// The blocking remote API.
#[derive(Debug)]
pub struct RemoteApi {
    inner: crate::RemoteApi,
    runtime: tokio::runtime::Runtime,
}

impl RemoteApi {
    /// A client with these settings.
    ///
    /// # Errors
    /// The runtime cannot start (out of threads or file descriptors).
    pub fn new(config: ClientConfig) -> std::io::Result<Self> {
        // One worker is enough for one call at a time per thread; `block_on` from several
        // threads at once is fine on a multi-thread runtime.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("license-client")
            .enable_all()
            .build()?;
        Ok(Self {
            inner: crate::RemoteApi::new(config),
            runtime,
        })
    }

    /// The async API underneath.
    pub fn as_async(&self) -> &crate::RemoteApi {
        &self.inner
    }

    /// `MxNet_SetIP`.
    pub fn set_ip(&self, host: &str) {
        self.inner.set_ip(host);
    }

    /// `MxNet_SetPort`.
    pub fn set_port(&self, port: u16) {
        self.inner.set_port(port);
    }

    /// `MxNet_SetTimeOut`.
    pub fn set_timeout(&self, timeout: Duration) {
        self.inner.set_timeout(timeout);
    }

    /// See [`crate::RemoteApi::init`].
    ///
    /// # Errors
    /// As there.
    pub fn init(&self) -> Result<i32, ErrorCode> {
        self.runtime.block_on(self.inner.init())
    }

    /// See [`crate::RemoteApi::release`].
    ///
    /// # Errors
    /// As there.
    pub fn release(&self) -> Result<i32, ErrorCode> {
        self.runtime.block_on(self.inner.release())
    }

    /// See [`crate::RemoteApi::reset`].
    pub fn reset(&self) {
        self.runtime.block_on(self.inner.reset());
    }

    /// See [`crate::RemoteApi::login`].
    ///
    /// # Errors
    /// As there.
    pub fn login(&self, at: SlotRef) -> Result<i32, ErrorCode> {
        self.runtime.block_on(self.inner.login(at))
    }

    /// See [`crate::RemoteApi::refresh`].
    ///
    /// # Errors
    /// As there.
    pub fn refresh(&self, at: SlotRef) -> Result<i32, ErrorCode> {
        self.runtime.block_on(self.inner.refresh(at))
    }

    /// See [`crate::RemoteApi::logout`].
    ///
    /// # Errors
    /// As there.
    pub fn logout(&self, at: SlotRef) -> Result<i32, ErrorCode> {
        self.runtime.block_on(self.inner.logout(at))
    }

    /// See [`crate::RemoteApi::dongle_count`].
    ///
    /// # Errors
    /// As there.
    pub fn dongle_count(&self) -> Result<i32, ErrorCode> {
        self.runtime.block_on(self.inner.dongle_count())
    }

    /// See [`crate::RemoteApi::read_ser_nr`].
    ///
    /// # Errors
    /// As there.
    pub fn read_ser_nr(&self, user_code: i32, dng_nr: u16) -> Result<i32, ErrorCode> {
        self.runtime
            .block_on(self.inner.read_ser_nr(user_code, dng_nr))
    }

    /// See [`crate::RemoteApi::login_count`].
    ///
    /// # Errors
    /// As there.
    pub fn login_count(&self, at: SlotRef) -> Result<i32, ErrorCode> {
        self.runtime.block_on(self.inner.login_count(at))
    }

    /// See [`crate::RemoteApi::login_count_ex`].
    ///
    /// # Errors
    /// As there.
    pub fn login_count_ex(&self, at: SlotRef) -> Result<(i32, Vec<String>), ErrorCode> {
        self.runtime.block_on(self.inner.login_count_ex(at))
    }

    /// See [`crate::RemoteApi::read_data`].
    ///
    /// # Errors
    /// As there.
    pub fn read_data(
        &self,
        user_code: i32,
        dng_nr: u16,
        fpos: u16,
        count: u16,
    ) -> Result<Vec<i32>, ErrorCode> {
        self.runtime
            .block_on(self.inner.read_data(user_code, dng_nr, fpos, count))
    }
}
