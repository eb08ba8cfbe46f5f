#!/usr/bin/env bash
# Builds the operator image localhost/pulp-operator:latest from the project's Containerfile with
# buildah (no Docker engine), for the in-cluster end-to-end test (tests/e2e/test_in_cluster.py).
#
# The Containerfile's default base (docker.io/library/python:3.11-slim) cannot be pulled here, so
# a local stand-in is built first from hack/operator-image/Containerfile.base: the Debian bookworm
# rootfs of hack/images/build.sh (base-bookworm.tar, built by it when missing) + python3 3.11 and
# venv/pip from Debian. It is passed with --build-arg BASE=localhost/pulp-operator-base:bookworm.
# pip in the build runs against PyPI with this machine's CA bundle mounted read-only
# (/etc/ssl/certs, not committed into the image; Debian's pip reads it).
#
# Output, in ${PULP_OPERATOR_IMAGES:-~/.cache/pulp-operator/images}:
#   pulp-operator.oci.tar          OCI image layout archive (buildah push oci-archive:)
#   pulp-operator.oci.tar.names    localhost/pulp-operator:latest (the names the node imports)
#   pulp-operator.oci.tar.inputs   sha256 of the inputs: Containerfile, .containerignore,
#                                  pyproject.toml, README.md, src/**, this folder, the base
#   pulp-operator-<tag>.oci.tar    the same image as localhost/pulp-operator:<tag>, <tag> the first
#                                  12 characters of the inputs hash (.inputs, .names beside it): a
#                                  worktree's tests use this name, which another worktree's build
#                                  of :latest cannot replace (the 4 newest are kept)
#   logs/pulp-operator.log         full output of the last build
# Rebuilt only when the inputs changed (else ~1 s); --force rebuilds anyway. buildah keeps its
# storage (layers, the base image) in <images>/.buildah, apart from any system storage.
#
# Usage: hack/operator-image/build.sh [--force | --print-image]
#   --print-image   print localhost/pulp-operator:<tag> for the current inputs and build nothing
#                   (exit 3 when that image is not built)
# Needs root, buildah (installed from Debian when missing), network to Debian and PyPI.
set -euo pipefail
# shellcheck source=../lib/apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/apt.sh"
# shellcheck source=../lib/progress.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/progress.sh"
shopt -s nullglob

IMAGE=localhost/pulp-operator:latest
BASE_IMAGE=localhost/pulp-operator-base:bookworm

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${PULP_OPERATOR_IMAGES:-$HOME/.cache/pulp-operator/images}
archive=$out/pulp-operator.oci.tar
storage=$out/.buildah
logfile=$out/logs/pulp-operator.log

log() { printf '[operator-image] %s\n' "$*" >&2; }
fail() { printf '[operator-image] ERROR: %s\n' "$*" >&2; exit 1; }

force=0 print_image=0
while [ $# -gt 0 ]; do
  case "$1" in
    --force) force=1; shift ;;
    --print-image) print_image=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) fail "unknown argument $1 (see --help)" ;;
  esac
done

if [ $print_image = 1 ] && [ ! -s "$out/base-bookworm.tar" ]; then
  log "no operator image built yet: run hack/operator-image/build.sh"; exit 3
fi
[ $print_image = 1 ] || [ "$(id -u)" = 0 ] || fail "must run as root (buildah with its own storage, chroot isolation)"
if [ $print_image = 0 ] && ! command -v buildah >/dev/null; then
  log "installing buildah from Debian"
  host_apt_install buildah \
    || fail "could not install buildah (apt-get failed above)"
fi
mkdir -p "$out/logs"

# The Debian base rootfs (shared with the stand-in images; a no-op when up to date).
base_tar=$out/base-bookworm.tar
# hack/images/build.sh has no "base only" target; building redis makes the base on the way.
if [ ! -s "$base_tar" ]; then
  log "base-bookworm.tar missing: building it with hack/images/build.sh redis"
  "$repo/hack/images/build.sh" redis >/dev/null
fi
[ -s "$base_tar" ] || fail "$base_tar missing (hack/images/build.sh failed?)"

inputs_hash() {
  local f
  {
    for f in Containerfile .containerignore pyproject.toml README.md; do
      printf '== %s\n' "$f"; cat "$repo/$f" 2>/dev/null || :
    done
    while IFS= read -r f; do printf '== %s\n' "${f#"$repo"/}"; cat "$f"; done < <(
      find "$repo/src" "$here" -type f -not -path '*/__pycache__/*' -not -name '*.pyc' \
        -not -path '*.egg-info/*' | LC_ALL=C sort)
    printf '== base %s\n' "$(cat "$base_tar.inputs" 2>/dev/null || stat -c '%s %Y' "$base_tar")"
  } | sha256sum | cut -d' ' -f1
}

key=$(inputs_hash)
tag=${key:0:12}
tagged=$out/pulp-operator-$tag.oci.tar
if [ $print_image = 1 ]; then
  [ -s "$tagged" ] || { log "localhost/pulp-operator:$tag is not built: run hack/operator-image/build.sh"; exit 3; }
  echo "localhost/pulp-operator:$tag"
  exit 0
fi
if [ $force = 0 ] && [ -s "$archive" ] && [ "$(cat "$archive.inputs" 2>/dev/null)" = "$key" ] \
  && grep -qx "$IMAGE" "$archive.names" 2>/dev/null && [ -s "$tagged" ]; then
  log "up to date ($archive)"
  echo "$archive"
  exit 0
fi
if [ $force = 0 ] && [ -s "$tagged" ] && [ "$(cat "$tagged.inputs" 2>/dev/null)" = "$key" ]; then
  # Built before (another worktree's build replaced :latest since): :latest is this one again.
  ln -f "$tagged" "$archive.tmp" && mv -f "$archive.tmp" "$archive"
  printf '%s\n' "$key" >"$archive.inputs"
  printf '%s\n' "$IMAGE" >"$archive.names"
  log "up to date ($tagged, now :latest again)"
  echo "$archive"
  exit 0
fi

exec 9>"$out/.operator-image.lock"
flock -n 9 || { log "another build holds $out/.operator-image.lock; waiting"; flock 9; }

bh() {
  buildah --root "$storage/root" --runroot "$storage/run" --storage-driver overlay "$@"
}

# step DESC CMD...: CMD's output goes to the log; on failure the end of the log is shown.
step() {
  local desc=$1 start=$SECONDS rc; shift
  printf '\n===== %s: %s\n' "$(date -u +%H:%M:%S)" "$desc" >>"$logfile"
  set +e
  "$@" >>"$logfile" 2>&1 &
  wait_with_progress $! "[operator-image] $desc"
  rc=$?
  set -e
  if [ $rc -ne 0 ]; then
    printf '[operator-image] ERROR: "%s" failed (exit %d); last lines of %s:\n' "$desc" "$rc" "$logfile" >&2
    tail -n 40 "$logfile" | sed 's/^/    /' >&2
    exit 1
  fi
  log "$desc: $((SECONDS - start)) s"
}

start=$SECONDS
: >"$logfile"
log "building $IMAGE (log: $logfile)"

# 1. The python base, rebuilt when the Debian rootfs or Containerfile.base changed.
base_key=$( { cat "$here/Containerfile.base"; cat "$base_tar.inputs" 2>/dev/null || stat -c '%s %Y' "$base_tar"; } \
  | sha256sum | cut -d' ' -f1)
have_base_key=$(bh inspect --type image --format '{{index .ImageAnnotations "io.pulp-operator.base.inputs"}}' \
  "$BASE_IMAGE" 2>/dev/null || :)
if [ $force = 1 ] || [ "$have_base_key" != "$base_key" ]; then
  ctx=$(mktemp -d "$out/.operator-base-ctx.XXXXXX")
  trap 'rm -rf "$ctx"' EXIT
  ln "$base_tar" "$ctx/base-bookworm.tar" 2>/dev/null || cp "$base_tar" "$ctx/base-bookworm.tar"
  step "buildah bud python base ($BASE_IMAGE)" bh bud --isolation chroot --network host \
    --pull-never --layers=false --annotation "io.pulp-operator.base.inputs=$base_key" \
    -f "$here/Containerfile.base" -t "$BASE_IMAGE" "$ctx"
  rm -rf "$ctx"
  trap - EXIT
else
  log "python base $BASE_IMAGE up to date"
fi

# 2. The operator image from the project's Containerfile.
step "buildah bud Containerfile ($IMAGE)" bh bud --isolation chroot --network host \
  --pull-never --layers=false -v /etc/ssl/certs:/etc/ssl/certs:ro \
  --build-arg "BASE=$BASE_IMAGE" --label "io.pulp-operator.inputs=$key" \
  -f "$repo/Containerfile" -t "$IMAGE" "$repo"

# 3. Smoke test, then the archive.
bh rm pulp-operator-smoke >/dev/null 2>&1 || :
step "smoke test: create a working container" bh from --pull-never --name pulp-operator-smoke "$IMAGE"
# As the Deployment runs it: uid 65532 (kopf needs a user name for it: getpass.getuser()).
step "smoke test: pulp-operator --version, getpass.getuser() as 65532" bh run --isolation chroot \
  --user 65532:65532 pulp-operator-smoke -- /bin/sh -ec 'pulp-operator --version
    env -u USER python3 -c "import getpass; print(\"user:\", getpass.getuser())"'

bh rm pulp-operator-smoke >/dev/null 2>&1 || :
rm -f "$archive.tmp"
step "buildah push oci-archive" bh push "$IMAGE" "oci-archive:$archive.tmp:$IMAGE"
mv -f "$archive.tmp" "$archive"
printf '%s\n' "$key" >"$archive.inputs"
printf '%s\n' "$IMAGE" >"$archive.names"
ln -f "$archive" "$tagged"
printf '%s\n' "$key" >"$tagged.inputs"
printf '%s\n' "localhost/pulp-operator:$tag" >"$tagged.names"
# The 4 newest tagged archives are kept.
ls -t "$out"/pulp-operator-????????????.oci.tar 2>/dev/null | tail -n +5 | while IFS= read -r old; do
  rm -f "$old" "$old.inputs" "$old.names"
done
# Dangling layers of earlier builds.
bh rmi --prune >/dev/null 2>&1 || :
log "done in $((SECONDS - start)) s: archive $(du -h "$archive" | cut -f1)"
echo "$archive"
