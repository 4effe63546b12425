#!/usr/bin/env bash
# Builds the Windows x64 release artefacts (issue #13) under dist/ (gitignored):
#   dongle-relay-<version>-x86_64-windows.zip   dongle-relay.exe, the client library
#       (mxnet2_api.dll with its import library for x64 and x86, its header), example
#       configurations with Windows paths, a README, docs/windows.md and
#       docs/client-library.md, SHA256SUMS.txt
#   dongle-relay-<version>-x86_64-windows.msi   the same files, installed to
#       C:\Program Files\dongle-relay (deploy/windows/dongle-relay.wxs, built with wixl)
#   dongle-relay-<version>-x86_64-windows.sha256   sha256sum of the zip and the MSI
# (with --profile debug, the names end in -debug: dongle-relay-<version>-x86_64-windows-debug.zip)
# Both are cross-built on Linux with mingw-w64 (.cargo/config.toml). The Wine test shim
# (scripts/wine/processprng.c, a bcryptprimitives.dll) is never packaged; --check proves it.
#
# --check (CI): then verifies the artefacts: the zip holds exactly the expected files and no
# shim, the sums match, the MSI holds the same files, and under Wine (the prefix of
# scripts/wine/runner.sh) `msiexec /i` installs it, the installed dongle-relay.exe runs and
# reports this version, a higher version built from the same files replaces it, the older one
# is then refused, and `msiexec /x` removes it all. Any failure exits non-zero.
#
# Usage: bash scripts/dist-windows.sh [--profile debug|release] [--check]
#        (default: release; CI uses --profile debug --check to stay short)
# Installs what it needs idempotently (Debian: mingw-w64, zip, wixl, msitools; wine64 for
# --check; cargo-about for the licence notices). Uses CARGO_TARGET_DIR if set.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

profile=release
check=false
while [ $# -gt 0 ]; do
  case $1 in
    --profile) profile=${2:-}; shift 2 || { echo "--profile needs a value" >&2; exit 2; } ;;
    --profile=*) profile=${1#--profile=}; shift ;;
    --check) check=true; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
case $profile in
  debug|release) ;;
  *) echo "--profile must be debug or release, not '$profile'" >&2; exit 2 ;;
esac

target=x86_64-pc-windows-gnu
target_dir="${CARGO_TARGET_DIR:-$root/target}"
start=$(date +%s)
step() { echo; echo "=== dist-windows: $* ($(( $(date +%s) - start ))s)"; }
fail() { echo "dist-windows: FAILED: $*" >&2; exit 1; }
# same EXPECTED ACTUAL WHAT: fails with the difference unless the two lists are equal.
same() {
  [ "$1" = "$2" ] && return 0
  diff <(echo "$1") <(echo "$2") >&2 || true
  fail "$3"
}

step "system packages"
need=()
command -v x86_64-w64-mingw32-gcc >/dev/null || need+=(gcc-mingw-w64-x86-64)
command -v zip >/dev/null || need+=(zip)
command -v unzip >/dev/null || need+=(unzip)
command -v wixl >/dev/null || need+=(wixl)
command -v msiinfo >/dev/null || need+=(msitools)
if $check; then
  { command -v wine64 >/dev/null || [ -x /usr/lib/wine/wine64 ]; } || need+=(wine64)
  command -v wine >/dev/null || need+=(wine)
fi
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
rustup target list --installed | grep -qx "$target" || rustup target add "$target"
# cargo-about writes the third-party licence texts (THIRD-PARTY-NOTICES.txt).
cargo about --version 2>/dev/null | grep -q '^cargo-about 0\.9\.3$' \
  || cargo install --locked --features cli cargo-about@0.9.3

version=$(cargo metadata --no-deps --format-version 1 | python3 -c '
import json, sys
meta = json.load(sys.stdin)
pkg = next(p for p in meta["packages"] if p["name"] == "dongle-relay")
print(pkg["version"], pkg.get("license") or "see the source repository")')
license=${version#* }
version=${version%% *}
# MSI versions are three numbers below 256.65536.65536: a pre-release suffix is dropped.
msi_version=${version%%[-+]*}
[[ $msi_version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "version $version has no MSI form"
# A debug build (CI's) says so in its names, so it is never taken for a release.
name=dongle-relay-$version-x86_64-windows
[ "$profile" = release ] || name=$name-$profile
echo "dongle-relay $version ($profile), licence $license"

step "dongle-relay.exe ($profile)"
# Built as scripts/windows-ci.sh builds it (no CC_* variables), so that in CI, after that
# script, this is no rebuild; the DLL below is built as .ci/run's client library step does.
flags=(--target "$target" --bin dongle-relay)
[ "$profile" = release ] && flags+=(--release)
cargo build "${flags[@]}"
exe=$target_dir/$target/$profile/dongle-relay.exe

step "client library mxnet2_api.dll, x64 and x86 ($profile; build-windows.sh checks the exports)"
# Both: a program loads only a DLL of its own bitness, and many license clients are 32-bit.
PROFILE=$profile bash mxnet2-api/build-windows.sh "$target" i686-pc-windows-gnu

step "staging"
dist=$root/dist
work=$target_dir/dist-windows/$profile
stage=$work/$name
rm -rf "$work"
mkdir -p "$stage/client/x64" "$stage/client/x86" "$stage/examples" "$stage/docs" "$dist"
cp "$exe" "$stage/dongle-relay.exe"
# The name the DLL's own import library and the docs use; Windows loads it for programs that
# import Mxnet2_api.dll (DLL names are case-insensitive there).
client=$target_dir/windows
cp "$client/$target/mxnet2_api.dll" "$client/$target/libmxnet2_api.dll.a" "$stage/client/x64/"
cp "$client/i686-pc-windows-gnu/mxnet2_api.dll" "$client/i686-pc-windows-gnu/libmxnet2_api.dll.a" \
  "$client/i686-pc-windows-gnu/mxnet2_api.def" "$stage/client/x86/"
cp mxnet2-api/include/mxnet2_api.h "$stage/client/"
# Text for Notepad: CRLF line ends. Placeholders of the README filled in.
crlf() { sed 's/\r$//; s/$/\r/' "$1" >"$2"; }
sed -e "s/@VERSION@/$version/g" -e "s/@LICENSE@/$license/g" deploy/windows/README.txt \
  >"$work/README.txt"
crlf "$work/README.txt" "$stage/README.txt"
crlf docs/windows.md "$stage/docs/windows.md"
crlf docs/client-library.md "$stage/docs/client-library.md"
# The examples of deploy/ with the Linux locations replaced by the Windows ones
# (C:\ProgramData\dongle-relay, docs/windows.md): backslashes in the INI file, forward slashes
# in TOML, where a backslash in a quoted string is an escape. Any Unix path left fails below.
for f in mxnet2.example.ini listener.example.toml proxy.example.toml relay.example.toml; do
  case $f in
    *.ini) comment=';'; dir='C:\\ProgramData\\dongle-relay'; sep='\\' ;;
    *) comment='#'; dir='C:/ProgramData/dongle-relay'; sep='/' ;;
  esac
  {
    echo "$comment Windows copy of deploy/$f (dongle-relay $version): its Linux paths moved to"
    echo "$comment C:\\ProgramData\\dongle-relay. Services: docs\\windows.md, not the systemd units"
    echo "$comment named below."
    sed -e "s|/etc/dongle-relay/|$dir$sep|g" -e "s|/var/log/dongle-relay|$dir${sep}logs|g" \
      -e "s|/var/lib/dongle-relay|$dir|g" "deploy/$f"
  } >"$work/$f"
  if grep -nE '(^|[^A-Za-z0-9:.])/(etc|var|usr|run|opt|home|srv)/' "$work/$f"; then
    fail "deploy/$f still names a Unix path after the Windows translation (lines above)"
  fi
  crlf "$work/$f" "$stage/examples/$f"
done

# Licences: ours, and every third-party one whose code is in the exe or the DLLs. The crates'
# texts come from cargo-about (about.toml, about.hbs: from each crate's own licence files, no
# network lookups); the C libraries the crates compile in (libusb, LGPL-2.1; SQLite, public
# domain) follow from deploy/windows/C-LIBRARIES.txt with libusb's own licence text.
crlf LICENSE-MIT "$stage/LICENSE-MIT.txt"
crlf LICENSE-APACHE "$stage/LICENSE-APACHE.txt"
crate_version() {
  cargo metadata --format-version 1 --locked --filter-platform "$target" 2>/dev/null \
    | python3 -c 'import json,sys; n=sys.argv[1]; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"]==n))' "$1"
}
usb_sys=$(crate_version libusb1-sys) || fail "libusb1-sys is not in the Windows build's dependencies"
sqlite_sys=$(crate_version libsqlite3-sys) || fail "libsqlite3-sys is not in the Windows build's dependencies"
registry=$(cargo metadata --format-version 1 --locked 2>/dev/null \
  | python3 -c 'import json,sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"]=="libusb1-sys"))')
libusb_src=$(dirname "$registry")/libusb
[ -f "$libusb_src/COPYING" ] || fail "libusb's licence text is not at $libusb_src/COPYING"
libusb_version=$(sed -n 's/^#define LIBUSB_\(MAJOR\|MINOR\|MICRO\) \([0-9]*\).*/\2/p' \
  "$libusb_src/libusb/version.h" | paste -sd.)
repository=$(cargo metadata --format-version 1 --no-deps --locked 2>/dev/null \
  | python3 -c 'import json,sys; print(next(p["repository"] or "" for p in json.load(sys.stdin)["packages"] if p["name"]=="dongle-relay"))')
[ -n "$repository" ] || fail "Cargo.toml's [package] has no repository: the LGPL notice must say where the source is"
cargo about generate --offline --locked --fail about.hbs -o "$work/crates-notices.txt" \
  || fail "cargo about generate failed (see above)"
{
  cat "$work/crates-notices.txt"
  echo
  sed -e "s|@LIBUSB_VERSION@|$libusb_version|" -e "s|@LIBUSB1_SYS_VERSION@|$usb_sys|g" \
    -e "s|@LIBSQLITE3_SYS_VERSION@|$sqlite_sys|" -e "s|@REPOSITORY@|$repository|" \
    deploy/windows/C-LIBRARIES.txt
  cat "$libusb_src/COPYING"
} >"$work/THIRD-PARTY-NOTICES.txt"
crlf "$work/THIRD-PARTY-NOTICES.txt" "$stage/THIRD-PARTY-NOTICES.txt"

(cd "$stage" && find . -type f ! -name SHA256SUMS.txt -printf '%P\n' | LC_ALL=C sort \
  | xargs -d '\n' sha256sum >"$work/SHA256SUMS.txt")
crlf "$work/SHA256SUMS.txt" "$stage/SHA256SUMS.txt"

step "zip"
zip_file=$dist/$name.zip
rm -f "$zip_file"
# -X: no Unix extra fields; fixed order for a listing that reads the same every time.
(cd "$work" && find "$name" -type f | LC_ALL=C sort | zip -q -X "$zip_file" -@)

step "MSI (wixl, deploy/windows/dongle-relay.wxs)"
msi_file=$dist/$name.msi
# Every staged file but the exe (declared in the .wxs itself) as one component group, so the
# MSI and the zip cannot list different files; 64-bit components like the exe's.
(cd "$stage" && find . -type f ! -path ./dongle-relay.exe | LC_ALL=C sort) \
  | wixl-heat -p ./ --directory-ref INSTALLDIR --component-group Payload --var var.SourceDir \
  | sed 's/Guid="\*"/Guid="*" Win64="yes"/' >"$work/payload.wxs"
# next_patch VERSION: the version with its patch number one higher.
next_patch() {
  local major minor patch
  IFS=. read -r major minor patch <<<"$1"
  echo "$major.$minor.$((patch + 1))"
}
# build_msi VERSION OUT: wixl resolves Source= relative to the working directory only.
build_msi() {
  rm -f "$2"
  (cd "$work" && wixl -a x64 -D "Version=$1" -D "NextVersion=$(next_patch "$1")" \
    -D "SourceDir=$name" -o "$2" "$root/deploy/windows/dongle-relay.wxs" payload.wxs)
}
build_msi "$msi_version" "$msi_file"

step "SHA-256 sums"
(cd "$dist" && sha256sum "$name.zip" "$name.msi" >"$name.sha256")
cat "$dist/$name.sha256"
ls -l "$zip_file" "$msi_file"

if ! $check; then
  echo "dist-windows: $(( $(date +%s) - start )) s"
  exit 0
fi

# ---------------------------------------------------------------------------------------------
step "check: the zip's files"
expected=$(cd "$stage" && find . -type f -printf "$name/%P\n" | LC_ALL=C sort)
for f in dongle-relay.exe client/x64/mxnet2_api.dll client/x64/libmxnet2_api.dll.a \
  client/x86/mxnet2_api.dll client/x86/libmxnet2_api.dll.a client/x86/mxnet2_api.def \
  client/mxnet2_api.h README.txt SHA256SUMS.txt docs/windows.md examples/mxnet2.example.ini \
  LICENSE-MIT.txt LICENSE-APACHE.txt THIRD-PARTY-NOTICES.txt; do
  grep -qx "$name/$f" <<<"$expected" || fail "the staged release lacks $f"
done
# Each DLL in the folder of its architecture.
for pair in dongle-relay.exe:pei-x86-64 client/x64/mxnet2_api.dll:pei-x86-64 \
  client/x86/mxnet2_api.dll:pei-i386; do
  format=$(x86_64-w64-mingw32-objdump -f "$stage/${pair%%:*}" | sed -n 's/.*file format //p')
  [ "$format" = "${pair#*:}" ] || fail "${pair%%:*} is $format, not ${pair#*:}"
done
# The notices cover the crates (a TLS and a SQLite crate as samples) and the C libraries.
for needle in '^  rustls ' '^  libsqlite3-sys ' '^libusb [0-9]' 'GNU LESSER GENERAL PUBLIC LICENSE' \
  'SQLite (crate libsqlite3-sys'; do
  grep -q "$needle" "$work/THIRD-PARTY-NOTICES.txt" \
    || fail "THIRD-PARTY-NOTICES.txt lacks /$needle/"
done
if grep -q '@[A-Z0-9_]*@' "$work/THIRD-PARTY-NOTICES.txt"; then
  fail "THIRD-PARTY-NOTICES.txt has an unfilled placeholder"
fi
listing=$(unzip -Z1 "$zip_file" | LC_ALL=C sort)
echo "$listing"
same "$expected" "$listing" "the zip's listing differs from the staged files"
if grep -qi 'bcryptprimitives' <<<"$listing"; then fail "the zip contains the Wine test shim"; fi
# Nothing in it may be the shim under another name: the shim is the only DLL exporting
# ProcessPrng, and every PE file's exports are checked for it.
unpacked=$work/unpacked
mkdir -p "$unpacked"
unzip -q -o "$zip_file" -d "$unpacked"
while IFS= read -r -d '' pe; do
  if x86_64-w64-mingw32-objdump -p "$pe" | sed -n '/\[Ordinal\/Name Pointer\] Table/,/^$/p' \
    | grep -q 'ProcessPrng'; then
    fail "$pe exports ProcessPrng: the Wine test shim"
  fi
done < <(find "$unpacked" -type f \( -iname '*.dll' -o -iname '*.exe' \) -print0)
(cd "$unpacked/$name" && sed 's/\r$//' SHA256SUMS.txt | sha256sum --quiet -c -) \
  || fail "SHA256SUMS.txt does not match the zip's files"
(cd "$dist" && sha256sum --quiet -c "$name.sha256") || fail "$name.sha256 does not match"
echo "ok: $(wc -l <<<"$listing") files as staged, no shim, sums match"

step "check: the MSI's files"
# The rows of one table of the MSI (msiinfo ends lines with CRLF; 3 header lines).
msi_rows() { msiinfo export "$msi_file" "$1" | tr -d '\r' | tail -n +4; }
# FileName is "SHORT~1|long name" when the name is not 8.3; the long name is what installs.
msi_files=$(msi_rows File | cut -f3 | sed 's/^[^|]*|//' | LC_ALL=C sort)
zip_names=$(sed 's|.*/||' <<<"$expected" | LC_ALL=C sort)
same "$zip_names" "$msi_files" "the MSI's File table differs from the zip"
components=$(msi_rows Component | cut -f1 | LC_ALL=C sort)
featured=$(msi_rows FeatureComponents | cut -f2 | LC_ALL=C sort)
same "$components" "$featured" "the MSI has components that no feature installs"
echo "ok: the MSI's File table holds the zip's $(wc -l <<<"$msi_files") files, all in the feature"

step "check: under Wine: msiexec /i, the installed exe runs, upgrade, no downgrade, msiexec /x"
run() { bash scripts/wine/runner.sh "$@"; }
wine_win() { printf 'Z:%s' "${1//\//\\}"; }
# Running the built exe first creates the runner's prefix (and its ProcessPrng shim, which
# lives in the prefix's system32, never in the package).
built_version=$(run "$exe" --version | tr -d '\r') || fail "the built exe does not run under Wine"
[ "$built_version" = "dongle-relay $version" ] || fail "built exe says '$built_version'"
prefix=$target_dir/wine/x86_64/prefix
system32=$prefix/drive_c/windows/system32
installed="$prefix/drive_c/Program Files/dongle-relay"
msiexec() { timeout 300 bash scripts/wine/runner.sh "$system32/msiexec.exe" "$@"; }
# The products installed under our name, one "ProductCode DisplayVersion" line each, from the
# Uninstall keys.
installed_products() {
  run "$system32/reg.exe" query 'HKLM\Software\Microsoft\Windows\CurrentVersion\Uninstall' /s \
    2>/dev/null | tr -d '\r' | awk '
      function flush() { if (ours) print code, version; ours = 0; version = "" }
      /^HKEY/ { flush(); code = $0; sub(/.*\\/, "", code) }
      $1 == "DisplayName" && $3 == "dongle-relay" { ours = 1 }
      $1 == "DisplayVersion" { version = $3 }
      END { flush() }' | LC_ALL=C sort
}
installed_versions() { installed_products | cut -d' ' -f2; }
# A previous run's installation (a failed check) is removed first.
installed_products | while read -r code _; do msiexec /x "$code" /qn </dev/null || true; done
[ -z "$(installed_products)" ] || fail "cannot remove dongle-relay from the Wine prefix"
# Probes, built from the same files: a rebuild of this version (a new ProductCode, as every
# build has) and the next patch version (same UpgradeCode).
rebuild_msi=$work/rebuild-probe-$msi_version.msi
build_msi "$msi_version" "$rebuild_msi"
next_version=$(next_patch "$msi_version")
next_msi=$work/upgrade-probe-$next_version.msi
build_msi "$next_version" "$next_msi"

msiexec /i "$(wine_win "$msi_file")" /qn /l*v "$(wine_win "$work/install.log")" \
  || { cat "$work/install.log" >&2 || true; fail "msiexec /i failed"; }
while IFS= read -r f; do
  [ -f "$installed/${f#"$name"/}" ] || fail "not installed: ${f#"$name"/}"
done <<<"$expected"
[ ! -e "$installed/bcryptprimitives.dll" ] || fail "the shim was installed"
installed_version=$(run "$installed/dongle-relay.exe" --version | tr -d '\r') \
  || fail "the installed dongle-relay.exe does not run"
[ "$installed_version" = "dongle-relay $version" ] \
  || fail "the installed dongle-relay.exe says '$installed_version'"
run "$installed/dongle-relay.exe" service --help | tr -d '\r' | grep -q 'install' \
  || fail "the installed exe's 'service --help' does not document install"
[ "$(installed_versions)" = "$msi_version" ] \
  || fail "products after install: '$(installed_products)', expected $msi_version"
echo "ok: installed $(wc -l <<<"$expected") files; the installed exe says '$installed_version'"

# The installed example of the license server, its paths translated, starts the server on
# Windows: it is read, and its LogFileFolder (C:\ProgramData\dongle-relay\logs) is created.
logs=$prefix/drive_c/ProgramData/dongle-relay/logs
rm -rf "$logs"
example="C:\\Program Files\\dongle-relay\\examples\\mxnet2.example.ini"
# The runner itself in the background (not the run function's subshell): it execs Wine, so
# $! is the server's own process.
bash scripts/wine/runner.sh "$installed/dongle-relay.exe" --log warn server --config "$example" \
  --port 0 --dongle simulated --ephemeral-key >"$work/server.out" 2>"$work/server.err" &
server=$!
banner=
for _ in $(seq 1 600); do  # at most 60 s: the banner is the readiness signal
  banner=$(grep -m1 '^license server listening on' "$work/server.out" || true)
  [ -n "$banner" ] && break
  kill -0 "$server" 2>/dev/null || break
  sleep 0.1
done
kill "$server" 2>/dev/null || true
wait "$server" 2>/dev/null || true
if [ -z "$banner" ]; then
  cat "$work/server.out" "$work/server.err" >&2
  fail "the server did not start with examples\\mxnet2.example.ini"
fi
[ -d "$logs" ] || fail "the server did not create the example's LogFileFolder"
echo "ok: the installed exe starts the license server with examples\\mxnet2.example.ini"

first=$(installed_products)
msiexec /i "$(wine_win "$rebuild_msi")" /qn || fail "installing a rebuild of $msi_version failed"
[ "$(installed_versions)" = "$msi_version" ] && [ "$(installed_products)" != "$first" ] \
  || fail "products after a rebuild: '$(installed_products)', expected it to replace '$first'"
echo "ok: a rebuild of $msi_version replaced the installed one (one product installed)"
msiexec /i "$(wine_win "$next_msi")" /qn || fail "upgrading to $next_version failed"
[ "$(installed_versions)" = "$next_version" ] \
  || fail "products after the upgrade: '$(installed_products)', expected only $next_version"
[ -f "$installed/dongle-relay.exe" ] || fail "the upgrade removed dongle-relay.exe"
echo "ok: $next_version replaced $msi_version (one product installed)"
if msiexec /i "$(wine_win "$msi_file")" /qn >/dev/null 2>&1; then
  fail "installing $msi_version over $next_version (a downgrade) succeeded"
fi
[ "$(installed_versions)" = "$next_version" ] || fail "the refused downgrade changed the products"
echo "ok: the downgrade to $msi_version was refused"

msiexec /x "$(wine_win "$next_msi")" /qn || fail "msiexec /x failed"
[ ! -e "$installed" ] || fail "msiexec /x left $installed behind: $(ls -R "$installed")"
[ -z "$(installed_products)" ] || fail "msiexec /x left the product registered"
echo "ok: uninstalled, the folder and the product entry are gone"
echo "dist-windows check: $(( $(date +%s) - start )) s in all"
