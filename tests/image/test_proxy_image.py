"""The proxy image, built by scripts/image/build.sh and run the way the Deployment runs it.

The Deployment (components/shapes/deployment.py) asks for UID/GID 10001, a read-only root
filesystem, every capability dropped, the key from a Secret volume (0440, fsGroup 10001) at
/etc/llm-gateway/secret, and probes on /healthz and /readyz. The container here gets exactly
that (podman + runc, the host's loopback, the proxy on 127.0.0.1), in front of a fake
upstream on loopback that records the credential it receives.

    .venv/bin/pytest -m image tests/image       (root; a cold build takes a few minutes)

The tests share one container and run in file order: the last two rotate the key and stop it.
"""

import base64
import binascii
import errno
import fcntl
import os
import re
import shutil
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from fakes.kubelet_secret_dir import KubeletSecretDir
from fakes.openai_upstream import FakeUpstream, start_fake_upstream
from proxy.fingerprint import key_fingerprint
from tests.image.oci import LayerFile, Layout, image_cache
from tests.image.podman import Podman
from tests.support.net import free_port
from tests.support.proxy import CLIENT_DUMMY_KEY, FAKE_KEY, ROOT, SECOND_KEY, LoopThread

pytestmark = [pytest.mark.image, pytest.mark.timeout(1800)]

RUN_AS = 10001
SECRET_MOUNT = "/etc/llm-gateway/secret"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
LOCAL_CAS = Path("/usr/local/share/ca-certificates")  # this machine's additions to Debian's set
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def kubelet_permissions(root: Path) -> None:
    """What the kubelet gives a Secret volume with fsGroup 10001 and defaultMode 0440."""
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        os.chown(path, 0, RUN_AS)
        path.chmod(0o2750 if path.is_dir() else 0o440)


@dataclass
class Built:
    digest: str
    cache: Path  # a private image cache holding a copy of the layout (safe from a rebuild)

    @property
    def layout(self) -> Layout:
        return Layout(self.cache / "images" / "llm-proxy.oci")


@dataclass
class Running:
    podman: Podman
    image_id: str
    name: str
    pid: int
    url: str
    secret: KubeletSecretDir
    fake: FakeUpstream

    def exec(self, *command: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
        as_user = ["--user", user] if user else []
        return self.podman("exec", *as_user, self.name, *command, check=False)

    def logs(self) -> str:
        done = self.podman("logs", self.name, check=False)
        return done.stdout + done.stderr


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    done = subprocess.run(
        [str(ROOT / "scripts/image/build.sh")],
        capture_output=True, text=True, timeout=1500, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    digest = done.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), done.stdout
    cache = tmp_path_factory.mktemp("cache")
    (cache / "images").mkdir()
    with (image_cache() / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the scripts hold it while they write the layout
        shutil.copytree(
            image_cache() / "llm-proxy.oci", cache / "images/llm-proxy.oci",
            copy_function=link_or_copy,
        )  # fmt: skip
    result = Built(digest, cache)
    assert result.layout.digest == digest  # what build.sh printed is the layout's manifest
    return result


@pytest.fixture(scope="module")
def layer_files(built: Built) -> list[LayerFile]:
    return list(built.layout.files())


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[FakeUpstream, int]]:
    loop = LoopThread("image-fake-upstream")
    runner, fake, port = loop.run(start_fake_upstream())
    yield fake, port
    loop.run(runner.cleanup())


@pytest.fixture(scope="module")
def proxy(
    built: Built, upstream: tuple[FakeUpstream, int], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    fake, upstream_port = upstream
    work = tmp_path_factory.mktemp("podman")
    podman = Podman(work)
    secret = KubeletSecretDir(work / "secret")
    secret.write(FAKE_KEY)
    kubelet_permissions(secret.root)
    port = free_port()
    name = f"llm-proxy-image-test-{os.getpid()}"
    try:
        pulled = podman("pull", "--quiet", f"oci:{built.layout.root}:llm-proxy", timeout=600)
        image_id = pulled.stdout.strip().splitlines()[-1]
        assert podman("image", "inspect", "--format", "{{.Digest}}", image_id).stdout.strip() == (
            built.digest
        )
        podman(
            "run", "--detach", "--name", name,
            "--network", "host",
            "--read-only", "--read-only-tmpfs=false",  # no tmpfs on /tmp, /run: as in the pod
            "--user", f"{RUN_AS}:{RUN_AS}", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges",
            *Podman.ulimits(),
            "--env", "LLM_PROXY_HOST=127.0.0.1", "--env", f"LLM_PROXY_PORT={port}",
            "--env", f"LLM_PROXY_UPSTREAM=http://127.0.0.1:{upstream_port}/v1",
            "--volume", f"{secret.root}:{SECRET_MOUNT}:ro",
            image_id,
        )  # fmt: skip
        pid = int(podman("inspect", "--format", "{{.State.Pid}}", name).stdout.strip())
        running = Running(podman, image_id, name, pid, f"http://127.0.0.1:{port}", secret, fake)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(running.url + "/healthz", timeout=2, trust_env=False).is_success:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"no /healthz in 60 s:\n{running.logs()}"
            time.sleep(0.2)
        yield running
    finally:
        podman("rm", "--force", "--time", "5", name, check=False)
        podman.reset()


PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----")


def pem_certs(data: bytes) -> set[bytes]:
    """The DER of every PEM certificate in data (code that merely names the markers is skipped)."""
    found = set()
    for body in PEM_CERT.findall(data):
        try:
            found.add(base64.b64decode(b"".join(body.split()), validate=True))
        except binascii.Error:
            continue
    return found


def proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


def test_image_config_is_what_the_deployment_expects(built: Built) -> None:
    config = built.layout.config["config"]
    assert config["User"] == f"{RUN_AS}:{RUN_AS}"
    assert config["Entrypoint"] == ["python", "-m", "proxy"]
    assert config["Cmd"] == ["serve"]
    assert config["WorkingDir"] == "/app"
    assert "8080/tcp" in config["ExposedPorts"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"  # nothing to write on a read-only root
    assert (env["LLM_PROXY_HOST"], env["LLM_PROXY_PORT"]) == ("0.0.0.0", "8080")
    assert built.layout.manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"


def test_healthz_and_readyz_report_the_mounted_key(proxy: Running) -> None:
    assert httpx.get(proxy.url + "/healthz", trust_env=False).status_code == 200
    ready = httpx.get(proxy.url + "/readyz", trust_env=False)
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready", "keyFingerprint": key_fingerprint(FAKE_KEY)}


def test_chat_completion_carries_the_mounted_key_not_the_clients(proxy: Running) -> None:
    before = len(proxy.fake.seen.authorizations)
    response = httpx.post(
        proxy.url + "/v1/chat/completions", json=CHAT, trust_env=False, timeout=30,
        headers={"Authorization": f"Bearer {CLIENT_DUMMY_KEY}"},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "pong"
    assert proxy.fake.seen.authorizations[before:] == [f"Bearer {FAKE_KEY}"]


def test_smoke_command_runs_inside_the_image(proxy: Running) -> None:
    before = len(proxy.fake.seen.authorizations)
    smoke = proxy.exec("python", "-m", "proxy", "smoke", "--url", proxy.url + "/v1")
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr
    assert smoke.stdout.startswith("ok:"), smoke.stdout
    assert proxy.fake.seen.authorizations[before:] == [f"Bearer {FAKE_KEY}"]


def test_an_unreadable_key_stops_the_start_naming_why(proxy: Running, tmp_path: Path) -> None:
    # The Deployment sets LLM_PROXY_REQUIRE_KEY: a Secret volume the proxy's uid cannot read
    # (here: 0400 root) ends the start with one line, the pod's termination message.
    secret = KubeletSecretDir(tmp_path / "secret")
    secret.write(FAKE_KEY)
    kubelet_permissions(secret.root)
    for path in secret.root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            path.chmod(0o400)
    done = proxy.podman(
        "run", "--rm", "--network", "none", "--read-only", "--read-only-tmpfs=false",
        "--user", f"{RUN_AS}:{RUN_AS}", "--cap-drop", "ALL", *Podman.ulimits(),
        "--env", "LLM_PROXY_REQUIRE_KEY=true",
        "--volume", f"{secret.root}:{SECRET_MOUNT}:ro",
        proxy.image_id,
        check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert (
        f"llm-proxy: cannot start: no usable key in {SECRET_MOUNT}/apiKey: Permission denied"
        in done.stderr
    )
    assert "FAKEKEY" not in done.stdout + done.stderr


def test_proxy_process_is_uid_10001_with_no_capabilities(proxy: Running) -> None:
    status = proc_status(proxy.pid)
    command = Path(f"/proc/{proxy.pid}/cmdline").read_bytes().split(b"\0")
    assert command[1:4] == [b"-m", b"proxy", b"serve"], command
    assert status["Uid"].split() == [str(RUN_AS)] * 4
    assert status["Gid"].split() == [str(RUN_AS)] * 4
    assert int(status["CapEff"], 16) == int(status["CapPrm"], 16) == 0
    assert status["NoNewPrivs"] == "1"


def test_root_filesystem_is_read_only(proxy: Running) -> None:
    root_mount = next(
        line.split() for line in Path(f"/proc/{proxy.pid}/mountinfo").read_text().splitlines()
        if line.split()[4] == "/"
    )  # fmt: skip
    assert "ro" in root_mount[5].split(","), root_mount
    probe = (
        "import errno, sys\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n"
        "        open(path, 'w').close()\n"
        "        print(path, 'written')\n"
        "    except OSError as exc:\n"
        "        print(path, errno.errorcode[exc.errno])\n"
    )
    as_proxy = proxy.exec("python", "-c", probe, "/tmp/probe", "/app/probe")
    assert as_proxy.stdout.split() == ["/tmp/probe", "EROFS", "/app/probe", "EROFS"], as_proxy
    as_root = proxy.exec("python", "-c", probe, "/probe", "/opt/venv/probe", user="0")
    assert as_root.stdout.split() == ["/probe", "EROFS", "/opt/venv/probe", "EROFS"], as_root
    assert errno.EROFS  # the names above are errno's


def test_build_ca_bundle_is_in_no_layer(layer_files: list[LayerFile]) -> None:
    """build.sh bind-mounts the host's bundle into the RUN steps (pip's TLS); none of it stays."""
    bundles = [f for f in layer_files if f.path.endswith("ca-certificates.crt")]
    # Debian's own bundle, from the base layer: TLS to the real upstream works.
    assert [(f.layer, f.path) for f in bundles] == [(0, "etc/ssl/certs/ca-certificates.crt")]
    host_bundle = HOST_CA_BUNDLE.read_bytes() if HOST_CA_BUNDLE.exists() else b""
    if host_bundle and host_bundle != bundles[0].data:
        assert all(f.data != host_bundle for f in layer_files)
    local_cas = {
        cert for path in sorted(LOCAL_CAS.glob("*.crt")) for cert in pem_certs(path.read_bytes())
    }
    image_certs = {cert for f in layer_files for cert in pem_certs(f.data)}
    assert image_certs, "no certificate at all: the image could not reach the real upstream"
    assert not local_cas & image_certs, "a CA that only this machine trusts is in the image"


def test_python_bytecode_is_precompiled_and_never_stale(layer_files: list[LayerFile]) -> None:
    """unchecked-hash pycs for the venv and the app: nothing recompiled (or written) at start."""
    files = {f.path: f for f in layer_files}  # upper layers win
    sources = sorted(p for p in files if p.endswith(".py") and p.startswith(("opt/", "app/")))
    assert "app/proxy/__main__.py" in sources
    pycs = {p for p in files if "/__pycache__/" in p and p.endswith(".pyc") and ".opt-" not in p}
    problems = []
    for source in sources:
        folder, _, name = source.rpartition("/")
        prefix = f"{folder}/__pycache__/{name.removesuffix('.py')}.cpython-"
        matches = [p for p in pycs if p.startswith(prefix)]
        if len(matches) != 1:
            problems.append(f"{source}: pycs {matches}")
            continue
        (flags,) = struct.unpack("<I", files[matches[0]].data[4:8])
        if flags != 0b01:  # PEP 552: hash-based, unchecked
            problems.append(f"{matches[0]}: flags {flags:#b}")
    assert not problems, problems[:20]


def test_push_keeps_the_digest(built: Built, tmp_path: Path) -> None:
    """push.sh to a plain-HTTP registry on loopback: the registry reports the built digest."""
    subprocess.run([str(ROOT / "scripts/ensure-debian-packages.sh"), "docker-registry"], check=True)
    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\nlog: {level: error}\n"
        f"http: {{addr: '127.0.0.1:{port}'}}\n"
        f"storage: {{filesystem: {{rootdirectory: '{tmp_path / 'data'}'}}}}\n"
    )
    log = (tmp_path / "registry.log").open("w")
    registry = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/", trust_env=False).is_success:
                    break
            except httpx.TransportError:
                pass
            assert registry.poll() is None, "docker-registry exited"
            assert time.monotonic() < deadline, "docker-registry not up in 30 s"
            time.sleep(0.1)
        push = subprocess.run(
            [str(ROOT / "scripts/image/push.sh"), f"127.0.0.1:{port}/llm-proxy:test"],
            env={**os.environ, "LLM_GATEWAY_E2E_CACHE": str(built.cache)},
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert push.returncode == 0, push.stderr
        assert push.stdout.strip().splitlines()[-1] == f"127.0.0.1:{port}/llm-proxy@{built.digest}"
        head = httpx.head(
            f"http://127.0.0.1:{port}/v2/llm-proxy/manifests/test", trust_env=False,
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        )  # fmt: skip
        assert head.status_code == 200
        assert head.headers["Docker-Content-Digest"] == built.digest
    finally:
        registry.terminate()
        registry.wait(timeout=15)
        log.close()


def test_key_rotation_reaches_the_running_container(proxy: Running) -> None:
    """The kubelet's atomic ..data swap, seen through the read-only bind mount."""
    proxy.secret.write(SECOND_KEY)
    kubelet_permissions(proxy.secret.root)
    deadline = time.monotonic() + 10
    while True:
        fingerprint = httpx.get(proxy.url + "/readyz", trust_env=False).json()["keyFingerprint"]
        if fingerprint == key_fingerprint(SECOND_KEY):
            break
        assert time.monotonic() < deadline, f"still {fingerprint} after 10 s"
        time.sleep(0.1)
    before = len(proxy.fake.seen.authorizations)
    response = httpx.post(proxy.url + "/v1/chat/completions", json=CHAT, trust_env=False)
    assert response.status_code == 200, response.text
    assert proxy.fake.seen.authorizations[before:] == [f"Bearer {SECOND_KEY}"]


def test_sigterm_stops_it_cleanly(proxy: Running) -> None:
    """python is PID 1 in the container: it must handle SIGTERM itself (drain, exit 0)."""
    stop = proxy.podman("stop", "--time", "20", proxy.name, check=False, timeout=60)
    assert stop.returncode == 0, stop.stderr
    state = proxy.podman("inspect", "--format", "{{.State.ExitCode}}", proxy.name).stdout.strip()
    assert state == "0", proxy.logs()
