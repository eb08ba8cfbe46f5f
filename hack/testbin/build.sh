#!/usr/bin/env bash
# Builds the binaries of the local test cluster from Go modules (no download sites needed):
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kubelet, kube-proxy, kwok.
# They land in $PULP_OPERATOR_TESTBIN (default ~/.cache/pulp-operator/testbin/<k8s version>) and are
# rebuilt only when missing or of another version.
set -euo pipefail
# shellcheck source=../lib/progress.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/progress.sh"

K8S_VERSION=v1.36.3
ETCD_VERSION=v3.6.16
KWOK_VERSION=v0.8.0

here=$(cd "$(dirname "$0")" && pwd)
out=${PULP_OPERATOR_TESTBIN:-$HOME/.cache/pulp-operator/testbin/$K8S_VERSION}
mkdir -p "$out"
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod

log() { printf '[testbin] %s\n' "$*" >&2; }
fail() { printf '[testbin] ERROR: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null || fail "go is not installed; the local cluster binaries cannot be built"

# Output captured first: `cmd | grep -q` under pipefail fails at random when grep exits early.
reports() { # expected substring, command...
  local want=$1 text
  shift
  text=$("$@" 2>/dev/null) || return 1
  [[ $text == *"$want"* ]]
}

has_version() { # binary, expected substring
  [ -x "$out/$1" ] && reports "$2" "$out/$1" --version
}

build_kubernetes() {
  local bins=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy) missing=0 b
  for b in "${bins[@]}"; do
    if [ "$b" = kubectl ]; then
      [ -x "$out/kubectl" ] && reports "$K8S_VERSION" "$out/kubectl" version --client || missing=1
    else
      has_version "$b" "$K8S_VERSION" || missing=1
    fi
  done
  [ $missing = 0 ] && { log "kubernetes $K8S_VERSION binaries present"; return; }
  local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  log "building kubernetes $K8S_VERSION (kube-apiserver, controller-manager, scheduler, kubectl, kubelet, kube-proxy)"
  local start=$SECONDS pkgs=()
  for b in "${bins[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  (cd "$here/kubernetes" && go build -v -trimpath -tags selinux,notest,grpcnotrace \
    -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION \
      -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor \
      -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION \
      -X k8s.io/component-base/version.gitTreeState=clean" \
    -o "$out/" "${pkgs[@]}") >"$out/build-kubernetes.log" 2>&1 &
  wait_with_progress $! "[testbin] kubernetes (go build -v: $out/build-kubernetes.log)" \
    || { tail -n 30 "$out/build-kubernetes.log" >&2; fail "building kubernetes $K8S_VERSION failed (see above)"; }
  log "kubernetes built in $((SECONDS - start)) s"
}

build_etcd() {
  has_version etcd "${ETCD_VERSION#v}" && { log "etcd $ETCD_VERSION present"; return; }
  log "building etcd $ETCD_VERSION"
  local start=$SECONDS
  (cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3) &
  wait_with_progress $! "[testbin] etcd" || fail "building etcd $ETCD_VERSION failed"
  log "etcd built in $((SECONDS - start)) s"
}

build_kwok() {
  if [ -x "$out/kwok" ] && reports "${KWOK_VERSION#v}" "$out/kwok" --version && [ -s "$out/kwok-stages.yaml" ]; then
    log "kwok $KWOK_VERSION present"; return
  fi
  log "building kwok $KWOK_VERSION"
  local start=$SECONDS
  GOBIN="$out" go install -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" \
    "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" &
  wait_with_progress $! "[testbin] kwok" || fail "building kwok $KWOK_VERSION failed"
  local src
  src=$(go env GOMODCACHE)/sigs.k8s.io/kwok@$KWOK_VERSION/kustomize/stage
  [ -d "$src" ] || fail "kwok stage files not found in $src"
  { for f in node/fast/node-initialize.yaml node/heartbeat/node-heartbeat.yaml \
      pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
      echo "---"; cat "$src/$f"; done; } > "$out/kwok-stages.yaml"
  log "kwok built in $((SECONDS - start)) s"
}

build_etcd
build_kwok
build_kubernetes
printf '%s\n' "$out"
