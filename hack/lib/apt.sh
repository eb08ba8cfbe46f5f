# Debian packages on the host; source it from a build script.
#
#   host_apt_install PACKAGE...
#
# installs the packages with apt-get (quietly, without recommends). The builds of `make test` run
# in parallel and apt-get refuses to run twice at once, so every install here holds one lock
# file: a second build waits for the first one's apt-get to finish. Returns apt-get's status.
host_apt_install() {
  (
    flock -w 1800 9 || { echo "apt: waited 30 min for /var/lock/pulp-operator-apt.lock" >&2; exit 1; }
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends "$@"
  ) 9>/var/lock/pulp-operator-apt.lock >&2
}
