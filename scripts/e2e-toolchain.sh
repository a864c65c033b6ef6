#!/usr/bin/env bash
# Build (once) the real tools the e2e suite drives, from pinned Go modules, into a cache
# outside the repo. Prints the bin directory as the last line of stdout; logs go to stderr.
#
#   scripts/e2e-toolchain.sh            # build what is missing, print the bin dir
#   BIN=$(scripts/e2e-toolchain.sh | tail -n1)
#
# Pins (each tools module under scripts/e2e/ holds the exact go.mod/go.sum):
#   pulumi CLI                 github.com/pulumi/pulumi/pkg/v3            v3.274.1
#   pulumi-language-python     scripts/e2e/langhost (our minimal host; upstream's module
#                              sdk/python/cmd/pulumi-language-python/v3 is not served by
#                              the Go module proxy: 403 for @v/list, v3.274.1, v3.274.0)
#   pulumi-resource-kubernetes github.com/pulumi/pulumi-kubernetes/provider/v4
#                              v4.0.0-20260115033456-f47bc2d6f199 (the only revision the
#                              proxy serves; tags v4.34.2/v4.34.1 are refused), stamped
#                              as 4.34.2 to match the pulumi-kubernetes Python package
#   kube-apiserver,
#   kube-controller-manager    k8s.io/kubernetes v1.36.3 (staging modules at v0.36.3)
#   etcd                       go.etcd.io/etcd/server/v3 v3.6.16
#
# A tool already on PATH (e.g. a user's own pulumi) is used instead of building it, unless
# LLM_GATEWAY_E2E_BUILD_ALL=1. Cache root: LLM_GATEWAY_E2E_CACHE (~/.cache/llm-gateway-e2e).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tools="$here/e2e"

PULUMI_VERSION=3.274.1
KUBERNETES_PROVIDER_VERSION=4.34.2
KUBE_VERSION=1.36.3
ETCD_VERSION=3.6.16

log() { echo "e2e-toolchain: $*" >&2; }

command -v go >/dev/null || { log "go is required (https://go.dev/doc/install)"; exit 1; }

# The key changes whenever a pin or one of our tool sources changes, so a stale cache is never reused.
sources_hash="$(cd "$tools" && cat ./*/go.mod ./*/go.sum ./*/*.go ./langhost/shim.py | sha256sum | cut -c1-10)"
key="pulumi-${PULUMI_VERSION}_k8sprov-${KUBERNETES_PROVIDER_VERSION}_kube-${KUBE_VERSION}_etcd-${ETCD_VERSION}_${sources_hash}"
root="${LLM_GATEWAY_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llm-gateway-e2e}/$key"
bin="$root/bin"
mkdir -p "$bin"

export GOFLAGS=-mod=mod GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

# use_path NAME: link an existing NAME from PATH into the cache bin; 0 when done.
use_path() {
    local name="$1" found
    [[ "${LLM_GATEWAY_E2E_BUILD_ALL:-0}" == 1 ]] && return 1
    found="$(PATH="${PATH//$bin:/}" command -v "$name" 2>/dev/null)" || return 1
    [[ "$found" == "$bin/$name" ]] && return 1
    ln -sf "$found" "$bin/$name"
    log "$name: using $found from PATH"
}

# build NAME DIR [go build args...]: build into the cache bin unless already there.
build() {
    local name="$1" dir="$2" start
    shift 2
    if [[ -x "$bin/$name" ]]; then
        log "$name: cached"
        return
    fi
    use_path "$name" && return
    start=$(date +%s)
    log "$name: building (cold builds take minutes on 2 cores)"
    (cd "$dir" && go build -trimpath -o "$bin/$name.tmp" "$@")
    mv "$bin/$name.tmp" "$bin/$name"
    echo "$name $(($(date +%s) - start))s $(date -u +%FT%TZ)" >>"$root/build-times.txt"
    log "$name: built in $(($(date +%s) - start))s"
}

build pulumi "$tools/pulumi" \
    -ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v${PULUMI_VERSION}" \
    github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
build pulumi-language-python "$tools/langhost" -ldflags "-X main.version=${PULUMI_VERSION}" .

# The provider's main package embeds a schema file that upstream generates at release time
# and that the module download lacks; build our wrapper (kubernetes-provider/main.go) in a
# staging dir next to the module's schema.json and terraform-mapping.json.
if [[ ! -x "$bin/pulumi-resource-kubernetes" ]] && ! use_path pulumi-resource-kubernetes; then
    stage="$root/src/kubernetes-provider"
    rm -rf "$stage" && mkdir -p "$stage"
    cp "$tools/kubernetes-provider/"{go.mod,go.sum,main.go} "$stage/"
    # `go list -m` does not download; `go mod download -json` does and reports the directory.
    moddir="$(cd "$stage" && go mod download -json github.com/pulumi/pulumi-kubernetes/provider/v4 |
        sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
    [[ -d "$moddir" ]] || { log "cannot locate the provider module's source"; exit 1; }
    cp "$moddir/cmd/pulumi-resource-kubernetes/"{schema.json,terraform-mapping.json} "$stage/"
    chmod u+w "$stage"/*
    LLM_GATEWAY_E2E_BUILD_ALL=1 build pulumi-resource-kubernetes "$stage" \
        -ldflags "-X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=${KUBERNETES_PROVIDER_VERSION}" .
fi

build etcd "$tools/etcd" go.etcd.io/etcd/server/v3
# Stamp the version the API server reports (/version); an unstamped build says v0.0.0-master.
kube_ldflags="-X k8s.io/component-base/version.gitVersion=v${KUBE_VERSION}"
kube_ldflags+=" -X k8s.io/component-base/version.gitMajor=${KUBE_VERSION%%.*}"
kube_ldflags+=" -X k8s.io/component-base/version.gitMinor=$(echo "$KUBE_VERSION" | cut -d. -f2)"
build kube-apiserver "$tools/kube" -ldflags "$kube_ldflags" k8s.io/kubernetes/cmd/kube-apiserver
build kube-controller-manager "$tools/kube" -ldflags "$kube_ldflags" k8s.io/kubernetes/cmd/kube-controller-manager

# Each key holds ~1 GB of binaries; drop the ones an older pin or tool source left behind
# (rebuilding one is a relink while Go's build cache is warm).
for old in "$(dirname "$root")"/*/; do
    [[ "${old%/}" == "$root" ]] || rm -rf "${old%/}"
done

echo "$bin"
