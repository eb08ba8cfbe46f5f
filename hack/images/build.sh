#!/usr/bin/env bash
# Builds the local stand-in container images of the end-to-end test cluster (see README.md here):
#   pulp-minimal  quay.io/pulp/pulp-minimal:<pulp tag>   (Debian bookworm + pulpcore from PyPI)
#   pulp-web      quay.io/pulp/pulp-web:<pulp tag>       (Debian nginx, uid 1001)
#   postgres      docker.io/library/postgres:15          (Debian postgresql-15)
#   redis         docker.io/library/redis:7, :latest     (Debian redis-server)
#   pause         registry.k8s.io/pause:3.10             (static pause.c)
#   otel-collector docker.io/otel/opentelemetry-collector:<version>, :latest
#                 (the collector of hack/otelcol/build.sh: OTLP receiver, Prometheus exporter)
# Each lands as an OCI image layout tarball in ${PULP_OPERATOR_IMAGES:-~/.cache/pulp-operator/images}
# with, next to it, <archive>.inputs (hash of what it was built from) and <archive>.names (the
# names import.sh gives it). An image is rebuilt only when its inputs changed: this script, its
# files/ folder, the versions, the Debian base. Needs root (debootstrap, chroot), debootstrap and
# umoci (installed from Debian when missing), gcc with static libc for pause, network to Debian
# and PyPI.
#
# Usage: hack/images/build.sh [--pulp-tag TAG] [--force] [IMAGE...]
#   IMAGE: pulp-minimal pulp-web postgres redis pause otel-collector (default: all)
#   --pulp-tag TAG  pulpcore release for pulp-minimal/pulp-web (default 3.123.1; "3.13" builds the
#                   legacy pulpcore 3.13 image on Debian bullseye)
#   --force         rebuild even when the inputs did not change
# Prints the archive paths on stdout; progress, timings and errors go to stderr, the full output
# of each build to <cache>/logs/<image>.log.
set -euo pipefail
# shellcheck source=../lib/apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/apt.sh"
shopt -s nullglob

DEFAULT_PULP_TAG=3.123.1
POSTGRES_MAJOR=15
PAUSE_TAG=3.10
OTELCOL_VERSION=0.165.0 # keep in sync with hack/otelcol/build.sh
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
# Timestamps written into the images (file times of what the build creates, config, history).
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1735689600} # 2025-01-01T00:00:00Z
ALL_IMAGES=(pause postgres redis pulp-minimal pulp-web otel-collector)

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${PULP_OPERATOR_IMAGES:-$HOME/.cache/pulp-operator/images}
created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)

log() { printf '[images] %s\n' "$*" >&2; }
fail() { printf '[images] ERROR: %s\n' "$*" >&2; exit 1; }

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

pulp_tag=$DEFAULT_PULP_TAG
force=0
images=()
while [ $# -gt 0 ]; do
  case "$1" in
    --pulp-tag) [ $# -ge 2 ] || fail "--pulp-tag needs a value"; pulp_tag=$2; shift 2 ;;
    --pulp-tag=*) pulp_tag=${1#*=}; shift ;;
    --force) force=1; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) fail "unknown option $1 (see --help)" ;;
    *)
      case "$1" in
        pulp|pulp-minimal) images+=(pulp-minimal) ;;
        web|pulp-web) images+=(pulp-web) ;;
        postgres|redis|pause|otel-collector) images+=("$1") ;;
        *) fail "unknown image '$1' (known: ${ALL_IMAGES[*]})" ;;
      esac
      shift ;;
  esac
done
[ ${#images[@]} -gt 0 ] || images=("${ALL_IMAGES[@]}")
[[ $pulp_tag =~ ^[0-9]+\.[0-9]+(\.[0-9]+)?$ ]] || fail "--pulp-tag '$pulp_tag' is not a pulpcore release (X.Y or X.Y.Z)"

# pulpcore releases before 3.33 (no pulpcore-api entry point, Python < 3.11) are built the old
# way: Debian bullseye (Python 3.9), pulpcore==X.Y[.Z] (X.Y means the newest X.Y.*) + pulp-file.
legacy_pulp() { local minor=${pulp_tag#3.}; minor=${minor%%.*}; [ "${pulp_tag%%.*}" = 3 ] && [ "$minor" -lt 33 ]; }
pulp_suite() { if legacy_pulp; then echo bullseye; else echo bookworm; fi; }
pulp_requirement() {
  # The published image carries the object storage backends (django-storages for S3, Azure, GCS).
  local name=pulpcore
  legacy_pulp || name="pulpcore[s3,azure,google]"
  if [[ $pulp_tag =~ ^[0-9]+\.[0-9]+$ ]]; then echo "$name==$pulp_tag.*"; else echo "$name==$pulp_tag"; fi
}
# files/pulp/requirements-<tag>.txt, when present, names what the image installs: pulpcore and
# the plugins of the published image, pinned (pulp-web takes the plugins' nginx snippets from
# the same list). Without one the image carries pulpcore alone.
pulp_requirements_file() {
  local f=$here/files/pulp/requirements-$pulp_tag.txt
  if [ -s "$f" ]; then echo "$f"; fi
}

# ---------------------------------------------------------------------------------------------
# Tools and bookkeeping

ensure_tools() {
  [ "$(id -u)" = 0 ] || fail "must run as root (debootstrap, chroot and file ownership in images need it)"
  local missing=() cmd pkg
  for cmd in debootstrap:debootstrap umoci:umoci unshare:util-linux sha256sum:coreutils; do
    pkg=${cmd#*:}; cmd=${cmd%%:*}
    command -v "$cmd" >/dev/null || missing+=("$pkg")
  done
  if [[ " ${images[*]} " == *" pause "* ]]; then
    command -v gcc >/dev/null || missing+=(gcc)
    [ -e /usr/lib/x86_64-linux-gnu/libc.a ] || [ -n "$(find /usr/lib -name libc.a -print -quit)" ] || missing+=(libc6-dev)
  fi
  if [[ " ${images[*]} " == *" pulp-web "* ]]; then
    /usr/bin/python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing missing Debian packages: ${missing[*]}"
    host_apt_install "${missing[@]}" \
      || fail "could not install ${missing[*]} (apt-get failed above)"
  fi
}

# The functions each image is built with besides the common ones (a function named in no list
# is common: a change to it rebuilds every image). An image's inputs hash covers the common
# functions and its own, so that a change to one image's recipe rebuilds that image alone.
declare -A IMAGE_FUNCTIONS=(
  [pause]="build_pause install_pause"
  [postgres]="build_postgres postgres_common configure_postgres"
  [redis]="build_redis configure_redis"
  [pulp-minimal]="legacy_pulp pulp_suite pulp_requirement pulp_requirements_file pulp_apt_packages
    build_pulp_minimal pulp_user add_build_cas remove_build_cas pulp_pip pulp_helpers
    pulp_ca_bundle pulp_collectstatic pulp_smoke pulp_routes"
  [pulp-web]="legacy_pulp pulp_suite pulp_requirement pulp_requirements_file build_pulp_web
    web_snippets configure_web"
  [otel-collector]="build_otel_collector install_otelcol"
)
recipe() { # IMAGE: the text of the functions its build runs
  local image=$1 f others=" "
  for f in ${IMAGE_FUNCTIONS[*]}; do others+="$f "; done
  for f in $(declare -F | awk '{print $3}' | LC_ALL=C sort); do
    [[ $others == *" $f "* ]] || declare -f "$f"
  done
  for f in ${IMAGE_FUNCTIONS[$image]}; do declare -f "$f"; done
}

# Hash of everything an image is built from: its recipe, files/<dir>, extra strings.
inputs_hash() { # IMAGE DIR EXTRA...
  local image=$1 dir=$2 f; shift 2
  {
    recipe "$image"
    if [ -d "$here/files/$dir" ]; then
      while IFS= read -r f; do
        # The pins of other pulp tags are no input of this one (a new tag rebuilds nothing else).
        case ${f##*/} in
          constraints-*.txt|requirements-*.txt) [[ ${f##*/} == *-"$pulp_tag".txt ]] || continue ;;
        esac
        printf '== %s\n' "${f#"$here"/}"; cat "$f"
      done < <(find "$here/files/$dir" -type f | LC_ALL=C sort)
    fi
    printf '%s\n' "SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH" "$DEBIAN_MIRROR" "$DEBIAN_SECURITY_MIRROR" "$@"
  } | sha256sum | cut -d' ' -f1
}

# write_atomic FILE: stdin to FILE through a temporary file beside it and a rename, so that a
# reader sees the old content or the new one, never a part.
write_atomic() { cat >"$1.tmp.$$" && mv -f "$1.tmp.$$" "$1"; }

# STEP_LOG is the current image's log; step DESC CMD... runs CMD (a command or function) with
# errexit, its output in the log, and reports the time it took; on failure it shows the end of
# the log and stops the build.
step() {
  local desc=$1 start=$SECONDS rc; shift
  printf '\n===== %s: %s\n' "$(date -u +%H:%M:%S)" "$desc" >>"$STEP_LOG"
  set +e
  ( set -e; "$@" ) >>"$STEP_LOG" 2>&1
  rc=$?
  set -e
  if [ $rc -ne 0 ]; then
    printf '[images] ERROR: %s: "%s" failed (exit %d); last lines of %s:\n' "$STEP_IMAGE" "$desc" "$rc" "$STEP_LOG" >&2
    tail -n 40 "$STEP_LOG" | sed 's/^/    /' >&2
    exit 1
  fi
  log "$STEP_IMAGE: $desc: $((SECONDS - start)) s"
}

# in_root ROOT CMD...: run CMD chrooted in ROOT, inside private mount and PID namespaces, with
# /proc, /dev and the host's apt and pip caches mounted: every mount and process ends with it.
in_root() {
  local root=$1; shift
  mkdir -p "$out/.cache/apt-archives/partial" "$out/.cache/pip" "$root/var/cache/apt/archives" "$root/var/cache/stand-in-pip"
  unshare --mount --pid --fork --propagation private -- /bin/bash -euc '
    root=$1 cache=$2; shift 2
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    mount --bind "$cache/apt-archives" "$root/var/cache/apt/archives"
    mount --bind "$cache/pip" "$root/var/cache/stand-in-pip"
    exec chroot "$root" /usr/bin/env -i \
      PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
      DEBIAN_FRONTEND=noninteractive SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" "$@"
  ' in_root "$root" "$out/.cache" "$@"
}

apt_install() { # ROOT PACKAGE...
  local root=$1; shift
  rm -f "$root/etc/resolv.conf"; cp /etc/resolv.conf "$root/etc/resolv.conf"
  in_root "$root" apt-get update -q
  in_root "$root" apt-get install -y -q --no-install-recommends "$@"
}

# Debian base rootfs (debootstrap minbase + updates, no docs), cached as base-<suite>.tar.
base_recipe() { # SUITE: what the base is made of (its cache key)
  printf 'debootstrap --variant=minbase %s %s\n' "$1" "$DEBIAN_MIRROR"
  declare -f make_base configure_base in_root apt_install
}

configure_base() { # ROOT SUITE
  local root=$1 suite=$2
  cat >"$root/etc/apt/sources.list" <<EOF
deb $DEBIAN_MIRROR $suite main
deb $DEBIAN_MIRROR $suite-updates main
deb $DEBIAN_SECURITY_MIRROR $suite-security main
EOF
  cat >"$root/etc/apt/apt.conf.d/90stand-in" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
Dpkg::Use-Pty "0";
EOF
  cat >"$root/etc/dpkg/dpkg.cfg.d/90stand-in-nodoc" <<'EOF'
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
path-exclude=/usr/share/lintian/*
EOF
  # Package scripts must not start services in the build root.
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 0755 "$root/usr/sbin/policy-rc.d"
  rm -f "$root/etc/resolv.conf"; cp /etc/resolv.conf "$root/etc/resolv.conf"
  in_root "$root" apt-get update -q
  in_root "$root" apt-get -y -q upgrade
  find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$root/usr/share/man/"* "$root/usr/share/info/"* "$root/usr/share/lintian/"*
  find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
  printf 'localhost\n' >"$root/etc/hostname"
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
  clean_rootfs "$root"
}

make_base() { # SUITE ROOT
  mkdir -p "$out/.cache/debootstrap-$1"
  debootstrap --variant=minbase --cache-dir="$out/.cache/debootstrap-$1" "$1" "$2" "$DEBIAN_MIRROR"
}

ensure_base() { # SUITE -> sets BASE_TAR, BASE_KEY
  local suite=$1 key tar stamp
  key=$(base_recipe "$suite" | cat - <(printf 'SOURCE_DATE_EPOCH=%s %s\n' "$SOURCE_DATE_EPOCH" "$DEBIAN_SECURITY_MIRROR") | sha256sum | cut -d' ' -f1)
  tar=$out/base-$suite.tar
  BASE_TAR=$tar BASE_KEY=$key
  if [ -s "$tar" ] && [ "$(cat "$tar.inputs" 2>/dev/null)" = "$key" ]; then
    return
  fi
  local STEP_IMAGE="base-$suite" STEP_LOG="$out/logs/base-$suite.log" work="$out/.work/base-$suite"
  : >"$STEP_LOG"
  rm -rf "$work"; mkdir -p "$work/rootfs"
  stamp=$work/stamp; touch "$stamp"
  step "debootstrap --variant=minbase $suite" make_base "$suite" "$work/rootfs"
  step "configure apt/dpkg, upgrade, strip docs" configure_base "$work/rootfs" "$suite"
  step "clamp timestamps" clamp_times "$work/rootfs" "$stamp"
  step "tar the base rootfs" tar --numeric-owner --xattrs --xattrs-include='*' --sort=name \
    -C "$work/rootfs" -cf "$tar.tmp" .
  mv -f "$tar.tmp" "$tar"
  printf '%s\n' "$key" | write_atomic "$tar.inputs"
  rm -rf "$work"
  log "base-$suite: $(du -h "$tar" | cut -f1) at $tar"
}

clean_rootfs() { # ROOT: what no image should carry
  local root=$1
  rm -f "$root/usr/sbin/policy-rc.d" "$root/etc/resolv.conf"
  rm -rf "$root/var/lib/apt/lists/"* "$root/var/cache/apt/"*.bin "$root/var/cache/stand-in-pip" \
    "$root/root/.cache" "$root/tmp/"* "$root/var/tmp/"* "$root/dev/"* "$root/run/adduser"
  find "$root/var/cache/apt/archives" -mindepth 1 -delete 2>/dev/null || :
  find "$root/var/log" -type f -delete
  rm -f "$root/var/cache/debconf/"*-old "$root/var/lib/dpkg/"*-old "$root/var/cache/ldconfig/aux-cache" \
    "$root/etc/"*- "$root/etc/ssh/ssh_host_"* 2>/dev/null || :
  # Put back the default resolver stub (runtimes mount their own over it).
  : >"$root/etc/resolv.conf"
}

clamp_times() { # ROOT STAMP: whatever this build created or changed gets SOURCE_DATE_EPOCH
  find "$1" -xdev -newer "$2" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
}

# ---------------------------------------------------------------------------------------------
# OCI packaging: new_image creates the layout and an empty bundle (WORK/bundle/rootfs);
# pack_image repacks the rootfs into one layer, applies the config, writes the archive.

new_image() { # WORK
  umoci init --layout "$1/oci"
  umoci new --image "$1/oci:image"
  umoci unpack --image "$1/oci:image" "$1/bundle"
}

unpack_base() { # ROOT
  tar --numeric-owner --xattrs --xattrs-include='*' -xpf "$BASE_TAR" -C "$1"
  # Package scripts must not start services in the build root (clean_rootfs removes it again).
  printf '#!/bin/sh\nexit 101\n' >"$1/usr/sbin/policy-rc.d"
  chmod 0755 "$1/usr/sbin/policy-rc.d"
}

# rp ROOT PATH: ROOT/PATH for host-side changes, refusing a PATH that leaves ROOT through an
# absolute symlink of the rootfs (/var/run -> /run would otherwise mean the host's /run).
rp() {
  local root resolved
  root=$(realpath "$1")
  resolved=$(realpath -m "$1$2")
  case "$resolved" in
    "$root"/*) printf '%s\n' "$resolved" ;;
    *) echo "refusing to touch $2: it resolves outside the rootfs ($resolved)" >&2; return 1 ;;
  esac
}

pack_image() { # WORK IMAGE -- umoci config args...
  local work=$1 image=$2; shift 3
  umoci repack --image "$work/oci:image" --history.created "$created" \
    --history.created_by "hack/images/build.sh $image" "$work/bundle"
  umoci config --image "$work/oci:image" --created "$created" --history.created "$created" \
    --history.created_by "hack/images/build.sh $image (config)" \
    --config.label "org.opencontainers.image.description=local stand-in built by pulp-operator hack/images/build.sh" \
    "$@"
  umoci gc --layout "$work/oci"
  # umoci names the manifest "image"; drop the name: `ctr images import --index-name NAME` (see
  # import.sh) names the image, and a manifest name would also create a second image (a stray
  # "import-<date>:image", or one that replaces the index image when the names are equal).
  sed -i 's|,"annotations":{"org.opencontainers.image.ref.name":"image"}||' "$work/oci/index.json"
  if grep -q 'ref.name' "$work/oci/index.json"; then echo "index.json still names the manifest" >&2; return 1; fi
  # Deterministic archive: sorted names, fixed owner and times.
  (cd "$work/oci" && tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
    -cf "$work/image.tar" oci-layout index.json blobs)
}

# build IMAGE ARCHIVE-NAME FILES-DIR "NAMES" BUILDER EXTRA-INPUTS...
build() {
  local image=$1 archive=$out/$2 dir=$3 names=$4 builder=$5; shift 5
  local key
  key=$(inputs_hash "$image" "$dir" "$names" "$@")
  if [ $force = 0 ] && [ -s "$archive" ] && [ "$(cat "$archive.inputs" 2>/dev/null)" = "$key" ]; then
    log "$image: up to date ($archive)"
    echo "$archive"
    return
  fi
  local stem
  stem=$(basename "$archive" .oci.tar)
  local STEP_IMAGE=$image STEP_LOG=$out/logs/$stem.log work=$out/.work/$stem start=$SECONDS
  : >"$STEP_LOG"
  rm -rf "$work"; mkdir -p "$work/sidecar"
  log "$image: building (log: $STEP_LOG)"
  step "umoci init/new/unpack" new_image "$work"
  touch "$work/stamp"
  "$builder" "$work" "$work/bundle/rootfs"
  step "clean rootfs, clamp timestamps" finish_rootfs "$work/bundle/rootfs" "$work/stamp"
  local rootfs_size
  rootfs_size=$(du -sh --apparent-size "$work/bundle/rootfs" | cut -f1)
  step "umoci repack + config, tar the OCI layout" pack_image "$work" "$image" -- "${IMAGE_CONFIG[@]}" \
    --config.label "io.pulp-operator.stand-in.inputs=$key"
  # Renames within one file system: a reader (an import running now) sees the old archive or the
  # new one. Files a builder left in WORK/sidecar/ go beside the archive as <archive>.<file>;
  # .inputs comes last, so an interrupted build is redone.
  local f
  for f in "$archive".*; do
    case "$f" in *.inputs|*.names) ;; *) [ -e "$work/sidecar/${f#"$archive".}" ] || rm -f "$f" ;; esac
  done
  mv -f "$work/image.tar" "$archive"
  for f in "$work/sidecar/"*; do mv -f "$f" "$archive.$(basename "$f")"; done
  printf '%s\n' $names | write_atomic "$archive.names"
  printf '%s\n' "$key" | write_atomic "$archive.inputs"
  rm -rf "$work"
  log "$image: done in $((SECONDS - start)) s: rootfs $rootfs_size, archive $(du -h "$archive" | cut -f1)"
  echo "$archive"
}

finish_rootfs() { # ROOT STAMP
  if [ -x "$1/bin/sh" ] || [ -L "$1/bin/sh" ]; then clean_rootfs "$1"; fi
  clamp_times "$1" "$2"
}

# ---------------------------------------------------------------------------------------------
# The images

# registry.k8s.io/pause: one static binary, nothing else.
build_pause() { # WORK ROOT
  local work=$1 root=$2
  step "gcc -static pause.c" gcc -Os -static -Wall -Werror -o "$work/pause" "$here/files/pause/pause.c"
  step "install /pause" install_pause "$work" "$root"
  IMAGE_CONFIG=(--config.entrypoint=/pause --config.user=65535:65535)
}
install_pause() { strip "$1/pause"; install -m 0755 -o 0 -g 0 "$1/pause" "$2/pause"; }

# docker.io/library/postgres:15
build_postgres() { # WORK ROOT
  local root=$2
  step "unpack base-bookworm" unpack_base "$root"
  step "postgres user (uid/gid 999)" in_root "$root" /bin/sh -ec '
    groupadd --system --gid 999 postgres
    useradd --system --gid postgres --uid 999 --home-dir /var/lib/postgresql --shell /bin/bash postgres
    mkdir -p /var/lib/postgresql && chown postgres:postgres /var/lib/postgresql'
  step "apt-get install postgresql-common (no main cluster)" postgres_common "$root"
  step "apt-get install postgresql-$POSTGRES_MAJOR locales" apt_install "$root" "postgresql-$POSTGRES_MAJOR" locales
  step "configure postgres image" configure_postgres "$root"
  IMAGE_CONFIG=(
    --config.env="PATH=/usr/lib/postgresql/$POSTGRES_MAJOR/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    --config.env=LANG=en_US.utf8 --config.env="PG_MAJOR=$POSTGRES_MAJOR"
    --config.env=PGDATA=/var/lib/postgresql/data
    --config.entrypoint=docker-entrypoint.sh --config.cmd=postgres
    --config.stopsignal=SIGINT --config.exposedports=5432/tcp
  )
}
postgres_common() {
  apt_install "$1" postgresql-common
  sed -ri 's/^#? *(create_main_cluster) .*$/\1 = false/' "$1/etc/postgresql-common/createcluster.conf"
  grep -q '^create_main_cluster = false' "$1/etc/postgresql-common/createcluster.conf"
}
configure_postgres() {
  local root=$1 bin=/usr/lib/postgresql/$POSTGRES_MAJOR
  in_root "$root" localedef -i en_US -c -f UTF-8 -A /usr/share/locale/locale.alias en_US.UTF-8
  # The locale sources are only needed to compile more locales (17 MB).
  rm -rf "$root/usr/share/i18n/charmaps" "$root/usr/share/i18n/locales"
  # Every initdb listens on all addresses (like the official image).
  sed -ri "s!^#?(listen_addresses)\s*=\s*\S+.*!\1 = '*'!" "$root/usr/share/postgresql/$POSTGRES_MAJOR/postgresql.conf.sample"
  grep -F "listen_addresses = '*'" "$root/usr/share/postgresql/$POSTGRES_MAJOR/postgresql.conf.sample"
  # No JIT: libLLVM is a third of the image and PostgreSQL runs without it (jit just stays off).
  rm -rf "$root$bin/lib/llvmjit"* "$root$bin/lib/bitcode"
  in_root "$root" dpkg --purge --force-depends libllvm14 libllvm15 libz3-4 2>&1 || :
  local run data initdb entry
  run=$(rp "$root" /run/postgresql) data=$(rp "$root" /var/lib/postgresql/data)
  initdb=$(rp "$root" /docker-entrypoint-initdb.d) entry=$(rp "$root" /usr/local/bin/docker-entrypoint.sh)
  install -d -m 3777 -o 999 -g 999 "$run"
  install -d -m 1777 -o 999 -g 999 "$data"
  install -d -m 0755 "$initdb"
  install -m 0755 "$here/files/postgres/docker-entrypoint.sh" "$entry"
  ln -sf usr/local/bin/docker-entrypoint.sh "$root/docker-entrypoint.sh"
  # ssl-cert (a postgresql-common dependency) generated a snakeoil key pair: no image should
  # ship a private key made at build time (new clusters from initdb do not use it).
  rm -f "$(rp "$root" /etc/ssl/private/ssl-cert-snakeoil.key)" "$(rp "$root" /etc/ssl/certs/ssl-cert-snakeoil.pem)"
  find "$(rp "$root" /etc/ssl/certs)" -lname '*snakeoil*' -delete
  in_root "$root" /bin/sh -ec "export PATH=$bin/bin:\$PATH
    for c in postgres initdb pg_ctl pg_isready psql setpriv docker-entrypoint.sh; do command -v \$c; done
    ls -ld /var/run/postgresql /var/lib/postgresql/data; postgres --version"
}

# docker.io/library/redis:7 (and :latest)
build_redis() { # WORK ROOT
  local root=$2
  step "unpack base-bookworm" unpack_base "$root"
  step "redis user (uid/gid 999)" in_root "$root" /bin/sh -ec '
    groupadd --system --gid 999 redis
    useradd --system --gid redis --uid 999 --home-dir /data --no-create-home redis'
  step "apt-get install redis-server" apt_install "$root" redis-server
  step "configure redis image" configure_redis "$root"
  IMAGE_CONFIG=(
    --config.env=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    --config.workingdir=/data
    --config.entrypoint=docker-entrypoint.sh --config.cmd=redis-server
    --config.exposedports=6379/tcp
  )
}
configure_redis() {
  local root=$1
  install -d -m 0755 -o 999 -g 999 "$(rp "$root" /data)"
  install -m 0755 "$here/files/redis/docker-entrypoint.sh" "$(rp "$root" /usr/local/bin/docker-entrypoint.sh)"
  in_root "$root" /bin/sh -ec 'id redis; command -v redis-server redis-cli setpriv; redis-server --version'
}

# quay.io/pulp/pulp-minimal:<tag>
build_pulp_minimal() { # WORK ROOT
  local work=$1 root=$2 py
  step "unpack base-$(pulp_suite)" unpack_base "$root"
  step "pulp user (uid/gid 700), directories" pulp_user "$root"
  local apt
  apt=$(pulp_apt_packages)
  step "apt-get install ${apt// /, }" apt_install "$root" $apt
  step "trust this machine's extra CA certificates for pip" add_build_cas "$root"
  local what
  what=$(f=$(pulp_requirements_file); if [ -n "$f" ]; then grep -v '^#' "$f" | tr '\n' ' '; else pulp_requirement; fi)
  step "venv at /usr/local + pip install ${what% }$(legacy_pulp && echo ' pulp-file<1.9' || echo ' django-auth-ldap python-ldap')" pulp_pip "$root"
  step "remove the build CA certificates" remove_build_cas "$root"
  step "system CA bundle at the published image's path" pulp_ca_bundle "$root"
  step "install /usr/bin helpers, /bin/sh -> bash" pulp_helpers "$root"
  step "collectstatic into /var/lib/operator/static (as pulp)" pulp_collectstatic "$root"
  step "smoke test: pulpcore-manager --version, helpers" pulp_smoke "$root"
  step "capture the plugin routes (route_paths.py) beside the archive" pulp_routes "$work" "$root"
  IMAGE_CONFIG=(
    --config.env=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    --config.env=LANG=C.UTF-8 --config.env=PYTHONUNBUFFERED=0
    --config.env=PULP_SETTINGS=/etc/pulp/settings.py
    --config.env=DJANGO_SETTINGS_MODULE=pulpcore.app.settings
    --config.env=PULP_GUNICORN_TIMEOUT=90 --config.env=PULP_API_WORKERS=2 --config.env=PULP_CONTENT_WORKERS=2
    --config.exposedports=24817/tcp --config.exposedports=24816/tcp
  )
}
pulp_apt_packages() {
  local pkgs="python3 python3-venv ca-certificates libpq5 postgresql-client curl git"
  # pulpcore < 3.33 runs gpg through python-gnupg, in a migration even.
  if legacy_pulp; then pkgs+=" gpg"; fi
  local reqs
  reqs=$(pulp_requirements_file)
  # pulp_rpm's wheels (createrepo_c, solv, rpm-rs) bundle librpm, libsolv, libmodulemd and the
  # rest, but link the system's GLib; createrepo_c's librpm reads /usr/lib/rpm/rpmrc and macros
  # (rpm-common). The signing and verification of pulp_deb, pulp_container, pulp_ansible use gpg.
  if [ -n "$reqs" ] && grep -qi '^pulp[-_]rpm' "$reqs"; then pkgs+=" libglib2.0-0 rpm-common"; fi
  # gpg + gpg-agent: the signing scripts (spec.signing_scripts); libldap, libsasl: python-ldap
  # (django-auth-ldap, spec.ldap).
  if ! legacy_pulp; then pkgs+=" gpg gpg-agent libldap-2.5-0 libsasl2-2"; fi
  echo "$pkgs"
}
pulp_user() {
  local root=$1
  in_root "$root" /bin/sh -ec '
    groupadd --system --gid 700 pulp
    useradd --system --uid 700 --gid pulp --home-dir /var/lib/pulp --no-create-home --shell /bin/bash pulp'
  local d
  for d in /var/lib/pulp /var/lib/pulp/media /var/lib/pulp/assets /var/lib/pulp/tmp /var/lib/pulp/scripts \
    /etc/pulp /etc/pulp/keys /etc/pulp/certs; do
    install -d -m 2775 -o 700 -g 0 "$(rp "$root" "$d")"
  done
  for d in /var/lib/operator /var/lib/operator/static; do
    install -d -m 0755 -o 700 -g 700 "$(rp "$root" "$d")"
  done
}
add_build_cas() {
  local root=$1 crt
  mkdir -p "$root/usr/local/share/ca-certificates/stand-in-build"
  for crt in /usr/local/share/ca-certificates/*.crt; do
    cp "$crt" "$root/usr/local/share/ca-certificates/stand-in-build/"
  done
  in_root "$root" update-ca-certificates
}
remove_build_cas() {
  rm -rf "$1/usr/local/share/ca-certificates/stand-in-build"
  in_root "$1" update-ca-certificates --fresh
}
pulp_pip() {
  local root=$1 reqs constraints=$here/files/pulp/constraints-$pulp_tag.txt file
  file=$(pulp_requirements_file)
  if [ -n "$file" ]; then
    grep -qxF "$(pulp_requirement)" "$file" || { echo "$file does not pin $(pulp_requirement)"; return 1; }
    cp "$file" "$root/tmp/requirements.txt"
    reqs=(-r /tmp/requirements.txt)
  else
    reqs=("$(pulp_requirement)")
  fi
  in_root "$root" /usr/bin/python3 -m venv /usr/local
  if legacy_pulp; then
    # pulpcore < 3.33 needs psycopg2 (source only): compile it, then drop the compiler. The
    # plugin of that era is pulp-file 1.x (pulp_file moved into pulpcore in 3.50).
    reqs+=("pulp-file<1.9")
    in_root "$root" apt-get install -y -q --no-install-recommends gcc libc6-dev libpq-dev python3-dev
    in_root "$root" /usr/bin/env PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_NO_CACHE_DIR=1 \
      PIP_DISABLE_PIP_VERSION_CHECK=1 /usr/local/bin/pip install --upgrade "pip<25" "setuptools<70" wheel
  fi
  if ! legacy_pulp; then
    # LDAP login (spec.ldap): python-ldap has no wheels, it compiles against libldap.
    reqs+=(django-auth-ldap python-ldap)
    in_root "$root" apt-get install -y -q --no-install-recommends gcc libc6-dev libldap-dev libsasl2-dev python3-dev
  fi
  if [ -s "$constraints" ]; then
    cp "$constraints" "$root/tmp/constraints.txt"
    reqs+=(-c /tmp/constraints.txt)
  fi
  # Only what pip needs: the CA bundle (with this machine's extra CAs), SOURCE_DATE_EPOCH
  # (hash-based .pyc files). Nothing of the host's PIP_* settings. The wheels are downloaded
  # into the host's cache mounted by in_root (pip's own HTTP cache stays empty here: the
  # responses are not cacheable); install takes them from there (same-version ties go to
  # --find-links files), building the odd sdist with build requirements from the index.
  local pip_env=(/usr/bin/env PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_NO_CACHE_DIR=1
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore PIP_DEFAULT_TIMEOUT=180 PIP_NO_INPUT=1)
  local wheels=/var/cache/stand-in-pip/wheels-$(pulp_suite)
  in_root "$root" "${pip_env[@]}" /usr/local/bin/pip download --dest "$wheels" "${reqs[@]}"
  in_root "$root" "${pip_env[@]}" /usr/local/bin/pip install --find-links "$wheels" "${reqs[@]}"
  rm -f "$root/tmp/constraints.txt" "$root/tmp/requirements.txt"
  if legacy_pulp; then
    in_root "$root" apt-get purge -y -q --auto-remove gcc libc6-dev libpq-dev python3-dev
  else
    in_root "$root" apt-get purge -y -q --auto-remove gcc libc6-dev libldap-dev libsasl2-dev python3-dev
    in_root "$root" /usr/local/bin/python3 -c "import ldap, django_auth_ldap; print('python-ldap', ldap.__version__)"
  fi
  in_root "$root" /usr/local/bin/pip freeze --all | tee "$root/usr/local/share/pulp-stand-in-requirements.txt"
  # An old pulpcore's pip-installed pulp-content would shadow /usr/bin/pulp-content.
  rm -f "$root/usr/local/bin/pulp-content"
}
# The published image (CentOS) keeps its CA bundle in /etc/pki/ca-trust/extracted/pem/, the file
# OpenSSL reads by default; the operator mounts a trusted CA bundle over it (mount_trusted_ca).
pulp_ca_bundle() {
  local root=$1 bundle=/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem
  install -d -m 0755 "$root/etc/pki/ca-trust/extracted/pem"
  install -m 0644 "$root/etc/ssl/certs/ca-certificates.crt" "$root$bundle"
  ln -sfn "$bundle" "$root/usr/lib/ssl/cert.pem"
  in_root "$root" /usr/local/bin/python3 -c '
import os, ssl
cafile = ssl.get_default_verify_paths().cafile
assert os.path.realpath(cafile) == "'"$bundle"'", cafile
print("OpenSSL default CA file:", cafile, "->", os.path.realpath(cafile))'
}
pulp_helpers() {
  local root=$1 f
  for f in pulp-api pulp-content pulp-worker wait_on_postgres.py wait_on_database_migrations.sh readyz.py route_paths.py; do
    install -m 0755 "$here/files/pulp/$f" "$(rp "$root" "/usr/bin/$f")"
  done
  if legacy_pulp; then
    install -m 0755 "$here/files/pulp/pulp-resource-manager" "$(rp "$root" /usr/bin/pulp-resource-manager)"
  fi
  # The published image's /bin/sh is bash.
  ln -sf bash "$root/usr/bin/sh"
  [ "$(readlink "$root/bin/sh")" = bash ]
  in_root "$root" /bin/sh -ec 'command -v which; test -n "$BASH_VERSION"; echo "/bin/sh is bash $BASH_VERSION"'
}
pulp_routes() { # WORK ROOT: what the installed plugins declare (route_paths.py) for the tests
  in_root "$2" /usr/bin/route_paths.py example >"$1/sidecar/routes.json"
  /usr/bin/python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))), "routes")' "$1/sidecar/routes.json"
}
pulp_collectstatic() {
  local root=$1
  # A throwaway key and secret just for this command (settings demand them); nothing is kept.
  in_root "$root" /bin/sh -ec '
    key=$(mktemp)
    head -c 32 /dev/urandom | base64 | tr "+/" "-_" >"$key"
    chmod 0644 "$key"
    setpriv --reuid=700 --regid=700 --clear-groups -- env HOME=/var/lib/pulp \
      PULP_SETTINGS=/nonexistent DJANGO_SETTINGS_MODULE=pulpcore.app.settings \
      PULP_STATIC_ROOT=/var/lib/operator/static/ PULP_CONTENT_ORIGIN=http://localhost \
      PULP_SECRET_KEY=build-only PULP_DB_ENCRYPTION_KEY="$key" \
      /usr/local/bin/pulpcore-manager collectstatic --clear --noinput --link
    rm -f "$key"'
}
pulp_smoke() {
  local root=$1
  in_root "$root" /bin/sh -ec '
    for f in pulpcore-manager pulpcore-worker gunicorn; do test -x /usr/local/bin/$f; done
    '"$(legacy_pulp || echo 'test -x /usr/local/bin/pulpcore-api; test -x /usr/local/bin/pulpcore-content;')"'
    PULP_CONTENT_ORIGIN=http://localhost pulpcore-manager --version
    route_paths.py example
    gpg --version | head -n1
    python3 -c "import pulpcore, sys; print(pulpcore.__file__, sys.version)"
    # every installed plugin loads as a pulpcore plugin (settings, models, native libraries)
    key=$(mktemp); head -c 32 /dev/urandom | base64 | tr "+/" "-_" >"$key"
    PULP_SETTINGS=/nonexistent PULP_CONTENT_ORIGIN=http://localhost PULP_SECRET_KEY=build-only \
      PULP_DB_ENCRYPTION_KEY="$key" DJANGO_SETTINGS_MODULE=pulpcore.app.settings python3 -c "
import django; django.setup()
from pulpcore.app.apps import pulp_plugin_configs
print(\"plugins:\", \" \".join(sorted(\"%s %s\" % (p.label, p.version) for p in pulp_plugin_configs())))"
    rm -f "$key"
    id pulp; ls -ld /var/lib/pulp/* /etc/pulp/* /var/lib/operator/static'
}

# docker.io/otel/opentelemetry-collector:<version>: the static collector of hack/otelcol, as the
# published image lays it out (/otelcol, entrypoint, uid 10001, config under /etc/otelcol).
build_otel_collector() { # WORK ROOT
  local root=$2
  step "install /otelcol, /etc/otelcol/config.yaml" install_otelcol "$root"
  IMAGE_CONFIG=(--config.entrypoint=/otelcol --config.cmd=--config --config.cmd=/etc/otelcol/config.yaml
    --config.user=10001 --config.exposedports=4317/tcp --config.exposedports=4318/tcp
    --config.exposedports=8889/tcp)
}
install_otelcol() {
  local root=$1
  install -m 0755 -o 0 -g 0 "$OTELCOL_BINARY" "$root/otelcol"
  install -d -m 0755 "$root/etc/otelcol" "$root/tmp"
  chmod 1777 "$root/tmp"
  printf '%s\n' 'receivers: {otlp: {protocols: {http: {}, grpc: {}}}}' \
    'exporters: {prometheus: {endpoint: "0.0.0.0:8889"}}' \
    'service: {pipelines: {metrics: {receivers: [otlp], exporters: [prometheus]}}}' \
    >"$root/etc/otelcol/config.yaml"
  "$root/otelcol" validate --config "$root/etc/otelcol/config.yaml"
  "$root/otelcol" --version
}

# quay.io/pulp/pulp-web:<tag>
build_pulp_web() { # WORK ROOT
  local work=$1 root=$2
  step "unpack base-bookworm" unpack_base "$root"
  step "apt-get install nginx" apt_install "$root" nginx
  step "plugin snippets from the wheels of pulpcore $pulp_tag and its plugins" web_snippets "$work" "$root"
  step "configure nginx for uid 1001 / group 0" configure_web "$root"
  IMAGE_CONFIG=(
    --config.env=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    --config.env=NGINX_CONF_PATH=/etc/nginx/nginx.conf
    --config.env=NGINX_DEFAULT_CONF_PATH=/opt/app-root/etc/nginx.default.d
    --config.env=NGINX_CONFIGURATION_PATH=/opt/app-root/etc/nginx.d
    --config.env=HOME=/opt/app-root/src
    --config.user=1001 --config.workingdir=/opt/app-root/src
    --config.cmd=nginx --config.cmd=-g "--config.cmd=daemon off;"
    --config.exposedports=8080/tcp --config.exposedports=8443/tcp
  )
}
web_snippets() {
  local work=$1 root=$2
  mkdir -p "$work/wheels" "$(rp "$root" /opt/app-root/etc/nginx.default.d)"
  # The wheels of pulpcore and the plugins alone, no dependencies (the snippets are data files
  # of the plugins: pulp_file and pulp_certguard inside pulpcore, the others in their own).
  local reqs file
  file=$(pulp_requirements_file)
  if [ -n "$file" ]; then reqs=(-r "$file"); else reqs=("$(pulp_requirement)"); fi
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$work" PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    PIP_CACHE_DIR="$out/.cache/pip" PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180 \
    /usr/bin/python3 -m pip download --no-deps --only-binary=:all: --ignore-requires-python -d "$work/wheels" \
    "${reqs[@]}"
  /usr/bin/python3 - "$root/opt/app-root/etc/nginx.default.d" "$work/wheels"/*.whl <<'EOF'
import re, sys, zipfile
dest, wheels = sys.argv[1], sys.argv[2:]
for wheel in wheels:
    with zipfile.ZipFile(wheel) as z:
        for name in sorted(z.namelist()):
            m = re.fullmatch(r"([A-Za-z0-9_]+)/app/webserver_snippets/nginx\.conf", name)
            if m:
                with open("%s/%s.conf" % (dest, m.group(1)), "wb") as f:
                    f.write(z.read(name))
                print("snippet", m.group(1), "from", wheel)
print("snippets installed:", sorted(__import__("os").listdir(dest)))
EOF
}
configure_web() {
  local root=$1 d
  in_root "$root" /bin/sh -ec '
    useradd --system --uid 1001 --gid 0 --home-dir /opt/app-root/src --no-create-home \
      --shell /usr/sbin/nologin --comment "Default Application User" default'
  for d in /opt/app-root /opt/app-root/etc /opt/app-root/src /opt/app-root/etc/nginx.d \
    /opt/app-root/etc/nginx.default.d /etc/nginx/pulp; do
    install -d -m 0775 -o 1001 -g 0 "$(rp "$root" "$d")"
  done
  chown -R 1001:0 "$(rp "$root" /opt/app-root)"
  chmod -R g+rwX "$(rp "$root" /opt/app-root)"
  # Writable for uid 1001 and for any uid of group 0 (the operator runs pulp-web as uid 700):
  # pid file (/run/nginx.pid is the compiled-in default), temp paths, logs, caches.
  for d in /run /var/lib/nginx /var/lib/nginx/body /var/lib/nginx/proxy /var/lib/nginx/fastcgi \
    /var/lib/nginx/uwsgi /var/lib/nginx/scgi /var/log/nginx /var/cache/nginx; do
    install -d -m 0775 -o 1001 -g 0 "$(rp "$root" "$d")"
  done
  ln -sf /dev/stdout "$(rp "$root" /var/log/nginx)/access.log"
  ln -sf /dev/stderr "$(rp "$root" /var/log/nginx)/error.log"
  rm -f "$(rp "$root" /etc/nginx/sites-enabled)/"* "$(rp "$root" /etc/nginx/modules-enabled)/"*
  install -m 0644 "$here/files/pulp-web/nginx.conf" "$(rp "$root" /etc/nginx/nginx.conf)"
  in_root "$root" /bin/sh -ec 'nginx -V 2>&1; nginx -t -c /etc/nginx/nginx.conf'
}

# ---------------------------------------------------------------------------------------------

ensure_tools
mkdir -p "$out/logs" "$out/.work" "$out/.cache"
exec 9>"$out/.lock"
flock -n 9 || { log "another build holds $out/.lock; waiting"; flock 9; }

STEP_IMAGE=setup STEP_LOG=$out/logs/setup.log
for image in "${images[@]}"; do
  case "$image" in
    pause)
      build pause "pause-$PAUSE_TAG.oci.tar" pause "registry.k8s.io/pause:$PAUSE_TAG" build_pause ;;
    postgres)
      ensure_base bookworm
      build postgres "postgres-$POSTGRES_MAJOR.oci.tar" postgres \
        "docker.io/library/postgres:$POSTGRES_MAJOR postgres:$POSTGRES_MAJOR" build_postgres "$BASE_KEY" ;;
    redis)
      ensure_base bookworm
      build redis "redis-7.oci.tar" redis \
        "docker.io/library/redis:7 docker.io/library/redis:latest redis:7 redis:latest" build_redis "$BASE_KEY" ;;
    pulp-minimal)
      ensure_base "$(pulp_suite)"
      build pulp-minimal "pulp-minimal-$pulp_tag.oci.tar" pulp "quay.io/pulp/pulp-minimal:$pulp_tag" \
        build_pulp_minimal "$BASE_KEY" "$pulp_tag" ;;
    otel-collector)
      OTELCOL_BINARY=$(bash "$here/../otelcol/build.sh")
      build otel-collector "otel-collector-$OTELCOL_VERSION.oci.tar" otel-collector \
        "docker.io/otel/opentelemetry-collector:$OTELCOL_VERSION docker.io/otel/opentelemetry-collector:latest" \
        build_otel_collector "$(sha256sum "$OTELCOL_BINARY" | cut -d' ' -f1)" ;;
    pulp-web)
      ensure_base bookworm
      build pulp-web "pulp-web-$pulp_tag.oci.tar" pulp-web "quay.io/pulp/pulp-web:$pulp_tag" \
        build_pulp_web "$BASE_KEY" "$pulp_tag" "$(f=$(pulp_requirements_file); [ -z "$f" ] || cat "$f")" ;;
  esac
done
rm -rf "$out/.work"
