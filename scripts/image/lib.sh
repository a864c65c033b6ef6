# shellcheck shell=bash
# Shared by build.sh, build-pause.sh and push.sh (sourced, not run).
#
# Everything lives under one cache directory, never in the user's own container storage:
#   $IMAGE_CACHE/storage, runroot     buildah's image store (--root/--runroot)
#   $IMAGE_CACHE/base/NAME-KEY.tar     the Debian rootfs of the proxy's base image
#   $IMAGE_CACHE/NAME.oci/             the last built image NAME as an OCI layout (one manifest)
#   $IMAGE_CACHE/NAME.digest           its manifest digest (sha256:...)
#   $IMAGE_CACHE/NAME.inputs           hash of what it was built from (unchanged: no rebuild)

IMAGE_CACHE="${LLM_GATEWAY_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llm-gateway-e2e}/images"
# Overlay needs a filesystem that supports it under the cache; vfs works anywhere (slower, bigger).
IMAGE_STORAGE_DRIVER="${LLM_GATEWAY_IMAGE_STORAGE_DRIVER:-overlay}"

log() {
    printf '%s [%3ds] %s\n' "$(basename "$0")" "$SECONDS" "$*" >&2
}

die() {
    log "error: $*"
    exit 1
}

# buildah on the project's own store.
bh() {
    buildah --root "$IMAGE_CACHE/storage" --runroot "$IMAGE_CACHE/runroot" \
        --storage-driver "$IMAGE_STORAGE_DRIVER" "$@"
}

# Serialise builds that share the store and the layouts (the e2e and a user's make may overlap).
lock_image_cache() {
    mkdir -p "$IMAGE_CACHE"
    exec {IMAGE_LOCK_FD}>"$IMAGE_CACHE/.lock"
    if ! flock -n "$IMAGE_LOCK_FD"; then
        log "waiting for another image build to finish (lock $IMAGE_CACHE/.lock)"
        flock "$IMAGE_LOCK_FD"
    fi
}

# sha256 of the named files' paths and contents, plus any extra words.
inputs_hash() {
    {
        local file
        for file in "$@"; do
            if [[ -f "$file" ]]; then
                printf '%s\n' "$file"
                sha256sum <"$file"
            else
                printf 'word %s\n' "$file"
            fi
        done
    } | sha256sum | cut -c1-64
}

# The manifest digest of a one-image OCI layout.
layout_digest() {
    python3 -c '
import json, sys
manifests = json.load(open(sys.argv[1] + "/index.json"))["manifests"]
assert len(manifests) == 1, f"{sys.argv[1]}: expected one manifest, found {len(manifests)}"
print(manifests[0]["digest"])
' "$1"
}

# Write image REF from the store as the OCI layout $IMAGE_CACHE/NAME.oci (replacing the old one),
# record its digest and inputs hash, and print the digest.
export_layout() {
    local ref="$1" name="$2" inputs="$3"
    local layout="$IMAGE_CACHE/$name.oci"
    rm -rf "$layout.new"
    # gzip layers, OCI manifest: exactly what push.sh sends (it never recompresses).
    bh push --quiet --format oci "$ref" "oci:$layout.new:$name" >/dev/null
    rm -rf "$layout"
    mv "$layout.new" "$layout"
    local digest
    digest="$(layout_digest "$layout")"
    printf '%s\n' "$digest" >"$IMAGE_CACHE/$name.digest"
    printf '%s\n' "$inputs" >"$IMAGE_CACHE/$name.inputs"
    printf '%s\n' "$digest"
}

# The recorded digest when NAME was last built from the same inputs; fails otherwise.
cached_digest() {
    local name="$1" inputs="$2"
    [[ -f "$IMAGE_CACHE/$name.inputs" && -f "$IMAGE_CACHE/$name.oci/index.json" ]] || return 1
    [[ "$(cat "$IMAGE_CACHE/$name.inputs")" == "$inputs" ]] || return 1
    local digest
    digest="$(layout_digest "$IMAGE_CACHE/$name.oci")" || return 1
    [[ "$digest" == "$(cat "$IMAGE_CACHE/$name.digest")" ]] || return 1
    printf '%s\n' "$digest"
}

# The runtimes here may not raise RLIMIT_NOFILE (no CAP_SYS_RESOURCE): ask for what we have.
nofile_ulimit() {
    printf 'nofile=%s:%s\n' "$(ulimit -Sn)" "$(ulimit -Hn)"
}
