//! `mxnetapi.ini`, the client configuration of sections 7.1 and 9:
//!
//! ```ini
//! [Options]
//! ip=127.0.0.1
//! port=12300
//! timeout=3000        ; connect timeout, milliseconds
//! remote=1            ; 1 = network server (0, the local dongle, is not supported here)
//! ; extensions
//! serverkey=<base64>  ; pin the server's Ed25519 key
//! persistent=0        ; 1 = one connection for all calls
//! iotimeout=10000     ; answer timeout, milliseconds
//! name=cad-station-3  ; client name shown by the server
//! localip=10.0.0.7    ; connect from this local address
//! [SocksServer]
//! ip=127.0.0.1
//! port=1080
//! user=alice          ; instead of the vendor's encrypted UserPass=
//! password=secret
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{ClientConfig, Password, SocksConfig};
use license_core::config_file::clean_value;
use license_core::config_file::{ConfigError, bad, load_file};
use license_core::protocol::ServerPublicKey;

/// `[SocksServer]` keys as read: IP, Port, User, Password.
type SocksKeys = (
    Option<String>,
    Option<u16>,
    Option<String>,
    Option<Password>,
);

/// The client configuration file's name (sections 7.1 and 7.2).
pub const INI_FILE: &str = "mxnetapi.ini";

impl ClientConfig {
    /// Parses `mxnetapi.ini`.
    ///
    /// # Errors
    /// Syntax errors, unknown keys or sections, bad values.
    pub fn from_ini_str(text: &str) -> Result<Self, ConfigError> {
        let ini = ::ini::Ini::load_from_str_noescape(text)
            .map_err(|e| ConfigError::Syntax(e.to_string()))?;
        let mut config = Self::default();
        let mut socks: Option<SocksKeys> = None;
        for (name, props) in &ini {
            let section = name.unwrap_or("Options");
            match section.to_ascii_lowercase().as_str() {
                "options" | "option" => {
                    for (key, value) in props {
                        option(&mut config, section, key, clean_value(value))?;
                    }
                }
                "socksserver" => {
                    let s = socks.get_or_insert((None, None, None, None));
                    for (key, value) in props {
                        let value = clean_value(value);
                        match key.to_ascii_lowercase().as_str() {
                            "ip" => s.0 = Some(value.to_owned()),
                            "port" => {
                                s.1 = Some(
                                    value
                                        .parse()
                                        .map_err(|_| bad(section, key, value, "a port number"))?,
                                );
                            }
                            "user" => s.2 = Some(value.to_owned()),
                            "password" => s.3 = Some(Password::new(value)),
                            "userpass" => {
                                return Err(bad(
                                    section,
                                    key,
                                    "<hidden>",
                                    "the vendor's encrypted UserPass format is not public; \
                                     use User= and Password= instead",
                                ));
                            }
                            _ => {
                                return Err(ConfigError::UnknownKey {
                                    section: section.to_owned(),
                                    key: key.to_owned(),
                                });
                            }
                        }
                    }
                }
                _ => return Err(ConfigError::UnknownSection(section.to_owned())),
            }
        }
        if let Some((ip, port, user, password)) = socks {
            let host = ip.ok_or_else(|| bad("SocksServer", "IP", "", "the proxy's address"))?;
            let auth = match (user, password) {
                (Some(u), Some(p)) => Some((u, p)),
                (None, None) => None,
                _ => {
                    return Err(bad(
                        "SocksServer",
                        "User",
                        "",
                        "User= and Password= must be given together",
                    ));
                }
            };
            config.socks = Some(SocksConfig {
                host,
                port: port.unwrap_or(1080),
                auth,
            });
        }
        Ok(config)
    }

    /// Reads `mxnetapi.ini` from a file; errors name the file once.
    ///
    /// # Errors
    /// Read errors and those of [`ClientConfig::from_ini_str`].
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        load_file(path, Self::from_ini_str)
    }

    /// Reads [`INI_FILE`] from the first of `folders` that holds one — the vendor's library
    /// looks beside itself (the DLL, section 7.1) or beside the program (the static library,
    /// section 7.2). Returns the file read and its settings, or `None` when no folder has one.
    ///
    /// # Errors
    /// Those of [`ClientConfig::load`] for the file found.
    pub fn find(folders: &[PathBuf]) -> Result<Option<(PathBuf, Self)>, ConfigError> {
        for folder in folders {
            let path = folder.join(INI_FILE);
            if path.is_file() {
                return Self::load(&path).map(|config| Some((path, config)));
            }
        }
        Ok(None)
    }
}

fn option(config: &mut ClientConfig, s: &str, key: &str, value: &str) -> Result<(), ConfigError> {
    let millis = |value: &str| {
        value
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| bad(s, key, value, "milliseconds"))
    };
    match key.to_ascii_lowercase().as_str() {
        "ip" => config.host = value.to_owned(),
        "port" => {
            config.port = value
                .parse()
                .map_err(|_| bad(s, key, value, "a port number"))?;
        }
        "timeout" => config.connect_timeout = millis(value)?,
        "iotimeout" => config.io_timeout = millis(value)?,
        "remote" => match value {
            "1" => {}
            "0" => {
                return Err(bad(
                    s,
                    key,
                    value,
                    "1 (local dongle access, remote=0, is not supported by this library)",
                ));
            }
            _ => return Err(bad(s, key, value, "1")),
        },
        "persistent" => {
            config.persistent = match value {
                "0" => false,
                "1" => true,
                _ => return Err(bad(s, key, value, "0 or 1")),
            };
        }
        "serverkey" => {
            config.pinned_key = Some(
                ServerPublicKey::from_base64(value)
                    .map_err(|_| bad(s, key, value, "a base64 Ed25519 public key (32 bytes)"))?,
            );
        }
        "name" => config.client_name = value.to_owned(),
        "localip" => {
            config.local_addr = if value.is_empty() {
                None
            } else {
                Some(
                    value
                        .parse()
                        .map_err(|_| bad(s, key, value, "an IP address of this host"))?,
                )
            };
        }
        _ => {
            return Err(ConfigError::UnknownKey {
                section: s.to_owned(),
                key: key.to_owned(),
            });
        }
    }
    Ok(())
}
