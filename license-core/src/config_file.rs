//! Reading a configuration file: the error type every loader returns (naming the file, the
//! section and the key), the read-then-parse step, and the INI value clean-up the vendor's
//! files need. Shared by the server's `mxnet2.ini` and the client's `mxnetapi.ini`.

use std::path::{Path, PathBuf};

/// A configuration error, naming the file part and key it concerns.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why. Not a `source`: the message carries it, and an error chain would say it twice.
        error: std::io::Error,
    },
    /// A file that was read but not accepted: the file, then what is wrong in it. Only the
    /// loaders name the file, so the message names it once.
    #[error("{path}: {error}")]
    InFile {
        /// The file.
        path: PathBuf,
        /// What is wrong in it.
        error: Box<ConfigError>,
    },
    /// The file is not valid INI or TOML.
    #[error("{0}")]
    Syntax(String),
    /// A key we do not know.
    #[error("[{section}] {key}: unknown key")]
    UnknownKey {
        /// The section.
        section: String,
        /// The key.
        key: String,
    },
    /// A section we do not know.
    #[error("[{0}]: unknown section")]
    UnknownSection(String),
    /// A value that does not fit its key.
    #[error("[{section}] {key}: bad value {value:?}: {expected}")]
    BadValue {
        /// The section.
        section: String,
        /// The key.
        key: String,
        /// The value given.
        value: String,
        /// What is expected.
        expected: &'static str,
    },
}

/// Reads the configuration file at `path` and parses its text with `parse`. Errors name the
/// file ([`ConfigError::Read`], [`ConfigError::InFile`]); the parsers' own errors do not.
///
/// # Errors
/// The file cannot be read, or `parse` refused it.
pub fn load_file<T>(
    path: &Path,
    parse: impl FnOnce(&str) -> Result<T, ConfigError>,
) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_owned(),
        error,
    })?;
    parse(&text).map_err(|error| ConfigError::InFile {
        path: path.to_owned(),
        error: Box::new(error),
    })
}

/// A [`ConfigError::BadValue`] for `key` in `section`.
pub fn bad(section: &str, key: &str, value: &str, expected: &'static str) -> ConfigError {
    ConfigError::BadValue {
        section: section.to_owned(),
        key: key.to_owned(),
        value: value.to_owned(),
        expected,
    }
}

/// Strips an inline comment (`value  # comment`) and surrounding blanks.
pub fn clean_value(value: &str) -> &str {
    let mut prev_blank = false;
    for (i, c) in value.char_indices() {
        if prev_blank && (c == '#' || c == ';') {
            return value[..i].trim();
        }
        prev_blank = c.is_whitespace();
    }
    value.trim()
}
