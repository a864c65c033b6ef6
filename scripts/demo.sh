#!/usr/bin/env bash
# `make demo`: the whole thing on this machine, nothing downloaded but packages.
#
#   scripts/demo.sh up      # toolchain + local node (cached), image, `pulumi up` dev, smoke test
#   scripts/demo.sh shell   # a shell inside the node's network namespace, ready for
#                           # kubectl and pulumi on the demo's dev stack
#   scripts/demo.sh down    # `pulumi destroy`, then stop and remove the node
#
# It builds (first time) or reuses the e2e toolchain (scripts/e2e-toolchain.sh) and a
# single-node cluster inside a network namespace (scripts/e2e/cluster.sh), builds the
# proxy image and pushes it to the node's registry, then runs the plain Pulumi flow on a
# copy of this project (so the repo's stack files stay untouched): `pulumi stack init dev`,
# `pulumi config set --secret openaiKey` (a fake key: the upstream is a fake OpenAI API on
# the node), `pulumi up` with the proxy plane awaited for real, and the `smokeTest` output
# run as the README tells users to. The agentgateway plane is off: its data plane cannot be
# built here. State: LLM_GATEWAY_DEMO_DIR (default /tmp/llm-gateway-demo).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
demo="$(realpath -m "${LLM_GATEWAY_DEMO_DIR:-/tmp/llm-gateway-demo}")"
cluster="$demo/cluster"
project="$demo/project"
# Throwaway values: the key only reaches the node's fake upstream.
DEMO_KEY="sk-demo-not-a-real-key-0000000000000000"
DEMO_PASSPHRASE="llm-gateway-demo-throwaway"

log() { echo "demo: $*" >&2; }

# The environment every demo command runs with: the toolchain on PATH, the node's
# kubeconfig, and a Pulumi home, file backend and passphrase of the demo's own.
write_env() {
    cat >"$demo/env" <<EOF
PATH=$bin:$PATH
KUBECONFIG=$cluster/kubeconfig
PULUMI_HOME=$demo/pulumi-home
PULUMI_BACKEND_URL=file://$demo/backend
PULUMI_CONFIG_PASSPHRASE=$DEMO_PASSPHRASE
PULUMI_SKIP_UPDATE_CHECK=true
PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
PULUMI_IGNORE_AMBIENT_PLUGINS=true
EOF
}

# install_provider: the Kubernetes provider the toolchain built goes into the demo's plugin
# cache under the version the program's pulumi_kubernetes asks for, and the engine is told to
# ignore binaries on PATH: no "using pulumi-resource-kubernetes from $PATH" warning per run.
install_provider() {
    local version
    version="$("$repo/.venv/bin/python" -c 'import importlib.metadata as m; print(m.version("pulumi_kubernetes"))')"
    in_node pulumi plugin install resource kubernetes "$version" \
        --file "$bin/pulumi-resource-kubernetes" >/dev/null
}

# in_node CMD...: run CMD in the project copy, inside the node's namespace, demo env loaded.
in_node() {
    (
        set -a
        # shellcheck disable=SC1091 # written by write_env
        source "$demo/env"
        set +a
        cd "$project"
        exec "$repo/scripts/e2e/cluster.sh" run "$cluster" "$@"
    )
}

copy_project() {
    rm -rf "$project" && mkdir -p "$project"
    cp "$repo"/{Pulumi.yaml,__main__.py,requirements.txt} "$project/"
    cp -r "$repo"/{components,proxy,stacks} "$project/"
    find "$project" -name __pycache__ -prune -exec rm -rf {} +
    ln -s "$repo/.venv" "$project/.venv"
}

# preflight: what the demo needs from this machine, checked before anything starts. It needs
# nothing from ../shared: the proxy plane uses no CRD, and the toolchain is built without the
# agentgateway controller; LLM_GATEWAY_CRDS_DIR, when set to a folder, must exist.
preflight() {
    local missing=()
    [[ "$(id -u)" == 0 ]] || missing+=("root (the node makes a network namespace and cgroups)")
    command -v go >/dev/null || missing+=("go on PATH (the toolchain is built from Go modules)")
    [[ -x "$repo/.venv/bin/python" ]] || missing+=("the project's virtualenv $repo/.venv (make venv)")
    local crds="${LLM_GATEWAY_CRDS_DIR:-none}"
    [[ "$crds" == none || -d "$crds" ]] ||
        missing+=("LLM_GATEWAY_CRDS_DIR=$crds is not a folder (unset it: the demo needs no CRDs)")
    ((${#missing[@]} == 0)) && return 0
    local item
    for item in "${missing[@]}"; do log "missing: $item"; done
    exit 1
}

up() {
    local t0=$SECONDS
    preflight
    mkdir -p "$demo"
    log "1/5 toolchain (cold: ~25 min on 2 cores; cached after)"
    # The demo runs the proxy plane only: no agentgateway controller to build, no CRDs to apply,
    # no TypeScript consumer (Node.js host, node, npm packages).
    bin="$(LLM_GATEWAY_TOOLCHAIN_AGENTGATEWAY=0 LLM_GATEWAY_TOOLCHAIN_NODEJS=0 "$repo/scripts/e2e-toolchain.sh" | tail -n1)"
    export LLM_GATEWAY_CRDS_DIR="${LLM_GATEWAY_CRDS_DIR:-none}"
    log "2/5 local node: control plane, containerd, kubelet, kube-proxy, CoreDNS, registry, images ($((SECONDS - t0))s so far)"
    "$repo/scripts/e2e/cluster.sh" up "$cluster" "$bin"
    write_env
    # shellcheck disable=SC1091 # written by cluster.sh up
    source "$cluster/env"
    log "3/5 pulumi up, dev stack ($((SECONDS - t0))s so far)"
    copy_project
    rm -rf "$demo/backend" "$demo/pulumi-home" && mkdir -p "$demo/backend"
    install_provider
    in_node pulumi stack init dev --secrets-provider passphrase --non-interactive
    in_node pulumi config set --path proxy.image "$LLM_GATEWAY_NODE_PROXY_IMAGE"
    in_node pulumi config set --path agentgateway.enabled false
    in_node pulumi config set openaiBaseUrl "$LLM_GATEWAY_NODE_UPSTREAM_URL"
    in_node pulumi config set kubeconfig "$cluster/kubeconfig"
    # The key goes on stdin, as the README advises: never a command-line argument.
    printf '%s' "$DEMO_KEY" | in_node pulumi config set --secret openaiKey
    in_node pulumi up --yes --skip-preview --non-interactive
    log "4/5 smoke test, as the README runs it ($((SECONDS - t0))s so far)"
    in_node bash -ec "$(in_node pulumi stack output smokeTest)"
    log "5/5 the same call from a namespace without the client label ($((SECONDS - t0))s so far)"
    refused_call
    next_steps "$((SECONDS - t0))"
}

# refused_call: a pod in a namespace that lacks the llm-gateway/client=true label sends the
# smoke request; the node's NetworkPolicy implementation (kube-router) must refuse it.
refused_call() {
    local url
    url="$(in_node pulumi stack output proxyEndpoint)"
    in_node kubectl create namespace demo-stranger >/dev/null
    # Pods are refused admission until the namespace's default ServiceAccount exists.
    for _ in $(seq 100); do
        in_node kubectl get serviceaccount default -n demo-stranger >/dev/null 2>&1 && break
        sleep 0.2
    done
    if in_node kubectl run refused-smoke -n demo-stranger --rm -i --restart=Never \
        --image "$LLM_GATEWAY_NODE_PROXY_IMAGE" --command -- python -m proxy smoke --timeout 5 --url "$url"; then
        log "a pod outside the allowed namespaces got an answer: NetworkPolicy is not enforced"
        return 1
    fi
    log "refused, as it should be: namespace demo-stranger lacks the llm-gateway/client=true label"
}

next_steps() {
    local endpoint fingerprint namespace service_url
    endpoint="$(in_node pulumi stack output proxyEndpoint)"
    fingerprint="$(in_node pulumi stack output keyFingerprint)"
    namespace="$(in_node pulumi stack output namespace)"
    # The namespace's own resolver is the host's, which knows no cluster names: from there,
    # the Service's cluster IP (kube-proxy routes it) is the way in.
    service_url="http://$(in_node kubectl get service llm-proxy -n "$namespace" -o 'jsonpath={.spec.clusterIP}')/v1"
    cat <<EOF

llm-gateway demo is up ($1 s). The dev stack runs on a local node; the proxy answers at
  $endpoint   (key fingerprint $fingerprint; the upstream is a fake OpenAI API on the node)

Next, from \`make demo-shell\` (a shell inside the node's network namespace, in the demo's
project copy, with kubectl and pulumi ready):
  kubectl get deploy,pods -n $namespace          # the proxy, Available
  bash -ec "\$(pulumi stack output smokeTest)"     # one request from a pod, no key
  curl -s $service_url/models              # the Service from the node's namespace, keyless
  pulumi config set --secret openaiKey           # rotate (type any new fake key), then:
  pulumi up                                      # only the Secret changes; pods pick it
                                                 #   up at the kubelet's next sync (~1 min)
  pulumi config set killSwitch true && pulumi up # cut all LLM traffic
Tear it all down: make demo-down
EOF
}

shell() {
    [[ -f "$demo/env" ]] || { log "no demo here ($demo); run \`make demo\` first"; exit 1; }
    log "inside the node's network namespace; exit to leave"
    in_node bash -i
}

down() {
    if [[ -f "$demo/env" && -f "$cluster/netns" ]]; then
        log "pulumi destroy"
        in_node pulumi destroy --yes --skip-preview --non-interactive || log "destroy failed; removing the node anyway"
    fi
    "$repo/scripts/e2e/cluster.sh" down "$cluster"
    rm -rf "$demo"
    log "down: nothing of the demo is left"
}

case "${1:-}" in
    up) up ;;
    shell) shell ;;
    down) down ;;
    *)
        echo "usage: $0 up|shell|down" >&2
        exit 2
        ;;
esac
