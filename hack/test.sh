#!/usr/bin/env bash
# `make test`: every check and every test tier, with the builds they need.
#
# Lint and the unit tier run first (no build needed). Then the builds run side by side, in three
# lanes (their apt-get calls wait for each other, see lib/apt.sh):
#   lane 1: cluster binaries, then the packaging tools      -> the API-server and cluster tiers
#   lane 2: container images (the OpenTelemetry Collector among them)
#   lane 3: CoreDNS and the node's packages, slapd, the test servers
# The API-server and cluster tiers (tests/integration) start as soon as lane 1 is done, beside the
# other two lanes; the real-node tier (tests/e2e) starts once every lane is done. Each lane's
# output goes to .test-logs/<lane>.log (its last lines are shown when it fails); the tiers print
# their pytest output. Exit status: non-zero when anything failed.
#
# PYTEST_ARGS is passed to every pytest run; TEST_SEQUENTIAL=1 builds and tests one after another.
# TEST_BUDGET_MINUTES (unset: no budget; .ci/run sets it) is when, counted from the start of this
# script, the real-node tier must be done: its modules start only while they fit (tests/e2e/budget.py)
# and the ones that do not are listed as skipped.
set -uo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
logs=.test-logs
rm -rf "$logs"
mkdir -p "$logs"
read -r -a pytest_args <<<"${PYTEST_ARGS:-}"
pytest=(.venv/bin/pytest -p no:cacheprovider "${pytest_args[@]}")
failed=()
# tests/integration without this module runs beside the builds and the real-node tier; it runs
# after them, on a quiet machine
load_sensitive=tests/integration/test_resilience.py

stamp() { printf '[test %dm%02ds] %s\n' $(((SECONDS - start) / 60)) $(((SECONDS - start) % 60)) "$*"; }

lane() { # NAME TARGET...: make the targets one after another, output in the lane's log
  local name=$1 t0=$SECONDS
  shift
  for target in "$@"; do
    if ! make --no-print-directory "$target" >>"$logs/$name.log" 2>&1; then
      stamp "lane $name: make $target FAILED after $((SECONDS - t0)) s; last lines of $logs/$name.log:"
      tail -n 40 "$logs/$name.log" | sed 's/^/    /'
      return 1
    fi
    stamp "lane $name: $target ready ($((SECONDS - t0)) s into the lane)"
  done
}

make --no-print-directory venv || exit 1
make --no-print-directory lint || failed+=(lint)
stamp "unit tier"
"${pytest[@]}" tests/unit || failed+=("tests/unit")

if [ "${TEST_SEQUENTIAL:-0}" = 1 ]; then
  lane binaries testbin tools || failed+=("build: testbin tools")
  lane images images || failed+=("build: images")
  lane node nodebin slapd services || failed+=("build: nodebin slapd services")
  stamp "API-server and cluster tiers"
  "${pytest[@]}" tests/integration || failed+=("tests/integration")
else
  lane binaries testbin tools &
  binaries=$!
  lane images images &
  images=$!
  lane node nodebin slapd services &
  node=$!
  integration=""
  if wait "$binaries"; then
    stamp "API-server and cluster tiers start (their output follows when they end)"
    (
      t0=$SECONDS
      "${pytest[@]}" --durations=20 tests/integration --ignore="$load_sensitive" >"$logs/integration.log" 2>&1
      rc=$?
      echo "rc=$rc seconds=$((SECONDS - t0))" >"$logs/integration.done"
      exit $rc
    ) &
    integration=$!
  else
    failed+=("build: testbin tools")
  fi
  wait "$images" || failed+=("build: images")
  wait "$node" || failed+=("build: nodebin slapd services")
fi

if [ ${#failed[@]} -eq 0 ] || [[ ! " ${failed[*]} " =~ build: ]]; then
  budget=()
  if [ -n "${TEST_BUDGET_MINUTES:-}" ]; then
    deadline=$(($(date +%s) + TEST_BUDGET_MINUTES * 60 - (SECONDS - start)))
    budget=(env "PULP_OPERATOR_E2E_DEADLINE=$deadline")
    stamp "real-node tier (modules start while they fit before $(date -d "@$deadline" +%H:%M:%S))"
  else
    stamp "real-node tier"
  fi
  "${budget[@]}" "${pytest[@]}" --durations=40 tests/e2e || failed+=("tests/e2e")
else
  stamp "real-node tier not run: a build it needs failed"
  failed+=("tests/e2e (not run)")
fi

if [ -n "${integration:-}" ]; then
  wait "$integration" || failed+=("tests/integration")
  stamp "API-server and cluster tiers ended ($(cat "$logs/integration.done" 2>/dev/null)):"
  cat "$logs/integration.log"
  # Restarts of the API server and leader hand-overs have deadlines of their own: alone, not
  # beside the real node's Pulps.
  stamp "$load_sensitive"
  "${pytest[@]}" "$load_sensitive" || failed+=("$load_sensitive")
fi

if [ ${#failed[@]} -gt 0 ]; then
  stamp "FAILED: ${failed[*]}"
  exit 1
fi
stamp "every check and tier passed"
