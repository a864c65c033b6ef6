"""The key-fingerprint recipe (proxy/fingerprint.py), pinned by known SHA-256 vectors.

The Pulumi stack output and the proxy's /readyz must agree on it, so a change of hash or
length is a breaking change that this test makes visible.
"""

import pytest

from proxy.fingerprint import key_fingerprint

# SHA-256 test vectors from FIPS 180-2: "abc" and the empty string.
SHA256_ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
SHA256_EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize(
    ("key", "expected"),
    [("abc", SHA256_ABC[:12]), ("", SHA256_EMPTY[:12]), ("  abc\n", SHA256_ABC[:12])],
    ids=["abc", "empty", "surrounding-whitespace-ignored"],
)
def test_fingerprint_is_the_first_12_hex_of_sha256(key: str, expected: str) -> None:
    assert key_fingerprint(key) == expected
