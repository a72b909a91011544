#!/usr/bin/env bash
# End-to-end on a kind cluster, for machines WITH a container engine (docker or podman):
# kind cluster -> build and load the image -> helm install -> apply examples/ -> port-forward
# the nodes -> drive a federation with the Python client (e2e/drive.py) -> compare with the
# pooled scikit-learn model -> tear down. It cannot run on this project's own machines
# (no container engine); see e2e/README.md for what runs there instead.
#
# Needs: docker (or KIND_EXPERIMENTAL_PROVIDER=podman), kind, kubectl, helm (or
# scripts/build-helm's), and this repository's .venv (./scripts/setup). Keep the cluster
# for inspection with E2E_KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER="${E2E_CLUSTER:-fedstats-e2e}"
NS=fedstats
IMAGE_REPO=fedstats.local/fedstats
TAG=e2e
PY="${FEDSTATS_VENV:-.venv}/bin/python"
HELM="${HELM:-$(command -v helm || bash scripts/build-helm | tail -1)}"

log() { printf '[e2e %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
for tool in docker kind kubectl; do
  command -v "$tool" >/dev/null || { echo "e2e: $tool is required (see e2e/README.md)" >&2; exit 2; }
done
docker info >/dev/null 2>&1 || { echo "e2e: no container engine is running" >&2; exit 2; }
[ -x "$PY" ] || { echo "e2e: run ./scripts/setup first ($PY missing)" >&2; exit 2; }

pids=()
cleanup() {
  local rc=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [ "$rc" -ne 0 ]; then
    kubectl -n "$NS" get federations,peers,deployments,pods -o wide >&2 || true
    kubectl -n "$NS" logs deployment/fedstats-operator --tail=100 >&2 || true
  fi
  if [ -z "${E2E_KEEP:-}" ]; then
    log "deleting cluster $CLUSTER"
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  fi
  exit "$rc"
}
trap cleanup EXIT

log "kind cluster $CLUSTER"
kind get clusters | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --wait 120s

log "image $IMAGE_REPO:$TAG"
docker build -t "$IMAGE_REPO:$TAG" .
kind load docker-image --name "$CLUSTER" "$IMAGE_REPO:$TAG"

log "helm install (operator, CRDs, NATS with JetStream)"
"$HELM" upgrade --install fedstats helm/fedstats --namespace "$NS" --create-namespace \
  --set image.repository="$IMAGE_REPO" --set image.tag="$TAG" --set image.pullPolicy=Never \
  --set nats.storage.size=1Gi --wait --timeout 5m

log "examples/: a federation, two CPU peers and a contract, on the image just built"
# The examples name the published image; the cluster runs the one built above. A copy of
# peer-cpu.yaml as hospital-c makes three nodes. (peer-gpu.yaml needs a GPU node: not kind.)
"$PY" - "$IMAGE_REPO:$TAG" examples/federation.yaml examples/peer-cpu.yaml \
    examples/psrcontract.yaml <<'PY' | kubectl -n "$NS" apply -f -
import copy, json, sys
import yaml
image, files = sys.argv[1], sys.argv[2:]
docs = [yaml.safe_load(open(f)) for f in files]
third = copy.deepcopy(next(d for d in docs if d["kind"] == "Peer"))
third["metadata"]["name"] = "hospital-c"
for doc in [*docs, third]:
    node = doc["spec"].get("admin", doc["spec"])
    if "image" in node:
        node.update(image=image, imagePullPolicy="Never")
    print(json.dumps(doc))
PY
kubectl -n "$NS" wait --for=condition=Ready --timeout=5m \
  federation/demo peer/hospital-a peer/hospital-c

log "port-forward the nodes"
port=18080
nodes=()
for svc in demo-admin hospital-a-peer hospital-c-peer; do
  kubectl -n "$NS" port-forward "service/$svc" "$port:8080" >/dev/null 2>&1 &
  pids+=("$!")
  nodes+=(--node "$svc=http://127.0.0.1:$port")
  port=$((port + 1))
done
for p in 18080 18081 18082; do
  for _ in $(seq 60); do
    curl -fsS "http://127.0.0.1:$p/healthz" >/dev/null 2>&1 && break
    sleep 1
  done
done

log "drive the federation; compare with the pooled scikit-learn model"
"$PY" e2e/drive.py --namespace "$NS" --federation demo \
  --nats-url "nats://nats.$NS.svc:4222" --admin-rest-host "http://demo-admin.$NS.svc:8080" \
  "${nodes[@]}"

log "delete the federation (its finalizer removes the streams), then the release"
kubectl -n "$NS" delete peers --all --timeout=2m
kubectl -n "$NS" delete federation demo --timeout=2m
"$HELM" uninstall fedstats --namespace "$NS" --wait
log "passed"
