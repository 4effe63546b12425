//! The `hq` subcommand: the headquarters view of several dongle hosts (`headquarters`): reads
//! `hq.toml`, binds the view's endpoint (loopback by default) and serves it until shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;

use headquarters::HqConfig;
use ops_http::BearerToken;
use tokio_util::sync::CancellationToken;

/// Environment variable holding the view's own bearer token.
pub const HQ_TOKEN_ENV: &str = "DONGLE_RELAY_HQ_TOKEN";

const HQ_HELP: &str = "\
Serve one page (and GET /api/hosts, JSON) showing every dongle host's license server: the\n\
seats in use per AppSlot now, the usage summary and chart of a period, and one table of all\n\
hosts' AppSlots. The headquarters asks each host's admin endpoint when the page (or the API)\n\
is read: directly (url = \"http://host:12380\") or through the relay's HTTP request mode\n\
(a Send connection string; the host runs `dongle-relay server --relay-admin`). Each host's\n\
own admin token is still required; a host that cannot be read shows as an error row.\n\
\n\
The view needs its own bearer token ($DONGLE_RELAY_HQ_TOKEN, --token-file or token_file in\n\
the file) and listens on 127.0.0.1:12390 unless told otherwise. See docs/usage-reports.md.\n\
\n\
Example hq.toml:\n\
\n\
  token_file = \"hq.token\"\n\
  timeout = \"10s\"              # per host\n\
\n\
  [[host]]\n\
  name = \"Berlin\"\n\
  url = \"http://10.1.0.5:12380\"\n\
  token_file = \"berlin-admin.token\"\n\
\n\
  [[host]]\n\
  name = \"Paris\"\n\
  connection_string_env = \"PARIS_SEND_CONNECTION_STRING\"\n\
  token_env = \"PARIS_ADMIN_TOKEN\"";

/// Options of `dongle-relay hq`.
#[derive(clap::Args, Debug)]
#[command(after_long_help = HQ_HELP)]
pub struct Args {
    /// The headquarters configuration (TOML: the view's bind and token, and `[[host]]` entries).
    #[arg(long, short = 'c', env = "DONGLE_RELAY_HQ_CONFIG", value_name = "FILE")]
    pub config: PathBuf,
    /// Address of the view [default: the file's bind, else 127.0.0.1:12390].
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<SocketAddr>,
    /// File holding the view's bearer token [default: the file's token_file;
    /// $DONGLE_RELAY_HQ_TOKEN wins].
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Print the page's address with the token in its fragment (`#token=…`, never sent to the
    /// server), for opening it on this machine.
    #[arg(long)]
    pub show_token: bool,
}

/// The validated configuration of `hq`.
#[derive(Debug)]
pub struct Loaded {
    config: HqConfig,
    bind: SocketAddr,
    token: BearerToken,
    show_token: bool,
}

/// Reads the file and every secret it names; the view's token is required.
///
/// # Errors
/// The file, a host's setting or the token is missing or wrong.
pub fn load(args: Args) -> anyhow::Result<Loaded> {
    let config = HqConfig::load(&args.config)?;
    let given = super::server::ops::bearer_token(HQ_TOKEN_ENV, args.token_file.as_deref())?;
    let token = given.or_else(|| config.token.clone()).ok_or_else(|| {
        anyhow::anyhow!(
            "the headquarters view needs its own bearer token: ${HQ_TOKEN_ENV}, \
             --token-file or token_file in {}",
            args.config.display()
        )
    })?;
    let bind = args.bind.unwrap_or(config.bind);
    Ok(Loaded {
        config,
        bind,
        token,
        show_token: args.show_token,
    })
}

/// Binds the view and serves it until `shutdown`.
///
/// # Errors
/// The address cannot be bound.
pub async fn run(l: Loaded, shutdown: CancellationToken) -> anyhow::Result<()> {
    let socket = ops_http::bind(l.bind, Some(&l.token)).await?;
    let local = socket.local_addr()?;
    let page = super::server::ops::page_url(local, Some(&l.token), l.show_token);
    println!(
        "headquarters view of {} host(s): {page} (bearer token required)",
        l.config.hosts.len()
    );
    for host in &l.config.hosts {
        println!("  {}: {}", host.name, host.route.describe());
    }
    headquarters::serve(socket, l.config.hosts, l.config.timeout, l.token, shutdown).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_view_needs_a_token() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.token"), "host-token-0123456789\n").expect("write");
        let file = dir.path().join("hq.toml");
        std::fs::write(
            &file,
            "[[host]]\nname = \"a\"\nurl = \"http://127.0.0.1:1\"\ntoken_file = \"a.token\"\n",
        )
        .expect("write");
        let path = file.to_str().expect("utf-8");
        let args: Args = crate::commands::parse_args(&["--config", path]).expect("args");
        // Unless the environment gives the view a token.
        if std::env::var(HQ_TOKEN_ENV).is_err() {
            let err = load(args).expect_err("no token");
            assert!(err.to_string().contains("bearer token"), "{err}");
        }
        let token = dir.path().join("a.token");
        let args: Args = crate::commands::parse_args(&[
            "--config",
            path,
            "--token-file",
            token.to_str().expect("utf-8"),
            "--bind",
            "127.0.0.1:0",
        ])
        .expect("args");
        let loaded = load(args).expect("loaded");
        assert_eq!(loaded.bind.port(), 0);
        assert_eq!(loaded.config.hosts.len(), 1);
    }
}
