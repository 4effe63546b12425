//! The relay's options that are both a flag of `dongle-relay relay` and a key of its file:
//! [`RelayOptions`] derives the command line (`clap::Args`), the file's keys
//! (`serde::Deserialize`) and the merge (`config_syntax::Merge`), as every component's options
//! do (see `config_syntax::layers`). The rest of the file (hybrid connections, rules, limits,
//! access lists) has no flags: it describes a deployment, not a run.

use std::net::SocketAddr;

use config_syntax::Merge;
use serde::Deserialize;

use super::tls::TlsOptions;

/// `bind` / `--bind` and `[tls]` / `--cert`, `--key`, `--self-signed`, `--tls-name`,
/// `--insecure-plain-ws`.
#[derive(clap::Args, Debug, Clone, Default, Deserialize, Merge)]
pub struct RelayOptions {
    /// Address to listen on [default: the configuration's `bind`, else 0.0.0.0:9443].
    #[arg(long, value_name = "IP:PORT")]
    #[merge(strategy = merge::option::overwrite_none)]
    pub bind: Option<SocketAddr>,
    /// `[tls]`: how the relay speaks TLS.
    #[command(flatten)]
    #[serde(default)]
    #[merge(strategy = Merge::merge)]
    pub tls: TlsOptions,
}
