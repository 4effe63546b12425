#!/usr/bin/env bash
# Installs playwright-core (the driver only: no browser download) into .cache/browser for the
# status-page browser test (tests/status_page.rs drives Debian's /usr/bin/chromium with it).
# Idempotent: does nothing when already installed. Chromium itself comes from apt (.ci/run).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/.cache/browser"
version="1.65.1"
marker="$dir/.installed-$version"
[ -f "$marker" ] && exit 0
command -v npm >/dev/null || { echo "setup-browser: npm not found" >&2; exit 1; }
rm -rf "$dir"
mkdir -p "$dir"
cd "$dir"
echo '{"name":"dongle-relay-browser-tests","private":true}' > package.json
# playwright-core never downloads browsers; the variable keeps any future install hook quiet.
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --loglevel=error \
  "playwright-core@$version" >/dev/null
node -e "require('$dir/node_modules/playwright-core'); console.log('playwright-core $version loads')"
touch "$marker"
