#!/bin/sh
# docker-entrypoint.sh of the local stand-in for docker.io/library/redis (hack/images/build.sh),
# written for it after the official image's documented interface: flags or a *.conf as first
# argument mean `redis-server ...`; redis-server runs with protected mode off (the official image's
# compiled-in default) unless a config file or --protected-mode is given; as root it chowns /data
# (the working directory) and drops to the redis user (uid 999).
set -e

case "$1" in
  -*|*.conf) set -- redis-server "$@" ;;
esac

if [ "$1" = redis-server ] || [ "$1" = /usr/bin/redis-server ]; then
  protected=
  for arg in "$@"; do
    case "$arg" in
      --protected-mode|*.conf) protected=given ;;
    esac
  done
  if [ -z "$protected" ]; then
    set -- "$@" --protected-mode no
  fi
  if [ "$(id -u)" = 0 ]; then
    find . \! -user redis -exec chown redis '{}' + 2>/dev/null || :
    umask 0077
    exec setpriv --reuid=redis --regid=redis --init-groups -- "$@"
  fi
fi

exec "$@"
