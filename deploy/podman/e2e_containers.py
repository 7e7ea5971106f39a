"""`make e2e-containers`: the chart's pods under podman, the e2e suite and the container
checks against them, then everything removed (also on failure or Ctrl-C).

PostgreSQL, Redis and OpenBao are host processes: no registry is reachable here to pull their
images, and the host ones are those every other suite uses (own databases, prefix and Vault
per run). The service pods are the chart's rendered Deployments and Jobs (values-podman.yaml),
played by `podman kube play` with two changes only, both forced by the missing cluster:
host network (the datastores listen on loopback) and an AppRole login instead of a projected
Kubernetes token (there is no TokenReview API to check one).

Two replicas of each service, as the chart runs them: the second of each listens on ports of
its own (host network), and every caller's target names both replicas of its callee
(`ipv4:127.0.0.1:P1,127.0.0.1:P2`), which the clients balance round_robin over mTLS, as they
do over a headless Service's pod addresses in Kubernetes."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

from bulwark_devstack import health as grpc_health
from bulwark_devstack import vault as devvault
from bulwark_devstack.infra import (
    drop_prefix,
    free_port,
    require_redis,
    temporary_database,
    venv_script,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chart_pods import NAMESPACE, as_pod, render, replica, service_of
from private_postgres import private_postgres

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SERVICES = ("users", "auth", "api")
REPLICAS = tuple(f"{svc}-2" for svc in SERVICES)
PODMAN = [
    "podman", "--cgroup-manager", "cgroupfs", "--storage-driver", "overlay",
    "--runtime", str(HERE / "runc-rlimits"),
]  # fmt: skip


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*PODMAN, *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(
            f"podman {' '.join(args)}: exit {done.returncode}: {done.stderr.strip()}"
        )
    return done


def play(pod: dict[str, Any], workdir: Path) -> Path:
    path = workdir / f"{pod['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(pod))
    podman("kube", "play", str(path))
    return path


def container(pod: dict[str, Any]) -> str:
    return f"{pod['metadata']['name']}-{pod['spec']['containers'][0]['name']}"


def run_job(pod: dict[str, Any], workdir: Path, timeout: float = 180) -> None:
    path = play(pod, workdir)
    try:
        code = podman("wait", container(pod)).stdout.strip()
        if code != "0":
            logs = podman("logs", container(pod), check=False)
            raise RuntimeError(
                f"{pod['metadata']['name']} exited {code}:\n{logs.stdout}{logs.stderr}"
            )
    finally:
        podman("kube", "down", str(path), check=False)


def wait_ready(what: str, ready: Callable[[], bool], pods: list[dict[str, Any]]) -> None:
    deadline = time.monotonic() + 90
    while not ready():
        if time.monotonic() > deadline:
            logs = "".join(podman("logs", container(p), check=False).stderr[-3000:] for p in pods)
            raise RuntimeError(f"{what} not ready within 90s:\n{logs}")
        time.sleep(0.5)


def http_ready(url: str) -> Callable[[], bool]:
    def ready() -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(url, timeout=2).status_code == 200
        return False

    return ready


def grpc_ready(port: int) -> Callable[[], bool]:
    return lambda: grpc_health.check(f"127.0.0.1:{port}") == "SERVING"


def create_admin(users_env: dict[str, str], database: str) -> tuple[str, str]:
    """`bulwark-users create-admin` with users' own Vault identity (the password on stdin)."""
    admin, password = "e2e-admin", "admin-" + secrets.token_urlsafe(18)
    env = {**os.environ, **users_env, "USERS_DATABASE_URL": devvault.bare_url(database)}
    subprocess.run(
        [venv_script("bulwark-users"), "create-admin", "--username", admin,
         "--email", f"{admin}@example.com"],
        input=password + "\n", text=True, check=True, capture_output=True, env=env,
    )  # fmt: skip
    return admin, password


def describe(api_url: str, ports: dict[str, int], workdir: Path, pods: dict[str, Any]) -> Path:
    """What the container checks need to find the running pods (BULWARK_CONTAINERS)."""
    path = workdir / "pods.json"
    described = {
        name: {"container": container(p), "grace": p["spec"]["terminationGracePeriodSeconds"]}
        for name, p in pods.items()
    }
    path.write_text(
        json.dumps(
            {"api_url": api_url, "ports": ports, "tls_dir": str(workdir), "podman": PODMAN,
             "pods": described}
        )
    )  # fmt: skip
    return path


def main() -> int:
    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    # Explicitly: a shell starting us in the background would have left SIGINT ignored.
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    redis_url = os.environ.get("BULWARK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    require_redis(redis_url)
    prefix = "e2ec" + secrets.token_hex(4)
    timings: dict[str, float] = {}
    mark = time.monotonic()
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bulwark-e2ec-")))
        workdir.chmod(0o755)  # the pods' uid 10001 reaches its secret dirs through it
        admin_url = stack.enter_context(private_postgres(workdir))
        databases = {
            svc: stack.enter_context(temporary_database(admin_url, f"{prefix}_{svc}"))
            for svc in SERVICES
        }
        server = stack.enter_context(devvault.dev_server(workdir / "bao"))
        provisioned = devvault.provision(
            server.addr,
            server.root_token,
            prefix,
            NAMESPACE,
            databases,
            redis_url,
            f"{prefix}:",
            workdir,
        )
        stack.callback(drop_prefix, redis_url, f"{prefix}:")
        stack.callback(
            devvault.teardown, server.addr, server.root_token, prefix, databases, redis_url
        )
        timings["datastores + vault setup"] = time.monotonic() - mark
        names = (
            *("api", "api-2", "api-mgmt", "api-2-mgmt"),
            *("auth", "auth-2", "auth-health", "auth-2-health", "auth-metrics", "auth-2-metrics"),
            *("users", "users-2", "users-health", "users-2-health"),
            *("users-metrics", "users-2-metrics"),
        )
        ports = {k: free_port() for k in names}
        docs = render(prefix, server.addr, databases, ports)
        pods = {
            d["metadata"]["name"].removeprefix(f"{prefix}-"): as_pod(
                d,
                provisioned.env[
                    "auth-keys" if d["metadata"]["name"].endswith("rotate-keys") else service_of(d)
                ],
                workdir,
            )
            for d in docs
            if d["kind"] in ("Deployment", "Job")
        }
        mark = time.monotonic()
        for svc in SERVICES:
            run_job(pods[f"migrate-{svc}"], workdir)
        run_job(pods["rotate-keys"], workdir)
        timings["migrate + first keys (job pods)"] = time.monotonic() - mark
        mark = time.monotonic()
        # The second replica of each service: same Redis, databases and Vault, own ports.
        pods["api-2"] = replica(
            pods["api"], 2, {"API_PORT": ports["api-2"], "API_MANAGEMENT_PORT": ports["api-2-mgmt"]}
        )
        for svc in ("auth", "users"):
            own = {f"{svc.upper()}_PORT": ports[f"{svc}-2"]}
            own[f"{svc.upper()}_HEALTH_PORT"] = ports[f"{svc}-2-health"]
            own[f"{svc.upper()}_METRICS_PORT"] = ports[f"{svc}-2-metrics"]
            pods[f"{svc}-2"] = replica(pods[svc], 2, own)
        played = []
        for name in (*SERVICES, *REPLICAS):
            path = play(pods[name], workdir)
            stack.callback(podman, "kube", "down", str(path), check=False)
            played.append(pods[name])
        for svc in ("users", "users-2", "auth", "auth-2"):
            wait_ready(svc, grpc_ready(ports[f"{svc}-health"]), played)
        api_url = f"http://127.0.0.1:{ports['api']}"
        for api in ("api", "api-2"):
            wait_ready(api, http_ready(f"http://127.0.0.1:{ports[api]}/readyz"), played)
        timings["service pods ready (2 replicas each)"] = time.monotonic() - mark
        admin, password = create_admin(provisioned.env["users"], databases["users"])
        client = devvault.issue_certificate(devvault.VaultDeployment(server, provisioned), "api")
        for part in ("key_pem", "cert_pem", "ca_pem"):
            (workdir / f"client.{part}").write_bytes(getattr(client, part))
        running = {s: pods[s] for s in (*SERVICES, *REPLICAS)}
        description = describe(api_url, ports, workdir, running)
        mark = time.monotonic()
        env = {
            **os.environ,
            "BULWARK_E2E_URL": api_url,
            "BULWARK_E2E_ADMIN_USERNAME": admin,
            "BULWARK_E2E_ADMIN_PASSWORD": password,
            "BULWARK_CONTAINERS": str(description),
        }
        # Command-line order: the replica checks before test_containers, whose last test
        # stops the services.
        checks = [f"deploy/podman/tests/{f}" for f in ("test_replicas.py", "test_containers.py")]
        args = sys.argv[1:] or ["tests/e2e", *checks, "-q", "-x"]
        code = subprocess.run(
            [venv_script("pytest"), *args], cwd=ROOT, env=env, check=False
        ).returncode
        timings["e2e suite + container checks"] = time.monotonic() - mark
    for phase, seconds in timings.items():
        print(f"e2e-containers: {phase}: {seconds:.1f}s")
    # Pods (with their infra containers) and containers of this run: none may be left.
    pods_left = podman("pod", "ps", "--filter", f"name=^{prefix}-", "--format", "{{.Name}}")
    left = (
        pods_left.stdout.split()
        + podman(
            "ps", "-a", "--filter", f"name=^{prefix}-", "--format", "{{.Names}}"
        ).stdout.split()
    )
    if left:
        print(f"e2e-containers: containers left behind: {left}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
