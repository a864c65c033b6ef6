#!/usr/bin/env bash
# The real agentgateway controller (v1.4.1, built from ../shared/agentgateway by the e2e
# toolchain) against the e2e API server, so the tests see what it makes of our objects.
#
#   scripts/e2e/agentgateway-controller.sh start STATE_DIR BIN_DIR
#   scripts/e2e/agentgateway-controller.sh stop  STATE_DIR
#
# STATE_DIR is control-plane.sh's (its kubeconfig, pids/, logs/). Run `start` INSIDE the
# e2e network namespace: the controller binds xDS :9978, health :9093 and metrics :9092 on
# all interfaces (hardcoded). Its admin server (localhost:9095) serves /snapshots/krt, which
# the tests read (LLM_GATEWAY_E2E_AGW_ADMIN=http://localhost:9095).
#
# `start` returns once the controller reports ready (/readyz on :9093), its admin endpoint
# answers and it has created the GatewayClass `agentgateway`. Logs: STATE_DIR/logs/
# agentgateway-controller.log; pid: STATE_DIR/pids/agentgateway-controller.
set -euo pipefail

NAME=agentgateway-controller
CONTROLLER_NAMESPACE=agentgateway-system
# The tag of the data-plane image the controller writes into each Gateway's Deployment.
PROXY_IMAGE_TAG=v1.4.1
# A registry on the node's own loopback where nothing listens: a kubelet pulling the
# data-plane image fails at once, locally, instead of trying cr.agentgateway.dev.
PROXY_IMAGE_REGISTRY=127.0.0.1:5000

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
python="$repo/.venv/bin/python"

# shellcheck source=scripts/e2e/lib.sh
source "$repo/scripts/e2e/lib.sh"

# kube namespace|gatewayclass: create the controller's namespace (idempotent), or exit 0 once
# the controller has created GatewayClass `agentgateway`.
kube() {
    local name="$CONTROLLER_NAMESPACE"
    [[ "$1" == gatewayclass ]] && name=agentgateway
    "$python" "$repo/scripts/e2e/agentgateway_objects.py" "$state/kubeconfig" "$1" "$name"
}

start_controller() {
    state="$1"
    local bin="$2" pid
    [[ -x "$bin/$NAME" ]] || { log "no $bin/$NAME (built by scripts/e2e-toolchain.sh)"; return 1; }
    [[ -f "$state/kubeconfig" ]] || { log "no $state/kubeconfig: run control-plane.sh up first"; return 1; }
    mkdir -p "$state/logs" "$state/pids"
    if [[ -f "$state/pids/$NAME" ]] && kill -0 "$(cat "$state/pids/$NAME")" 2>/dev/null; then
        log "already running (pid $(cat "$state/pids/$NAME"))"
        return 1
    fi
    kube namespace

    # A clean environment: only what the controller reads (settings are AGW_* env vars).
    start "$NAME" env -i PATH=/usr/bin:/bin HOME="$state" \
        KUBECONFIG="$state/kubeconfig" \
        POD_NAMESPACE="$CONTROLLER_NAMESPACE" \
        AGW_DISABLE_LEADER_ELECTION=true \
        AGW_PROXY_IMAGE_REGISTRY="$PROXY_IMAGE_REGISTRY" \
        AGW_PROXY_IMAGE_TAG="$PROXY_IMAGE_TAG" \
        AGW_LOG_LEVEL="${AGW_LOG_LEVEL:-info}" \
        "$bin/$NAME"
    pid="$(cat "$state/pids/$NAME")"

    local t0=$SECONDS
    wait_for "$NAME" 120 curl -fsS http://127.0.0.1:9093/readyz
    wait_for "$NAME" 30 curl -fsS -o /dev/null http://localhost:9095/snapshots/krt
    wait_for "$NAME" 60 kube gatewayclass
    log "up (pid $pid) in $((SECONDS - t0))s; admin http://localhost:9095"
}

stop_controller() {
    state="$1"
    [[ -f "$state/pids/$NAME" ]] || return 0
    stop "$NAME"
    log "stopped"
}

case "${1:-}" in
    start) start_controller "$2" "$3" ;;
    stop) stop_controller "$2" ;;
    *)
        echo "usage: $0 start STATE_DIR BIN_DIR | stop STATE_DIR" >&2
        exit 2
        ;;
esac
