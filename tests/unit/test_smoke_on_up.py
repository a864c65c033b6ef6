"""smokeTest.onUp: a smoke Job per plane, re-run only when what it proves changes."""

from typing import Any

from proxy.fingerprint import key_fingerprint
from tests.support.pulumi_render import TEST_IMAGE, Rendered, fake_key, render_stack

ON = {"smokeTest.onUp": True}
CLIENT_LABEL = "llm-gateway/client"


def jobs(result: Rendered) -> dict[str, dict[str, Any]]:
    """Job name → manifest."""
    return {r.object_name or "": r.inputs for r in result.of_kind("Job")}


def test_off_by_default_no_job_and_the_output_says_how_to_turn_it_on() -> None:
    result = render_stack("dev")
    assert jobs(result) == {}
    assert result.outputs["smokeOnUp"].startswith("off (smokeTest.onUp is false")


def test_one_hardened_client_job_per_plane_that_never_retries() -> None:
    result = render_stack("dev", overrides=ON)
    found = jobs(result)
    assert sorted(name.rsplit("-", 1)[0] for name in found) == [
        "llm-smoke-gateway",
        "llm-smoke-proxy",
    ]
    for job in found.values():
        assert job["metadata"]["namespace"] == result.outputs["namespace"]
        annotations = job["metadata"]["annotations"]
        assert "pulumi.com/skipAwait" not in annotations
        # A failed run (Job not complete) is replaced, so re-run, by the next `pulumi up`.
        assert annotations["pulumi.com/replaceUnready"] == "true"
        spec = job["spec"]
        assert spec["backoffLimit"] == 0  # a retry would spend a second real request
        assert 0 < spec["activeDeadlineSeconds"] < 600
        template = spec["template"]
        assert template["metadata"]["labels"][CLIENT_LABEL] == "true"  # let in by the policies
        pod = template["spec"]
        assert pod["restartPolicy"] == "Never"
        assert pod["automountServiceAccountToken"] is False
        (container,) = pod["containers"]
        assert container["image"] == TEST_IMAGE
        assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["resources"]["limits"]["memory"]
        assert not any("sk-" in part for part in container["command"])


def test_the_proxy_job_waits_for_the_stack_key_and_the_gateway_job_cannot() -> None:
    result = render_stack("dev", overrides=ON)
    by_plane = {name.split("-")[2]: job for name, job in jobs(result).items()}
    proxy_command = by_plane["proxy"]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert proxy_command[:6] == [
        "python",
        "-m",
        "proxy",
        "smoke",
        "--url",
        result.outputs["proxyEndpoint"],
    ]
    expect = proxy_command[proxy_command.index("--expect-key") + 1]
    assert expect == result.outputs["keyFingerprint"] == key_fingerprint(fake_key("dev"))
    gateway_command = by_plane["gateway"]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert gateway_command[5] == result.outputs["gatewayEndpoint"]
    assert "--expect-key" not in gateway_command


def test_each_job_runs_after_its_plane_is_ready() -> None:
    result = render_stack("dev", overrides=ON)
    urn_of = {(r.kind, r.object_name): r.urn for r in result.k8s_objects()}
    for job in result.of_kind("Job"):
        plane = (job.object_name or "").split("-")[2]
        needed = (
            [("Deployment", "llm-proxy"), ("Service", "llm-proxy")]
            if plane == "proxy"
            else [("Gateway", "llm-gateway")]
        )
        for ident in needed:
            assert urn_of[ident] in job.dependencies, (plane, ident)
    gateway_job = next(j for j in result.of_kind("Job") if "gateway" in (j.object_name or ""))
    components = {dep.split("::")[-1] for dep in gateway_job.dependencies}
    assert {"llm-gateway-backend", "llm-gateway-route"} <= components


def test_a_new_key_or_image_names_a_new_job_and_nothing_else_does() -> None:
    first = set(jobs(render_stack("dev", overrides=ON)))
    same = set(jobs(render_stack("dev", overrides={**ON, "proxy.replicas": 3})))
    rotated = set(jobs(render_stack("dev", key=fake_key("rotated"), overrides=ON)))
    new_image = set(
        jobs(render_stack("dev", overrides={**ON, "proxy.image": "registry.example.com/p:2"}))
    )
    assert same == first
    assert rotated.isdisjoint(first)
    assert new_image.isdisjoint(first)


def test_under_the_kill_switch_no_smoke_request_is_sent() -> None:
    result = render_stack("dev", overrides={**ON, "killSwitch": True})
    assert jobs(result) == {}
    assert result.outputs["smokeOnUp"] == "skipped: killSwitch is on, so no smoke request is sent"


def test_on_up_needs_awaiting_and_an_image_before_anything_is_declared() -> None:
    skip = render_stack("dev", overrides={**ON, "skipAwait": True}, expect_error=True)
    assert "smokeTest.onUp" in str(skip.error)
    assert "skipAwait is true" in str(skip.error)
    assert skip.resources == []
    no_image = render_stack(
        "dev",
        overrides={**ON, "proxy.enabled": False},
        image=None,
        expect_error=True,
    )
    assert "needs proxy.image" in str(no_image.error)
    assert no_image.resources == []


def test_a_new_url_or_model_names_a_new_job_too() -> None:
    """What a run proves includes where it called and what it asked for."""
    both = {**ON, "proxy.allowedModels": ["gpt-4o-mini", "gpt-4o"]}
    first = jobs(render_stack("dev", overrides=both))
    planes = {name.rsplit("-", 1)[0]: name for name in first}
    other_model = jobs(render_stack("dev", overrides={**both, "smokeTest.model": "gpt-4o"}))
    assert set(other_model).isdisjoint(first)
    assert set(planes) == {"llm-smoke-gateway", "llm-smoke-proxy"}
    other_port = jobs(render_stack("dev", overrides={**both, "gateway.port": 8081}))
    assert planes["llm-smoke-gateway"] not in other_port  # the gateway URL changed
    assert planes["llm-smoke-proxy"] in other_port  # the proxy URL did not
