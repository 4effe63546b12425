//! Where this library's code was loaded from: the folder whose `mxnetapi.ini` the vendor's DLL
//! reads (manual section 7.1). For the shared library that is the `.so`/`.dll` itself; linked
//! statically, it is the program, whose folder section 7.2 names. Found by asking the loader
//! which module holds the address of one of our functions.

use std::path::PathBuf;

/// The folder of the module (shared library or program) that holds this code, if the loader
/// can tell.
pub fn this_module_folder() -> Option<PathBuf> {
    module_file().and_then(|file| file.parent().map(PathBuf::from))
}

/// Any address inside this module.
fn anchor() -> *const std::ffi::c_void {
    let f: fn() -> Option<PathBuf> = this_module_folder;
    f as *const std::ffi::c_void
}

#[cfg(unix)]
fn module_file() -> Option<PathBuf> {
    use std::ffi::CStr;
    use std::os::unix::ffi::OsStrExt as _;

    // SAFETY: `Dl_info` is plain data (pointers and integers) for which all-zero is valid.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: `anchor()` is an address in this module and `info` is a valid out-pointer;
    // dladdr only writes into `info`.
    let found = unsafe { libc::dladdr(anchor(), &raw mut info) };
    if found == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dladdr succeeded, so `dli_fname` is a NUL-terminated path owned by the loader,
    // valid while the module stays loaded (it is: this code is running).
    let name = unsafe { CStr::from_ptr(info.dli_fname) };
    let path = PathBuf::from(std::ffi::OsStr::from_bytes(name.to_bytes()));
    // A module found through a relative path (the program started as ./prog) is relative to
    // the working directory the program started in; resolve it now, while it is likely current.
    std::fs::canonicalize(&path).ok().or(Some(path))
}

#[cfg(windows)]
fn module_file() -> Option<PathBuf> {
    use std::ffi::c_void;
    use std::os::windows::ffi::OsStringExt as _;

    const FROM_ADDRESS: u32 = 0x4;
    const UNCHANGED_REFCOUNT: u32 = 0x2;
    #[link(name = "kernel32")]
    unsafe extern "system" {
        fn GetModuleHandleExW(flags: u32, address: *const c_void, module: *mut *mut c_void) -> i32;
        fn GetModuleFileNameW(module: *mut c_void, name: *mut u16, size: u32) -> u32;
    }

    let mut module: *mut c_void = std::ptr::null_mut();
    // SAFETY: with FROM_ADDRESS the second argument is an address inside the module wanted
    // (ours); UNCHANGED_REFCOUNT takes no reference that we would have to free; `module` is a
    // valid out-pointer.
    let ok =
        unsafe { GetModuleHandleExW(FROM_ADDRESS | UNCHANGED_REFCOUNT, anchor(), &raw mut module) };
    if ok == 0 {
        return None;
    }
    let mut name = vec![0u16; 32_768];
    let size = u32::try_from(name.len()).unwrap_or(u32::MAX);
    // SAFETY: `module` is a loaded module's handle; `name` has room for `size` UTF-16 units
    // and the call writes at most that many.
    let len = unsafe { GetModuleFileNameW(module, name.as_mut_ptr(), size) };
    let len = usize::try_from(len)
        .ok()
        .filter(|&n| n > 0 && n < name.len())?;
    Some(PathBuf::from(std::ffi::OsString::from_wide(&name[..len])))
}

#[cfg(not(any(unix, windows)))]
fn module_file() -> Option<PathBuf> {
    None
}

#[cfg(test)]
mod tests {
    /// In a test binary the module is the test executable itself.
    #[test]
    fn the_module_folder_is_found() {
        let folder = super::this_module_folder().expect("the loader knows this module");
        let exe = std::env::current_exe().expect("exe");
        let exe_dir = exe.parent().expect("folder");
        assert_eq!(
            std::fs::canonicalize(folder).expect("canonical"),
            std::fs::canonicalize(exe_dir).expect("canonical")
        );
    }
}
