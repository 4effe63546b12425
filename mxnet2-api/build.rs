//! Export names on Windows. On 32-bit Windows, `__stdcall` functions get decorated names
//! (`rInit_MatrixAPI@4`); the vendor's DLL exports them undecorated, and programs built
//! against it import them by those names. `--kill-at` makes GNU ld export the undecorated names
//! (the import library still resolves the decorated symbols a compiler emits for callers).
//! Elsewhere nothing is needed: x64 Windows and Linux do not decorate.

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if os == "windows" && env == "gnu" && arch == "x86" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,--kill-at");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
