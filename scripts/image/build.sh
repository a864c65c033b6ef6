#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Build the llm-proxy image from proxy/Dockerfile, here, from Debian packages only.
#
#   scripts/image/build.sh            progress on stderr; last stdout line: sha256:<digest>
#
# The base (`PYTHON_IMAGE`) is a minimal bookworm root with python3.11 made by
# base-rootfs.sh (mmdebstrap), built once per recipe and kept under the cache. buildah (from
# Debian) then builds proxy/ exactly as `docker build proxy/` would on python:3.11-slim. The
# image goes to an OCI layout; the digest printed is its manifest digest, which is what a
# registry reports after scripts/image/push.sh (push never recompresses).
#
# Cache: ${LLM_GATEWAY_E2E_CACHE:-~/.cache/llm-gateway-e2e}/images (layout in lib.sh). Same
# inputs (base recipe, proxy/, these scripts) as the last build: no rebuild, same digest.
#   LLM_GATEWAY_IMAGE_REBUILD=1        build again without buildah's layer cache
#   LLM_GATEWAY_IMAGE_REFRESH_BASE=1   make the base again (today's Debian security updates)
#   LLM_GATEWAY_BUILD_CA_BUNDLE=FILE   CA bundle bind-mounted read-only into the build's RUN
#                                      steps for pip's TLS (default: the host's); never in a layer
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/lib.sh"
root="$(cd "$here/../.." && pwd)"
cd "$root"
[[ "$(id -u)" == 0 ]] || die "run as root (buildah with runc on its own store; mmdebstrap)"

# runc, not crun: crun refuses this machine's cgroup v1/v2 hybrid ("cgroups in hybrid mode
# not supported"); containerd on the local node runs runc too.
"$root/scripts/ensure-debian-packages.sh" buildah runc skopeo # skopeo: push.sh, in a namespace without apt
lock_image_cache
# Working containers left by a build that was killed (the store is ours and locked).
bh rm --all >/dev/null 2>&1 || true

# --- the base: Debian's python3.11, as the image PYTHON_IMAGE names ---
base_key="$(inputs_hash scripts/image/base-rootfs.sh | cut -c1-16)"
base_ref="localhost/llm-gateway/python-base:$base_key"
base_tar="$IMAGE_CACHE/base/bookworm-python3.11-$base_key.tar"
if [[ "${LLM_GATEWAY_IMAGE_REFRESH_BASE:-}" == 1 ]]; then
    rm -f "$base_tar"
    bh rmi --force "$base_ref" >/dev/null 2>&1 || true
fi
if ! bh inspect --type image "$base_ref" >/dev/null 2>&1; then
    if [[ ! -f "$base_tar" ]]; then
        log "base: mmdebstrap bookworm + python3.11 (1-3 min, once per recipe)"
        mkdir -p "$(dirname "$base_tar")"
        "$here/base-rootfs.sh" "$base_tar"
    fi
    log "base: importing $base_tar as $base_ref"
    ctr="$(bh from --quiet --pull=never scratch)"
    bh add --quiet "$ctr" "$base_tar" / >/dev/null
    # python:3.11-slim's PATH; the Dockerfile's `ENV PATH=/opt/venv/bin:$PATH` extends it.
    bh config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env LANG=C.UTF-8 --cmd python3 --os linux --arch amd64 "$ctr"
    bh commit --quiet --rm --timestamp 0 --identity-label=false --format oci \
        "$ctr" "$base_ref" >/dev/null
fi

# --- the proxy image ---
mapfile -t context < <(find proxy -type f ! -path '*/__pycache__/*' ! -name '*.pyc' | LC_ALL=C sort)
inputs="$(inputs_hash "base $base_key" scripts/image/build.sh scripts/image/lib.sh "${context[@]}")"
if [[ "${LLM_GATEWAY_IMAGE_REBUILD:-}" != 1 ]] && digest="$(cached_digest llm-proxy "$inputs")"; then
    log "llm-proxy: unchanged since the last build ($IMAGE_CACHE/llm-proxy.oci)"
    printf '%s\n' "$digest"
    exit 0
fi

ca_bundle="${LLM_GATEWAY_BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
ca_mount=()
if [[ -f "$ca_bundle" ]]; then
    # Over the base's own bundle (the target exists, so nothing is created in a layer).
    ca_mount=(--volume "$ca_bundle:/etc/ssl/certs/ca-certificates.crt:ro")
fi
no_cache=()
[[ "${LLM_GATEWAY_IMAGE_REBUILD:-}" == 1 ]] && no_cache=(--no-cache)

log "llm-proxy: buildah bud proxy/ (base $base_ref)"
bh bud --runtime runc --layers --force-rm "${no_cache[@]}" --pull=never --timestamp 0 --identity-label=false \
    --format oci --network host --ulimit "$(nofile_ulimit)" "${ca_mount[@]}" \
    --build-arg "PYTHON_IMAGE=$base_ref" --build-arg SOURCE_DATE_EPOCH=1700000000 \
    --tag localhost/llm-gateway/llm-proxy:latest --file proxy/Dockerfile proxy/ >&2
log "llm-proxy: writing $IMAGE_CACHE/llm-proxy.oci"
digest="$(export_layout localhost/llm-gateway/llm-proxy:latest llm-proxy "$inputs")"
size="$(du -sh "$IMAGE_CACHE/llm-proxy.oci" | cut -f1)"
log "llm-proxy: done, $size compressed ($digest)"
printf '%s\n' "$digest"
