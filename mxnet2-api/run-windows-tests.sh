#!/usr/bin/env bash
# Runs the C test programs built by build-windows.sh for x64 (walk.exe, threads.exe, linked
# with mxnet2_api.dll beside them) under Wine (scripts/wine/runner.sh) against a real license
# server: the Linux `dongle-relay server`, configured as tests/c/check.h expects (dongle serial
# 1234567890, user code 1234, AppSlot 1 with 2 seats, AppSlot 2 with 10, data 5 6 7,
# LoginTimeOut 1 s). The DLL and the programs are the Windows builds; only the server is not.
# 32-bit programs need Debian's wine32 (i386 multiarch), which CI does not install: x86 is
# built and its exports checked by build-windows.sh, not run.
#
# Usage: bash mxnet2-api/run-windows-tests.sh   (after build-windows.sh; CARGO_TARGET_DIR honoured)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
target_dir=${CARGO_TARGET_DIR:-$root/target}
out=$target_dir/windows/x86_64-pc-windows-gnu
for f in mxnet2_api.dll walk.exe threads.exe; do
  [ -f "$out/$f" ] || { echo "$out/$f is missing: run mxnet2-api/build-windows.sh first" >&2; exit 1; }
done
cargo build -q --bin dongle-relay
server_bin=$target_dir/debug/dongle-relay

work=$(mktemp -d)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
cat >"$work/mxnet2.ini" <<'INI'
[Option]
LoginTimeOut=1
[dongle1]
Sernr=1234567890
UserCode=1234
Limit1=2
Limit2=10
Data=5,6,7
INI
"$server_bin" --log warn server --config "$work/mxnet2.ini" --port 0 --ephemeral-key \
  >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
# Readiness: the banner's first line names the port (bounded wait).
port=
for _ in $(seq 1 200); do
  port=$(sed -n 's/^license server listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$work/server.out")
  [ -n "$port" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.err" >&2; exit 1; }
  sleep 0.05
done
[ -n "$port" ] || { echo "the license server did not start" >&2; exit 1; }
# A port nothing listens on, for walk.exe's "no server" case.
closed=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')

passed=0
failed=0
run() {
  local name=$1 expect=$2
  shift 2
  local log=$work/$name.log
  if timeout 300 bash scripts/wine/runner.sh "$out/$name.exe" "$@" >"$log" 2>&1 && grep -q "$expect" "$log"; then
    echo "ok: $name.exe under Wine ($expect)"
    passed=$((passed + 1))
  else
    echo "FAILED: $name.exe under Wine:" >&2
    cat "$log" >&2
    failed=$((failed + 1))
  fi
}
run walk "walk: ok" "$port" "$closed" 1000
run threads "threads: ok" "$port"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
