#!/usr/local/bin/python3
"""/usr/bin/wait_on_postgres.py of the local stand-in for quay.io/pulp/pulp-minimal.

Written for hack/images/build.sh from the published helper's documented behaviour: up to 100
attempts, 3 s apart, to open a Django connection to the default database (configured by the
Pulp settings); exit 0 once connected, 1 if it never connects.
"""
import os
import sys
import time

ATTEMPTS = 100
DELAY_SECONDS = 3


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pulpcore.app.settings")
    import django

    django.setup()
    from django.db import connection
    from django.db.utils import OperationalError

    print("Checking for database connection...", flush=True)
    for attempt in range(1, ATTEMPTS + 1):
        try:
            connection.ensure_connection()
        except OperationalError as exc:
            reason = " ".join(str(exc).split())
            print("Database not reachable (attempt %d/%d): %s" % (attempt, ATTEMPTS, reason), flush=True)
            if attempt < ATTEMPTS:
                time.sleep(DELAY_SECONDS)
            continue
        connection.close()
        print("Database connection established.", flush=True)
        return 0
    print("Giving up: the database never accepted a connection.", file=sys.stderr, flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
