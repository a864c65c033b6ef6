#!/usr/bin/env bash
# `make e2e`: the real Pulumi engine against a real single-node cluster, all local.
#   1. build (or reuse) the toolchain: scripts/e2e-toolchain.sh; build (or reuse) the proxy
#      image and run it as the Deployment does: pytest -m image tests/image
#   2. start the cluster inside a network namespace of its own: scripts/local-node/cluster.sh
#      (control plane with the CRDs, containerd + kubelet, kube-proxy, CoreDNS, a registry
#      with the proxy image built here, a fake OpenAI upstream on the node)
#   3. the agentgateway controller in the same namespace, when the toolchain has it
#   4. pytest -m e2e tests/e2e, inside the namespace
#   5. stop everything and remove the temp dir (trap), whatever happened
#
# Env: LLM_GATEWAY_CRDS_DIR (default ../shared/crds), LLM_GATEWAY_E2E_KEEP=1 keeps the temp
# dir (logs, state) for debugging, PYTEST_ARGS adds pytest arguments,
# LLM_GATEWAY_NODE_SYNC sets the kubelet's syncFrequency (default: the kubelet's, 1m).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
python="$repo/.venv/bin/python"
[[ -x "$python" ]] || { echo "e2e: no .venv; run \`make venv\` first" >&2; exit 1; }
crds="${LLM_GATEWAY_CRDS_DIR:-$repo/../shared/crds}"
[[ -d "$crds" ]] || { echo "e2e: CRDs not found at $crds (set LLM_GATEWAY_CRDS_DIR)" >&2; exit 1; }
export LLM_GATEWAY_CRDS_DIR="$crds"

t0=$(date +%s)
bin="$(scripts/e2e-toolchain.sh | tail -n1)"
t1=$(date +%s)
echo "e2e: toolchain ready in $((t1 - t0))s: $bin" >&2

if [[ "${LLM_GATEWAY_E2E_SKIP_IMAGE:-0}" == 1 ]]; then
    echo "e2e: image tests skipped (LLM_GATEWAY_E2E_SKIP_IMAGE=1)" >&2
else
    # The image tests run the image with podman (and push.sh through docker-registry).
    scripts/ensure-debian-packages.sh podman docker-registry
    "$repo/.venv/bin/pytest" -m image tests/image -p no:cacheprovider
fi
t1=$(date +%s)
echo "e2e: image built and checked; $((t1 - t0))s so far" >&2

state="$(mktemp -d "${TMPDIR:-/tmp}/llm-gateway-e2e.XXXXXX")"
cluster="$state/cluster"
cleanup() {
    if [[ -f "$cluster/pids/agentgateway-controller" ]]; then
        scripts/local-node/agentgateway-controller.sh stop "$cluster" "$bin" || true
    fi
    scripts/local-node/cluster.sh down "$cluster" || true
    if [[ "${LLM_GATEWAY_E2E_KEEP:-0}" == 1 ]]; then
        echo "e2e: kept $state" >&2
    else
        rm -rf "$state"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

scripts/local-node/cluster.sh up "$cluster" "$bin"
extra_env=()
if [[ -x "$bin/agentgateway-controller" && -x scripts/local-node/agentgateway-controller.sh ]]; then
    scripts/local-node/cluster.sh run "$cluster" scripts/local-node/agentgateway-controller.sh start "$cluster" "$bin"
    extra_env+=(LLM_GATEWAY_E2E_AGW_ADMIN=http://localhost:9095)
fi
t2=$(date +%s)
echo "e2e: cluster ready in $((t2 - t1))s" >&2

# shellcheck disable=SC2086 # PYTEST_ARGS is a list of words on purpose
scripts/local-node/cluster.sh run "$cluster" env "${extra_env[@]}" \
    LLM_GATEWAY_E2E_BIN="$bin" LLM_GATEWAY_E2E_KUBECONFIG="$cluster/kubeconfig" TMPDIR="$state" \
    "$repo/.venv/bin/pytest" -m e2e tests/e2e -p no:cacheprovider ${PYTEST_ARGS:-}
t3=$(date +%s)
echo "e2e: scenarios took $((t3 - t2))s (total $((t3 - t0))s)" >&2
