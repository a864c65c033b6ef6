"""The key-fingerprint recipe, shared by the Pulumi program and the proxy.

Dependency-free on purpose: the Pulumi side imports it without pulling in the
proxy's server code, and the proxy reports the same value on /readyz so a smoke
test can prove which key is live without ever revealing it.
"""

import hashlib

FINGERPRINT_HEX_CHARS = 12


def key_fingerprint(key: str) -> str:
    """First 12 hex chars of SHA-256 of the key, surrounding whitespace ignored.

    Whitespace is stripped because key files often end in a newline; the proxy
    strips it too before use, so both sides hash the key that is actually sent.
    """
    digest = hashlib.sha256(key.strip().encode("utf-8")).hexdigest()
    return digest[:FINGERPRINT_HEX_CHARS]
