#!/usr/bin/env bash
# The proxy image's base, from Debian packages only: a minimal bookworm root with python3.11
# (what `python:3.11-slim` gives, minus the registry). Writes a rootfs tarball to $1.
#
#   scripts/image/base-rootfs.sh OUT.tar
#
# build.sh keys its cache on this file's hash: any change here builds a new base.
# Reproducible for the same mirror state (SOURCE_DATE_EPOCH, no resolv.conf/hostname, no /dev
# nodes); security updates come from bookworm-security at the time the base is built.
set -euo pipefail

out="${1:?usage: base-rootfs.sh OUT.tar}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$here/../ensure-debian-packages.sh" mmdebstrap

export SOURCE_DATE_EPOCH=1700000000 # fixed: file times, /etc/shadow's lastchg, ldconfig cache
packages=python3.11,python3.11-venv,python-is-python3,ca-certificates,passwd
mirrors=(
    "deb http://deb.debian.org/debian bookworm main"
    "deb http://deb.debian.org/debian bookworm-updates main"
    "deb http://deb.debian.org/debian-security bookworm-security main"
)

tmp="$(mktemp "${out}.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
# Docs, man pages and translations are dead weight in an image; copyright files stay.
# The hooks' "$1" (the root being built) is expanded by mmdebstrap when it runs them.
# build_root VERBOSITY: the root as a tarball in $tmp.
build_root() {
    # shellcheck disable=SC2016
    mmdebstrap "$1" --variant=minbase --include="$packages" \
        --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
        --aptopt='APT::Install-Recommends "false"' \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --customize-hook='rm -f "$1/etc/resolv.conf" "$1/etc/hostname"' \
        --customize-hook='find "$1/usr/share/doc" -type f ! -name copyright -delete' \
        --format=tar bookworm - "${mirrors[@]}" |
        tar --delete --wildcards './dev/?*' >"$tmp"
}
# A package download that fails once (a mirror hiccup: seen on a new machine, where the same
# build then passed) should not fail a cold build: one retry, verbose so a real error shows.
if ! build_root --quiet; then
    echo "base-rootfs: mmdebstrap failed; retrying once with its full output" >&2
    build_root --verbose
fi
chmod 0644 "$tmp"
mv "$tmp" "$out"
trap - EXIT
