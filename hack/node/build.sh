#!/usr/bin/env bash
# Builds what the local single test node (devcluster/src/pulp_devcluster/node/) needs besides the
# Kubernetes binaries of hack/testbin/build.sh:
#   coredns   CoreDNS from Go modules (wrapper module hack/node/coredns, only the plugins used)
#   busybox   a tiny OCI image (Debian busybox-static) for the node's own end-to-end tests:
#             localhost/pulp-e2e/busybox:1 (sh, nslookup, httpd, nc, ip; the wget of Debian's
#             busybox-static 1.35 segfaults, use printf ... | nc HOST PORT for HTTP)
# Results land in $PULP_OPERATOR_NODEBIN (default ~/.cache/pulp-operator/node) and are rebuilt only
# when missing or of another version. Installs missing Debian packages (containerd, runc,
# containernetworking-plugins, iptables, busybox-static, umoci; skopeo, the container registry
# client of the plugin tests) when run as root.
#
# Usage: hack/node/build.sh [coredns] [busybox]   (default: both); prints the output directory.
set -euo pipefail
# shellcheck source=../lib/apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/apt.sh"
# shellcheck source=../lib/progress.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/progress.sh"

COREDNS_VERSION=v1.15.0 # keep in sync with hack/node/coredns/go.mod and pulp_devcluster/node/settings.py
BUSYBOX_IMAGE=localhost/pulp-e2e/busybox:1
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1735689600}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${PULP_OPERATOR_NODEBIN:-$HOME/.cache/pulp-operator/node}
mkdir -p "$out"

log() { printf '[node] %s\n' "$*" >&2; }
fail() { printf '[node] ERROR: %s\n' "$*" >&2; exit 1; }

ensure_packages() {
  local missing=() pair cmd pkg
  for pair in containerd:containerd runc:runc ctr:containerd iptables:iptables umoci:umoci skopeo:skopeo \
      busybox:busybox-static; do
    cmd=${pair%%:*} pkg=${pair#*:}
    command -v "$cmd" >/dev/null || missing+=("$pkg")
  done
  [ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
  [ ${#missing[@]} -eq 0 ] && return
  [ "$(id -u)" = 0 ] || fail "missing Debian packages: ${missing[*]} (install them as root)"
  log "installing ${missing[*]}"
  host_apt_install "${missing[@]}"
}

build_coredns() {
  local dir=$out/coredns-$COREDNS_VERSION
  # output captured first: `cmd | grep -q` under pipefail fails at random when grep exits early
  if [ -x "$dir/coredns" ] && [[ $("$dir/coredns" -version 2>/dev/null) == *"${COREDNS_VERSION#v}"* ]]; then
    log "coredns $COREDNS_VERSION present"; return
  fi
  command -v go >/dev/null || fail "go is not installed; CoreDNS cannot be built"
  log "building coredns $COREDNS_VERSION"
  local start=$SECONDS
  mkdir -p "$dir"
  (cd "$here/coredns" && CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod go build -trimpath \
    -ldflags "-s -w" -o "$dir/coredns.tmp" .) &
  wait_with_progress $! "[node] coredns" || fail "building coredns failed"
  mv "$dir/coredns.tmp" "$dir/coredns"
  log "coredns built in $((SECONDS - start)) s"
}

build_busybox() {
  local archive=$out/images/busybox.oci.tar inputs
  inputs=$( { cat "${BASH_SOURCE[0]}"; sha256sum "$(command -v busybox)"; } | sha256sum | cut -d' ' -f1)
  if [ -s "$archive" ] && [ "$(cat "$archive.inputs" 2>/dev/null)" = "$inputs" ]; then
    log "busybox image present"; return
  fi
  log "building $BUSYBOX_IMAGE"
  mkdir -p "$out/images"
  local work
  work=$(mktemp -d)
  trap 'rm -rf "$work"' RETURN
  umoci init --layout "$work/oci" >/dev/null
  umoci new --image "$work/oci:1" >/dev/null
  umoci unpack --rootless --image "$work/oci:1" "$work/bundle" >/dev/null 2>&1 \
    || umoci unpack --image "$work/oci:1" "$work/bundle" >/dev/null
  local root=$work/bundle/rootfs
  mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/www" "$root/proc" "$root/sys" "$root/dev"
  chmod 1777 "$root/tmp"
  cp "$(command -v busybox)" "$root/bin/busybox"
  local applet
  for applet in sh ls cat echo sleep wget nslookup httpd nc hostname env ps ip id true false \
      printf grep sed head tail mkdir rm date uname; do
    ln -sf busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' >"$root/etc/group"
  echo 'hello from the pulp e2e busybox image' >"$root/www/index.html"
  umoci repack --image "$work/oci:1" "$work/bundle" >/dev/null
  umoci config --image "$work/oci:1" --config.cmd /bin/sh --config.env PATH=/bin \
    --config.workingdir / >/dev/null
  umoci gc --layout "$work/oci" >/dev/null
  tar -C "$work/oci" -cf "$archive.tmp" .
  mv "$archive.tmp" "$archive"
  echo "$BUSYBOX_IMAGE" >"$archive.names"
  echo "$inputs" >"$archive.inputs"
  log "busybox image: $archive"
}

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(coredns busybox)
ensure_packages
for t in "${targets[@]}"; do
  case "$t" in
    coredns) build_coredns ;;
    busybox) build_busybox ;;
    *) fail "unknown target $t (coredns, busybox)" ;;
  esac
done
printf '%s\n' "$out"
