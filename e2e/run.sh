#!/usr/bin/env bash
# End-to-end on a kind cluster, for machines WITH a container engine (docker or podman):
# kind cluster -> build and load the image -> a CA and NATS's certificate (openssl) ->
# helm install the secured path (a 3-server JetStream cluster, TLS, the operator's NATS
# users) -> apply examples/ -> port-forward the nodes -> drive a federation with the Python
# client (e2e/drive.py) -> compare with the pooled scikit-learn model -> check the secured
# path (e2e/secure_check.py: no CA refused, per-member Secrets, a deleted Peer's user
# refused without a NATS restart) -> tear down. It cannot run on this project's own machines
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
for tool in docker kind kubectl openssl; do
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

log "a CA and NATS's certificate (kind has no cert-manager: the chart takes the Secret)"
pki="$(mktemp -d)"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=fedstats e2e CA" -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=nats" \
  -keyout "$pki/tls.key" -out "$pki/tls.csr" 2>/dev/null
printf 'subjectAltName=DNS:nats,DNS:nats.%s.svc,DNS:*.nats-headless.%s.svc,IP:127.0.0.1\n' \
  "$NS" "$NS" >"$pki/san.ext"
openssl x509 -req -in "$pki/tls.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
  -days 2 -extfile "$pki/san.ext" -out "$pki/tls.crt" 2>/dev/null
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f -
kubectl -n "$NS" create secret generic nats-tls --from-file="$pki/tls.crt" \
  --from-file="$pki/tls.key" --from-file="$pki/ca.crt" --dry-run=client -o yaml | kubectl apply -f -

log "helm install (operator, CRDs, a 3-server NATS JetStream cluster with TLS and auth)"
"$HELM" upgrade --install fedstats helm/fedstats --namespace "$NS" \
  -f helm/fedstats/values-production.yaml \
  --set image.repository="$IMAGE_REPO" --set image.tag="$TAG" --set image.pullPolicy=Never \
  --set nats.tls.certManager.enabled=false --set nats.tls.secretName=nats-tls \
  --set nats.storage.size=1Gi --set nats.resources.requests.cpu=100m \
  --set nats.resources.requests.memory=256Mi --wait --timeout 8m

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
    if doc["kind"] == "Federation":  # the chart's NATS: TLS, 3 servers
        doc["spec"]["nats"] = {"url": "tls://nats.fedstats.svc:4222", "replicas": 3,
                               "tls": {"caSecretRef": {"name": "nats-tls"}}}
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

log "the secured path: TLS, each member's own Secrets, a deleted Peer's user refused"
kubectl -n "$NS" port-forward service/nats 14222:4222 >/dev/null 2>&1 &
pids+=("$!")
for _ in $(seq 30); do (exec 3<>/dev/tcp/127.0.0.1/14222) 2>/dev/null && break; sleep 1; done
"$PY" e2e/secure_check.py --namespace "$NS" --nats 127.0.0.1:14222 --ca-file "$pki/ca.crt" \
  --delete-peer hospital-c --keep-peer hospital-a

log "delete the federation (its finalizer removes the streams), then the release"
kubectl -n "$NS" delete peers --all --timeout=2m
kubectl -n "$NS" delete federation demo --timeout=2m
"$HELM" uninstall fedstats --namespace "$NS" --wait
log "passed"
