#!/usr/bin/env bash
# Installs the servers the end-to-end tests run on this machine, next to the real node (no mocks):
#   versitygw        S3 gateway (posix backend)            Go module, built here
#   fake-gcs-server  Google Cloud Storage JSON/XML API      Go module, built here
#   azurite          Azure Blob Storage emulator            npm package
#   postgresql       an external PostgreSQL                 Debian package (already on most machines)
#   redis-server     an external Redis                      Debian package
# The built ones land in ${PULP_OPERATOR_CACHE:-~/.cache/pulp-operator}/<tool>/<version> and are
# built only when that folder lacks them. Debian packages are installed only when missing; their
# services are not started (the tests start their own instances).
#
# Usage: hack/services/build.sh [TOOL...]   (default: all of versitygw fake-gcs-server azurite debian)
# Prints, per tool, whether it was present or how long it took.
set -euo pipefail
# shellcheck source=../lib/apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/apt.sh"

VERSITYGW_VERSION=v1.8.0
FAKE_GCS_SERVER_VERSION=v1.56.1
AZURITE_VERSION=3.37.0

cache=${PULP_OPERATOR_CACHE:-$HOME/.cache/pulp-operator}
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod

log() { printf '[services] %s\n' "$*" >&2; }
fail() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }

# A tool folder is complete when its stamp exists: the stamp is written last.
present() { [ -e "$1/.complete" ]; }

go_tool() { # NAME VERSION PACKAGE
  local name=$1 version=$2 pkg=$3 dir=$cache/$1/$2 start=$SECONDS
  if present "$dir"; then log "$name $version present"; return; fi
  command -v go >/dev/null || fail "go is not installed: $name cannot be built"
  log "building $name $version"
  rm -rf "$dir"; mkdir -p "$dir"
  GOBIN="$dir" go install -trimpath -ldflags "-s -w" "$pkg@$version" \
    || fail "building $name $version failed (see the go output above)"
  touch "$dir/.complete"
  log "$name built in $((SECONDS - start)) s ($(du -sh "$dir" | cut -f1))"
}

azurite() {
  local dir=$cache/azurite/$AZURITE_VERSION start=$SECONDS
  if present "$dir"; then log "azurite $AZURITE_VERSION present"; return; fi
  command -v npm >/dev/null || fail "npm is not installed: azurite cannot be installed"
  log "installing azurite $AZURITE_VERSION (npm)"
  rm -rf "$dir"; mkdir -p "$dir"
  npm install --prefix "$dir" --no-audit --no-fund --omit=dev --loglevel=error \
    "azurite@$AZURITE_VERSION" >&2 || fail "npm install azurite@$AZURITE_VERSION failed"
  [ -x "$dir/node_modules/.bin/azurite-blob" ] || fail "azurite-blob missing after npm install"
  touch "$dir/.complete"
  log "azurite installed in $((SECONDS - start)) s ($(du -sh "$dir" | cut -f1))"
}

debian() {
  local missing=() start=$SECONDS
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
  command -v redis-server >/dev/null || missing+=(redis-server)
  if [ ${#missing[@]} -eq 0 ]; then log "postgresql and redis-server present"; return; fi
  [ "$(id -u)" = 0 ] || fail "installing ${missing[*]} needs root (apt-get)"
  log "installing Debian packages: ${missing[*]}"
  host_apt_install "${missing[@]}" || fail "apt-get install ${missing[*]} failed"
  log "Debian packages installed in $((SECONDS - start)) s"
}

tools=("$@")
[ ${#tools[@]} -gt 0 ] || tools=(versitygw fake-gcs-server azurite debian)
for tool in "${tools[@]}"; do
  case "$tool" in
    versitygw) go_tool versitygw "$VERSITYGW_VERSION" github.com/versity/versitygw/cmd/versitygw ;;
    fake-gcs-server) go_tool fake-gcs-server "$FAKE_GCS_SERVER_VERSION" github.com/fsouza/fake-gcs-server ;;
    azurite) azurite ;;
    debian) debian ;;
    *) fail "unknown tool '$tool' (known: versitygw fake-gcs-server azurite debian)" ;;
  esac
done
