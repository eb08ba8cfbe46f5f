#!/usr/local/bin/python3
"""/usr/bin/readyz.py PATH of the local stand-in for quay.io/pulp/pulp-minimal.

Written for hack/images/build.sh from the published helper's documented behaviour. It looks at
the command line of PID 1 in the container:
- "pulp-api" in it: GET http://[::1]:24817PATH (127.0.0.1 without IPv6); ready when the status
  says the database is connected, and Redis too when REDIS_SERVICE_HOST is set;
- "pulp-content" in it: HEAD http://[::1]:24816PATH; ready on a 2xx/3xx answer;
- anything else (pulpcore-api / pulpcore-content as PID 1 included): exit 0 without checking.
Exit codes: 0 ready, 1 unreachable or HTTP error, 3 database down, 4 Redis down.
"""
import json
import socket
import sys
import urllib.error
import urllib.request


def base_url(port):
    try:
        with socket.create_connection(("::1", port), timeout=1):
            return "http://[::1]:%d" % port
    except OSError:
        return "http://127.0.0.1:%d" % port


def request(method, port, path):
    req = urllib.request.Request(base_url(port) + path, method=method)
    return urllib.request.urlopen(req, timeout=10)


def check_api(path):
    import os

    with request("GET", 24817, path) as response:
        status = json.load(response)
    if not status.get("database_connection", {}).get("connected"):
        print("database not connected", file=sys.stderr)
        return 3
    if os.environ.get("REDIS_SERVICE_HOST") and not status.get("redis_connection", {}).get("connected"):
        print("redis not connected", file=sys.stderr)
        return 4
    return 0


def check_content(path):
    with request("HEAD", 24816, path):
        return 0


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "/"
    try:
        with open("/proc/1/cmdline", "rb") as f:
            cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return 0
    try:
        if "pulp-api" in cmdline:
            return check_api(path)
        if "pulp-content" in cmdline:
            return check_content(path)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print("not ready: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
