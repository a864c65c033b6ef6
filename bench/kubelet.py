"""A Secret volume laid out the way the kubelet does it, with its atomic swap.

Used by the benchmark and the proxy tests alike.

dir/apiKey -> ..data/apiKey
dir/..data -> ..2026_01_01_00_00_00.123   (swapped by rename(2))
dir/..2026_.../apiKey
"""

import itertools
import os
import shutil
from pathlib import Path


class KubeletSecretDir:
    """Writes new key versions exactly like the kubelet's AtomicWriter."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.key_file = root / "apiKey"
        self._versions = itertools.count()

    def write(self, key: str) -> None:
        version = self.root / f"..2026_01_01_00_00_00.{next(self._versions):06d}"
        version.mkdir()
        (version / "apiKey").write_text(key + "\n", encoding="utf-8")
        data = self.root / "..data"
        old = data.resolve() if data.is_symlink() else None
        tmp = self.root / "..data_tmp"
        os.symlink(version.name, tmp)
        os.replace(tmp, data)  # the atomic step
        if not self.key_file.is_symlink():
            os.symlink("..data/apiKey", self.key_file)
        if old is not None:
            shutil.rmtree(old)
