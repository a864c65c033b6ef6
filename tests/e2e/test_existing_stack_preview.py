"""A stack deployed by an earlier release keeps every object under the current program.

The program as it was at FORMER_COMMIT (before the agentgateway side became the
AgentgatewayPlane component) deploys a dev stack with caller identity on, so every object
the plane took over exists: Gateway, its NetworkPolicy, AgentgatewayBackend, HTTPRoute,
AgentgatewayPolicy. Then the current program, on the same stack and state:
  * `pulumi preview` plans no replace, and creates or deletes no Kubernetes object; the
    only steps besides same/update are the components' own bookkeeping (the plane is
    new, the OpenAIBackend and AIRoute wrappers are gone: no cluster call either way);
  * `pulumi up` does what the preview said, and every object keeps its uid;
  * a second preview plans nothing.
The preview needs the cluster (the provider diffs against it), so it runs on the node.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tests.e2e.e2e_kube import Kube, kubectl_raw
from tests.e2e.e2e_pulumi import (
    FAKE_KEY,
    PROJECT_DIRS,
    PROJECT_FILES,
    REPO_ROOT,
    Workspace,
    init_stack,
)

pytestmark = pytest.mark.e2e

# The last commit whose program declared the agentgateway objects straight under
# LlmGateway (the backend and route inside OpenAIBackend/AIRoute wrappers).
FORMER_COMMIT = "077cf6b0d73177f35752a0bc770f08b6cab44917"
STACK = "former"
NS = "llm-gateway-former"
# Steps that touch no cluster object: components appear and disappear in state only.
COMPONENT_STEPS = {
    ("create", "llm-gateway:index:AgentgatewayPlane"),
    ("delete", "llm-gateway:index:OpenAIBackend"),
    ("delete", "llm-gateway:index:AIRoute"),
}
MOVED = {
    "llm-gateway-gateway",
    "llm-gateway-gateway-netpol",
    "llm-gateway-backend",
    "llm-gateway-route",
    "llm-gateway-identity-policy",
}
CLIENTS = [{"name": "chat", "namespace": "team-ai", "serviceAccount": "chat"}]
KEPT = [
    ("Secret", "openai-api-key"),
    ("Gateway", "llm-gateway"),
    ("NetworkPolicy", "llm-gateway"),
    ("AgentgatewayBackend", "openai"),
    ("HTTPRoute", "llm-gateway"),
    ("AgentgatewayPolicy", "llm-gateway-identity"),
    ("Deployment", "llm-proxy"),
    ("Service", "llm-proxy"),
    ("NetworkPolicy", "llm-proxy"),
]


def former_program(dest: Path) -> Path:
    """FORMER_COMMIT's program, from git (the CI's clone has full history)."""
    try:
        found = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "--verify", f"{FORMER_COMMIT}^{{commit}}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except FileNotFoundError:
        pytest.fail(f"git is not installed; this test reads {FORMER_COMMIT} from {REPO_ROOT}")
    if found.returncode != 0:
        pytest.fail(
            f"commit {FORMER_COMMIT} is not in the history of {REPO_ROOT} (git rev-parse: "
            f"{found.stderr.strip()!r}). The test deploys the program as it was then: run it "
            "in a git clone with full history (`git fetch --unshallow` in a shallow one)."
        )
    paths = [*PROJECT_FILES, *PROJECT_DIRS]
    archive = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "archive", "--format=tar", FORMER_COMMIT, *paths],
        capture_output=True,
        timeout=60,
        check=True,
    )
    dest.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(dest, filter="data")
    (dest / ".venv").symlink_to(REPO_ROOT / ".venv")
    return dest


def replace_program(project: Path) -> None:
    """Put the current program in place of the former one; the stack's config file stays."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in PROJECT_FILES:
        shutil.copy2(REPO_ROOT / name, project / name)
    for name in PROJECT_DIRS:
        if name == "stacks":
            continue
        shutil.rmtree(project / name)
        shutil.copytree(REPO_ROOT / name, project / name, ignore=ignore)


def write_former_stack_file(project: Path, kubeconfig: str) -> None:
    """The former dev settings, a namespace of its own, and caller identity on."""
    dev = yaml.safe_load((project / "stacks" / "Pulumi.dev.yaml").read_text())["config"]
    config = {k: v for k, v in dev.items() if k.startswith("llm-gateway:")}
    config.pop("llm-gateway:openaiKey", None)
    config["llm-gateway:namespace"] = NS
    config["llm-gateway:identity"] = {
        "mode": "require",
        "issuer": json.loads(kubectl_raw(kubeconfig, "/.well-known/openid-configuration"))[
            "issuer"
        ],
        "jwks": kubectl_raw(kubeconfig, "/openid/v1/jwks"),
    }
    config["llm-gateway:clients"] = CLIENTS
    stack_file = project / "stacks" / f"Pulumi.{STACK}.yaml"
    stack_file.write_text(yaml.safe_dump({"config": config}))


def uid(kube: Kube, kind: str, name: str) -> str | None:
    if kind == "NetworkPolicy":
        try:
            policy = client.NetworkingV1Api(kube.api).read_namespaced_network_policy(name, NS)
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return None if policy.metadata is None else str(policy.metadata.uid)
    obj = kube.get(kind, name, NS)
    return None if obj is None else str(obj["metadata"]["uid"])


def steps(ws: Workspace) -> list[tuple[str, str, str]]:
    """(op, type, name) of every step `pulumi preview` plans, `same` ones included."""
    plan = ws.run(
        "preview", "--json", "--show-sames", "--show-replacement-steps", "--stack", STACK
    ).json()
    found = []
    for step in plan.get("steps", []):
        urn = step["urn"]
        found.append((step["op"], urn.split("::")[2].split("$")[-1], urn.rsplit("::", 1)[1]))
    return found


@pytest.fixture
def former(tmp_path: Path) -> Iterator[Workspace]:
    """A workspace holding FORMER_COMMIT's program; the stack is destroyed at the end."""
    ws = Workspace(
        project=former_program(tmp_path / "project"),
        home=tmp_path,
        bin_dir=Path(os.environ["LLM_GATEWAY_E2E_BIN"]),
        forbidden=[FAKE_KEY],
    )
    ws.backend_dir.mkdir()
    yield ws
    ws.run("destroy", "--yes", "--skip-preview", "--stack", STACK, check=False)


def test_a_stack_of_the_former_program_previews_and_updates_with_nothing_replaced(
    former: Workspace, kube: Kube, kubeconfig: str
) -> None:
    write_former_stack_file(former.project, kubeconfig)
    init_stack(former, STACK, kubeconfig)
    former.run("up", "--yes", "--skip-preview", "--stack", STACK)
    before = {obj: uid(kube, *obj) for obj in KEPT}
    assert None not in before.values(), before

    replace_program(former.project)
    planned = steps(former)
    ops = Counter(op for op, _, _ in planned)
    print(f"preview of the current program on the former stack: {dict(ops)}")
    changed = [s for s in planned if s[0] != "same"]
    print("\n".join(f"  {op} {typ} {name}" for op, typ, name in changed))
    unexpected = [
        (op, typ, name)
        for op, typ, name in changed
        if op != "update" and (op, typ) not in COMPONENT_STEPS
    ]
    assert unexpected == [], f"the preview would change more than components: {unexpected}"
    assert {(op, typ) for op, typ, _ in changed if op != "update"} == COMPONENT_STEPS
    kept = {name for op, typ, name in planned if op in ("same", "update")}
    assert kept >= MOVED, f"not in the plan as kept: {MOVED - kept}"

    former.run("up", "--yes", "--skip-preview", "--stack", STACK)
    after = {obj: uid(kube, *obj) for obj in KEPT}
    assert after == before, "an object was recreated"
    state = former.run("stack", "export", "--stack", STACK).json()
    urns = [r["urn"] for r in state["deployment"]["resources"]]
    plane = [u for u in urns if "$llm-gateway:index:AgentgatewayPlane$" in u]
    assert len(plane) == len(MOVED), plane
    assert not [u for u in urns if "OpenAIBackend" in u or "AIRoute" in u]
    assert [s for s in steps(former) if s[0] != "same"] == [], "a second preview plans changes"
