#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS each (default 30), starting from the seed
# corpus in fuzz/corpus/<target>/ (new inputs go to a scratch copy, so the kept corpus only
# changes when someone copies findings in on purpose). Installs what it needs idempotently:
# the nightly toolchain and cargo-fuzz. Exits non-zero on the first target that finds a crash;
# the reproducer is in fuzz/artifacts/<target>/.
#
#   bash scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds="${1:-30}"

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz

targets=$(cargo +nightly fuzz list --fuzz-dir fuzz)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cargo +nightly fuzz build --fuzz-dir fuzz
for target in $targets; do
  mkdir -p "$scratch/$target"
  echo "=== $target: ${seconds}s"
  # -max_total_time bounds the run; inputs up to 4 KiB cover every format's headers and files.
  cargo +nightly fuzz run --fuzz-dir fuzz "$target" "$scratch/$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 2>&1 |
    grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::new_units_added|==[0-9]+==|SUMMARY|Done)' || true
  # A crash leaves an artifact and a non-zero status, which grep's pipeline hides: check both.
  if compgen -G "fuzz/artifacts/$target/*" >/dev/null; then
    echo "$target: crash, see fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
echo "all targets ran ${seconds}s without a crash"
