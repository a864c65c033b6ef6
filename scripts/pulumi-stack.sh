#!/usr/bin/env bash
# Select (or create) a stack on a local file backend with passphrase secrets, then run
# `pulumi "$@"`. Used by `make up STACK=dev` and `make preview STACK=dev`.
#
#   STACK                       stack name (default: dev); config in stacks/Pulumi.$STACK.yaml
#   PULUMI_BACKEND_URL          state backend (default: file://~/.pulumi-llm-gateway)
#   PULUMI_CONFIG_PASSPHRASE    or PULUMI_CONFIG_PASSPHRASE_FILE: encrypts secrets (required)
set -euo pipefail
cd "$(dirname "$0")/.."

STACK="${STACK:-dev}"

if ! command -v pulumi >/dev/null 2>&1; then
    echo "error: the pulumi CLI is not on PATH." >&2
    echo "       install it (https://www.pulumi.com/docs/install/), e.g.:" >&2
    echo "       curl -fsSL https://get.pulumi.com | sh && export PATH=\"\$HOME/.pulumi/bin:\$PATH\"" >&2
    exit 2
fi

# Set-ness, not emptiness: Pulumi accepts an explicitly empty passphrase.
if [[ -z "${PULUMI_CONFIG_PASSPHRASE+set}" && -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]]; then
    echo "error: no passphrase for the stack's secrets (the OpenAI key is stored encrypted)." >&2
    echo "       set one of:" >&2
    echo "         export PULUMI_CONFIG_PASSPHRASE='<a passphrase you keep>'" >&2
    echo "         export PULUMI_CONFIG_PASSPHRASE_FILE=~/.config/llm-gateway/passphrase" >&2
    exit 2
fi

if [[ -z "${PULUMI_BACKEND_URL:-}" ]]; then
    state_dir="$HOME/.pulumi-llm-gateway"
    mkdir -p "$state_dir"
    export PULUMI_BACKEND_URL="file://$state_dir"
fi

if ! pulumi stack select "$STACK" >/dev/null 2>&1; then
    echo "creating stack '$STACK' (backend $PULUMI_BACKEND_URL, passphrase secrets)" >&2
    pulumi stack init "$STACK" --secrets-provider passphrase
fi

# The selection is remembered per project, so plain `pulumi ...` now targets $STACK.
exec pulumi "$@"
