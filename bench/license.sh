#!/usr/bin/env bash
# License-engine benchmark: login-refresh operations per second, in-process on the engine and
# over real TCP on loopback (persistent connections) with 1 and 64 concurrent clients.
# Builds license-server's `refresh_bench` example in release mode and prints its figures.
# Usage: bash bench/license.sh [--seconds N]   (default 3 s per phase)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release -q -p license-server --example refresh_bench
# bench/run builds into its own target directory (CARGO_TARGET_DIR); honour it.
exec "${CARGO_TARGET_DIR:-target}/release/examples/refresh_bench" "$@"
