#!/usr/bin/env bash
# Cross-builds the client library for Windows — mxnet2_api.dll with its import library, for x64
# (x86_64-pc-windows-gnu) and x86 (i686-pc-windows-gnu) — with mingw-w64, checks that the DLL
# exports exactly the header's functions under undecorated names (32-bit __stdcall would
# otherwise export rInit_MatrixAPI@4), and compiles the C test programs against each DLL.
# Running them needs Windows or Wine; this script does not.
#
# Output: target/windows/<target>/{mxnet2_api.dll, libmxnet2_api.dll.a, walk.exe, threads.exe}
#         (and mxnet2_api.def, the decorated names, for x86)
# Usage:  bash mxnet2-api/build-windows.sh [x86_64-pc-windows-gnu|i686-pc-windows-gnu ...]
#         PROFILE=debug for a debug build (default: release).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
profile=${PROFILE:-release}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(x86_64-pc-windows-gnu i686-pc-windows-gnu)

# The functions the header declares (the identifier after each WINAPI followed by "(").
declared=$(grep -o 'WINAPI [A-Za-z_][A-Za-z0-9_]*(' mxnet2-api/include/mxnet2_api.h \
  | sed 's/WINAPI \(.*\)(/\1/' | sort -u)

for target in "${targets[@]}"; do
  case $target in
    x86_64-pc-windows-gnu) tool=x86_64-w64-mingw32; package=gcc-mingw-w64-x86-64 ;;
    i686-pc-windows-gnu) tool=i686-w64-mingw32; package=gcc-mingw-w64-i686 ;;
    *) echo "unknown target $target" >&2; exit 2 ;;
  esac
  echo "=== $target"
  rustup target add "$target" >/dev/null
  if ! command -v "$tool-gcc" >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "$package" >/dev/null
  fi
  # The C parts of dependencies (ring, SQLite, libusb) need the target's compiler too.
  env_target=${target//-/_}
  export "CC_${env_target}=$tool-gcc" "AR_${env_target}=$tool-ar"
  upper=$(echo "$env_target" | tr '[:lower:]' '[:upper:]')
  export "CARGO_TARGET_${upper}_LINKER=$tool-gcc"
  flags=(-p mxnet2-api --lib --target "$target")
  [ "$profile" = release ] && flags+=(--release)
  cargo build "${flags[@]}"

  built=$CARGO_TARGET_DIR/$target/$profile
  out=$CARGO_TARGET_DIR/windows/$target
  mkdir -p "$out"
  cp "$built/mxnet2_api.dll" "$built/libmxnet2_api.dll.a" "$out/"
  if [ "$target" = i686-pc-windows-gnu ]; then
    # 32-bit callers reference the decorated symbols (_rInit_MatrixAPI@4) while the DLL
    # exports undecorated names (build.rs: --kill-at), so the import library must map one to
    # the other. Its .def lists the decorated names as our own static library defines them
    # (nothing to keep in sync by hand); dlltool -k drops the @N from the imported name.
    {
      echo "LIBRARY mxnet2_api.dll"
      echo "EXPORTS"
      "$tool-nm" --defined-only "$built/libmxnet2_api.a" 2>/dev/null \
        | awk '$2 == "T" { print $3 }' | grep -E '^_(r[A-Z]|MxNet_)[A-Za-z0-9_]*@[0-9]+$' \
        | sed 's/^_//' | sort -u
    } >"$out/mxnet2_api.def"
    "$tool-dlltool" -k --input-def "$out/mxnet2_api.def" --dllname mxnet2_api.dll \
      --output-lib "$out/libmxnet2_api.dll.a"
  fi

  # Export names: exactly the header's, none decorated.
  exports=$("$tool-objdump" -p "$out/mxnet2_api.dll" \
    | sed -n '/\[Ordinal\/Name Pointer\] Table/,/^$/p' \
    | sed -n 's/^[[:space:]]*\[[[:space:]]*[0-9]*\][[:space:]]*//p' | sort -u)
  if [ "$exports" != "$declared" ]; then
    echo "the DLL's exports differ from the header's declarations:" >&2
    diff <(echo "$declared") <(echo "$exports") >&2 || true
    exit 1
  fi
  echo "exports: $(echo "$exports" | wc -l) functions, undecorated, as declared"

  # The C tests, linked through the import library; libgcc and winpthreads are linked in so the
  # programs need only the DLL beside them.
  for program in walk threads; do
    "$tool-gcc" -std=c11 -Wall -Wextra -Werror -static -pthread \
      -I mxnet2-api/include "mxnet2-api/tests/c/$program.c" "$out/libmxnet2_api.dll.a" \
      -o "$out/$program.exe"
  done
  # The programs import the undecorated names too (the import library maps the decorated
  # symbols a 32-bit compiler emits to the DLL's names).
  imports=$("$tool-objdump" -p "$out/walk.exe" \
    | sed -n '/DLL Name: mxnet2_api.dll/,/^$/p' | grep -Eo '(r|MxNet_)[A-Za-z_0-9@]+' || true)
  if [ -z "$imports" ] || grep -q '@' <<<"$imports"; then
    echo "walk.exe's imports from mxnet2_api.dll are wrong: $imports" >&2
    exit 1
  fi
  echo "walk.exe imports $(echo "$imports" | wc -l) functions from mxnet2_api.dll by name"
  echo "built: $out"
done
