#!/usr/bin/env bash
# Brings up a single-node rkube cluster on this machine: installs what is missing,
# builds the release binary, starts `rkube server` and waits until kubectl answers.
#
#   scripts/up.sh                 # data in /var/lib/rkube, kubeconfig /etc/rkube/rkube.yaml
#   RKUBE_DATA_DIR=/tmp/rk scripts/up.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release -p rkube
data=${RKUBE_DATA_DIR:-/var/lib/rkube}
kubeconfig=${RKUBE_KUBECONFIG:-/etc/rkube/rkube.yaml}
mkdir -p "$data/agent/images"
# No registry is reachable: the agent imports these locally built images at start.
cargo run -q -p xtask -- test-images "$data/agent/images"
rm -f "$kubeconfig"
nohup "${CARGO_TARGET_DIR:-target}/release/rkube" server --data-dir "$data" --write-kubeconfig "$kubeconfig" ${RKUBE_ARGS:-} \
  >"$data/rkube.log" 2>&1 &
echo $! >"$data/rkube.pid"
for _ in $(seq 1 300); do
  [ -f "$kubeconfig" ] && break
  if ! kill -0 "$(cat "$data/rkube.pid")" 2>/dev/null; then
    echo "rkube server exited; see $data/rkube.log" >&2
    tail -20 "$data/rkube.log" >&2
    exit 1
  fi
  sleep 0.1
done
export KUBECONFIG=$kubeconfig
case " ${RKUBE_ARGS:-} " in
  *" --disable-agent "*) ;;
  *)
    for _ in $(seq 1 120); do
      [ -n "$(kubectl get nodes -o name 2>/dev/null)" ] && break
      sleep 0.5
    done
    kubectl wait --for=condition=Ready node --all --timeout=120s
    ;;
esac
kubectl get nodes -o wide
echo "rkube is up (pid $(cat "$data/rkube.pid")). Use: export KUBECONFIG=$kubeconfig"
