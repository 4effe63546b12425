//! Configuration files: every file in `tests/config/valid` loads, every file in
//! `tests/config/invalid` is refused with a message naming what its first line
//! (`# error: …`) says, and the shipped `deploy/relay.example.toml` loads.

use std::path::{Path, PathBuf};

use relay_server::RelayConfig;
use relay_server::config::TlsConfig;

fn files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/config")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("config dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no files in {}", dir.display());
    files
}

#[test]
fn valid_files_load() {
    for file in files("valid") {
        let config =
            RelayConfig::from_file(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        if let TlsConfig::PemFiles { cert_file, .. } = &config.tls {
            // Relative PEM paths are resolved against the file's directory.
            assert_eq!(cert_file.parent(), file.parent());
        }
    }
}

#[test]
fn invalid_files_are_refused_naming_the_problem() {
    for file in files("invalid") {
        let text = std::fs::read_to_string(&file).expect("read");
        let expected = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# error: "))
            .unwrap_or_else(|| panic!("{} lacks '# error: …'", file.display()))
            .trim();
        let err = RelayConfig::from_file(&file).expect_err(&file.display().to_string());
        let message = err.to_string();
        assert!(message.contains(expected), "{}: {message}", file.display());
    }
}

#[test]
fn shipped_example_loads() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/relay.example.toml");
    let config = RelayConfig::from_file(&example).expect("deploy/relay.example.toml");
    assert!(!config.hybrid_connections.is_empty());
}
