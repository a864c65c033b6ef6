#!/usr/bin/env bash
# Install the Debian packages named on the command line that are not installed yet.
# The project's scripts call this for what they need (image build, local node), so a new
# machine gets them from its own files; an installed package costs one dpkg query.
#
#   scripts/ensure-debian-packages.sh buildah mmdebstrap
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

missing=()
for package in "$@"; do
    status="$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)"
    [[ "$status" == "install ok installed" ]] || missing+=("$package")
done
((${#missing[@]} == 0)) && exit 0

if [[ "$(id -u)" != 0 ]]; then
    echo "ensure-debian-packages: missing ${missing[*]}; run as root or install them: apt-get install ${missing[*]}" >&2
    exit 1
fi
echo "ensure-debian-packages: installing ${missing[*]}" >&2
# An apt-get update is needed once on a new machine (its package lists start empty).
if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
