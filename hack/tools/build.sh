#!/usr/bin/env bash
# Builds the packaging and validation tools from Go modules and caches them by version:
#
#   helm               Helm 3 (helm lint --strict, helm template, the Helm install test)
#   bundle-validate    the OLM bundle validators of github.com/operator-framework/api (main.go here)
#   monitoring-check   the PromQL parser of Prometheus + the prometheus-operator v1 types (main.go)
#
# Each lands in ${PULP_OPERATOR_TOOLS:-~/.cache/pulp-operator}/<tool>/<version>/<tool>; the version
# of the two programs of this folder includes a hash of their go.mod, go.sum and main.go, so that
# a change rebuilds them. Cached binaries are kept (< 1 s when nothing changed).
#
# Usage: hack/tools/build.sh [--check] [TOOL...]   (default: all three); prints one path per tool.
# --check builds nothing: exit 3 with a message when a tool is missing (used by the tests).
set -euo pipefail

HELM_VERSION=v3.22.0
OLM_API_VERSION=v0.45.0       # github.com/operator-framework/api
PROMETHEUS_VERSION=v0.316.0   # github.com/prometheus/prometheus (Prometheus 3.16)

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${PULP_OPERATOR_TOOLS:-$HOME/.cache/pulp-operator}
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod
# shellcheck source=../lib/progress.sh
. "$here/../lib/progress.sh"

log() { printf '[tools] %s\n' "$*" >&2; }
fail() { printf '[tools] ERROR: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null || fail "go is not installed; the tools are built from Go modules"

sources_hash() { # dir: short hash of the wrapper module's files
  (cd "$1" && cat go.mod go.sum main.go 2>/dev/null) | sha256sum | cut -c1-10
}

# build TOOL VERSION DIR PACKAGE [LDFLAGS]: go build PACKAGE of the module in DIR, unless cached.
build() {
  local tool=$1 version=$2 dir=$3 pkg=$4 ldflags=${5:-} out bin
  out=$cache/$tool/$version
  bin=$out/$tool
  if [ -x "$bin" ]; then
    [ "$check" = 1 ] || log "$tool $version present"
    echo "$bin"
    return
  fi
  if [ "$check" = 1 ]; then
    printf '%s %s is not built (%s missing): run `make tools`\n' "$tool" "$version" "$bin" >&2
    exit 3
  fi
  log "building $tool $version (first time only; go output in $out.log)"
  mkdir -p "$out"
  : >"$out.log"
  progress "[tools] $tool" "$out.log" \
    bash -c 'cd "$1" && go build -v -trimpath -ldflags "-s -w $2" -o "$3.tmp" "$4"' \
    _ "$dir" "$ldflags" "$bin" "$pkg" || fail "building $tool $version failed (see $out.log)"
  mv -f "$bin.tmp" "$bin"
  echo "$bin"
}

check=0
if [ "${1:-}" = --check ]; then check=1; shift; fi
tools=("$@")
[ ${#tools[@]} -gt 0 ] || tools=(helm bundle-validate monitoring-check)
for tool in "${tools[@]}"; do
  case "$tool" in
    helm)
      build helm "$HELM_VERSION" "$here/helm" helm.sh/helm/v3/cmd/helm \
        "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
      ;;
    bundle-validate)
      build bundle-validate "$OLM_API_VERSION-$(sources_hash "$here/bundle-validate")" \
        "$here/bundle-validate" .
      ;;
    monitoring-check)
      build monitoring-check "$PROMETHEUS_VERSION-$(sources_hash "$here/monitoring-check")" \
        "$here/monitoring-check" .
      ;;
    *) fail "unknown tool $tool (helm, bundle-validate, monitoring-check)" ;;
  esac
done
