#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Push a built image to a plain-HTTP registry, by digest.
#
#   scripts/image/push.sh REGISTRY/REPO[:TAG] [IMAGE]
#     TAG    the tag it is pushed under (default: latest); deploy by the digest, not the tag
#     IMAGE  llm-proxy (default; build.sh) or pause (build-pause.sh)
#   last stdout line: REGISTRY/REPO@sha256:<digest>
#
#   e.g. nsenter --net=/run/netns/NAME scripts/image/push.sh 127.0.0.1:5000/llm-proxy
#        scripts/image/push.sh 127.0.0.1:5000/pause:3.10 pause   -> 127.0.0.1:5000/pause@sha256:...
#
# Reads only the OCI layout under the cache and talks only to REGISTRY (TLS off, proxies off):
# it works inside a network namespace that has nothing but the registry. The layout is sent
# as is (skopeo --preserve-digests: no recompression, no manifest conversion), so the digest
# the registry reports is the one build.sh printed; push.sh fails if they ever differ.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/lib.sh"

usage="usage: push.sh REGISTRY/REPO[:TAG] [llm-proxy|pause]"
repo="${1:?$usage}"
image="${2:-llm-proxy}"
tag=latest
if [[ "${repo##*/}" == *:* ]]; then # a tag on the last path component (not the registry's port)
    tag="${repo##*:}"
    repo="${repo%:*}"
fi
[[ "$image" == proxy ]] && image=llm-proxy
[[ "$image" == llm-proxy || "$image" == pause ]] || die "unknown image '$image'; $usage"
[[ "$repo" == */* && "$repo" != *@* && "$repo" != *://* ]] ||
    die "'$1' is not REGISTRY/REPO[:TAG] (e.g. 127.0.0.1:5000/llm-proxy, no digest); $usage"
command -v skopeo >/dev/null ||
    die "skopeo is missing: run scripts/image/build.sh first (it installs it, outside the namespace)"

layout="$IMAGE_CACHE/$image.oci"
build="build.sh"
[[ "$image" == pause ]] && build="build-pause.sh"
[[ -f "$layout/index.json" ]] || die "no $layout: run scripts/image/$build first"

lock_image_cache
built="$(layout_digest "$layout")"
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY

digest_file="$(mktemp)"
trap 'rm -f "$digest_file"' EXIT
log "pushing $image ($built) to $repo:$tag"
skopeo copy --quiet --retry-times 3 --preserve-digests --dest-tls-verify=false \
    --digestfile "$digest_file" "oci:$layout:$image" "docker://$repo:$tag" >&2
pushed="$(cat "$digest_file")"
[[ "$pushed" == "$built" ]] || die "the registry reports $pushed, the build $built"
log "pushed: $repo@$pushed"
printf '%s@%s\n' "$repo" "$pushed"
