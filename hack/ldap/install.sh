#!/usr/bin/env bash
# Installs Debian's slapd (OpenLDAP 2.5) and ldap-utils for the LDAP end-to-end test, which runs
# its own slapd with a throwaway configuration (tests/e2e/ldapserver.py). The package is left
# unconfigured and no system slapd is started. Does nothing when both are installed.
set -euo pipefail
# shellcheck source=../lib/apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/apt.sh"
log() { printf '[ldap] %s\n' "$*" >&2; }
if command -v slapd >/dev/null 2>&1 || [ -x /usr/sbin/slapd ]; then
  if command -v ldapwhoami >/dev/null 2>&1; then log "slapd and ldap-utils present"; exit 0; fi
fi
[ "$(id -u)" = 0 ] || { log "ERROR: run as root to install slapd and ldap-utils"; exit 1; }
start=$SECONDS
# No default database and no running daemon: the test configures and starts its own.
{ flock 9; echo "slapd slapd/no_configuration boolean true" | debconf-set-selections; } \
  9>/var/lock/pulp-operator-apt.lock
host_apt_install slapd ldap-utils
log "slapd $(/usr/sbin/slapd -VV 2>&1 | head -n1 | sed 's/.*slapd //') installed in $((SECONDS - start)) s"
