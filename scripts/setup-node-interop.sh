#!/usr/bin/env bash
# Installs Microsoft's Hybrid Connections Node clients (hyco-ws 1.0.5, hyco-https 1.4.5) into
# .cache/node for the interoperability tests. Idempotent: does nothing when already installed.
#
# `npm install hyco-ws` fails because the package declares bogus dependencies (`http`,
# `crypto`, ... at "latest"), so we install its real dependencies (ws 1.1.5, moment; hyco-https
# needs ws 6) and unpack the package tarballs by hand.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/.cache/node"
marker="$dir/.installed-v1"
[ -f "$marker" ] && exit 0
command -v npm >/dev/null || { echo "setup-node-interop: npm not found" >&2; exit 1; }
rm -rf "$dir"
mkdir -p "$dir/node_modules" "$dir/tarballs"
cd "$dir"
echo '{"name":"dongle-relay-interop","private":true}' > package.json
npm install --no-audit --no-fund --loglevel=error ws@1.1.5 moment@2 >/dev/null
(cd tarballs && npm pack --silent hyco-ws@1.0.5 hyco-https@1.4.5 >/dev/null)
for pkg in hyco-ws-1.0.5 hyco-https-1.4.5; do
  name="${pkg%-*}"
  mkdir -p "node_modules/$name"
  tar -xzf "tarballs/$pkg.tgz" -C "node_modules/$name" --strip-components=1
done
# hyco-https wants ws 6 while hyco-ws wants ws 1.1.x: give hyco-https its own copy.
mkdir -p node_modules/hyco-https/node_modules
(cd tarballs && npm pack --silent ws@6 >/dev/null)
mkdir -p node_modules/hyco-https/node_modules/ws
tar -xzf tarballs/ws-6.*.tgz -C node_modules/hyco-https/node_modules/ws --strip-components=1
npm install --no-audit --no-fund --loglevel=error --prefix node_modules/hyco-https/node_modules/ws async-limiter@1 >/dev/null 2>&1 || true
node -e "require('$dir/node_modules/hyco-ws'); require('$dir/node_modules/hyco-https'); console.log('hyco-ws and hyco-https load')"
touch "$marker"
