#!/usr/bin/env bash
# The Windows part of CI (issue #13), on Linux: installs what it needs (idempotently: Debian's
# mingw-w64 and Wine, the Rust target), lints the Windows build, builds dongle-relay.exe, runs
# `dongle-relay.exe demo` under Wine (it must exit 0), runs the license server as a Windows
# service under Wine's Service Control Manager (start, stop with a drain, exit 0; the event
# log source registered by install and removed by uninstall), and runs
# the workspace's tests as Windows executables under Wine (the runner in .cargo/config.toml;
# scripts/wine/). Its last lines sum up the test counts and the time taken. Run from
# anywhere; uses CARGO_TARGET_DIR if set.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Cargo finds .cargo/config.toml (linker, Wine runner) from the working directory.
cd "$root"
target=x86_64-pc-windows-gnu
start=$(date +%s)
step() { echo; echo "=== windows: $* ($(( $(date +%s) - start ))s)"; }

step "system packages"
need=()
command -v x86_64-w64-mingw32-gcc >/dev/null || need+=(gcc-mingw-w64-x86-64)
# Debian's wine64 package puts the loader in /usr/lib/wine; `wine` is the wrapper.
{ command -v wine64 >/dev/null || [ -x /usr/lib/wine/wine64 ]; } || need+=(wine64)
command -v wine >/dev/null || need+=(wine)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi

step "rust target $target"
rustup target list --installed | grep -qx "$target" || rustup target add "$target"

step "Wine shim (bcryptprimitives.dll, built from scripts/wine/processprng.c)"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
bash scripts/wine/build-shim.sh x86_64 "$target_dir/wine/x86_64/shim"

step "cargo clippy --target $target"
cargo clippy --workspace --all-targets --target "$target" -- -D warnings

step "cargo build --target $target --bin dongle-relay"
cargo build --target "$target" --bin dongle-relay

step "dongle-relay.exe demo under Wine (must exit 0)"
# --log warn: the walk-through's own lines, not every component's log.
timeout 300 cargo run -q --target "$target" --bin dongle-relay -- --log warn demo --port 0

step "the server as a service under Wine's SCM: install, net start, net stop drains, uninstall"
# The service process runs on after this script if a check fails; wineserver -k (with this
# WINEPREFIX) ends it.
run() { bash scripts/wine/runner.sh "$@"; }
exe="$target_dir/$target/debug/dongle-relay.exe"
system32="$target_dir/wine/x86_64/prefix/drive_c/windows/system32"
svc=dongle-relay-ci-$$
run "$exe" service install --name "$svc" -- --log info server --port 0 --dongle simulated \
  --ephemeral-key
cleanup_service() { run "$exe" service uninstall --name "$svc" >/dev/null 2>&1 || true; }
trap cleanup_service EXIT
# install registers the event log source with this exe as its message file; uninstall
# removes it. (Wine's event log only traces ReportEventW on its debug channel: no entries to
# read back, so the entries themselves are checked on real Windows only.)
evsource='HKLM\SYSTEM\CurrentControlSet\Services\EventLog\Application\dongle-relay'
run "$system32/reg.exe" query "$evsource" | grep -q 'EventMessageFile.*dongle-relay.exe'
timeout 120 bash scripts/wine/runner.sh "$system32/net.exe" start "$svc"
query=$(run "$exe" service query --name "$svc"); echo "$query"
grep -q 'state    Running' <<<"$query"
timeout 120 bash scripts/wine/runner.sh "$system32/net.exe" stop "$svc"
query=$(run "$exe" service query --name "$svc"); echo "$query"
grep -q 'state    Stopped' <<<"$query" && grep -q 'exit     Win32(0)' <<<"$query"
run "$exe" service uninstall --name "$svc"
trap - EXIT
if run "$system32/reg.exe" query "$evsource" >/dev/null 2>&1; then
  echo "the event log source is still registered after uninstall" >&2; exit 1
fi

step "tests under Wine"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
tests_start=$(date +%s)
set +e
timeout 1800 cargo test --target "$target" --workspace --all-targets --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One line for the whole run: cargo prints a `test result:` line per test executable.
awk -v secs=$(( $(date +%s) - tests_start )) -v status="$status" '
  /^test result:/ { passed += $4; failed += $6; ignored += $8; binaries++ }
  END {
    printf "windows tests under Wine: %d passed; %d failed; %d ignored (%d test executables, %d s, exit %d)\n",
      passed, failed, ignored, binaries, secs, status
  }' "$log"
echo "windows CI: $(( $(date +%s) - start )) s in all"
exit "$status"
