#!/usr/bin/env bash
# A throwaway Kubernetes control plane on loopback for the e2e suite and `make demo`: etcd,
# kube-apiserver (client-cert auth, RBAC, a service-account signing key), and
# kube-controller-manager with its default controllers plus kube-scheduler. The garbage
# collector matters even without pods: it clears the foregroundDeletion finalizer that
# Pulumi's default Foreground deletes put on every object (without it each delete hangs).
# scripts/e2e/cluster.sh runs this inside its network namespace and adds the node.
#
#   scripts/e2e/control-plane.sh up          STATE_DIR BIN_DIR  # etcd + API server, kubeconfig
#   (apply the CRDs: scripts/e2e/apply_crds.py STATE_DIR/kubeconfig CRDS_DIR)
#   scripts/e2e/control-plane.sh controllers STATE_DIR BIN_DIR  # kube-controller-manager
#   scripts/e2e/control-plane.sh down        STATE_DIR          # stop all of the above
#   scripts/e2e/control-plane.sh apiserver-stop  STATE_DIR      # the e2e's API server outage
#   scripts/e2e/control-plane.sh apiserver-start STATE_DIR      # ... and its end (same flags)
#
# `up` writes STATE_DIR/env (KUBECONFIG=...) and logs to STATE_DIR/logs/. CRDs are applied
# separately (scripts/e2e/apply_crds.py) because that needs the project's virtualenv.
# Pods reach the API server through the `kubernetes` Service (10.0.0.1:443), which points at
# the server's advertised address: inside the node's namespace that is the node's address
# (the default route's source), and the server listens on every address of the namespace;
# without a default route (a bare control plane) it stays on loopback.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/e2e/lib.sh
source "$here/lib.sh"

# node_address: inside a named network namespace (the node's), the source address of its
# default route; elsewhere nothing, so a control plane on a host never listens beyond loopback.
node_address() {
    [[ -n "$(ip netns identify 2>/dev/null)" ]] || return 0
    ip -4 -o route get 10.0.0.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p'
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

certs() {
    local d="$state/pki"
    mkdir -p "$d"
    cd "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=e2e-ca" \
        -keyout ca.key -out ca.crt 2>/dev/null
    # Serving cert: the names a client may use for this API server.
    cat >server.ext <<'EOF'
subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc
extendedKeyUsage=serverAuth
EOF
    if [[ "$advertise" != 127.0.0.1 ]]; then
        sed -i "s/^subjectAltName=/&IP:$advertise,/" server.ext
    fi
    issue server "/CN=kube-apiserver" server.ext
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    # system:masters bypasses RBAC: the identity of the tests, Pulumi and the controller
    # manager (its garbage collector must read every custom resource kind).
    issue admin "/O=system:masters/CN=e2e-admin" client.ext
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    cd - >/dev/null
}

# issue NAME SUBJECT EXTFILE: a key and a CA-signed certificate.
issue() {
    openssl req -newkey rsa:2048 -nodes -subj "$2" -keyout "$1.key" -out "$1.csr" 2>/dev/null
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
        -extfile "$3" -out "$1.crt" 2>/dev/null
}

# kubeconfig FILE USER: a kubeconfig with embedded certificates.
kubeconfig() {
    local pki="$state/pki"
    cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority-data: $(base64 -w0 "$pki/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $(base64 -w0 "$pki/$2.crt")
    client-key-data: $(base64 -w0 "$pki/$2.key")
contexts:
- name: e2e
  context: {cluster: e2e, user: $2}
current-context: e2e
EOF
}

up() {
    state="$1"
    local bin="$2" pki bind=127.0.0.1
    mkdir -p "$state/logs" "$state/pids" "$state/etcd"
    pki="$state/pki"
    advertise="$(node_address)"
    if [[ -n "$advertise" ]]; then bind=0.0.0.0; else advertise=127.0.0.1; fi
    certs

    local etcd_port peer_port
    etcd_port=$(free_port)
    peer_port=$(free_port)
    # Inside the node's namespace the API server listens on kube-apiserver's default port, as
    # on a real cluster (the kubernetes Service's endpoint, which the proxy's egress
    # NetworkPolicy admits through proxy.apiServerPorts, default 443 and 6443). On a host: any
    # free loopback port.
    if [[ "$bind" == 0.0.0.0 ]]; then api_port=6443; else api_port=$(free_port); fi

    start etcd "$bin/etcd" --name e2e --data-dir "$state/etcd" \
        --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
        --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
        --initial-cluster "e2e=http://127.0.0.1:$peer_port" --unsafe-no-fsync
    wait_for etcd 30 curl -fsS "http://127.0.0.1:$etcd_port/health"

    local api_cmd=("$bin/kube-apiserver"
        --etcd-servers "http://127.0.0.1:$etcd_port"
        --bind-address "$bind" --advertise-address "$advertise" --secure-port "$api_port" \
        --cert-dir "$state/pki" --tls-cert-file "$pki/server.crt" --tls-private-key-file "$pki/server.key" \
        --client-ca-file "$pki/ca.crt" --authorization-mode RBAC \
        --service-account-issuer https://kubernetes.default.svc \
        --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
        --service-cluster-ip-range 10.0.0.0/24 --allow-privileged=true --profiling=false \
        --kubelet-preferred-address-types InternalIP \
        --kubelet-client-certificate "$pki/admin.crt" --kubelet-client-key "$pki/admin.key")
    # Kept for apiserver-start: the same server again, on the same port and etcd.
    printf '%q ' "${api_cmd[@]}" >"$state/kube-apiserver.cmd"
    echo "$api_port" >"$state/kube-apiserver.port"
    start kube-apiserver "${api_cmd[@]}"
    kubeconfig "$state/kubeconfig" admin
    apiserver_ready 120

    echo "KUBECONFIG=$state/kubeconfig" >"$state/env"
    log "up: https://127.0.0.1:$api_port (kubeconfig $state/kubeconfig)"
}

apiserver_ready() {
    local pki="$state/pki" port
    port="$(cat "$state/kube-apiserver.port")"
    wait_for kube-apiserver "$1" curl -fsS --cacert "$pki/ca.crt" --cert "$pki/admin.crt" \
        --key "$pki/admin.key" "https://127.0.0.1:$port/readyz"
}

# apiserver-stop / apiserver-start: an outage of the API server alone (etcd, the node and
# the pods keep running), for the e2e scenario in which the proxy's Secret watch survives it.
apiserver-stop() {
    state="$1"
    local pid
    pid="$(cat "$state/pids/kube-apiserver")"
    stop kube-apiserver
    log "kube-apiserver stopped (pid $pid)"
}

apiserver-start() {
    state="$1"
    mkdir -p "$state/logs/previous"
    cp "$state/logs/kube-apiserver.log" "$state/logs/previous/kube-apiserver.$(date +%s).log" 2>/dev/null || true
    local cmd
    cmd="$(cat "$state/kube-apiserver.cmd")"
    eval "start kube-apiserver $cmd"
    apiserver_ready 120
    log "kube-apiserver started again (pid $(cat "$state/pids/kube-apiserver"))"
}

# Started after the CRDs are applied, so the garbage collector's first discovery already
# covers the custom kinds (otherwise it only picks them up at its 30 s resync).
controllers() {
    state="$1"
    local bin="$2"
    if [[ ! -x "$bin/kube-controller-manager" ]]; then
        log "no kube-controller-manager: deletes hang on foregroundDeletion, namespaces stay Terminating"
        return 1
    fi
    start kube-controller-manager "$bin/kube-controller-manager" \
        --kubeconfig "$state/kubeconfig" --leader-elect=false --secure-port 0 \
        --use-service-account-credentials=false \
        --service-account-private-key-file "$state/pki/sa.key" --root-ca-file "$state/pki/ca.crt"
    start kube-scheduler "$bin/kube-scheduler" \
        --kubeconfig "$state/kubeconfig" --leader-elect=false --secure-port 0
    log "controllers: kube-controller-manager (default controllers), kube-scheduler"
}

down() {
    state="$1"
    # Reverse start order: controllers first, etcd last.
    stop kube-scheduler kube-controller-manager kube-apiserver etcd
    log "down"
}

case "${1:-}" in
    up) up "$2" "$3" ;;
    controllers) controllers "$2" "$3" ;;
    down) down "$2" ;;
    apiserver-stop) apiserver-stop "$2" ;;
    apiserver-start) apiserver-start "$2" ;;
    *)
        echo "usage: $0 up|controllers STATE_DIR BIN_DIR | down|apiserver-stop|apiserver-start STATE_DIR" >&2
        exit 2
        ;;
esac
