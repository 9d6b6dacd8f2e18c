#!/usr/bin/env bash
# Install what backup-drill's host runner and test suite need, and only what is
# missing. Safe to rerun.
#   - Debian packages: postgresql (server + client tools), redis-server, redis-tools
#   - MinIO server and mc, built with `go install` at the pinned versions below
#   - toxiproxy-server (the fault suite's proxy), built the same way
#     (MinIO is AGPL-licensed: we only ever run these binaries, never import them)
#   - Versity Gateway (a second, independent S3 server for the tests) and the
#     age CLI (age, age-keygen: the tests decrypt offsite copies with it), both
#     with `go install` at pinned versions
#   - node_modules (npm ci) when missing or out of date
# Env: BACKUP_DRILL_BIN  where minio and mc go (default /usr/local/bin if writable, else ~/.local/bin)
set -euo pipefail

# Keep in step with pipeline/versions.ts and src/toolbox.ts (test/repo.test.ts and test/dagger.module.test.ts check).
MC_MODULE="github.com/minio/mc"
MC_VERSION="v0.0.0-20250313080218-cf909e1063a9"
MINIO_MODULE="github.com/minio/minio"
MINIO_VERSION="v0.0.0-20260212201848-7aac2a2c5b7c"
VERSITYGW_MODULE="github.com/versity/versitygw/cmd/versitygw"
VERSITYGW_VERSION="v1.8.0"
AGE_MODULE="filippo.io/age"
AGE_VERSION="v1.3.2"
# The fault suite's proxy (test/faults/): latency, bandwidth, resets, black holes.
TOXIPROXY_MODULE="github.com/Shopify/toxiproxy/v2/cmd/server"
TOXIPROXY_VERSION="v2.5.0"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
say() { printf 'ensure-tools: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else SUDO="__none__"; fi
fi

# --- Debian packages ---------------------------------------------------------
missing=()
for pkg in postgresql redis-server redis-tools; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  [ "$SUDO" = "__none__" ] && die "need root or sudo to install: ${missing[*]}"
  say "installing ${missing[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  # policy-rc.d keeps the packages from starting system-wide servers; tests start their own.
  $SUDO sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  $SUDO rm -f /usr/sbin/policy-rc.d
else
  say "postgresql, redis-server, redis-tools: present"
fi

# --- MinIO server and mc, pinned -----------------------------------------------
command -v go >/dev/null 2>&1 || die "go is needed to build minio, mc and toxiproxy (https://go.dev/dl/)"
command -v setpriv >/dev/null 2>&1 || say "note: setpriv (util-linux) is missing: children then die with backup-drill through its watchdog only"
bin="${BACKUP_DRILL_BIN:-}"
if [ -z "$bin" ]; then
  if [ -w /usr/local/bin ]; then bin=/usr/local/bin; else bin="$HOME/.local/bin"; fi
fi
mkdir -p "$bin"

ensure_go_tool() { # name module version [package]  (package: what to install, default the module)
  local name="$1" module="$2" version="$3" pkg="${4:-$2}"
  if [ -x "$bin/$name" ] && go version -m "$bin/$name" 2>/dev/null | grep -q "mod[[:space:]]*${module%%/cmd/*}[[:space:]]*$version"; then
    say "$name $version: present in $bin"
    return
  fi
  say "building $name $version (go install; minio and versitygw take a few minutes the first time)"
  GOBIN="$bin" GOFLAGS="${GOFLAGS:-} -trimpath" go install "$pkg@$version"
}
ensure_go_tool mc "$MC_MODULE" "$MC_VERSION"
ensure_go_tool minio "$MINIO_MODULE" "$MINIO_VERSION"
ensure_go_tool versitygw "$VERSITYGW_MODULE" "$VERSITYGW_VERSION"
# age, age-keygen (and age-inspect, age-plugin-batchpass) from one module
ensure_go_tool age "$AGE_MODULE" "$AGE_VERSION" "$AGE_MODULE/cmd/..."
[ -x "$bin/age-keygen" ] || die "age-keygen missing after installing age"
# toxiproxy's command is named "server": build it aside and install it as toxiproxy-server.
if [ -x "$bin/toxiproxy-server" ] && go version -m "$bin/toxiproxy-server" 2>/dev/null | grep -q "mod[[:space:]]*github.com/Shopify/toxiproxy/v2[[:space:]]*$TOXIPROXY_VERSION"; then
  say "toxiproxy-server $TOXIPROXY_VERSION: present in $bin"
else
  say "building toxiproxy-server $TOXIPROXY_VERSION (go install)"
  tdir="$(mktemp -d)"
  GOBIN="$tdir" GOFLAGS="${GOFLAGS:-} -trimpath" go install "$TOXIPROXY_MODULE@$TOXIPROXY_VERSION"
  mv "$tdir/server" "$bin/toxiproxy-server"
  rmdir "$tdir"
fi
case ":$PATH:" in *":$bin:"*) ;; *) say "note: add $bin to PATH (backup-drill also looks there and in ~/go/bin)";; esac

# --- node_modules ----------------------------------------------------------------
cd "$here"
stamp="node_modules/.package-lock.sha256"
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  say "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
else
  say "node_modules: up to date"
fi
say "ok"
