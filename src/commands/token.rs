//! The `token` subcommand: prints a SAS token for a resource URI, signed with a rule's key
//! from the command line, the environment, or a connection string.

use anyhow::{Context, bail};
use hc_protocol::connection_string::Credentials;
use hc_protocol::sas::{Audience, DEFAULT_TTL_SECS, audience_uri, encode_for_query};
use hc_protocol::{ConnectionString, SasToken, Secret};
use tokio_util::sync::CancellationToken;

/// Long help of the subcommand (clap takes the one-line summary from `cli.rs`).
const TOKEN_HELP: &str = "\
Print a Shared Access Signature token in Azure Relay's exact format.\n\
\n\
The token is `SharedAccessSignature sr=…&sig=…&se=…&skn=…`, an HMAC-SHA256 over the\n\
URL-encoded resource and expiry with the rule's key. Relays accept it in the\n\
`ServiceBusAuthorization` header or (URL-encoded, see --url-encode) in the `sb-hc-token`\n\
query parameter.\n\
\n\
Examples:\n\
\n\
  dongle-relay token --resource http://relay.example:9443/license --key-name send --key \"$KEY\"\n\
\n\
  DONGLE_RELAY_CONNECTION_STRING='Endpoint=sb://relay.example:9443/;SharedAccessKeyName=send;SharedAccessKey=…;EntityPath=license' dongle-relay token";

/// Options of `dongle-relay token`.
#[derive(clap::Args, Debug)]
#[command(after_long_help = TOKEN_HELP)]
pub struct Args {
    /// Resource URI the token grants access to, signed exactly as given (e.g.
    /// `http://relay.example:9443/license`; a namespace root such as `http://relay.example/`
    /// covers every hybrid connection). Default with a connection string:
    /// `http://{host}/{EntityPath}/`, the audience the .NET SDK uses.
    #[arg(long)]
    pub resource: Option<String>,
    /// SAS rule name (`skn`). Default with a connection string: its SharedAccessKeyName.
    #[arg(long, env = "DONGLE_RELAY_KEY_NAME")]
    pub key_name: Option<String>,
    /// SAS rule key (prefer the environment variable: command lines are visible to other
    /// users).
    #[arg(long, env = "DONGLE_RELAY_SAS_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// A connection string supplying the key (and defaults for --key-name and --resource).
    #[arg(long, env = "DONGLE_RELAY_CONNECTION_STRING", hide_env_values = true)]
    pub connection_string: Option<String>,
    /// Lifetime in seconds from now.
    #[arg(long, default_value_t = DEFAULT_TTL_SECS, conflicts_with = "expiry")]
    pub ttl: u64,
    /// Absolute expiry in Unix seconds (instead of --ttl).
    #[arg(long)]
    pub expiry: Option<u64>,
    /// Print the token URL-encoded, ready for an `sb-hc-token=` query parameter.
    #[arg(long)]
    pub url_encode: bool,
}

/// The validated configuration of `token`.
pub struct Loaded {
    resource: String,
    key_name: String,
    key: Secret,
    expiry: Expiry,
    url_encode: bool,
}

enum Expiry {
    In(u64),
    At(u64),
}

/// Reads and validates the options.
///
/// # Errors
/// A missing key, key name or resource, or an unusable connection string.
pub fn load(args: Args) -> anyhow::Result<Loaded> {
    let cs = args
        .connection_string
        .as_deref()
        .map(str::parse::<ConnectionString>)
        .transpose()
        .context("--connection-string")?;
    let (cs_name, cs_key) = match cs.as_ref().map(|c| &c.credentials) {
        Some(Credentials::Key { key_name, key }) => (Some(key_name.clone()), Some(key.clone())),
        Some(Credentials::Token(_)) => {
            bail!("--connection-string holds a fixed SharedAccessSignature, not a key to sign with")
        }
        None => (None, None),
    };
    let key = args
        .key
        .map(Secret::new)
        .or(cs_key)
        .context("no key: pass --key, set DONGLE_RELAY_SAS_KEY, or give a connection string")?;
    let key_name = args
        .key_name
        .or(cs_name)
        .context("no key name: pass --key-name or give a connection string")?;
    let resource = match (args.resource, &cs) {
        (Some(resource), _) => resource,
        (None, Some(cs)) => audience_uri(
            &cs.endpoint.host,
            cs.entity_path
                .as_deref()
                .context("no --resource and the connection string has no EntityPath")?,
        ),
        (None, None) => bail!("no resource: pass --resource or a connection string"),
    };
    Audience::parse(&resource).with_context(|| format!("--resource {resource:?}"))?;
    // Sign once now so bad keys are reported before anything else happens.
    SasToken::sign(&resource, &key_name, &key, 1).context("cannot sign")?;
    Ok(Loaded {
        resource,
        key_name,
        key,
        expiry: args.expiry.map_or(Expiry::In(args.ttl), Expiry::At),
        url_encode: args.url_encode,
    })
}

/// The token the options describe, at wall-clock time `now` (Unix seconds).
///
/// # Errors
/// Signing errors (cannot happen after `load`).
pub fn make_token(loaded: &Loaded, now: u64) -> anyhow::Result<Secret> {
    let expiry = match loaded.expiry {
        Expiry::In(ttl) => now.saturating_add(ttl),
        Expiry::At(at) => at,
    };
    let token = SasToken::sign(&loaded.resource, &loaded.key_name, &loaded.key, expiry)?;
    Ok(if loaded.url_encode {
        encode_for_query(&token)
    } else {
        token
    })
}

/// Prints the token on stdout.
///
/// # Errors
/// A clock before 1970.
pub async fn run(loaded: Loaded, _shutdown: CancellationToken) -> anyhow::Result<()> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("system clock is before 1970")?
        .as_secs();
    // The token is the command's output; stdout is where the operator asked for it.
    println!("{}", make_token(&loaded, now)?.expose());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_from(argv: &[&str]) -> anyhow::Result<Loaded> {
        load(crate::commands::parse_args(argv)?)
    }

    #[test]
    fn printed_token_verifies() {
        let loaded = load_from(&[
            "--resource",
            "http://relay.example:9443/license",
            "--key-name",
            "send",
            "--key",
            "k3y",
            "--ttl",
            "60",
        ])
        .expect("load");
        let token = make_token(&loaded, 1_000).expect("token");
        let parsed = SasToken::parse(token.expose()).expect("parse");
        assert_eq!((parsed.key_name(), parsed.expiry()), ("send", 1_060));
        assert!(parsed.audience().covers_path("license"));
        assert_eq!(parsed.verify(&Secret::new("k3y"), 1_059), Ok(()));
        assert!(parsed.verify(&Secret::new("other"), 1_059).is_err());
    }

    #[test]
    fn connection_string_supplies_key_name_and_resource() {
        let cs = "Endpoint=sb://relay.example:9443/;SharedAccessKeyName=listen;SharedAccessKey=abc;EntityPath=license";
        let loaded = load_from(&["--connection-string", cs, "--expiry", "5000"]).expect("load");
        let token = make_token(&loaded, 0).expect("token").expose().to_owned();
        let parsed = SasToken::parse(&token).expect("parse");
        assert_eq!((parsed.key_name(), parsed.expiry()), ("listen", 5000));
        assert!(
            token.contains("sr=http%3A%2F%2Frelay.example%2Flicense%2F"),
            "{token}"
        );
        assert_eq!(parsed.verify(&Secret::new("abc"), 10), Ok(()));
        let encoded = load_from(&[
            "--connection-string",
            cs,
            "--expiry",
            "5000",
            "--url-encode",
        ])
        .expect("load");
        let encoded = make_token(&encoded, 0).expect("token");
        assert_eq!(encoded, encode_for_query(&Secret::new(token)));
    }

    #[test]
    fn missing_inputs_are_explained() {
        let err = load_from(&["--resource", "http://r/h", "--key-name", "n"]);
        if std::env::var_os("DONGLE_RELAY_SAS_KEY").is_none() {
            assert!(err.err().is_some_and(|e| e.to_string().contains("no key")));
        }
        let err = load_from(&["--key", "k", "--key-name", "n"])
            .err()
            .expect("no resource");
        assert!(err.to_string().contains("no resource"), "{err}");
        assert!(load_from(&["--ttl", "5", "--expiry", "9"]).is_err());
    }
}
