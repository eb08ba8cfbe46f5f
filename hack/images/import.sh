#!/usr/bin/env bash
# Imports the stand-in images built by hack/images/build.sh into a running containerd, under
# every name the Pulp operator's pods (and the kubelet) use: for each <archive>.oci.tar in the
# image cache, `ctr images import --index-name NAME` for each NAME in <archive>.names (short
# names such as postgres:15 are imported both as is and as docker.io/library/postgres:15, which
# is what the kubelet asks for).
#
# Usage: hack/images/import.sh --address SOCKET [--namespace k8s.io] [--snapshotter NAME] [ARCHIVE...]
#   --address SOCKET   containerd's gRPC socket (required)
#   --namespace NS     containerd namespace (default k8s.io, the one the CRI plugin uses)
#   --snapshotter NAME snapshotter to unpack into (default: containerd's default, overlayfs)
#   ARCHIVE...         archives to import (default: every *.oci.tar with a .names file in
#                      ${PULP_OPERATOR_IMAGES:-~/.cache/pulp-operator/images})
set -euo pipefail
shopt -s nullglob

log() { printf '[import] %s\n' "$*" >&2; }
fail() { printf '[import] ERROR: %s\n' "$*" >&2; exit 1; }

address= namespace=k8s.io snapshotter= archives=()
while [ $# -gt 0 ]; do
  case "$1" in
    --address) [ $# -ge 2 ] || fail "--address needs a value"; address=$2; shift 2 ;;
    --address=*) address=${1#*=}; shift ;;
    --namespace|-n) [ $# -ge 2 ] || fail "$1 needs a value"; namespace=$2; shift 2 ;;
    --namespace=*) namespace=${1#*=}; shift ;;
    --snapshotter) [ $# -ge 2 ] || fail "--snapshotter needs a value"; snapshotter=$2; shift 2 ;;
    --snapshotter=*) snapshotter=${1#*=}; shift ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
    -*) fail "unknown option $1 (see --help)" ;;
    *) archives+=("$1"); shift ;;
  esac
done
[ -n "$address" ] || fail "--address SOCKET is required (the containerd to import into)"
[ -S "$address" ] || fail "$address is not a socket: is containerd running there?"
command -v ctr >/dev/null || fail "ctr (Debian package containerd) is not installed"

dir=${PULP_OPERATOR_IMAGES:-$HOME/.cache/pulp-operator/images}
if [ ${#archives[@]} -eq 0 ]; then
  for a in "$dir"/*.oci.tar; do
    [ -s "$a.names" ] && archives+=("$a")
  done
  [ ${#archives[@]} -gt 0 ] || fail "no image archives in $dir: run hack/images/build.sh first"
fi

ctr_() { ctr --address "$address" --namespace "$namespace" "$@"; }
ctr_ version >/dev/null || fail "cannot talk to containerd at $address"

# docker.io/library/NAME:TAG for a short NAME:TAG (what the kubelet normalises it to).
normalise() {
  local ref=$1 first=${1%%/*}
  if [[ $ref != */* ]]; then
    echo "docker.io/library/$ref"
  elif [[ $first != *.* && $first != *:* && $first != localhost ]]; then
    echo "docker.io/$ref"
  else
    echo "$ref"
  fi
}

opts=()
[ -n "$snapshotter" ] && opts+=(--snapshotter "$snapshotter")
total_start=$SECONDS
for archive in "${archives[@]}"; do
  [ -s "$archive" ] || fail "$archive does not exist or is empty"
  names=()
  if [ -s "$archive.names" ]; then
    while read -r name; do
      [ -n "$name" ] || continue
      names+=("$name")
      full=$(normalise "$name")
      [ "$full" = "$name" ] || names+=("$full")
    done <"$archive.names"
  fi
  [ ${#names[@]} -gt 0 ] || fail "$archive has no names ($archive.names is missing or empty)"
  # Each name once, in order.
  mapfile -t names < <(printf '%s\n' "${names[@]}" | awk '!seen[$0]++')
  for name in "${names[@]}"; do
    start=$SECONDS
    ctr_ images import "${opts[@]}" --index-name "$name" "$archive" >/dev/null \
      || fail "ctr images import --index-name $name $archive failed"
    log "$name <- $(basename "$archive") ($((SECONDS - start)) s)"
  done
done
log "imported ${#archives[@]} archive(s) into $address (namespace $namespace) in $((SECONDS - total_start)) s"
