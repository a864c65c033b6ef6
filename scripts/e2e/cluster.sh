#!/usr/bin/env bash
# A single-node Kubernetes cluster built from source, all of it inside a network namespace
# that this script creates: pod and service addresses exist only there, and nothing in it
# can reach any address outside (the namespace has no link to the host's network).
#
#   scripts/e2e/cluster.sh up   STATE_DIR BIN_DIR   # namespace, control plane, node, registry
#   scripts/e2e/cluster.sh down STATE_DIR           # stop everything by PID, unmount, clean up
#   scripts/e2e/cluster.sh run  STATE_DIR CMD...    # run CMD inside the namespace, env loaded
#
# What `up` starts, each logged to STATE_DIR/logs/NAME.log with its PID in STATE_DIR/pids/:
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler   (scripts/e2e/control-plane.sh)
#   registry     Debian's docker-registry on 127.0.0.1:5000 (the namespace's loopback)
#   containerd   Debian's containerd + runc, CRI with CNI (bridge, host-local, loopback, portmap)
#   kubelet      cgroupfs driver under its own cgroup root, Secret volumes synced every
#                LLM_GATEWAY_NODE_SYNC (default: the kubelet's own default, 1m)
#   kube-proxy   iptables mode (Service IPs 10.0.0.0/24)
#   coredns      cluster DNS for *.cluster.local on the node IP (no forwarding anywhere else)
#   kube-router  its firewall controller only: enforces NetworkPolicies with iptables + ipset
#   upstream     a fake OpenAI API on NODE_IP:8400 that records which key arrived (fingerprints)
# The pause and proxy images are built here (scripts/image/) and pushed to the registry; the
# proxy image is deployed by digest. STATE_DIR/env holds what callers need (KUBECONFIG,
# LLM_GATEWAY_NODE_NETNS, ..._NODE_IP, ..._PROXY_IMAGE, ..._UPSTREAM_URL).
#
# `up` on a STATE_DIR left by a crash first runs `down` on it, so a second `up` works.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
here="$repo/scripts/e2e"
python="$repo/.venv/bin/python"

NODE_NAME=llm-gateway-node
NODE_IP=10.213.0.2
POD_CIDR=10.244.0.0/24
REGISTRY=127.0.0.1:5000
UPSTREAM_PORT=8400
# What the node starts or calls that is not in a base Debian system: containerd, runc, the
# CNI plugins (bridge, host-local, loopback, portmap), docker-registry, kube-proxy's
# iptables/conntrack, kube-router's ipset, openssl (certificates), curl (readiness probes). tests/unit/
# test_script_packages.py fails when a script starts a command that no list here provides.
NODE_PACKAGES="containerd runc containernetworking-plugins docker-registry iptables conntrack openssl curl iproute2 ipset"

# shellcheck source=scripts/e2e/lib.sh
source "$here/lib.sh"

# The namespace's name derives from the state dir, so two clusters never share one.
netns_of() { echo "llmgw-$(realpath -m "$1" | sha256sum | cut -c1-8)"; }

# inside CMD...: run CMD in the namespace. nsenter, not `ip netns exec`: the latter remounts
# /sys, and runc then finds no cgroup mount.
inside() { nsenter --net="/run/netns/$netns" "$@"; }

# start_inside NAME CMD...: `start` (lib.sh) in the namespace; nsenter execs CMD, so the PID
# recorded is the daemon's own.
start_inside() { start "$1" nsenter --net="/run/netns/$netns" "${@:2}"; }

step() { log "$1 ($((SECONDS - t0))s so far)"; }

network() {
    ip netns add "$netns"
    echo "$netns" >"$state/netns"
    inside ip link set lo up
    # The node's address sits on a veth whose peer stays in the namespace too: the kernel
    # here has no dummy links, and the kubelet refuses a loopback node IP.
    inside ip link add node0 type veth peer name node0-peer
    inside ip addr add "$NODE_IP/24" dev node0
    inside ip link set node0 up
    inside ip link set node0-peer up
    # Components look up the default route to find the node's address.
    inside ip route add default dev node0
    inside sysctl -qw net.ipv4.ip_forward=1
    inside sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || true
}

# crds: the agentgateway and Gateway API CRDs (and any others) from LLM_GATEWAY_CRDS_DIR
# (default ../shared/crds beside the repo); LLM_GATEWAY_CRDS_DIR=none for a node that serves
# the proxy plane only (the demo), which needs none of them.
crds() {
    local dir="${LLM_GATEWAY_CRDS_DIR:-$repo/../shared/crds}"
    if [[ "$dir" == none ]]; then
        log "no CRDs applied (LLM_GATEWAY_CRDS_DIR=none): the agentgateway plane cannot be deployed here"
        return 0
    fi
    [[ -d "$dir" ]] || {
        log "CRDs not found at $dir: the agentgateway plane needs the agentgateway and Gateway API"
        log "CRDs; set LLM_GATEWAY_CRDS_DIR to their folder, or LLM_GATEWAY_CRDS_DIR=none for a"
        log "node that serves the proxy plane only"
        return 1
    }
    inside "$python" "$here/apply_crds.py" "$state/kubeconfig" "$dir"
}

registry() {
    mkdir -p "$state/registry"
    cat >"$state/registry/config.yml" <<EOF
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $state/registry/data}, delete: {enabled: true}}
http: {addr: $REGISTRY}
EOF
    start_inside registry docker-registry serve "$state/registry/config.yml"
    wait_for registry 30 inside curl -fsS "http://$REGISTRY/v2/"
}

# images: build the pause and proxy images (cached) and push them; sets proxy_image.
images() {
    "$repo/scripts/image/build-pause.sh" >"$state/logs/image-pause.log" 2>&1 ||
        { tail -n 20 "$state/logs/image-pause.log" >&2; return 1; }
    inside "$repo/scripts/image/push.sh" "$REGISTRY/pause:3.10" pause >>"$state/logs/image-pause.log" 2>&1 ||
        { tail -n 20 "$state/logs/image-pause.log" >&2; return 1; }
    "$repo/scripts/image/build.sh" >"$state/logs/image-proxy.log" 2>&1 ||
        { tail -n 20 "$state/logs/image-proxy.log" >&2; return 1; }
    proxy_image="$(inside "$repo/scripts/image/push.sh" "$REGISTRY/llm-proxy" 2>>"$state/logs/image-proxy.log" | tail -n1)"
    [[ "$proxy_image" == "$REGISTRY/llm-proxy@sha256:"* ]] ||
        { log "push of the proxy image printed '$proxy_image', not a digest reference"; return 1; }
}

containerd_up() {
    local d="$state/containerd"
    mkdir -p "$d" "$state/cni/net.d"
    cat >"$state/cni/net.d/10-bridge.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "llm-gateway-node",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
    cat >"$d/config.toml" <<EOF
version = 2
root = "$d/root"
state = "$d/state"
[grpc]
  address = "$d/containerd.sock"
[ttrpc]
  address = "$d/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$d/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$REGISTRY/pause:3.10"
  # Root here lacks CAP_SYS_RESOURCE: never try to lower the OOM score below the daemon's.
  restrict_oom_score_adj = true
  # Pod network namespaces under the state dir, not /run/netns, where down unmounts them.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$state/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."$REGISTRY"]
    endpoint = ["http://$REGISTRY"]
EOF
    start_inside containerd containerd --config "$d/config.toml"
    wait_for containerd 30 test -S "$d/containerd.sock"
}

kubelet_up() {
    local d="$state/kubelet"
    mkdir -p "$d"
    echo "nameserver $NODE_IP" >"$d/resolv.conf"
    # One cgroup root per node in every v1 hierarchy (the machine mounts a v1/v2 hybrid),
    # so `down` can find and remove exactly what this node made.
    echo "/$netns" >"$state/cgroup-root"
    local hierarchy
    for hierarchy in /sys/fs/cgroup/*/; do
        [[ "$hierarchy" == */unified/ ]] && continue
        mkdir -p "$hierarchy$netns"
        # A new v1 cpuset starts with no CPUs and no memory nodes: give it its parent's.
        if [[ -f "${hierarchy}cpuset.cpus" ]]; then
            cat "${hierarchy}cpuset.cpus" >"$hierarchy$netns/cpuset.cpus"
            cat "${hierarchy}cpuset.mems" >"$hierarchy$netns/cpuset.mems"
        fi
    done
    cat >"$d/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $state/pki/ca.crt}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
cgroupRoot: /$netns
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$state/containerd/containerd.sock
clusterDomain: cluster.local
clusterDNS: [$NODE_IP]
resolvConf: $d/resolv.conf
syncFrequency: ${LLM_GATEWAY_NODE_SYNC:-1m}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
serializeImagePulls: false
EOF
    start_inside kubelet "$bin/kubelet" --config "$d/config.yaml" --kubeconfig "$state/kubeconfig" \
        --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" --root-dir "$d/root" \
        --cert-dir "$d/pki" --v 1
    wait_for kubelet 120 node_ready
}

node_ready() {
    [[ "$(inside "$bin/kubectl" --kubeconfig "$state/kubeconfig" get node "$NODE_NAME" \
        -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}

kube_proxy_up() {
    cat >"$state/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $state/kubeconfig}
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE_NAME
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
iptables: {masqueradeAll: true}
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
    start_inside kube-proxy "$bin/kube-proxy" --config "$state/kube-proxy.yaml"
    wait_for kube-proxy 60 inside curl -fsS http://127.0.0.1:10256/healthz
}

coredns_up() {
    cat >"$state/Corefile" <<EOF
.:53 {
    bind $NODE_IP
    errors
    cache 5
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $state/kubeconfig e2e
        pods insecure
    }
}
EOF
    start_inside coredns "$bin/coredns" -conf "$state/Corefile"
    wait_for coredns 60 grep -q "CoreDNS-" "$state/logs/coredns.log"
}

# kube_router_up: NetworkPolicy enforcement. kube-router's firewall controller alone (no BGP
# routing, no service proxy: the bridge CNI and kube-proxy keep those jobs) turns the
# policies into iptables chains and ipsets of this namespace: pod-to-pod traffic crosses
# cni0 and reaches them through bridge-nf-call-iptables (set in `network`), pod-to-node
# traffic (DNS, the fake upstream) through INPUT. Traffic from the node itself to a pod is
# always let in (kube-router's rule for the pod's local node, as NetworkPolicy intends for
# probes). Ready once its health endpoint answers and its jump leads FORWARD.
KUBE_ROUTER_HEALTH_PORT=20244
kube_router_up() {
    start_inside kube-router "$bin/kube-router" --kubeconfig "$state/kubeconfig" \
        --hostname-override "$NODE_NAME" --run-firewall=true --run-router=false \
        --run-service-proxy=false --enable-cni=false --service-cluster-ip-range 10.0.0.0/24 \
        --health-port "$KUBE_ROUTER_HEALTH_PORT" --metrics-port 0 --v 1
    wait_for kube-router 60 inside curl -fsS "http://127.0.0.1:$KUBE_ROUTER_HEALTH_PORT/healthz"
    wait_for kube-router 30 kube_router_filters
    echo "LLM_GATEWAY_NODE_NETPOL=kube-router" >>"$state/env"
}

kube_router_filters() {
    inside iptables -S FORWARD 1 | grep -q -- "-j KUBE-ROUTER-FORWARD"
}

upstream_up() {
    mkdir -p "$state/upstream"
    start_inside upstream "$python" -m fakes.node_upstream --host "$NODE_IP" --port "$UPSTREAM_PORT" \
        --record "$state/upstream/seen.jsonl" --accept "$state/upstream/accepted-keys"
    wait_for upstream 30 inside curl -fsS "http://$NODE_IP:$UPSTREAM_PORT/healthz"
}

up() {
    state="$(realpath -m "$1")"
    bin="$2"
    t0=$SECONDS
    if [[ -d "$state" ]]; then
        down "$state"
        rm -rf "$state"  # a fresh etcd and fresh certificates: nothing from the last cluster
    fi
    mkdir -p "$state/logs" "$state/pids"
    step "Debian packages the node runs (installed when missing)"
    "$repo/scripts/ensure-debian-packages.sh" $NODE_PACKAGES
    netns="$(netns_of "$state")"
    step "network namespace $netns, node $NODE_IP"
    network
    step "control plane"
    inside "$here/control-plane.sh" up "$state" "$bin"
    crds
    inside "$here/control-plane.sh" controllers "$state" "$bin"
    step "registry"
    registry
    step "images (pause, proxy): build or reuse, push"
    images
    step "containerd"
    containerd_up
    step "kubelet"
    kubelet_up
    step "kube-proxy, CoreDNS, fake upstream"
    kube_proxy_up
    coredns_up
    (cd "$repo" && upstream_up)
    step "kube-router (NetworkPolicy enforcement)"
    kube_router_up
    cat >>"$state/env" <<EOF
LLM_GATEWAY_NODE_NETNS=$netns
LLM_GATEWAY_NODE_IP=$NODE_IP
LLM_GATEWAY_NODE_NAME=$NODE_NAME
LLM_GATEWAY_NODE_REGISTRY=$REGISTRY
LLM_GATEWAY_NODE_PROXY_IMAGE=$proxy_image
LLM_GATEWAY_NODE_UPSTREAM_URL=http://$NODE_IP:$UPSTREAM_PORT/v1
LLM_GATEWAY_NODE_UPSTREAM_RECORD=$state/upstream/seen.jsonl
LLM_GATEWAY_NODE_UPSTREAM_ACCEPT=$state/upstream/accepted-keys
EOF
    step "up: node $NODE_NAME Ready; proxy image $proxy_image"
}

# pids_in_cgroups ROOT: every process in the node's cgroups (the pods' processes).
pids_in_cgroups() {
    node_cgroups "$1" | while read -r dir; do cat "$dir/cgroup.procs" 2>/dev/null || true; done | sort -u
}

# node_cgroups ROOT: every cgroup directory of the node, in every hierarchy, deepest first.
node_cgroups() {
    local top
    for top in /sys/fs/cgroup/*/"${1#/}"; do
        [[ -d "$top" ]] && find "$top" -depth -type d
    done
    return 0
}

# shim_pids SOCKET: containerd's shims for this cluster (started with `-address SOCKET`;
# they outlive containerd). Matched on the socket path, which only this cluster uses.
shim_pids() {
    local proc
    for proc in /proc/[0-9]*; do
        { tr '\0' ' ' <"$proc/cmdline"; } 2>/dev/null | grep -qF -- "-address $1 " && echo "${proc#/proc/}"
    done
    return 0
}

down() {
    state="$(realpath -m "$1")"
    [[ -d "$state" ]] || return 0
    netns="$(cat "$state/netns" 2>/dev/null || netns_of "$state")"
    local pid cgroup_root dir
    cgroup_root="$(cat "$state/cgroup-root" 2>/dev/null || echo "/$netns")"
    # Node first (so nothing restarts what we stop), then the pods, then the control plane.
    # kube-router's rules and ipsets live in the namespace and go with it.
    stop kube-router upstream coredns kube-proxy kubelet
    for pid in $(pids_in_cgroups "$cgroup_root"); do kill -9 "$pid" 2>/dev/null || true; done
    stop containerd registry
    for pid in $(shim_pids "$state/containerd/containerd.sock"); do kill -9 "$pid" 2>/dev/null || true; done
    "$here/control-plane.sh" down "$state" || true
    # Mounts under the state dir (pod volumes, container root filesystems, shm), deepest first.
    awk -v d="$state/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r |
        while read -r mount; do umount -l "$mount" 2>/dev/null || true; done
    # The node's cgroups, deepest first; a cgroup empties a moment after its last process.
    for _ in 1 2 3 4 5; do
        node_cgroups "$cgroup_root" | while read -r dir; do rmdir "$dir" 2>/dev/null || true; done
        [[ -z "$(node_cgroups "$cgroup_root")" ]] && break
        sleep 1
    done
    ip netns del "$netns" 2>/dev/null || true
    rm -f "$state/netns"
    log "down: $netns"
}

run() {
    state="$(realpath -m "$1")"
    shift
    netns="$(cat "$state/netns")"
    set -a
    # shellcheck disable=SC1091 # written by `up`
    source "$state/env"
    set +a
    exec nsenter --net="/run/netns/$netns" "$@"
}

case "${1:-}" in
    up) up "$2" "$3" ;;
    down) down "$2" ;;
    run) run "${@:2}" ;;
    *)
        echo "usage: $0 up STATE_DIR BIN_DIR | down STATE_DIR | run STATE_DIR CMD..." >&2
        exit 2
        ;;
esac
