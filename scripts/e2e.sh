#!/usr/bin/env bash
# `make e2e`: the real Pulumi engine against a real kube-apiserver, all local.
#   1. build (or reuse) the toolchain: scripts/e2e-toolchain.sh
#   2. start etcd + kube-apiserver (+ namespace controller) on loopback, apply the CRDs
#   3. pytest -m e2e tests/e2e
#   4. stop everything and remove the temp dir (trap), whatever happened
#
# Env: LLM_GATEWAY_CRDS_DIR (default ../shared/crds), LLM_GATEWAY_E2E_KEEP=1 keeps the temp
# dir (logs, state) for debugging, PYTEST_ARGS adds pytest arguments.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
python="$repo/.venv/bin/python"
[[ -x "$python" ]] || { echo "e2e: no .venv; run \`make venv\` first" >&2; exit 1; }
crds="${LLM_GATEWAY_CRDS_DIR:-$repo/../shared/crds}"
[[ -d "$crds" ]] || { echo "e2e: CRDs not found at $crds (set LLM_GATEWAY_CRDS_DIR)" >&2; exit 1; }

t0=$(date +%s)
bin="$(scripts/e2e-toolchain.sh | tail -n1)"
t1=$(date +%s)
echo "e2e: toolchain ready in $((t1 - t0))s: $bin" >&2

state="$(mktemp -d "${TMPDIR:-/tmp}/llm-gateway-e2e.XXXXXX")"
cleanup() {
    scripts/e2e/control-plane.sh down "$state/cluster" || true
    if [[ "${LLM_GATEWAY_E2E_KEEP:-0}" == 1 ]]; then
        echo "e2e: kept $state" >&2
    else
        rm -rf "$state"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

scripts/e2e/control-plane.sh up "$state/cluster" "$bin"
"$python" scripts/e2e/apply_crds.py "$state/cluster/kubeconfig" "$crds"
scripts/e2e/control-plane.sh controllers "$state/cluster" "$bin"
t2=$(date +%s)
echo "e2e: control plane + CRDs ready in $((t2 - t1))s" >&2

# shellcheck disable=SC2086 # PYTEST_ARGS is a list of words on purpose
LLM_GATEWAY_E2E_BIN="$bin" LLM_GATEWAY_E2E_KUBECONFIG="$state/cluster/kubeconfig" \
    TMPDIR="$state" "$repo/.venv/bin/pytest" -m e2e tests/e2e -p no:cacheprovider ${PYTEST_ARGS:-}
t3=$(date +%s)
echo "e2e: scenarios took $((t3 - t2))s (total $((t3 - t0))s)" >&2
