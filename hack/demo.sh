#!/usr/bin/env bash
# `make demo`: starts a local cluster, installs the CRDs, runs the operator, applies a sample Pulp
# and shows its objects and status converging. `make demo-down` (or `hack/demo.sh down`) stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
state=${PULP_OPERATOR_DEMO_DIR:-$HOME/.cache/pulp-operator/demo}
testbin=$(bash hack/testbin/build.sh | tail -n 1)
kubectl="$testbin/kubectl --kubeconfig $state/cluster/kubeconfig"
ns=demo

stop() {
  if [ -f "$state/operator.pid" ]; then
    kill "$(cat "$state/operator.pid")" 2>/dev/null || true
    rm -f "$state/operator.pid"
  fi
  if [ -d "$state/cluster" ]; then
    "$repo/.venv/bin/python" -m pulp_operator.devcluster down --state-dir "$state/cluster" || true
  fi
  echo "demo stopped"
}

if [ "${1:-}" = down ]; then stop; exit 0; fi

mkdir -p "$state"
stop >/dev/null 2>&1 || true
start=$SECONDS
echo "== starting the local cluster (etcd, kube-apiserver, controller-manager, scheduler, kwok nodes)"
setsid "$repo/.venv/bin/python" -m pulp_operator.devcluster up --tier cluster \
  --state-dir "$state/cluster" --crds "$repo/config/crd" >"$state/cluster.log" 2>&1 < /dev/null &
for _ in $(seq 1 180); do
  grep -q "running until" "$state/cluster.log" 2>/dev/null && break
  if ! kill -0 $! 2>/dev/null; then cat "$state/cluster.log"; echo "the cluster did not start" >&2; exit 1; fi
  sleep 1
done
grep -q "running until" "$state/cluster.log" || { cat "$state/cluster.log"; exit 1; }
echo "   cluster ready after $((SECONDS - start)) s"

echo "== starting the operator (log: $state/operator.log)"
KUBECONFIG=$state/cluster/kubeconfig setsid "$repo/.venv/bin/pulp-operator" run --namespace "$ns" \
  --health-address http://127.0.0.1:18081/healthz --metrics-port 18080 \
  >"$state/operator.log" 2>&1 < /dev/null &
echo $! > "$state/operator.pid"

echo "== applying config/samples/demo.yaml in namespace $ns"
$kubectl create namespace "$ns" --dry-run=client -o yaml | $kubectl apply -f - >/dev/null
$kubectl apply -f hack/demo-volumes.yaml >/dev/null
$kubectl apply -n "$ns" -f config/samples/demo.yaml

echo "== waiting for the Pulp to become Ready"
ready=""
for i in $(seq 1 90); do
  ready=$($kubectl get pulp demo -n "$ns" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)
  if [ $((i % 5)) = 1 ] || [ "$ready" = True ]; then
    echo "--- after $((SECONDS - start)) s"
    $kubectl get pulp -n "$ns"
  fi
  [ "$ready" = True ] && break
  sleep 2
done
echo
$kubectl get deployments,statefulsets,services,jobs,pvc,secrets,configmaps -n "$ns"
echo
$kubectl get pulp demo -n "$ns" -o jsonpath='{range .status.conditions[*]}{.type}={.status} {.reason}: {.message}{"\n"}{end}'
echo
if [ "$ready" != True ]; then
  echo "the Pulp did not become Ready; see $state/operator.log" >&2
fi
cat <<MSG
The demo runs in the background (objects in a local API server; kwok nodes play the pods).
  export KUBECONFIG=$state/cluster/kubeconfig
  $testbin/kubectl get pulp,all -n $ns
  operator log: $state/operator.log
Stop it with: make demo-down
MSG
[ "$ready" = True ]
