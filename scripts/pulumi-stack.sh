#!/usr/bin/env bash
# Optional convenience: select (or create) stack $STACK, then run `pulumi "$@"`.
# Plain `pulumi stack select/init` + `pulumi …` does the same; this only fills gaps and
# never overrides what you already have:
#
#   STACK                      stack name (default: dev); config in stacks/Pulumi.$STACK.yaml
#   backend                    PULUMI_BACKEND_URL if set, else the backend you are logged in
#                              to (`pulumi whoami`), else a local file backend in
#                              ~/.pulumi-llm-gateway (only when you have none at all)
#   secrets provider           only for a new stack: SECRETS_PROVIDER if set (e.g.
#                              awskms://…, gcpkms://…, passphrase), else Pulumi's default for
#                              the backend (Pulumi Cloud: service-managed; others: passphrase)
set -euo pipefail
cd "$(dirname "$0")/.."

STACK="${STACK:-dev}"

if ! command -v pulumi >/dev/null 2>&1; then
    echo "error: the pulumi CLI is not on PATH." >&2
    echo "       install it (https://www.pulumi.com/docs/install/), e.g.:" >&2
    echo "       curl -fsSL https://get.pulumi.com | sh && export PATH=\"\$HOME/.pulumi/bin:\$PATH\"" >&2
    exit 2
fi

if [[ -z "${PULUMI_BACKEND_URL:-}" ]] && ! pulumi whoami >/dev/null 2>&1; then
    state_dir="$HOME/.pulumi-llm-gateway"
    mkdir -p "$state_dir"
    export PULUMI_BACKEND_URL="file://$state_dir"
    echo "no Pulumi backend configured: using $PULUMI_BACKEND_URL (pulumi login to use another)" >&2
fi

if ! pulumi stack select "$STACK" >/dev/null 2>&1; then
    init=(pulumi stack init "$STACK")
    if [[ -n "${SECRETS_PROVIDER:-}" ]]; then
        init+=(--secrets-provider "$SECRETS_PROVIDER")
    fi
    echo "creating stack '$STACK'" >&2
    "${init[@]}"
fi

# The selection is remembered per project, so plain `pulumi ...` now targets $STACK.
exec pulumi "$@"
