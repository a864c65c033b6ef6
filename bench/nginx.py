"""Debian's nginx as a reference reverse proxy: one process, keep-alive upstream, no buffering.

Installed through the project's own scripts/ensure-debian-packages.sh when missing.
Runs in the foreground with `master_process off` (one process does the work), its
config, pid, logs and temp files in a private directory, and only on loopback.
"""

import os
import shutil
import subprocess
from pathlib import Path

from bench.targets import PROXY_CPU, ROOT, Target, free_port, pinned, wait_ready

PACKAGE = "nginx"  # bookworm: the server itself; nginx-light only adds the echo module
SYSTEM_PID_FILE = Path("/run/nginx.pid")


def nginx_binary() -> str | None:
    return shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )


def ensure_nginx() -> str:
    """The nginx binary, installing Debian's package if needed; raises with a reason if not."""
    found = nginx_binary()
    if found:
        return found
    if os.geteuid() != 0:
        raise RuntimeError("nginx is not installed and this is not root: nginx row skipped")
    subprocess.run([str(ROOT / "scripts" / "ensure-debian-packages.sh"), PACKAGE], check=True)
    stop_system_nginx()
    found = nginx_binary()
    if not found:
        raise RuntimeError(f"{PACKAGE} installed but no nginx binary found")
    return found


def stop_system_nginx() -> None:
    """If the package's service came up (no policy-rc.d), stop it by its pid file.

    The benchmark must not leave a server on port 80 behind; it stops only the
    process named in Debian's pid file, and only if that process is nginx.
    """
    try:
        pid = int(SYSTEM_PID_FILE.read_text().split()[0])
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except (FileNotFoundError, ValueError, IndexError):
        return
    if comm == "nginx":
        os.kill(pid, 15)
        print(f"stopped the nginx service the package started (pid {pid})", flush=True)


def nginx_config(workdir: Path, listen_port: int, upstream_port: int, key: str) -> str:
    """One process, keep-alive to the upstream, the key swapped in, streams not buffered."""
    return f"""daemon off;
master_process off;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log {workdir}/access.log;
    client_body_temp_path {workdir}/client_body;
    proxy_temp_path {workdir}/proxy_temp;
    fastcgi_temp_path {workdir}/fastcgi_temp;
    uwsgi_temp_path {workdir}/uwsgi_temp;
    scgi_temp_path {workdir}/scgi_temp;
    keepalive_requests 1000000;
    upstream fake_openai {{
        server 127.0.0.1:{upstream_port};
        keepalive 2048;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{listen_port} backlog=1024;
        location /v1/ {{
            proxy_pass http://fake_openai;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "Bearer {key}";
            proxy_buffering off;
        }}
    }}
}}
"""


def nginx_command(binary: str, workdir: Path) -> list[str]:
    """Foreground nginx on the config in `workdir`; -e keeps even startup errors there."""
    return [binary, "-p", str(workdir), "-c", str(workdir / "nginx.conf"),
            "-e", str(workdir / "error.log")]  # fmt: skip


def write_config(workdir: Path, listen_port: int, upstream_port: int, key: str) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "nginx.conf").write_text(nginx_config(workdir, listen_port, upstream_port, key))


def start_nginx(upstream_port: int, work: Path, key: str, name: str) -> Target:
    """nginx in front of the upstream, pinned like the other targets, ready to serve."""
    binary = ensure_nginx()
    port = free_port()
    workdir = work / "nginx"
    write_config(workdir, port, upstream_port, key)
    process = subprocess.Popen(
        nginx_command(binary, workdir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        text=True, preexec_fn=pinned(PROXY_CPU),
    )  # fmt: skip
    target = Target(name, f"http://127.0.0.1:{port}/v1", process)
    try:
        wait_ready(f"http://127.0.0.1:{port}/", process)
    except BaseException:
        target.stop()
        raise
    target.settle()
    return target
