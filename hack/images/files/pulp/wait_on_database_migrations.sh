#!/bin/bash
# /usr/bin/wait_on_database_migrations.sh of the local stand-in for quay.io/pulp/pulp-minimal
# (hack/images/build.sh): every 5 s, ask `pulpcore-manager showmigrations` until no migration is
# left unapplied ("[ ]"). A failing showmigrations (database down) counts as "not yet".
set -uo pipefail

echo "Checking for database migrations"
while true; do
  if output=$(pulpcore-manager showmigrations 2>&1); then
    if ! grep -qF '[ ]' <<<"$output"; then
      echo "Database migrated!"
      exit 0
    fi
    echo "Database migrations are not all applied yet; checking again in 5 s"
  else
    echo "pulpcore-manager showmigrations failed; checking again in 5 s:"
    tail -n 3 <<<"$output"
  fi
  sleep 5
done
