//! `include/mxnet2_api.h` against the real exports of the built `libmxnet2_api.so`: every
//! function the header declares is exported, and nothing else is; the header compiles as C and
//! as C++.
//!
//! Unix only: these build C with `cc` and read exports with `nm -D` against the `.so`. The
//! Windows DLL and its C programs are built and run by `mxnet2-api/build-windows.sh` and
//! `mxnet2-api/run-windows-tests.sh`.
#![cfg(unix)]

mod support;

use std::collections::BTreeSet;

use support::{crate_dir, lib_dir, run_tool};

/// The function names the header declares: the identifier after each `WINAPI` that is followed
/// by `(`.
fn declared() -> BTreeSet<String> {
    let header = std::fs::read_to_string(crate_dir().join("include/mxnet2_api.h")).expect("header");
    let mut names = BTreeSet::new();
    for (i, _) in header.match_indices("WINAPI") {
        let rest = header[i + "WINAPI".len()..].trim_start();
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() && rest[name.len()..].trim_start().starts_with('(') {
            names.insert(name);
        }
    }
    names
}

/// The functions the shared library exports (`nm -D --defined-only`, text symbols).
fn exported() -> BTreeSet<String> {
    let so = lib_dir().join("libmxnet2_api.so");
    let output = run_tool("nm", &["-D", "--defined-only", &so.to_string_lossy()]);
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace().rev();
            let name = parts.next()?;
            let kind = parts.next()?;
            (kind == "T").then(|| name.to_owned())
        })
        .collect()
}

#[test]
fn the_header_declares_exactly_the_exports() {
    let declared = declared();
    let exported = exported();
    assert!(declared.len() >= 37, "the header parse found {declared:?}");
    for required in [
        "rInit_MatrixAPI",
        "rRelease_MatrixAPI",
        "rReset_MatrixAPI",
        "rLogIn_MatrixNet",
        "rLogOut_MatrixNet",
        "rSetConfig_MatrixNet",
        "MxNet_SetPort",
        "MxNet_SetIP",
        "MxNet_SetTimeOut",
    ] {
        assert!(declared.contains(required), "{required} not declared");
    }
    let missing: Vec<_> = declared.difference(&exported).collect();
    let undeclared: Vec<_> = exported.difference(&declared).collect();
    assert!(missing.is_empty(), "declared but not exported: {missing:?}");
    assert!(
        undeclared.is_empty(),
        "exported but not declared: {undeclared:?}"
    );
}

#[test]
fn the_header_compiles_as_c_and_cpp() {
    let header = crate_dir().join("include/mxnet2_api.h");
    let header = header.to_string_lossy();
    for language in ["c", "c++"] {
        run_tool(
            "cc",
            &[
                "-x",
                language,
                "-fsyntax-only",
                "-Wall",
                "-Wextra",
                "-Werror",
                &header,
            ],
        );
    }
}
