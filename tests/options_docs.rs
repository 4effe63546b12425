//! The option tables of the docs, the command line and the file formats agree: every flag and
//! file key a table lists exists (the flag in `--help`, the key in the file format), and every
//! flag and file key of `listen` and `proxy` is listed in its table. The options are defined
//! once (`relay_listener::ListenerOptions`, `local_proxy::ProxyOptions`,
//! `hc_client::options::RelayOptions`); this test keeps the docs from drifting from them. For
//! `relay`, whose file is a deployment description rather than its flags' twin, the flag table
//! and the `[limits]` table are checked the same way.

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
    let mut keys = BTreeSet::new();
    for key in fields::<RelayOptions>().iter().chain(own) {
        match sections.iter().find(|(name, _)| name == key) {
            Some((name, inner)) => keys.extend(inner.iter().map(|k| format!("{name}.{k}"))),
            None => {
                keys.insert((*key).to_owned());
            }
        }
    }
    keys
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
        "\"none\"",
        "\"auto\"",
        "\"127.0.0.1:1\"",
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
