"""core/v1 Secret holding the provider key under `apiKey`.

`data` (base64), not `stringData`: the API server folds stringData into data, so a
stringData input never matches live state and server-side-apply diffs of it are
unreliable (pulumi-kubernetes #1667, #2507, #2513). `data` diffs cleanly and, with
the provider's enableSecretMutable, a new key is an in-place update.
"""

import base64

import pulumi
import pulumi_kubernetes as k8s

from proxy import contract

from .meta import object_meta

TYPE = "Opaque"
KEY_FIELD = contract.KEY_FILE_NAME  # the proxy reads the entry of this name (file or watch)


def encode_key(key: str) -> str:
    """base64 of the key as sent upstream (surrounding whitespace dropped)."""
    return base64.b64encode(key.strip().encode("utf-8")).decode("ascii")


def key_secret(
    name: str,
    namespace: pulumi.Input[str],
    encoded_key: pulumi.Input[str],
    *,
    skip_await: bool,
) -> k8s.core.v1.SecretArgsDict:
    """The Secret; `encoded_key` must already be base64 (see encode_key) and secret."""
    return {
        "metadata": object_meta(name, namespace, component="llm-gateway", skip_await=skip_await),
        "type": TYPE,
        "data": {KEY_FIELD: encoded_key},
    }
