#!/usr/bin/env bash
# Cargo runner for the Windows targets (.cargo/config.toml): runs a cross-built .exe under
# Wine, so `cargo run`/`cargo test --target x86_64-pc-windows-gnu` work on Linux.
#
# - Wine 8 lacks ProcessPrng, which every Rust program calls at start-up, so a test-only
#   bcryptprimitives.dll built from scripts/wine/processprng.c goes into the prefix's
#   system32, preferred over any builtin one (a DllOverrides registry key): in the prefix
#   rather than in the environment, so that processes Wine starts itself (services started by
#   its services.exe) load it too.
# - A private Wine prefix under the target directory, created non-interactively on first use
#   (no Mono/Gecko prompts), keeps the user's ~/.wine out of it.
# Everything lands in <target-dir>/wine/<arch>/, so `cargo clean` removes it.
# Usage: runner.sh <program.exe> [args...]
set -euo pipefail
exe=${1:?usage: runner.sh <program.exe> [args...]}
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

case "$exe" in
  *i686-pc-windows-*) arch=i686 ;;
  *) arch=x86_64 ;;
esac

# The target directory: the part of the exe's path before /<triple>/ (cargo puts every
# cross-built artefact there), else CARGO_TARGET_DIR, else the workspace's target/.
abs_exe="$(cd "$(dirname "$exe")" && pwd)/$(basename "$exe")"
if [[ "$abs_exe" == */"$arch"-pc-windows-gnu/* ]]; then
  target_dir="${abs_exe%%/"$arch"-pc-windows-gnu/*}"
else
  target_dir="${CARGO_TARGET_DIR:-$here/../../target}"
fi
state="$target_dir/wine/$arch"
mkdir -p "$state"

if [ "$arch" = i686 ]; then
  wine_bin=$(command -v wine || true)
  export WINEARCH=win32
else
  # Debian's `wine` wrapper warns on every start when wine32 is missing; wine64 does not.
  wine_bin=$(command -v wine64 || { [ -x /usr/lib/wine/wine64 ] && echo /usr/lib/wine/wine64; } || command -v wine || true)
  export WINEARCH=win64
fi
if [ -z "$wine_bin" ]; then
  echo "runner.sh: Wine is not installed (Debian: apt-get install wine64 wine)" >&2
  exit 127
fi

export WINEPREFIX="$state/prefix"
export WINEDEBUG="${WINEDEBUG:--all}"
# One runner initialises the prefix and installs the shim; concurrent ones wait for it.
{
  flock 9
  bash "$here/build-shim.sh" "$arch" "$state/shim"
  if [ ! -f "$WINEPREFIX/system.reg" ]; then
    # mscoree/mshtml disabled: no Mono or Gecko installer dialogs. No display is needed.
    WINEDLLOVERRIDES="mscoree=;mshtml=" DISPLAY='' "$wine_bin" wineboot --init >/dev/null 2>&1
    DISPLAY='' "$wine_bin" reg add 'HKCU\Software\Wine\DllOverrides' \
      /v bcryptprimitives /d native,builtin /f >/dev/null 2>&1
    # wineboot returns before the registry is flushed; waiting for the wineserver does that.
    wineserver -w
  fi
  system32="$WINEPREFIX/drive_c/windows/system32"
  if [ ! "$system32/bcryptprimitives.dll" -nt "$state/shim/bcryptprimitives.dll" ]; then
    cp "$state/shim/bcryptprimitives.dll" "$system32/bcryptprimitives.dll"
  fi
} 9>"$state/.lock"

export DISPLAY=''
# Wine starts child processes through WINELOADER (Debian's wrapper sets it the same way).
export WINELOADER="$wine_bin"
# An absolute path: Wine misparses the command line of a relative Unix path to the program.
exec "$wine_bin" "$abs_exe" "${@:2}"
