"""Missing CRDs skip the custom-object checks on a laptop but fail them in CI."""

from pathlib import Path

import pytest

from tests.manifests.crd_schema import CRDS_ENV, require_crds


def test_missing_crds_fail_when_ci_is_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CRDS_ENV, str(tmp_path / "absent"))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CRDs not found"):
        require_crds("the CEL checks")


def test_missing_crds_skip_outside_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CRDS_ENV, str(tmp_path / "absent"))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="CRDs not found"):
        require_crds("the CEL checks")
