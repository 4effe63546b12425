//! The option tables of the docs, the command line and the file formats agree: every flag and
//! file key a table lists exists (the flag in `--help`, the key in the file format), and every
//! flag and file key of `listen` and `proxy` is listed in its table. The options are defined
//! once (`relay_listener::ListenerOptions`, `local_proxy::ProxyOptions`,
//! `hc_client::options::RelayOptions`); this test keeps the docs from drifting from them. For
//! `relay`, whose file is mostly a deployment description, the flag table is checked against
//! its flags and the keys that are also flags (`relay_server::config::RelayOptions`), and the
//! `[limits]` table against `[limits]`. For `server`, whose options are one table
//! (`license_server::config::options::OPTIONS`: INI key, TOML key, flag), the docs' table must
//! list each option with the same three names, every documented INI and TOML key must parse,
//! and each flag's `--help` must name its file keys.

use std::cell::Cell;
use std::collections::BTreeSet;

use clap::CommandFactory as _;
use dongle_relay::cli::Cli;
use hc_client::options::RelayOptions;
use hc_client::settings::{EgressSection, TlsSection};
use local_proxy::ProxyOptions;
use local_proxy::config::LocalTlsSection;
use relay_listener::ListenerOptions;
use serde::de::{self, Deserialize, Visitor};

/// What one docs table lists.
#[derive(Debug, Default)]
struct Documented {
    flags: BTreeSet<String>,
    keys: BTreeSet<String>,
}

/// The rows of the table headed `| option (flag / file key) |` in `doc`: in each row's first
/// cell, the backticked `--flag`s (a value after a space ignored), file keys (`name`,
/// `name = value`) and section keys (`[section] a, b`).
fn documented(doc: &str) -> Documented {
    table(doc, "| option (flag / file key)")
}

/// The rows of the first table of `doc` whose header starts with `header`, as [`documented`]
/// reads them.
fn table(doc: &str, header: &str) -> Documented {
    let mut out = Documented::default();
    let rows = doc
        .lines()
        .skip_while(|l| !l.starts_with(header))
        .skip(2)
        .take_while(|l| l.starts_with('|'));
    for row in rows {
        let cell = row.split('|').nth(1).unwrap_or_default();
        for span in cell.split('`').skip(1).step_by(2) {
            if span.starts_with('-') {
                for flag in span.split([' ', ',']).filter_map(|w| w.strip_prefix("--")) {
                    out.flags.insert(flag.to_owned());
                }
            } else if let Some(rest) = span.strip_prefix('[') {
                let (section, keys) = rest.split_once(']').expect("`[section] keys`");
                for key in keys.split(',').map(str::trim).filter(|k| !k.is_empty()) {
                    out.keys.insert(format!("{section}.{key}"));
                }
            } else {
                let key = span.split(" = ").next().unwrap_or_default();
                if key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                    && !key.is_empty()
                {
                    out.keys.insert(key.to_owned());
                }
            }
        }
    }
    assert!(
        !out.flags.is_empty() || !out.keys.is_empty(),
        "no table {header:?} found"
    );
    out
}

/// The long flags of a subcommand, but `--help` and `--config` (documented in prose).
fn flags(subcommand: &str) -> BTreeSet<String> {
    let cli = Cli::command();
    let command = cli
        .find_subcommand(subcommand)
        .unwrap_or_else(|| panic!("no subcommand {subcommand}"));
    command
        .get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|l| !matches!(*l, "help" | "config"))
        .map(str::to_owned)
        .collect()
}

/// The flags every subcommand takes (`--log`, `--threads`): a table may list them.
fn global_flags() -> BTreeSet<String> {
    Cli::command()
        .get_arguments()
        .filter(|a| a.is_global_set())
        .filter_map(|a| a.get_long())
        .map(str::to_owned)
        .collect()
}

/// The file keys a struct deserialises (serde's field list, skipped fields left out), read by
/// a deserializer that only asks for it.
fn fields<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Ask<'a>(&'a Cell<&'static [&'static str]>);
    impl<'de> de::Deserializer<'de> for Ask<'_> {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0.set(fields);
            Err(de::Error::custom("asked"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 u8 u16 u32 u64 f32 f64 char str string bytes byte_buf option
            unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    let found = Cell::new(&[][..]);
    let _ = T::deserialize(Ask(&found));
    assert!(!found.get().is_empty(), "no fields");
    found.get()
}

/// The file keys of a component: the relay-access keys and its own, sections as
/// `section.key`.
fn file_keys(own: &[&str], sections: &[(&str, &[&str])]) -> BTreeSet<String> {
    file_keys_of(&[fields::<RelayOptions>(), own].concat(), sections)
}

/// A file with `key` (`section.key` in its section) set to a value of some type.
fn files_setting(key: &str) -> Vec<String> {
    let (section, key) = match key.split_once('.') {
        Some((section, key)) => (format!("[{section}]\n"), key),
        None => (String::new(), key),
    };
    [
        "\"1s\"",
        "1",
        "true",
        "[]",
        "[\"::1\"]",
        "\"none\"",
        "\"auto\"",
        "\"127.0.0.1:1\"",
        "\"127.0.0.1\"",
        "\"127.64.0.0/10\"",
        "\"x\"",
    ]
    .iter()
    .map(|value| format!("{section}{key} = {value}\n"))
    .collect()
}

/// `flags` (the subcommand's) are all in `documented`, and `documented` names no flag that is
/// neither one of them nor a global one.
fn flags_agree(subcommand: &str, documented: &BTreeSet<String>, flags: &BTreeSet<String>) {
    let known: BTreeSet<String> = flags.union(&global_flags()).cloned().collect();
    let undocumented: Vec<_> = flags.difference(documented).collect();
    assert!(
        undocumented.is_empty(),
        "{subcommand}: flags missing from the docs: {undocumented:?}"
    );
    let unknown: Vec<_> = documented.difference(&known).collect();
    assert!(
        unknown.is_empty(),
        "{subcommand}: documented flags that do not exist: {unknown:?}"
    );
}

/// Every key of `keys` is in `documented`, and every documented key parses (some value of some
/// type is accepted).
fn keys_agree(
    what: &str,
    documented: &BTreeSet<String>,
    keys: &BTreeSet<String>,
    parses: impl Fn(&str) -> Result<(), String>,
) {
    let undocumented: Vec<_> = keys.difference(documented).collect();
    assert!(
        undocumented.is_empty(),
        "{what}: file keys missing from the docs: {undocumented:?}"
    );
    for key in documented {
        let files = files_setting(key);
        let errors: Vec<_> = files.iter().filter_map(|f| parses(f).err()).collect();
        assert!(
            errors.len() < files.len(),
            "{what}: documented key {key:?} does not parse: {errors:?}"
        );
    }
}

/// Checks one component's table against its command line and file format.
fn agree(
    doc: &str,
    subcommand: &str,
    keys: BTreeSet<String>,
    parses: fn(&str) -> Result<(), String>,
) {
    let documented = documented(doc);
    flags_agree(subcommand, &documented.flags, &flags(subcommand));
    keys_agree(subcommand, &documented.keys, &keys, parses);
}

#[test]
fn listener_docs_flags_and_file_agree() {
    let keys = file_keys(
        fields::<ListenerOptions>(),
        &[
            ("tls", fields::<TlsSection>()),
            ("egress", fields::<EgressSection>()),
        ],
    );
    agree(
        include_str!("../docs/listener.md"),
        "listen",
        keys,
        |text| {
            relay_listener::ListenerFile::parse(text)
                .map(drop)
                .map_err(|e| e.to_string())
        },
    );
}

#[test]
fn proxy_docs_flags_and_file_agree() {
    let keys = file_keys(
        fields::<ProxyOptions>(),
        &[
            ("tls", fields::<TlsSection>()),
            ("egress", fields::<EgressSection>()),
            ("local_tls", fields::<LocalTlsSection>()),
        ],
    );
    agree(include_str!("../docs/proxy.md"), "proxy", keys, |text| {
        local_proxy::ProxyFile::parse(text)
            .map(drop)
            .map_err(|e| e.to_string())
    });
}

#[test]
fn a_key_no_part_knows_is_refused() {
    let err = relay_listener::ListenerFile::parse("targte = \"x:1\"").expect_err("typo");
    assert!(err.to_string().contains("targte"), "{err}");
    let documented =
        documented("| option (flag / file key) |\n|---|\n| `--a` / `b` / `[s] c, d` |\n");
    assert_eq!(documented.flags.into_iter().collect::<Vec<_>>(), ["a"]);
    assert_eq!(
        documented.keys.into_iter().collect::<Vec<_>>(),
        ["b", "s.c", "s.d"]
    );
}

/// `DONGLE_RELAY_<COMMAND>_<FLAG>` for every option of `listen` and `proxy` that takes a value,
/// but those with a variable of their own.
#[test]
fn every_option_has_its_environment_variable() {
    let cli = Cli::command();
    for subcommand in ["listen", "proxy"] {
        let command = cli.find_subcommand(subcommand).expect("subcommand");
        let env = |long: &str| {
            command
                .get_arguments()
                .find(|a| a.get_long() == Some(long))
                .and_then(|a| a.get_env())
                .map(|e| e.to_string_lossy().into_owned())
        };
        let prefix = format!("DONGLE_RELAY_{}_", subcommand.to_uppercase());
        assert_eq!(
            env("idle-timeout"),
            Some(format!("{prefix}IDLE_TIMEOUT")),
            "{subcommand}"
        );
        assert_eq!(
            env("connection-string").as_deref(),
            Some("DONGLE_RELAY_CONNECTION_STRING")
        );
        assert_eq!(env("pin-sha256"), Some(format!("{prefix}PIN_SHA256")));
        assert_eq!(env("insecure-plain-ws-non-loopback"), None, "a flag");
    }
}

/// The layers in a real process: a variable is read (a bad value is refused, named), a flag
/// wins over it (the bad variable is then never parsed).
#[test]
fn the_environment_sits_between_file_and_flags() {
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_dongle-relay"))
            .arg("listen")
            .args(args)
            .env_remove("DONGLE_RELAY_CONNECTION_STRING")
            .env("DONGLE_RELAY_LISTEN_IDLE_TIMEOUT", "soon")
            .output()
            .expect("run dongle-relay")
    };
    let out = run(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("soon"), "{stderr}");
    let out = run(&["--idle-timeout", "1s"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("connection_string"), "{stderr}");
}

/// `relay`: its command-line table lists exactly its flags (`--config` included), its
/// `[limits]` table exactly the `[limits]` keys, each of which parses; the `*_secs` spellings of
/// earlier versions are still read, as the same duration.
#[test]
fn relay_docs_flags_and_limits_agree() {
    let doc = include_str!("../docs/relay.md");
    let documented = table(doc, "| option | default | meaning |");
    let mut flags = flags("relay");
    flags.insert("config".into());
    flags_agree("relay", &documented.flags, &flags);

    let documented = table(doc, "| key | default | meaning |").keys;
    let (old, keys): (Vec<&str>, Vec<&str>) = fields::<relay_server::config::Limits>()
        .iter()
        .partition(|k| k.ends_with("_secs"));
    let keys: BTreeSet<String> = keys.into_iter().map(str::to_owned).collect();
    keys_agree("relay [limits]", &documented, &keys, |text| {
        toml::from_str::<relay_server::config::Limits>(text)
            .map(drop)
            .map_err(|e| e.to_string())
    });
    assert!(!old.is_empty(), "the *_secs spellings are aliases");
    for key in old {
        let new = key.trim_end_matches("_secs");
        let was: relay_server::config::Limits =
            toml::from_str(&format!("{key} = 30")).expect("old spelling still read");
        let is: relay_server::config::Limits =
            toml::from_str(&format!("{new} = \"30s\"")).expect("new spelling");
        assert_eq!(format!("{was:?}"), format!("{is:?}"), "{key}");
    }
}

/// `relay`'s options that are also file keys (`bind`, `[tls]`, one definition:
/// `relay_server::config::RelayOptions`): the command-line table lists exactly these keys, and
/// each documented key is read by the file format.
#[test]
fn relay_docs_and_file_keys_agree() {
    use relay_server::config::{RelayOptions, TlsOptions};
    let doc = include_str!("../docs/relay.md");
    let documented = table(doc, "| option | default | meaning |").keys;
    let keys = file_keys_of(fields::<RelayOptions>(), &[("tls", fields::<TlsOptions>())]);
    keys_agree("relay", &documented, &keys, |text| {
        config_syntax::layers::from_toml_pair::<RelayOptions, relay_server::RelayConfig>(text)
            .map(drop)
            .map_err(|e| e.to_string())
    });
}

/// The keys of one struct, sections as `section.key`.
fn file_keys_of(keys: &[&str], sections: &[(&str, &[&str])]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for key in keys {
        match sections.iter().find(|(name, _)| name == key) {
            Some((name, inner)) => out.extend(inner.iter().map(|k| format!("{name}.{k}"))),
            None => {
                out.insert((*key).to_owned());
            }
        }
    }
    out
}

/// One row of the server's option table: its INI key, TOML key and flag.
type ServerRow = (String, String, Option<String>);

/// The rows of the server's option table (`| INI key / TOML key / flag |`).
fn server_rows(doc: &str) -> Vec<ServerRow> {
    doc.lines()
        .skip_while(|l| !l.starts_with("| INI key / TOML key / flag |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|row| {
            let cell = row.split('|').nth(1).unwrap_or_default();
            let spans: Vec<&str> = cell.split('`').skip(1).step_by(2).collect();
            let ini = spans
                .iter()
                .find(|s| s.starts_with(|c: char| c.is_ascii_uppercase()));
            let toml = spans
                .iter()
                .find(|s| s.starts_with(|c: char| c.is_ascii_lowercase()));
            let flag = spans.iter().find_map(|s| s.strip_prefix("--"));
            (
                ini.unwrap_or_else(|| panic!("no INI key in {row}"))
                    .to_string(),
                toml.unwrap_or_else(|| panic!("no TOML key in {row}"))
                    .to_string(),
                flag.map(str::to_owned),
            )
        })
        .collect()
}

/// `server`: every option of `license_server::config::options::OPTIONS` (its one definition)
/// is a row of the docs' table with the same INI key, TOML key and flag, and no row is
/// anything else; every documented INI key and TOML key parses (known, some value accepted);
/// `--help` of each flag names its file keys; the command-line-only table and the option table
/// together list exactly the flags of `server`.
#[test]
fn server_docs_flags_and_files_agree() {
    use license_server::config::ServerConfig;
    use license_server::config::options::OPTIONS;
    let doc = include_str!("../docs/license-server.md");
    let documented: BTreeSet<ServerRow> = server_rows(doc).into_iter().collect();
    let defined: BTreeSet<ServerRow> = OPTIONS
        .iter()
        .map(|o| {
            (
                o.ini.to_owned(),
                o.toml.to_owned(),
                o.flag.as_ref().map(|f| f.long.to_owned()),
            )
        })
        .collect();
    assert_eq!(
        documented.difference(&defined).collect::<Vec<_>>(),
        Vec::<&ServerRow>::new(),
        "documented server options that are not defined so"
    );
    assert_eq!(
        defined.difference(&documented).collect::<Vec<_>>(),
        Vec::<&ServerRow>::new(),
        "server options missing from the docs"
    );

    let ini_values = ["1", "0", "127.0.0.1", "none", "127.0.0.1:12380", "x"];
    for (ini, toml, _) in &documented {
        let parses = ini_values.iter().any(|value| {
            ServerConfig::from_ini_str(&format!("[Option]\n{ini}={value}\n"))
                .is_ok_and(|c| c.warnings.is_empty())
        });
        assert!(parses, "documented INI key {ini} does not parse");
        let files = files_setting(toml);
        assert!(
            files.iter().any(|f| ServerConfig::from_toml_str(f).is_ok()),
            "documented TOML key {toml} does not parse"
        );
    }
    assert!(
        ServerConfig::from_toml_str("prot = 1\n").is_err(),
        "an unknown TOML key is refused"
    );

    let cli = Cli::command();
    let server = cli.find_subcommand("server").expect("server");
    for option in OPTIONS {
        let Some(flag) = &option.flag else { continue };
        let arg = server
            .get_arguments()
            .find(|a| a.get_long() == Some(flag.long))
            .unwrap_or_else(|| panic!("no --{}", flag.long));
        let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
        assert!(
            help.contains(option.ini) && help.contains(option.toml),
            "--{} --help names its file keys: {help}",
            flag.long
        );
    }
    let mut documented_flags: BTreeSet<String> = documented
        .iter()
        .filter_map(|(_, _, f)| f.clone())
        .collect();
    documented_flags.extend(table(doc, "| flag | meaning |").flags);
    let mut flags = flags("server");
    flags.insert("config".into());
    flags_agree("server", &documented_flags, &flags);
}
