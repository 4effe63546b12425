//! The process-wide library: one client per process (section 6.5: "a session is created for a
//! process"), created at the first call of any function, configured as the vendor's library
//! is — `mxnetapi.ini` beside the library (section 7.1) or beside the program (section 7.2),
//! `[Options]` and `[SOCKSSERVER]` (section 9) — and then adjusted by the run-time setters
//! (section 7.3), which override the file for the next `rInit_MatrixAPI`.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use crate::client::{ClientConfig, ErrorCode, INI_FILE, RemoteApi};
use crate::module_path::this_module_folder;

/// The library's state: the client and what the configuration said.
pub struct Library {
    api: RemoteApi,
    /// Why `mxnetapi.ini` could not be used: init refuses (-100) rather than silently
    /// connecting somewhere the file did not say.
    config_error: Option<String>,
}

static LIBRARY: OnceLock<Option<Library>> = OnceLock::new();

/// The process's library, created on first use.
///
/// # Errors
/// -100 when its runtime cannot start (no threads or file descriptors left).
pub fn library() -> Result<&'static Library, ErrorCode> {
    LIBRARY
        .get_or_init(|| {
            let (config, config_error) = settings(&ini_folders());
            if let Some(e) = &config_error {
                eprintln!("mxnet2_api: {e}; rInit_MatrixAPI will fail with -100");
            }
            match RemoteApi::new(config) {
                Ok(api) => Some(Library { api, config_error }),
                Err(e) => {
                    eprintln!("mxnet2_api: cannot start the client runtime: {e}");
                    None
                }
            }
        })
        .as_ref()
        .ok_or(ErrorCode::Connect)
}

/// Where `mxnetapi.ini` is looked for, in order: the folder of the module holding this code
/// (the DLL, or the program when linked statically), then the program's folder.
pub fn ini_folders() -> Vec<PathBuf> {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(PathBuf::from));
    let mut folders: Vec<PathBuf> = this_module_folder().into_iter().collect();
    if let Some(exe) = exe
        && !folders.contains(&exe)
    {
        folders.push(exe);
    }
    folders
}

/// The settings from the first `mxnetapi.ini` in `folders` (the defaults without one), and
/// why the file found cannot be used, if it cannot.
pub fn settings(folders: &[PathBuf]) -> (ClientConfig, Option<String>) {
    match ClientConfig::find(folders) {
        Ok(Some((_, config))) => (config, None),
        Ok(None) => (ClientConfig::default(), None),
        Err(e) => (ClientConfig::default(), Some(format!("{INI_FILE}: {e}"))),
    }
}

impl Library {
    /// The client.
    pub fn api(&self) -> &RemoteApi {
        &self.api
    }

    /// `rInit_MatrixAPI`.
    ///
    /// # Errors
    /// -100 with an unusable `mxnetapi.ini`; the client's errors.
    pub fn init(&self) -> Result<i32, ErrorCode> {
        if self.config_error.is_some() {
            return Err(ErrorCode::Connect);
        }
        self.api.init()
    }

    /// `MxNet_SetIP` / `rSetConfig_MatrixNet(1, host)`: the server for the next init.
    pub fn set_host(&self, host: &str) {
        self.api.set_ip(host);
    }

    /// `MxNet_SetPort`: a port in 1..=65535 is taken; returns the port now in effect.
    pub fn set_port(&self, port: i32) -> i32 {
        if let Ok(port) = u16::try_from(port)
            && port != 0
        {
            self.api.set_port(port);
        }
        i32::from(self.api.as_async().settings().port)
    }

    /// `MxNet_SetTimeOut`: a positive connect timeout in milliseconds is taken; returns the
    /// timeout now in effect.
    pub fn set_timeout(&self, millis: i32) -> i32 {
        if let Ok(millis) = u64::try_from(millis)
            && millis > 0
        {
            self.api.set_timeout(Duration::from_millis(millis));
        }
        let now = self.api.as_async().settings().connect_timeout.as_millis();
        i32::try_from(now).unwrap_or(i32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder_with(ini: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(INI_FILE), ini).expect("write");
        dir
    }

    /// Sections 7.1 and 9: the first folder with a file wins; `[SOCKSSERVER]` in capitals is
    /// the same section as `[SocksServer]`.
    #[test]
    fn the_first_folder_with_mxnetapi_ini_is_read() {
        let empty = tempfile::tempdir().expect("tempdir");
        let dll = folder_with(
            "[Options]\nip=10.1.2.3\nport=12999\ntimeout=1500\nremote=1\n\
             [SOCKSSERVER]\nIP=127.0.0.1\nPort=1081\n",
        );
        let program = folder_with("[Options]\nip=10.9.9.9\n");
        let folders = [
            empty.path().to_path_buf(),
            dll.path().to_path_buf(),
            program.path().to_path_buf(),
        ];
        let (config, error) = settings(&folders);
        assert_eq!(error, None);
        assert_eq!(config.host, "10.1.2.3");
        assert_eq!(config.port, 12999);
        assert_eq!(config.connect_timeout, Duration::from_millis(1500));
        let socks = config.socks.expect("[SOCKSSERVER] read");
        assert_eq!((socks.host.as_str(), socks.port), ("127.0.0.1", 1081));
    }

    #[test]
    fn no_file_means_the_defaults_and_a_bad_file_is_reported() {
        let empty = tempfile::tempdir().expect("tempdir");
        let (config, error) = settings(&[empty.path().to_path_buf()]);
        assert_eq!((config.host.as_str(), config.port), ("127.0.0.1", 12300));
        assert_eq!(error, None);
        let bad = folder_with("[Options]\nport=none\n");
        let (_, error) = settings(&[bad.path().to_path_buf()]);
        assert!(error.expect("reported").contains("port"));
    }

    /// Section 7.3: the setters override the file; values no server can have are refused and
    /// the value in effect is returned.
    #[test]
    fn setters_override_the_file() {
        let dir = folder_with("[Options]\nip=10.1.2.3\nport=12999\n");
        let (config, _) = settings(&[dir.path().to_path_buf()]);
        let library = Library {
            api: RemoteApi::new(config).expect("runtime"),
            config_error: None,
        };
        library.set_host("192.0.2.1");
        assert_eq!(library.set_port(13000), 13000);
        assert_eq!(library.set_port(70_000), 13000, "refused");
        assert_eq!(library.set_port(0), 13000, "refused");
        assert_eq!(library.set_timeout(250), 250);
        assert_eq!(library.set_timeout(-1), 250, "refused");
        let now = library.api().as_async().settings();
        assert_eq!((now.host.as_str(), now.port), ("192.0.2.1", 13000));
    }
}
