#!/usr/bin/env bash
# The project's test command: prepares the interoperability peers (Microsoft's Node HC clients)
# and the browser driver of the status-page test (playwright-core for Debian's chromium), and
# runs every test of the workspace.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup-node-interop.sh
export DONGLE_RELAY_NODE_MODULES="$root/.cache/node/node_modules"
bash scripts/setup-browser.sh
export DONGLE_RELAY_BROWSER_MODULES="$root/.cache/browser/node_modules"
cargo test --workspace --all-targets "$@"
