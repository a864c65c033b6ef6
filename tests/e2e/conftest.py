"""Fixtures for the real-engine e2e suite (`make e2e` → scripts/e2e.sh).

scripts/e2e.sh builds the toolchain, starts the control plane with the CRDs, and exports:
  LLM_GATEWAY_E2E_BIN         directory with pulumi, its language host and the k8s provider
  LLM_GATEWAY_E2E_KUBECONFIG  kubeconfig of the throwaway API server
Without them every e2e test is skipped with that reason (plain `pytest` stays green).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.e2e.e2e_kube import Kube
from tests.e2e.e2e_node import NODE_ENV, missing_node_env
from tests.e2e.e2e_pulumi import FAKE_KEY, ROTATED_KEY, Workspace, copy_project

BIN_ENV, KUBECONFIG_ENV = "LLM_GATEWAY_E2E_BIN", "LLM_GATEWAY_E2E_KUBECONFIG"
NEEDED = ("pulumi", "pulumi-language-python", "pulumi-resource-kubernetes")


def _missing() -> str | None:
    """Why the e2e suite cannot run here, or None when it can."""
    bin_dir, kubeconfig = os.environ.get(BIN_ENV), os.environ.get(KUBECONFIG_ENV)
    if not bin_dir or not kubeconfig:
        return f"needs {BIN_ENV} and {KUBECONFIG_ENV}; run `make e2e` (scripts/e2e.sh)"
    absent = [tool for tool in NEEDED if not (Path(bin_dir) / tool).exists()]
    if absent:
        return f"{BIN_ENV}={bin_dir} lacks {', '.join(absent)}; run scripts/e2e-toolchain.sh"
    if not Path(kubeconfig).is_file():
        return f"{KUBECONFIG_ENV}={kubeconfig} does not exist"
    return None


# A real `pulumi up` that awaits pods (image pull, readiness) outlasts the suite's default
# per-test limit; each pulumi command has its own deadline (e2e_pulumi.COMMAND_TIMEOUT_S).
E2E_TEST_TIMEOUT_S = 900


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = _missing()
    for item in items:
        if not item.get_closest_marker("e2e"):
            continue
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=reason))
        elif not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(E2E_TEST_TIMEOUT_S))


@pytest.fixture(scope="session")
def kubeconfig() -> str:
    return os.environ[KUBECONFIG_ENV]


@pytest.fixture(scope="session")
def kube(kubeconfig: str) -> Kube:
    return Kube.from_kubeconfig(kubeconfig)


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    root = tmp_path_factory.mktemp("pulumi")
    ws = Workspace(
        project=copy_project(root / "project"),
        home=root,
        bin_dir=Path(os.environ[BIN_ENV]),
        forbidden=[FAKE_KEY, ROTATED_KEY],
    )
    ws.backend_dir.mkdir()
    return ws


@pytest.fixture(scope="session")
def node() -> dict[str, str]:
    """The local node's facts (scripts/local-node/cluster.sh); skips where no node runs."""
    missing = missing_node_env()
    if missing:
        pytest.skip(f"no local node ({', '.join(missing)} unset): run `make e2e`")
    return {name: os.environ[name] for name in NODE_ENV}
