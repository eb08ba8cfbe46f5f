#!/usr/bin/env bash
# Builds the OpenTelemetry Collector of the telemetry sidecar's stand-in image from Go modules
# (wrapper module hack/otelcol: OTLP receiver, batch and memory_limiter processors, Prometheus
# exporter). The static binary lands in ${PULP_OPERATOR_OTELCOL:-~/.cache/pulp-operator/otelcol}/
# <version>/otelcol and is rebuilt only when missing or of another version; hack/images/build.sh
# packs it into docker.io/otel/opentelemetry-collector:<version>.
#
# Usage: hack/otelcol/build.sh   (prints the path of the binary)
set -euo pipefail

OTELCOL_VERSION=0.165.0 # keep in sync with go.mod here and OTELCOL_VERSION in hack/images/build.sh

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${PULP_OPERATOR_OTELCOL:-$HOME/.cache/pulp-operator/otelcol}/$OTELCOL_VERSION
log() { printf '[otelcol] %s\n' "$*" >&2; }

# output captured first: `cmd | grep -q` under pipefail fails at random when grep exits early
if [ -x "$out/otelcol" ] && [[ $("$out/otelcol" --version 2>/dev/null) == *"$OTELCOL_VERSION"* ]]; then
  log "otelcol $OTELCOL_VERSION present"
  printf '%s\n' "$out/otelcol"
  exit 0
fi
command -v go >/dev/null || { log "ERROR: go is not installed; the collector cannot be built"; exit 1; }
log "building otelcol $OTELCOL_VERSION"
start=$SECONDS
mkdir -p "$out"
(cd "$here" && CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod go build -trimpath \
  -ldflags "-s -w -X main.version=$OTELCOL_VERSION" -o "$out/otelcol.tmp" .)
mv "$out/otelcol.tmp" "$out/otelcol"
log "otelcol built in $((SECONDS - start)) s ($(du -h "$out/otelcol" | cut -f1))"
printf '%s\n' "$out/otelcol"
