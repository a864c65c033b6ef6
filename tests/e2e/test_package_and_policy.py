"""The component package and the policy pack with the real engine, on Pulumi's own Python
language host (it runs both through RunPlugin / as plugins).

* `pulumi preview --policy-pack policy/` passes the component's own stack and refuses a
  deliberately bad program and a prod stack whose image is not pinned, naming each rule.
* Programs that know LlmGateway only as a package, a Python one by its token
  (tests/e2e/programs/package_consumer, what a generated SDK does), a YAML one
  (tests/e2e/programs/package_yaml, on Pulumi's YAML host) and a TypeScript one
  (tests/e2e/programs/package_ts, on Pulumi's Node.js host, through the SDK that
  `pulumi package add` generates), deploy it onto the node: the proxy comes up, the smoke
  output passes, a key rotation through that program's config changes only the Secret,
  destroy leaves nothing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from package.__main__ import NAME, VERSION
from tests.e2e.e2e_kube import Kube
from tests.e2e.e2e_node import proxy_pods
from tests.e2e.e2e_pulumi import (
    FAKE_KEY,
    REPO_ROOT,
    ROTATED_KEY,
    Workspace,
    run_smoke_output,
    write_stack_file,
)

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("node")]

POLICY_PACK = str(REPO_ROOT / "policy")
PACK = "llm-gateway-guardrails"
PROGRAMS = Path(__file__).parent / "programs"
CONSUMER_STACK = "consumer"
CONSUMER_NS = "llm-gateway-consumer"  # + the program's language


def _program(workspace: Workspace, name: str, plugins: str = "") -> Workspace:
    """A copy of tests/e2e/programs/<name> as its own project, sharing the backend."""
    project = workspace.home / f"program-{name}"
    shutil.copytree(PROGRAMS / name, project)
    (project / "Pulumi.yaml").write_text(
        f"name: {name.replace('_', '-')}\n"
        "runtime:\n  name: python\n  options:\n    toolchain: pip\n    virtualenv: .venv\n"
        + plugins
    )
    (project / ".venv").symlink_to(REPO_ROOT / ".venv")
    return Workspace(project, workspace.home, workspace.bin_dir, workspace.forbidden)


def _init(ws: Workspace, stack: str, kubeconfig: str) -> None:
    ws.run("stack", "init", stack, "--secrets-provider", "passphrase")
    ws.run("config", "set", "--stack", stack, "kubeconfig", kubeconfig)
    ws.set_secret("openaiKey", FAKE_KEY, stack)


def _guarded_preview(ws: Workspace, stack: str) -> tuple[int, str]:
    done = ws.run("preview", "--stack", stack, "--policy-pack", POLICY_PACK, check=False)
    return done.code, done.output


def test_the_policy_pack_passes_the_components_own_stack(
    workspace: Workspace, kubeconfig: str, node: dict[str, str]
) -> None:
    stack = "guarded"
    write_stack_file(workspace, stack, "llm-gateway-guarded", {"agentgateway": {"enabled": False}})
    _init(workspace, stack, kubeconfig)
    image = node["LLM_GATEWAY_NODE_PROXY_IMAGE"]
    workspace.run("config", "set", "--path", "--stack", stack, "proxy.image", image)
    code, output = _guarded_preview(workspace, stack)
    assert code == 0, output
    assert PACK in output
    assert "[mandatory]" not in output


def test_a_prod_stack_with_an_unpinned_image_is_refused(
    workspace: Workspace, kubeconfig: str
) -> None:
    stack = "guarded-prod"
    write_stack_file(workspace, stack, "llm-gateway-prod", {"agentgateway": {"enabled": False}})
    _init(workspace, stack, kubeconfig)
    tagged = "registry.invalid/llm-proxy:e2e"
    workspace.run("config", "set", "--path", "--stack", stack, "proxy.image", tagged)
    code, output = _guarded_preview(workspace, stack)
    assert code != 0, output
    assert "[mandatory]  proxy-image-pinned-in-prod" in output, output
    assert tagged in output


def test_a_bad_program_is_refused_naming_each_rule(workspace: Workspace, kubeconfig: str) -> None:
    bad = _program(workspace, "bad_guardrails")
    _init(bad, "dev", kubeconfig)
    code, output = _guarded_preview(bad, "dev")
    assert code != 0, output
    for rule in ("key-secret-updated-in-place", "no-external-service-for-data-plane"):
        assert f"[mandatory]  {rule}" in output, output


def test_the_engine_reads_the_packages_schema(workspace: Workspace) -> None:
    plugin = REPO_ROOT / "package" / "pulumi-resource-llm-gateway"
    schema = workspace.run("package", "get-schema", str(plugin)).json()
    resource = schema["resources"]["llm-gateway:index:LlmGateway"]
    assert resource["isComponent"] is True
    assert resource["requiredInputs"] == ["openaiKey"]
    assert {"proxy", "allowedClients", "killSwitch"} <= set(resource["inputProperties"])
    assert {"keyFingerprint", "smokeTest", "proxyEndpoint"} <= set(resource["properties"])


# Where the engine finds the package's plugin: the provider binary in package/ (a program's
# `packages:` entry names the package; this says where its plugin is, no plugin install).
PLUGINS = f"plugins:\n  providers:\n    - name: {NAME}\n      path: {REPO_ROOT / 'package'}\n"
PLUGIN_BINARY = REPO_ROOT / "package" / f"pulumi-resource-{NAME}"
PACKAGE_REF = f"{NAME}@{VERSION}"  # what `pulumi package add PLUGIN_BINARY` records


def _yaml_program(workspace: Workspace) -> Workspace:
    """tests/e2e/programs/package_yaml as a YAML project (Pulumi's YAML language host). Its
    `packages:` entry is written as `pulumi package add` would: the YAML host has no SDK to
    link, and v1.25.0 refuses the command ("method Link not implemented")."""
    project = workspace.home / "program-package-yaml"
    shutil.copytree(PROGRAMS / "package_yaml", project)
    (project / "Pulumi.yaml").write_text(
        "name: package-yaml\nruntime: yaml\n" + PLUGINS + f"packages:\n  {NAME}: {PACKAGE_REF}\n"
    )
    return Workspace(project, workspace.home, workspace.bin_dir, workspace.forbidden)


@pytest.fixture(scope="module")
def typescript_program(workspace: Workspace) -> Workspace:
    """tests/e2e/programs/package_ts as a TypeScript project on Pulumi's Node.js host, after
    `pulumi package add` generated its SDK and npm installed it with the pinned packages.

    npm runs offline (the node's namespace has no way out) from the npm cache that
    scripts/e2e-toolchain.sh fills from the program's package-lock.json, beside the bin dir.
    """
    absent = [t for t in ("pulumi-language-nodejs", "node") if not (workspace.bin_dir / t).exists()]
    if absent:
        pytest.skip(f"no {', '.join(absent)} in the toolchain (scripts/e2e-toolchain.sh)")
    project = workspace.home / "program-package-ts"
    generated = shutil.ignore_patterns("node_modules", "sdks", "bin")
    shutil.copytree(PROGRAMS / "package_ts", project, ignore=generated)
    (project / "Pulumi.yaml").write_text("name: package-ts\nruntime: nodejs\n" + PLUGINS)
    npm = {
        "npm_config_cache": str(workspace.bin_dir.parent / "npm-cache"),
        "npm_config_offline": "true",
        "npm_config_audit": "false",
        "npm_config_fund": "false",
        "npm_config_update_notifier": "false",
    }
    ws = Workspace(
        project, workspace.home, workspace.bin_dir, forbidden=workspace.forbidden, extra_env=npm
    )
    ws.run("package", "add", str(PLUGIN_BINARY))
    return ws


def test_pulumi_package_add_generates_and_links_the_typescript_sdk(
    typescript_program: Workspace,
) -> None:
    project = typescript_program.project
    pulumi_yaml = yaml.safe_load((project / "Pulumi.yaml").read_text())
    assert pulumi_yaml["packages"] == {NAME: PACKAGE_REF}
    sdk = project / "sdks" / NAME
    assert "openaiKey: pulumi.Input<string>" in (sdk / "llmGateway.ts").read_text()
    assert (sdk / "bin" / "index.js").is_file()  # compiled by the SDK's postinstall (tsc)
    linked = project / "node_modules" / "@pulumi" / NAME
    assert linked.is_symlink()
    assert linked.resolve() == sdk.resolve()


@pytest.fixture(scope="module", params=["python", "yaml", "typescript"])
def consumer(
    request: pytest.FixtureRequest, workspace: Workspace, kubeconfig: str, node: dict[str, str]
) -> tuple[Workspace, str]:
    """A program that knows LlmGateway only as a package, in the parametrised language;
    its stack configured for the node (proxy plane, the node's image and fake upstream)."""
    language = request.param
    if language == "yaml":
        if not (workspace.bin_dir / "pulumi-language-yaml").exists():
            pytest.skip("no pulumi-language-yaml in the toolchain")
        ws = _yaml_program(workspace)
    elif language == "typescript":
        ws = request.getfixturevalue("typescript_program")
    else:
        ws = _program(workspace, "package_consumer", PLUGINS)
    namespace = f"{CONSUMER_NS}-{language}"
    _init(ws, CONSUMER_STACK, kubeconfig)
    ws.run("config", "set", "--stack", CONSUMER_STACK, "namespace", namespace)
    upstream = node["LLM_GATEWAY_NODE_UPSTREAM_URL"]
    ws.run("config", "set", "--stack", CONSUMER_STACK, "openaiBaseUrl", upstream)
    image = node["LLM_GATEWAY_NODE_PROXY_IMAGE"]
    if language == "yaml":
        ws.run("config", "set", "--stack", CONSUMER_STACK, "proxyImage", image)
    else:
        ws.run("config", "set", "--path", "--stack", CONSUMER_STACK, "proxy.image", image)
    return ws, namespace


def test_the_package_deploys_from_a_program_that_knows_only_its_token(
    consumer: tuple[Workspace, str], kube: Kube
) -> None:
    ws, namespace = consumer
    done = ws.run(
        "up", "--yes", "--skip-preview", "--stack", CONSUMER_STACK, "--policy-pack", POLICY_PACK
    )
    assert "[mandatory]" not in done.output
    outputs = ws.run("stack", "output", "--json", "--stack", CONSUMER_STACK).json()
    assert outputs["namespace"] == namespace
    assert outputs["proxyEndpoint"] == f"http://llm-proxy.{namespace}.svc.cluster.local/v1"
    pods = proxy_pods(kube, namespace)
    assert pods
    assert all(p.status.phase == "Running" for p in pods)
    smoke = run_smoke_output(ws, CONSUMER_STACK)
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr


def test_a_rotation_through_the_consumers_config_changes_only_the_secret(
    consumer: tuple[Workspace, str],
) -> None:
    ws, _ = consumer
    ws.set_secret("openaiKey", ROTATED_KEY, CONSUMER_STACK)
    plan = ws.run("preview", "--json", "--stack", CONSUMER_STACK).json()
    changed = {
        (step["op"], step["urn"].split("::")[-2].split("$")[-1])
        for step in plan["steps"]
        if step["op"] != "same"
    }
    assert changed == {("update", "kubernetes:core/v1:Secret")}, changed
    ws.run("up", "--yes", "--skip-preview", "--stack", CONSUMER_STACK)
    smoke = run_smoke_output(ws, CONSUMER_STACK)
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr


def test_destroying_the_consumer_leaves_nothing(
    consumer: tuple[Workspace, str], kube: Kube
) -> None:
    ws, namespace = consumer
    ws.run("destroy", "--yes", "--skip-preview", "--stack", CONSUMER_STACK)
    assert kube.wait_gone("Namespace", namespace, timeout=90), "namespace survived destroy"
    state = json.loads(ws.run("stack", "export", "--stack", CONSUMER_STACK).stdout)
    assert state["deployment"].get("resources") in (None, [])
    assert FAKE_KEY not in "".join(r.output for r in ws.log)
