//! The relay's keys file: where the built-in configuration's keys are written, as complete
//! connection strings, instead of being printed. Only its owner may read it (mode 0600 on
//! Unix; on Windows SYSTEM, Administrators and the owner, `license_core::private_file`), so
//! the keys stay out of consoles, journals and other users' reach.

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;

/// Writes `text` to `path`, replacing what was there, readable and writable by the owner only.
///
/// # Errors
/// The file cannot be created or written.
pub fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating the keys file {}", path.display()))?;
    // A file that existed before keeps its mode through open(): narrow it explicitly.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("restricting {}", path.display()))?;
    }
    // Windows: SYSTEM, Administrators and the owner only, before the keys are written.
    license_core::private_file::restrict(path)
        .with_context(|| format!("restricting {}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing the keys file {}", path.display()))
}
