//! How a component's options come together: one options struct per component (in the
//! component's library crate) derives the command line (`clap::Args`), the TOML file
//! (`serde::Deserialize`) and the merge ([`Merge`]). Every field is an `Option` (or a list,
//! empty meaning unset), so each layer says only what it sets. Layers, lowest first:
//!
//! 1. the configuration file (`--config FILE`);
//! 2. environment variables, `DONGLE_RELAY_<COMMAND>_<FLAG>` (the long flag upper-cased, `-`
//!    as `_`: `--idle-timeout` of `listen` is `DONGLE_RELAY_LISTEN_IDLE_TIMEOUT`), and the few
//!    shared ones named in `--help` (`DONGLE_RELAY_CONNECTION_STRING`, ...);
//! 3. command-line flags.
//!
//! clap resolves 2 and 3 (a flag wins over its variable); [`layered`] puts the result over the
//! file. Validation, turning the merged options into a runtime configuration with errors that
//! name the key, is the component's (`into_config`-style functions beside its options).
//!
//! The merge is `merge`'s derive (`#[merge(strategy = merge::option::overwrite_none)]` on the
//! struct): it is small, has no runtime dependencies and spells no field again. `figment` was
//! the alternative; it merges serialised values and would need every option `Serialize` and
//! its own error type on top of clap's and toml's, for a job that is "take the first `Some`".
//!
//! A file may also mix two option structs in one table (the shared relay-access keys and the
//! component's own keys): [`from_toml_pair`] reads both from the same text and refuses a key
//! neither knows. serde's `flatten` cannot do this: it cannot refuse unknown keys and its errors
//! lose the key's name and line.

pub use merge::Merge;

/// `flags` over `file`: every option the command line (or its environment variable) leaves
/// unset is taken from the file.
pub fn layered<T: Merge>(mut flags: T, file: T) -> T {
    flags.merge(file);
    flags
}

/// A merge strategy for a file-only section (no flag sets it): the lower layer's unless this
/// layer has its own.
pub fn overwrite_default<T: Default + PartialEq>(left: &mut T, right: T) {
    if *left == T::default() {
        *left = right;
    }
}

/// Reads one TOML table into two option structs, `A` and `B`, each of which ignores the keys
/// of the other (neither may use `deny_unknown_fields`; their sections may). A key that both
/// ignore is refused, named with its section (`unknown key "targte"`). Errors of either
/// struct name the key and line, as `toml::from_str` does.
///
/// # Errors
/// The TOML error, or the first unknown key.
pub fn from_toml_pair<A, B>(text: &str) -> Result<(A, B), toml::de::Error>
where
    A: serde::de::DeserializeOwned,
    B: serde::de::DeserializeOwned,
{
    let mut ignored_a = Vec::new();
    let a: A = serde_ignored::deserialize(toml::Deserializer::parse(text)?, |path| {
        ignored_a.push(path.to_string());
    })?;
    let mut unknown = None;
    let b: B = serde_ignored::deserialize(toml::Deserializer::parse(text)?, |path| {
        let path = path.to_string();
        if unknown.is_none() && ignored_a.contains(&path) {
            unknown = Some(path);
        }
    })?;
    match unknown {
        Some(key) => Err(serde::de::Error::custom(format!("unknown key {key:?}"))),
        None => Ok((a, b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, serde::Deserialize, Merge, PartialEq)]
    #[merge(strategy = merge::option::overwrite_none)]
    struct Shared {
        name: Option<String>,
    }

    #[derive(Debug, Default, serde::Deserialize, Merge, PartialEq)]
    #[merge(strategy = merge::option::overwrite_none)]
    struct Own {
        port: Option<u16>,
        section: Option<Section>,
    }

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Section {
        on: bool,
    }

    #[test]
    fn flags_win_and_the_file_fills_the_gaps() {
        let file = Own {
            port: Some(1),
            section: Some(Section { on: true }),
        };
        let flags = Own {
            port: Some(2),
            section: None,
        };
        let merged = layered(flags, file);
        assert_eq!(merged.port, Some(2));
        assert_eq!(merged.section, Some(Section { on: true }));
    }

    #[test]
    fn two_structs_share_one_table_and_unknown_keys_are_named() {
        let (shared, own): (Shared, Own) =
            from_toml_pair("name = \"a\"\nport = 3\n[section]\non = true\n").expect("parses");
        assert_eq!(shared.name.as_deref(), Some("a"));
        assert_eq!(own.port, Some(3));
        let err = from_toml_pair::<Shared, Own>("prot = 3").expect_err("typo");
        assert!(err.to_string().contains("prot"), "{err}");
        let err = from_toml_pair::<Shared, Own>("[section]\non = true\nof = 1").expect_err("typo");
        assert!(err.to_string().contains("of"), "{err}");
        let err = from_toml_pair::<Shared, Own>("port = \"x\"").expect_err("bad value");
        assert!(err.to_string().contains("port"), "{err}");
    }
}
