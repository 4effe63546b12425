//! Files holding secrets (the server's identity key, the seat database): who may read them.
//! On Unix their creators use mode 0600. On Windows the file's ACL is replaced by one granting
//! full control to SYSTEM, the Administrators group and the file's owner only, without the
//! entries inherited from its folder (under `%ProgramData%`, every user may read): done by
//! Windows' own `icacls.exe` as a subprocess, so no Windows API is called from Rust here.
//!
//! Wine's `icacls.exe` is a stub ("dummy icacls, not performing ACL manipulations") that
//! exits 0: under Wine the call is exercised, the resulting ACL only on real Windows.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// SIDs granted full control: LocalSystem, BUILTIN\Administrators, and OWNER RIGHTS (the
/// file's owner, whichever account created it: the service's or an administrator's).
pub const GRANTED_SIDS: [&str; 3] = ["S-1-5-18", "S-1-5-32-544", "S-1-3-4"];

/// The file's access could not be restricted.
#[derive(Debug, thiserror::Error)]
pub enum RestrictError {
    /// `icacls.exe` did not start.
    #[error("cannot run {}: {source}", program.display())]
    Spawn {
        /// The program.
        program: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `icacls.exe` refused.
    #[error("icacls could not restrict {path} ({status}): {output}")]
    Refused {
        /// The file.
        path: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it printed.
        output: String,
    },
}

/// `icacls.exe` from the system folder, not from `PATH`.
pub fn icacls_program(system_root: Option<&Path>) -> PathBuf {
    system_root.map_or_else(
        || PathBuf::from("icacls.exe"),
        |root| root.join("System32").join("icacls.exe"),
    )
}

/// The arguments that make `path` readable by [`GRANTED_SIDS`] only: `/inheritance:r` drops
/// the inherited entries, `/grant:r` replaces explicit ones.
pub fn icacls_args(path: &Path) -> Vec<OsString> {
    let mut args = vec![
        path.as_os_str().to_owned(),
        "/inheritance:r".into(),
        "/grant:r".into(),
    ];
    args.extend(GRANTED_SIDS.iter().map(|sid| format!("*{sid}:(F)").into()));
    args.push("/q".into());
    args
}

/// Restricts `path` as the module says (Windows); elsewhere does nothing (mode 0600 is set by
/// the creator).
///
/// # Errors
/// [`RestrictError`] when `icacls.exe` cannot run or fails.
pub fn restrict(path: &Path) -> Result<(), RestrictError> {
    if !cfg!(windows) {
        return Ok(());
    }
    let root = std::env::var_os("SystemRoot").map(PathBuf::from);
    let program = icacls_program(root.as_deref());
    let out = std::process::Command::new(&program)
        .args(icacls_args(path))
        .output()
        .map_err(|source| RestrictError::Spawn {
            program: program.clone(),
            source,
        })?;
    if out.status.success() {
        Ok(())
    } else {
        let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
        output.push_str(&String::from_utf8_lossy(&out.stderr));
        Err(RestrictError::Refused {
            path: path.display().to_string(),
            status: out.status,
            output: output.trim().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icacls_replaces_inherited_entries_with_system_admins_and_owner() {
        let args = icacls_args(Path::new(r"C:\ProgramData\dongle-relay\mxnet2-server.key"));
        assert_eq!(
            args,
            [
                r"C:\ProgramData\dongle-relay\mxnet2-server.key",
                "/inheritance:r",
                "/grant:r",
                "*S-1-5-18:(F)",
                "*S-1-5-32-544:(F)",
                "*S-1-3-4:(F)",
                "/q",
            ]
            .map(OsString::from)
        );
    }

    #[test]
    fn icacls_comes_from_the_system_folder() {
        assert_eq!(
            icacls_program(Some(Path::new("/win"))),
            Path::new("/win").join("System32").join("icacls.exe")
        );
        assert_eq!(icacls_program(None), PathBuf::from("icacls.exe"));
    }

    /// Windows only: on Unix `restrict` does nothing. Under Wine this proves icacls runs
    /// and accepts the arguments; the resulting ACL only real Windows shows.
    #[cfg(windows)]
    #[test]
    fn restrict_succeeds_on_an_existing_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("secret");
        std::fs::write(&file, "x").expect("write");
        restrict(&file).expect("restricted");
    }
}
