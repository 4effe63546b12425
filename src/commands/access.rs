//! Relay access on the command line, shared by the commands that dial the relay (`listen`,
//! `proxy`, and `server` for its in-process relay-listener): the options themselves are
//! `hc_client::options::RelayOptions` (one definition for flags and file keys), re-exported here
//! under the name the commands use; and the reading of the TOML files ([`read_file`]).

use std::path::PathBuf;

use anyhow::Context as _;

pub(crate) use hc_client::options::secret;
pub use hc_client::options::{
    CONNECTION_STRING_ENV, PROXY_PASSWORD_ENV, RelayOptions as RelayArgs,
};

/// Reads and parses a TOML configuration file.
///
/// # Errors
/// The file cannot be read or has an invalid or unknown key (named in the message).
pub fn read_file<T>(
    path: Option<&PathBuf>,
    parse: fn(&str) -> Result<T, toml::de::Error>,
) -> anyhow::Result<Option<T>> {
    let Some(path) = path else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let parsed =
        parse(&text).map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?;
    Ok(Some(parsed))
}
