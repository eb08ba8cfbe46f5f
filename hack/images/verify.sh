#!/usr/bin/env bash
# Proves that the stand-in images built by hack/images/build.sh run on a real containerd + runc
# the way the Pulp operator's pods use them. Starts a throwaway containerd (own root, state and
# socket in a temp dir, overlayfs snapshotter), imports the images with import.sh, and with
# `ctr run` (host network) checks:
#   pause      runs as PID 1 and exits 0 on SIGTERM
#   postgres   initialises from POSTGRES_PASSWORD/USER/DB/INITDB_ARGS/HOST_AUTH_METHOD + PGDATA,
#              as root (drops to uid 999) and as uid 999 directly; password login over TCP from
#              the host (a wrong password is refused); pg_isready inside
#   redis      runs as uid 999 in /data, answers PING on the host's non-loopback address
#              (protected mode off) and to redis-cli inside
#   pulp       pulpcore-manager --version / check; as uid 700: wait_on_postgres.py + migrate,
#              reset-admin-password, wait_on_database_migrations.sh, route_paths.py, then
#              /usr/bin/pulp-api, the operator's pulpcore-content command, /usr/bin/pulp-worker;
#              readyz.py; the status endpoint lists the worker and content app, database and Redis
#   pulp-web   nginx with the operator's kind of nginx.conf on 8080 as uid 1001 (image default)
#              and as uid 700 gid 0 (what the operator sets), proxying API status and content
# Then it stops everything it started, unmounts what containerd mounted and removes the temp dir.
#
# Usage: hack/images/verify.sh [--pulp-tag TAG] [--keep-going]
# Needs root, the images built (hack/images/build.sh), free ports 5432 6379 8080 8081 24816
# 24817 55433, and installs containerd, runc, postgresql-client and curl from Debian if missing.
set -euo pipefail
# shellcheck source=../lib/apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/apt.sh"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
pulp_tag=3.123.1
while [ $# -gt 0 ]; do
  case "$1" in
    --pulp-tag) pulp_tag=$2; shift 2 ;;
    --pulp-tag=*) pulp_tag=${1#*=}; shift ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

log() { printf '[verify] %s\n' "$*" >&2; }
pass() { printf '[verify] PASS %s\n' "$*" >&2; PASSED+=("$*"); }
fail() {
  printf '[verify] FAIL %s\n' "$*" >&2
  local f
  for f in "${tmp:-/nonexistent}"/logs/*.log; do
    [ -s "$f" ] || continue
    printf '[verify] --- last lines of %s\n' "$f" >&2
    tail -n 25 "$f" | sed 's/^/    /' >&2
  done
  exit 1
}
PASSED=()

[ "$(id -u)" = 0 ] || fail "must run as root (containerd)"
missing=()
for c in containerd:containerd ctr:containerd runc:runc psql:postgresql-client pg_isready:postgresql-client curl:curl; do
  command -v "${c%%:*}" >/dev/null || missing+=("${c#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  host_apt_install "${missing[@]}"
fi
for port in 5432 6379 8080 8081 24816 24817 55433; do
  if ss -Hltn "sport = :$port" | grep -q .; then fail "port $port is already in use on this host"; fi
done

images_dir=${PULP_OPERATOR_IMAGES:-$HOME/.cache/pulp-operator/images}
for a in pause-3.10 postgres-15 redis-7 "pulp-minimal-$pulp_tag" "pulp-web-$pulp_tag"; do
  [ -s "$images_dir/$a.oci.tar" ] || fail "$images_dir/$a.oci.tar missing: run hack/images/build.sh --pulp-tag $pulp_tag"
done

tmp=$(mktemp -d /tmp/stand-in-verify.XXXXXX)
sock=$tmp/containerd.sock
cgroup_parent=stand-in-verify-${tmp##*.}
ctrd_pid=
mkdir -p "$tmp/logs"

ctr_() { ctr --address "$sock" --namespace k8s.io "$@"; }

cleanup() {
  local rc=$? t c pid m d
  set +e
  log "cleaning up"
  if [ -S "$sock" ]; then
    for t in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s SIGKILL "$t" >/dev/null 2>&1; done
    sleep 1
    for t in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks delete -f "$t" >/dev/null 2>&1; done
    for c in $(ctr_ containers ls -q 2>/dev/null); do ctr_ containers delete "$c" >/dev/null 2>&1; done
  fi
  if [ -n "$ctrd_pid" ] && kill -0 "$ctrd_pid" 2>/dev/null; then
    kill "$ctrd_pid"
    for _ in $(seq 50); do kill -0 "$ctrd_pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$ctrd_pid" 2>/dev/null && kill -9 "$ctrd_pid"
    wait "$ctrd_pid" 2>/dev/null
  fi
  # Shims this containerd started name its temp dir on their command line: end them by PID.
  for pid in $(ls /proc | grep -E '^[0-9]+$'); do
    if { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qF -- "$tmp/"; then
      log "ending leftover process $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" | cut -c1-120)"
      kill -9 "$pid" 2>/dev/null
    fi
  done
  for m in $(findmnt -rn -o TARGET | grep -F -- "$tmp" | sort -r); do umount "$m" 2>/dev/null || umount -l "$m"; done
  rm -rf "$tmp"
  for d in /sys/fs/cgroup/*/"$cgroup_parent" /sys/fs/cgroup/"$cgroup_parent"; do
    [ -d "$d" ] && { rmdir "$d"/*/ 2>/dev/null; rmdir "$d" 2>/dev/null; }
  done
  local left_mounts left_procs
  left_mounts=$(findmnt -rn -o TARGET | grep -cF -- "$tmp" || true)
  left_procs=$(for pid in $(ls /proc | grep -E '^[0-9]+$'); do { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -F -- "$tmp/"; done | wc -l)
  log "left behind: $left_mounts mounts, $left_procs processes, temp dir $([ -e "$tmp" ] && echo present || echo removed)"
  if [ $rc = 0 ]; then
    log "all ${#PASSED[@]} checks passed"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cat >"$tmp/config.toml" <<EOF
version = 2
root = "$tmp/root"
state = "$tmp/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$sock"
EOF
start=$SECONDS
containerd --config "$tmp/config.toml" --root "$tmp/root" --state "$tmp/state" --address "$sock" \
  >"$tmp/logs/containerd.log" 2>&1 &
ctrd_pid=$!
for _ in $(seq 100); do [ -S "$sock" ] && ctr_ version >/dev/null 2>&1 && break; sleep 0.2; done
ctr_ version >/dev/null 2>&1 || fail "containerd did not start"
ctr_ plugins ls | awk '$1 == "io.containerd.snapshotter.v1" && $2 == "overlayfs" && $4 == "ok" {found=1} END {exit !found}' \
  || fail "the overlayfs snapshotter is not ok: $(ctr_ plugins ls | grep overlayfs)"
pass "throwaway containerd $(containerd --version | awk '{print $3}') up with overlayfs in $((SECONDS - start)) s"

start=$SECONDS
"$here/import.sh" --address "$sock" --namespace k8s.io \
  "$images_dir/pause-3.10.oci.tar" "$images_dir/postgres-15.oci.tar" "$images_dir/redis-7.oci.tar" \
  "$images_dir/pulp-minimal-$pulp_tag.oci.tar" "$images_dir/pulp-web-$pulp_tag.oci.tar" 2>&1 | tee "$tmp/logs/import.out" >&2
[ "${PIPESTATUS[0]}" = 0 ] || fail "import.sh failed"
pass "import.sh: all archives imported in $((SECONDS - start)) s"
ctr_ images ls | awk 'NR > 1 {print "    " $1, $4, $5}' >&2

# run NAME IMAGE [ctr run options --] ARGS...: foreground, removed afterwards; output in logs/NAME.log.
run() {
  local name=$1 image=$2 opts=(); shift 2
  if [[ " $* " == *" -- "* ]]; then
    while [ "$1" != -- ]; do opts+=("$1"); shift; done
    shift
  fi
  ctr_ run --rm --net-host --cgroup "/$cgroup_parent/$name" "${opts[@]}" "$image" "$name" "$@" \
    >"$tmp/logs/$name.log" 2>&1
}
# start NAME IMAGE [options --] ARGS...: detached, log in logs/NAME.log.
start() {
  local name=$1 image=$2 opts=(); shift 2
  if [[ " $* " == *" -- "* ]]; then
    while [ "$1" != -- ]; do opts+=("$1"); shift; done
    shift
  fi
  ctr_ run -d --net-host --cgroup "/$cgroup_parent/$name" --log-uri "file://$tmp/logs/$name.log" \
    "${opts[@]}" "$image" "$name" "$@" >/dev/null
}
task_pid() { ctr_ tasks ls | awk -v n="$1" '$1 == n {print $2}'; }
task_uid() { stat -c %u "/proc/$(task_pid "$1")"; }
wait_for() { # DESC SECONDS CMD...
  local desc=$1 limit=$2 t0=$SECONDS; shift 2
  until "$@" >/dev/null 2>&1; do
    [ $((SECONDS - t0)) -lt "$limit" ] || fail "$desc: not within $limit s"
    sleep 1
  done
}

# --- pause ----------------------------------------------------------------------------------
start v-pause registry.k8s.io/pause:3.10
sleep 1
[ "$(ctr_ tasks ls | awk '$1 == "v-pause" {print $3}')" = RUNNING ] || fail "pause is not running"
[ "$(task_uid v-pause)" = 65535 ] || fail "pause runs as uid $(task_uid v-pause), not 65535"
ctr_ tasks kill -s SIGTERM v-pause
wait_for "pause stops on SIGTERM" 10 sh -c "ctr --address '$sock' -n k8s.io tasks ls | grep -q 'v-pause.*STOPPED'"
status=$(ctr_ tasks delete v-pause 2>&1 | grep -o 'exit status [0-9]*' || true)
ctr_ containers delete v-pause
pass "pause: runs as uid 65535, exits on SIGTERM ${status:-}"

# --- postgres ---------------------------------------------------------------------------------
pg_env=(--env POSTGRES_USER=pulp --env POSTGRES_PASSWORD=s3cret-verify --env POSTGRES_DB=pulp
  --env POSTGRES_INITDB_ARGS=--auth-host=scram-sha-256 --env POSTGRES_HOST_AUTH_METHOD=scram-sha-256
  --env PGDATA=/var/lib/postgresql/data/pgdata)
mkdir -p "$tmp/pg-root" "$tmp/pg-999"
chown 0:999 "$tmp/pg-999"; chmod 2775 "$tmp/pg-999" # what fsGroup 999 gives the pod's volume
t0=$SECONDS
start v-postgres docker.io/library/postgres:15 "${pg_env[@]}" \
  --mount "type=bind,src=$tmp/pg-root,dst=/var/lib/postgresql/data,options=rbind:rw" -- \
  docker-entrypoint.sh postgres
wait_for "postgres (root start) accepts TCP on 5432" 90 pg_isready -h 127.0.0.1 -p 5432 -U pulp
PGPASSWORD=s3cret-verify psql -h 127.0.0.1 -p 5432 -U pulp -d pulp -tAc \
  "select current_user || ' ' || current_database() || ' ' || current_setting('server_version')" \
  >"$tmp/pg.out" 2>&1 || fail "psql password login: $(cat "$tmp/pg.out")"
grep -q '^pulp pulp 15' "$tmp/pg.out" || fail "unexpected psql answer: $(cat "$tmp/pg.out")"
if PGPASSWORD=wrong psql -h 127.0.0.1 -p 5432 -U pulp -d pulp -c 'select 1' >/dev/null 2>&1; then
  fail "postgres accepted a wrong password"
fi
grep -q 'host all all all scram-sha-256' "$tmp/pg-root/pgdata/pg_hba.conf" || fail "pg_hba.conf lacks the host rule"
[ "$(stat -c %u "$tmp/pg-root/pgdata")" = 999 ] || fail "PGDATA not owned by 999"
[ "$(task_uid v-postgres)" = 999 ] || fail "postgres runs as uid $(task_uid v-postgres)"
ctr_ tasks exec --exec-id probe v-postgres pg_isready >/dev/null || fail "pg_isready (the pod's probe) fails inside"
pass "postgres (root start): initialised in $((SECONDS - t0)) s, runs as 999, '$(cat "$tmp/pg.out")' over TCP with scram, wrong password refused, pg_isready inside ok"

t0=$SECONDS
# ctr's default spec mounts an empty root-owned tmpfs on /run, which the CRI plugin (the
# kubelet's path) leaves out: put the image's /run/postgresql (postgres 3777) back for uid 999.
start v-postgres-999 docker.io/library/postgres:15 "${pg_env[@]}" \
  --mount "type=bind,src=$tmp/pg-999,dst=/var/lib/postgresql/data,options=rbind:rw" \
  --mount "type=tmpfs,src=tmpfs,dst=/run/postgresql,options=nosuid:nodev:mode=3777:uid=999:gid=999" -- \
  setpriv --reuid=999 --regid=999 --groups=999 -- docker-entrypoint.sh postgres -p 55433
wait_for "postgres (uid 999 start) accepts TCP on 55433" 90 pg_isready -h 127.0.0.1 -p 55433 -U pulp
PGPASSWORD=s3cret-verify psql -h 127.0.0.1 -p 55433 -U pulp -d pulp -tAc 'select 1' >/dev/null \
  || fail "psql login to the uid-999 postgres"
pass "postgres (started as uid 999, like the operator's pod): initialised and serving in $((SECONDS - t0)) s"
ctr_ tasks kill -s SIGINT v-postgres-999
wait_for "postgres stops on SIGINT (its STOPSIGNAL)" 30 sh -c "ctr --address '$sock' -n k8s.io tasks ls | grep -q 'v-postgres-999.*STOPPED'"
pass "postgres: fast shutdown on SIGINT"

# --- redis ------------------------------------------------------------------------------------
start v-redis docker.io/library/redis:7
host_ip=$(hostname -I | awk '{print $1}')
redis_ping() { # HOST: a raw PING over TCP (no redis-cli on the host needed)
  (
    exec 3<>"/dev/tcp/$1/6379" || exit 1
    printf 'PING\r\n' >&3
    IFS= read -r -t 5 line <&3 || exit 1
    [ "${line%$'\r'}" = "+PONG" ]
  )
}
wait_for "redis answers PING on $host_ip:6379" 30 redis_ping "$host_ip"
[ "$(task_uid v-redis)" = 999 ] || fail "redis runs as uid $(task_uid v-redis)"
[ "$(readlink "/proc/$(task_pid v-redis)/cwd")" = "$(readlink "/proc/$(task_pid v-redis)/root")/data" ] \
  || [ "$(readlink "/proc/$(task_pid v-redis)/cwd")" = /data ] || log "note: redis cwd is $(readlink "/proc/$(task_pid v-redis)/cwd")"
[ "$(ctr_ tasks exec --exec-id probe v-redis redis-cli ping)" = PONG ] || fail "redis-cli ping inside"
pass "redis: uid 999, PONG on non-loopback $host_ip (protected mode off) and from redis-cli inside"

# --- pulp -------------------------------------------------------------------------------------
pulp_image=quay.io/pulp/pulp-minimal:$pulp_tag
legacy=0
minor=${pulp_tag#3.}; minor=${minor%%.*}
[ "${pulp_tag%%.*}" = 3 ] && [ "$minor" -lt 33 ] && legacy=1
mkdir -p "$tmp/pulp-etc" "$tmp/pulp-data"
chown 700:700 "$tmp/pulp-data"; chmod 2775 "$tmp/pulp-data" # fsGroup 700
head -c 32 /dev/urandom | base64 | tr '+/' '-_' >"$tmp/pulp-etc/database_fields.symmetric.key"
echo admin-verify >"$tmp/pulp-etc/pulp-admin-password"
cat >"$tmp/pulp-etc/settings.py" <<'EOF'
SECRET_KEY = "verify-only-secret"
CONTENT_ORIGIN = "http://127.0.0.1:8080"
ALLOWED_HOSTS = ["*"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": "127.0.0.1",
        "PORT": 5432,
        "NAME": "pulp",
        "USER": "pulp",
        "PASSWORD": "s3cret-verify",
    }
}
DB_ENCRYPTION_KEY = "/etc/pulp/keys/database_fields.symmetric.key"
REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379
CACHE_ENABLED = True
ANALYTICS = False
EOF
chmod 0644 "$tmp/pulp-etc/"*
pulp_opts=(
  --mount "type=bind,src=$tmp/pulp-etc/settings.py,dst=/etc/pulp/settings.py,options=rbind:ro"
  --mount "type=bind,src=$tmp/pulp-etc/database_fields.symmetric.key,dst=/etc/pulp/keys/database_fields.symmetric.key,options=rbind:ro"
  --mount "type=bind,src=$tmp/pulp-etc/pulp-admin-password,dst=/etc/pulp/pulp-admin-password,options=rbind:ro"
  --mount "type=bind,src=$tmp/pulp-data,dst=/var/lib/pulp,options=rbind:rw"
  --env REDIS_SERVICE_HOST=127.0.0.1 --env REDIS_SERVICE_PORT=6379
  --env POSTGRES_SERVICE_HOST=127.0.0.1 --env POSTGRES_SERVICE_PORT=5432
)
as_pulp=(setpriv --reuid=700 --regid=700 --groups=700 -- env HOME=/var/lib/pulp)

t0=$SECONDS
run v-pulp-version "$pulp_image" "${pulp_opts[@]}" -- pulpcore-manager --version || fail "pulpcore-manager --version"
pass "pulp: pulpcore-manager --version -> Django $(tail -n1 "$tmp/logs/v-pulp-version.log") ($((SECONDS - t0)) s)"
run v-pulp-sh "$pulp_image" /bin/sh -c 'echo "$BASH_VERSION"; command -v which psql curl git gunicorn pulpcore-api pulpcore-content pulpcore-worker pulpcore-manager; id pulp; echo "$PULP_SETTINGS $DJANGO_SETTINGS_MODULE $PULP_GUNICORN_TIMEOUT $PULP_API_WORKERS $PULP_CONTENT_WORKERS $LANG"; stat -c "%a %U:%G %n" /var/lib/pulp/media /var/lib/pulp/assets /var/lib/pulp/tmp /var/lib/pulp/scripts /etc/pulp/keys /etc/pulp/certs /var/lib/operator/static' \
  || fail "image layout check"
sed 's/^/    /' "$tmp/logs/v-pulp-sh.log" >&2
grep -q '^5\.' "$tmp/logs/v-pulp-sh.log" || fail "/bin/sh is not bash"
grep -q '^/etc/pulp/settings.py pulpcore.app.settings 90 2 2 C.UTF-8$' "$tmp/logs/v-pulp-sh.log" || fail "image env"
pass "pulp: /bin/sh is bash, tools on PATH, user pulp 700, env and directories as published"

t0=$SECONDS
run v-pulp-migrate "$pulp_image" "${pulp_opts[@]}" -- "${as_pulp[@]}" \
  /bin/sh -c 'mkdir -p /var/lib/pulp/media /var/lib/pulp/assets /var/lib/pulp/tmp && wait_on_postgres.py && pulpcore-manager migrate --noinput' \
  || fail "migration job (wait_on_postgres.py; migrate)"
# (on an empty /var/lib/pulp volume every pulpcore-manager command fails its system check until
# /var/lib/pulp/tmp exists: the operator's api init container creates media, assets and tmp first)
pass "pulp: as uid 700 on an empty volume: mkdir media/assets/tmp, wait_on_postgres.py, migrate --noinput in $((SECONDS - t0)) s"
t0=$SECONDS
run v-pulp-check "$pulp_image" "${pulp_opts[@]}" -- "${as_pulp[@]}" \
  /bin/sh -c 'pulpcore-manager check && wait_on_database_migrations.sh && route_paths.py example-pulp && pulpcore-manager reset-admin-password --password "$(cat /etc/pulp/pulp-admin-password)"' \
  || fail "check / wait_on_database_migrations.sh / route_paths.py / reset-admin-password"
grep -q 'System check identified no issues' "$tmp/logs/v-pulp-check.log" || fail "pulpcore-manager check output"
pass "pulp: pulpcore-manager check, wait_on_database_migrations.sh, route_paths.py, reset-admin-password as uid 700 ($((SECONDS - t0)) s)"

t0=$SECONDS
start v-pulp-api "$pulp_image" "${pulp_opts[@]}" -- "${as_pulp[@]}" /usr/bin/pulp-api
if [ "$legacy" = 1 ]; then
  # pulpcore < 3.33: no pulpcore-content entry point; RQ needs a resource manager too.
  start v-pulp-content "$pulp_image" "${pulp_opts[@]}" -- "${as_pulp[@]}" /usr/bin/pulp-content
  start v-pulp-rm "$pulp_image" "${pulp_opts[@]}" -- "${as_pulp[@]}" /usr/bin/pulp-resource-manager
else
  start v-pulp-content "$pulp_image" "${pulp_opts[@]}" -- "${as_pulp[@]}" /bin/sh -c \
    'exec pulpcore-content --bind 0.0.0.0:24816 --name pulp-content --timeout "${PULP_GUNICORN_TIMEOUT}" --workers "${PULP_CONTENT_WORKERS}" --access-logfile -'
fi
start v-pulp-worker "$pulp_image" "${pulp_opts[@]}" -- "${as_pulp[@]}" /usr/bin/pulp-worker
status_ok() {
  curl -fsS "http://127.0.0.1:$1/pulp/api/v3/status/" -o "$tmp/status.json" &&
    python3 - "$tmp/status.json" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
assert s["database_connection"]["connected"], s
assert s["redis_connection"]["connected"], s
assert s["online_workers"] and s["online_content_apps"] and s.get("online_api_apps", True), s
EOF
}
wait_for "pulp status: database, redis, worker, content and api apps online" 120 status_ok 24817
pass "pulp: api (/usr/bin/pulp-api), content ($([ $legacy = 1 ] && echo /usr/bin/pulp-content + /usr/bin/pulp-resource-manager || echo operator-style pulpcore-content)) and worker (/usr/bin/pulp-worker) up as uid 700 in $((SECONDS - t0)) s; status: db+redis connected, $(python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(len(s["online_workers"]), "worker(s),", len(s["online_content_apps"]), "content app(s), pulpcore", [v["version"] for v in s["versions"] if v["component"] in ("core", "pulpcore")][0])' "$tmp/status.json")"
[ "$(task_uid v-pulp-api)" = 700 ] || fail "pulp-api runs as uid $(task_uid v-pulp-api)"
ctr_ tasks exec --exec-id readyz v-pulp-api readyz.py /pulp/api/v3/status/ || fail "readyz.py in the api container"
ctr_ tasks exec --exec-id readyz v-pulp-content readyz.py /pulp/content/ || fail "readyz.py in the content container"
ctr_ tasks exec --exec-id probe v-pulp-worker wait_on_postgres.py >/dev/null || fail "wait_on_postgres.py (worker readiness probe)"
curl -fsS -u admin:admin-verify http://127.0.0.1:24817/pulp/api/v3/tasks/ -o /dev/null || fail "admin login with the reset password"
pass "pulp: readyz.py (api, content), wait_on_postgres.py as worker probe, admin login with the reset password"
grep -ih 'control' "$tmp/logs/v-pulp-api.log" "$tmp/logs/v-pulp-content.log" | sed 's/^/    note: /' >&2 || true

# --- pulp-web ---------------------------------------------------------------------------------
web_conf() { # PORT: the operator's kind of nginx.conf (upstreams on this host)
  cat <<EOF
error_log /dev/stdout info;
worker_processes 1;
events {
    worker_connections 1024;
    accept_mutex off;
}
http {
    access_log /dev/stdout;
    include mime.types;
    default_type application/octet-stream;
    sendfile on;
    types_hash_max_size 4096;
    upstream pulp-content {
        server 127.0.0.1:24816;
    }
    upstream pulp-api {
        server 127.0.0.1:24817;
    }
    server {
        listen $1 default_server deferred;
        listen [::]:$1 default_server deferred;
        server_name \$hostname;
        proxy_read_timeout 120s;
        proxy_connect_timeout 120s;
        proxy_send_timeout 120s;
        client_max_body_size 10m;
        keepalive_timeout 5;
        root "/opt/app-root/src";
        location /pulp/content/ {
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header Host \$http_host;
            proxy_redirect off;
            proxy_pass http://pulp-content;
        }
        location /pulp/api/v3/ {
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header Host \$http_host;
            proxy_redirect off;
            proxy_pass http://pulp-api;
        }
        include /opt/app-root/etc/nginx.default.d/*.conf;
        include /etc/nginx/pulp/*.conf;
        location / {
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header Host \$http_host;
            proxy_redirect off;
            proxy_pass http://pulp-api;
        }
    }
}
EOF
}
web_conf 8080 >"$tmp/nginx-8080.conf"
web_conf 8081 >"$tmp/nginx-8081.conf"
chmod 0644 "$tmp"/nginx-*.conf
web_image=quay.io/pulp/pulp-web:$pulp_tag
# As for postgres above: give nginx the image's /run (1001:0, 0775) instead of ctr's root tmpfs.
web_run=(--mount "type=tmpfs,src=tmpfs,dst=/run,options=nosuid:nodev:mode=0775:uid=1001:gid=0")
t0=$SECONDS
start v-web "$web_image" "${web_run[@]}" --mount "type=bind,src=$tmp/nginx-8080.conf,dst=/etc/nginx/nginx.conf,options=rbind:ro" --
# ctr run has no --user and the image's user (1001) cannot switch: run nginx as uid 700 gid 0
# (the operator's runAsUser, no runAsGroup) as an exec in a container that just sleeps.
start v-web-700 "$web_image" "${web_run[@]}" --mount "type=bind,src=$tmp/nginx-8081.conf,dst=/etc/nginx/nginx.conf,options=rbind:ro" -- \
  sleep infinity
ctr_ tasks exec -d --user 700:0 --exec-id nginx --log-uri "file://$tmp/logs/v-web-700-nginx.log" v-web-700 \
  nginx -g 'daemon off;' || fail "exec nginx as 700:0 in pulp-web"
wait_for "pulp-web (uid 1001) proxies the API status on 8080" 30 status_ok 8080
wait_for "pulp-web (uid 700) proxies the API status on 8081" 30 status_ok 8081
[ "$(task_uid v-web)" = 1001 ] || fail "pulp-web runs as uid $(task_uid v-web)"
nginx_700=$(ps -o pid=,uid=,gid=,args= -C nginx | awk '$2 == 700 && /master/ {print $2 ":" $3}')
[ "$nginx_700" = 700:0 ] || fail "no nginx master running as 700:0 (found: $(ps -o uid=,gid=,args= -C nginx | tr '\n' ';'))"
code=$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/pulp/content/)
[ "$code" = 200 ] || fail "GET /pulp/content/ through nginx: HTTP $code"
pass "pulp-web: nginx as uid 1001 (8080) and as uid 700/gid 0 (8081) with the operator's kind of nginx.conf, API status and /pulp/content/ (HTTP $code) proxied, up in $((SECONDS - t0)) s"

log "summary:"
for p in "${PASSED[@]}"; do printf '    ok  %s\n' "$p" >&2; done
