#!/usr/bin/env bash
# Builds the test-only bcryptprimitives.dll (scripts/wine/processprng.c) for one Windows
# architecture into <dir>/bcryptprimitives.dll, unless it is already newer than its source.
# Usage: build-shim.sh x86_64|i686 <dir>
set -euo pipefail
arch=${1:?arch: x86_64 or i686}
dir=${2:?output directory}
src="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/processprng.c"
out="$dir/bcryptprimitives.dll"
if [ -f "$out" ] && [ "$out" -nt "$src" ]; then
  exit 0
fi
mkdir -p "$dir"
# --kill-at: on i686 the stdcall export is named ProcessPrng, not ProcessPrng@8, as in
# Windows' own DLL (a no-op on x86_64). advapi32 provides SystemFunction036.
"$arch-w64-mingw32-gcc" -O2 -Wall -Werror -shared -s -Wl,--kill-at \
  -o "$out.tmp" "$src" -ladvapi32
mv "$out.tmp" "$out"
