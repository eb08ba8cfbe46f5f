#!/usr/bin/env bash
# `make demo`: a real single-node Kubernetes on this machine (control plane + kubelet, containerd,
# kube-proxy, CoreDNS), the operator, and a sample Pulp that becomes a working Pulp.
# `make demo-down` (or `hack/demo.sh down`) stops everything and cleans up.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
state=${PULP_OPERATOR_DEMO_DIR:-$HOME/.cache/pulp-operator/demo}
images=${PULP_OPERATOR_IMAGES:-$HOME/.cache/pulp-operator/images}
testbin=$(bash hack/testbin/build.sh | tail -n 1)
kubectl="$testbin/kubectl --kubeconfig $state/node/cluster/kubeconfig"
ns=demo
port=30080
py="$repo/.venv/bin/python"

stop() {
  if [ -f "$state/operator.pid" ]; then
    kill "$(cat "$state/operator.pid")" 2>/dev/null || true
    rm -f "$state/operator.pid"
  fi
  if [ -d "$state/node" ]; then
    "$py" -m pulp_devcluster.node down --state-dir "$state/node" || true
  fi
  echo "demo stopped"
}

if [ "${1:-}" = down ]; then stop; exit 0; fi
[ "$(id -u)" = 0 ] || { echo "the demo runs a real kubelet and containerd: run it as root" >&2; exit 1; }

mkdir -p "$state"
stop >/dev/null 2>&1 || true
start=$SECONDS
image_args=()
for archive in pulp-minimal-3.123.1 pulp-web-3.123.1 postgres-15 redis-7; do
  image_args+=(--image "$images/$archive.oci.tar")
done
echo "== starting a single-node cluster (control plane, kubelet, containerd, kube-proxy, CoreDNS)"
setsid "$py" -m pulp_devcluster.node up --state-dir "$state/node" --crds "$repo/config/crd" \
  --containerd-root "$HOME/.cache/pulp-operator/demo-containerd" "${image_args[@]}" \
  >"$state/node.log" 2>&1 < /dev/null &
node_pid=$!
for _ in $(seq 1 300); do
  grep -q "running until" "$state/node.log" 2>/dev/null && break
  if ! kill -0 $node_pid 2>/dev/null; then cat "$state/node.log"; echo "the node did not start" >&2; exit 1; fi
  sleep 1
done
grep -q "running until" "$state/node.log" || { cat "$state/node.log"; exit 1; }
echo "   node ready after $((SECONDS - start)) s"

echo "== starting the operator (log: $state/operator.log)"
KUBECONFIG=$state/node/cluster/kubeconfig setsid "$repo/.venv/bin/pulp-operator" run --namespace "$ns" \
  --health-address http://127.0.0.1:18081/healthz --metrics-port 18080 \
  >"$state/operator.log" 2>&1 < /dev/null &
echo $! > "$state/operator.pid"

echo "== applying config/samples/demo.yaml in namespace $ns"
$kubectl create namespace "$ns" --dry-run=client -o yaml | $kubectl apply -f - >/dev/null
$kubectl apply -n "$ns" -f config/samples/demo.yaml

echo "== waiting for the Pulp to become Ready (migrations run for real: a few minutes)"
# `pulp-operator status` exits 0 once the Pulp is Ready; its first line (state and reason) is shown
# when it changes, the whole report (components, versions, failing conditions) every 30 s.
ready="" last=""
for i in $(seq 1 200); do
  if KUBECONFIG=$state/node/cluster/kubeconfig "$repo/.venv/bin/pulp-operator" status demo -n "$ns" \
    >"$state/status.txt" 2>&1; then
    ready=True
  fi
  line=$(head -n 1 "$state/status.txt")
  if [ "$line" != "$last" ]; then
    printf '   %4d s  %s\n' $((SECONDS - start)) "$line"
    last=$line
  fi
  if [ "$ready" = True ] || [ $((i % 10)) = 0 ]; then
    sed -n '2,$p' "$state/status.txt"
  fi
  [ "$ready" = True ] && break
  sleep 3
done
echo
if [ "$ready" != True ]; then
  echo "the Pulp did not become Ready; see $state/operator.log and $kubectl get events -n $ns" >&2
  exit 1
fi
curl -fsS "http://127.0.0.1:$port/pulp/api/v3/status/" >/dev/null && echo "Pulp answers at http://127.0.0.1:$port/"
cat <<MSG

Pulp is running at http://127.0.0.1:$port/ (ready after $((SECONDS - start)) s).
  admin password: $kubectl get secret demo-admin-password -n $ns -o jsonpath='{.data.password}' | base64 -d
  try it:         .venv/bin/pulp --base-url http://127.0.0.1:$port --username admin --password <that> status
  cluster:        export KUBECONFIG=$state/node/cluster/kubeconfig; $testbin/kubectl get pulp,pods -n $ns
  operator log:   $state/operator.log
Stop it with: make demo-down
MSG
