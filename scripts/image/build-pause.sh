#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Build the local node's pause (pod sandbox) image: pause.c, static, in an image from scratch.
#
#   scripts/image/build-pause.sh      progress on stderr; last stdout line: sha256:<digest>
#
# The image holds one file, /pause (static, stripped, ~0.7 MB), run as 65535:65535 with
# ENTRYPOINT ["/pause"]. It sleeps until SIGTERM/SIGINT (exit 0) and reaps orphaned children;
# `/pause -v` prints its version. Same store and cache as build.sh: the OCI layout is
# $IMAGE_CACHE/pause.oci and `scripts/image/push.sh REGISTRY/REPO pause` pushes it.
# Same inputs as the last build (pause.c, these scripts, gcc's version): no rebuild.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/lib.sh"
root="$(cd "$here/../.." && pwd)"
cd "$root"
[[ "$(id -u)" == 0 ]] || die "run as root (buildah with runc on its own store; mmdebstrap)"

"$root/scripts/ensure-debian-packages.sh" buildah gcc libc6-dev skopeo # skopeo: push.sh
lock_image_cache
bh rm --all >/dev/null 2>&1 || true # working containers of a killed build

inputs="$(inputs_hash scripts/image/pause.c scripts/image/build-pause.sh scripts/image/lib.sh \
    "$(gcc --version | head -1)")"
if [[ "${LLM_GATEWAY_IMAGE_REBUILD:-}" != 1 ]] && digest="$(cached_digest pause "$inputs")"; then
    log "pause: unchanged since the last build ($IMAGE_CACHE/pause.oci)"
    printf '%s\n' "$digest"
    exit 0
fi

work="$(mktemp -d)"
ctr=""
cleanup() {
    [[ -n "$ctr" ]] && bh rm "$ctr" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT

log "pause: gcc -static -Os scripts/image/pause.c"
gcc -static -Os -s -Wall -Wextra -Werror -Wl,--build-id=none \
    -o "$work/pause" scripts/image/pause.c
chmod 0755 "$work/pause"

log "pause: image from scratch"
ctr="$(bh from --quiet --pull=never scratch)"
bh copy --quiet "$ctr" "$work/pause" /pause >/dev/null
bh config --entrypoint '["/pause"]' --cmd '' --user 65535:65535 --os linux --arch amd64 \
    --label org.opencontainers.image.title=pause "$ctr"
bh commit --quiet --rm --timestamp 0 --identity-label=false --format oci \
    "$ctr" localhost/llm-gateway/pause:latest >/dev/null
ctr=""
digest="$(export_layout localhost/llm-gateway/pause:latest pause "$inputs")"
log "pause: done, $(du -sh "$IMAGE_CACHE/pause.oci" | cut -f1) ($digest)"
printf '%s\n' "$digest"
