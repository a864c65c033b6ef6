"""Read an OCI image layout as scripts/image/build.sh writes it (one manifest, gzip layers)."""

import hashlib
import json
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def image_cache() -> Path:
    """scripts/image/lib.sh's IMAGE_CACHE."""
    root = os.environ.get("LLM_GATEWAY_E2E_CACHE")
    if not root:
        cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = str(Path(cache_home) / "llm-gateway-e2e")
    return Path(root) / "images"


@dataclass(frozen=True)
class LayerFile:
    """One regular file of one layer."""

    layer: int
    path: str
    mode: int
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


class Layout:
    def __init__(self, root: Path) -> None:
        self.root = root

    def blob(self, digest: str) -> Path:
        algorithm, _, hex_digest = digest.partition(":")
        return self.root / "blobs" / algorithm / hex_digest

    def json_blob(self, digest: str) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.blob(digest).read_bytes())
        return document

    @property
    def digest(self) -> str:
        manifests = json.loads((self.root / "index.json").read_text())["manifests"]
        assert len(manifests) == 1, manifests
        return str(manifests[0]["digest"])

    @property
    def manifest(self) -> dict[str, Any]:
        return self.json_blob(self.digest)

    @property
    def config(self) -> dict[str, Any]:
        return self.json_blob(self.manifest["config"]["digest"])

    def files(self) -> Iterator[LayerFile]:
        """Every regular file of every layer, bottom layer first."""
        for index, layer in enumerate(self.manifest["layers"]):
            assert layer["mediaType"].endswith("tar+gzip"), layer["mediaType"]
            with tarfile.open(self.blob(layer["digest"]), "r:gz") as archive:
                for member in archive:
                    if not member.isfile():
                        continue
                    handle = archive.extractfile(member)
                    assert handle is not None
                    yield LayerFile(index, member.name.lstrip("./"), member.mode, handle.read())
