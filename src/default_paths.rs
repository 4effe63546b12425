//! Where a component finds its configuration and keeps its data when the command line and the
//! configuration do not say. On Linux: `./mxnet2.ini`, the key beside the configuration, logs
//! on stderr only (systemd's journal keeps them). On Windows, as the vendor lays MxNet2 out
//! (manual section 3): `mxnet2.ini` in the executable's folder, then in the working directory;
//! the identity key and the daily logs under `%ProgramData%\dongle-relay\` (the program folder
//! under `Program Files` is not writable by a service, and a service has no console).
//!
//! The places come from [`Places`], which tests build by hand; only [`Places::current`]
//! reads the process environment.

use std::path::{Path, PathBuf};

/// The configuration file's name, as MxNet2 names it.
pub const CONFIG_FILE: &str = "mxnet2.ini";

/// The folder under `%ProgramData%` that holds dongle-relay's data and logs.
pub const DATA_FOLDER: &str = "dongle-relay";

/// Where `%ProgramData%` is when the environment does not say (Windows' own default).
const PROGRAM_DATA_FALLBACK: &str = r"C:\ProgramData";

/// The places a default may point at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Places {
    /// Whether the Windows layout applies.
    pub windows: bool,
    /// The folder of the running executable, if known.
    pub exe_dir: Option<PathBuf>,
    /// `%ProgramData%`, if set.
    pub program_data: Option<PathBuf>,
}

impl Places {
    /// This process's places: the Windows layout on Windows, the executable's folder and
    /// `%ProgramData%` from the environment.
    pub fn current() -> Self {
        Self {
            windows: cfg!(windows),
            exe_dir: std::env::current_exe()
                .ok()
                .and_then(|exe| exe.parent().map(Path::to_path_buf)),
            program_data: std::env::var_os("ProgramData").map(PathBuf::from),
        }
    }

    /// The configuration file to read when none is given, if one exists (`exists` says):
    /// Windows: `mxnet2.ini` beside the executable, then in the working directory; elsewhere
    /// the working directory's only.
    pub fn config(&self, exists: impl Fn(&Path) -> bool) -> Option<PathBuf> {
        let beside_exe = self
            .exe_dir
            .as_ref()
            .filter(|_| self.windows)
            .map(|dir| dir.join(CONFIG_FILE));
        beside_exe
            .into_iter()
            .chain(std::iter::once(PathBuf::from(CONFIG_FILE)))
            .find(|path| exists(path))
    }

    /// The data folder (keys, logs) of the Windows layout, `%ProgramData%\dongle-relay`;
    /// `None` elsewhere.
    pub fn data_dir(&self) -> Option<PathBuf> {
        self.windows.then(|| {
            self.program_data
                .clone()
                .unwrap_or_else(|| PathBuf::from(PROGRAM_DATA_FALLBACK))
                .join(DATA_FOLDER)
        })
    }

    /// The folder of the daily log files of the Windows layout, `<data_dir>\logs`.
    pub fn log_dir(&self) -> Option<PathBuf> {
        self.data_dir().map(|dir| dir.join("logs"))
    }
}

/// A default folder that could not be created.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot create the data folder {}: {source} (run as administrator, or name the files \
     with --key-file and LogFileFolder=/KeyFile= in the configuration)",
    path.display()
)]
pub struct CreateError {
    /// The folder.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// Creates `dir` (and its parents) if missing.
///
/// # Errors
/// [`CreateError`] naming the folder.
pub fn create(dir: &Path) -> Result<(), CreateError> {
    std::fs::create_dir_all(dir).map_err(|source| CreateError {
        path: dir.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows() -> Places {
        Places {
            windows: true,
            exe_dir: Some(PathBuf::from("/opt/prog")),
            program_data: Some(PathBuf::from("/pd")),
        }
    }

    #[test]
    fn windows_prefers_the_ini_beside_the_executable_then_the_working_directory() {
        let places = windows();
        let beside = PathBuf::from("/opt/prog").join(CONFIG_FILE);
        assert_eq!(places.config(|_| true), Some(beside.clone()));
        assert_eq!(
            places.config(|p| p == Path::new(CONFIG_FILE)),
            Some(PathBuf::from(CONFIG_FILE))
        );
        assert_eq!(places.config(|_| false), None);
        let no_exe = Places {
            exe_dir: None,
            ..windows()
        };
        assert_eq!(no_exe.config(|p| p == beside), None);
    }

    #[test]
    fn elsewhere_only_the_working_directory_and_no_data_folder() {
        let linux = Places {
            windows: false,
            ..windows()
        };
        assert_eq!(linux.config(|_| true), Some(PathBuf::from(CONFIG_FILE)));
        assert_eq!(linux.data_dir(), None);
        assert_eq!(linux.log_dir(), None);
    }

    #[test]
    fn windows_data_and_logs_under_program_data() {
        assert_eq!(
            windows().data_dir(),
            Some(PathBuf::from("/pd").join("dongle-relay"))
        );
        assert_eq!(
            windows().log_dir(),
            Some(PathBuf::from("/pd").join("dongle-relay").join("logs"))
        );
        let unset = Places {
            program_data: None,
            ..windows()
        };
        assert_eq!(
            unset.data_dir(),
            Some(PathBuf::from(r"C:\ProgramData").join("dongle-relay"))
        );
    }

    #[test]
    fn a_folder_that_cannot_be_created_is_named_in_the_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("a-file");
        std::fs::write(&file, "x").expect("write");
        let under_file = file.join("dongle-relay");
        let err = create(&under_file).expect_err("a file is in the way");
        assert!(
            err.to_string().contains(&under_file.display().to_string()),
            "{err}"
        );
        create(&dir.path().join("a").join("b")).expect("nested folders are created");
        assert!(dir.path().join("a").join("b").is_dir());
    }
}
