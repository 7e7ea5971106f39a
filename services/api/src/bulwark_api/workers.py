"""`API_WORKERS=N` (N > 1): N api processes serving one listening socket.

The supervisor binds the public port once and starts N `bulwark-api serve` processes that
inherit the socket (the kernel spreads connections over the processes accepting on it), as
uvicorn's own `--workers` does. Each worker is a whole api: its own Vault login, pools and
channels (none of which survive a fork, so workers are fresh interpreters, not forks). Only
worker 0 serves the management port (probes), so one port answers for the pod. When any
worker exits, the others are stopped and the supervisor exits with its status: the
orchestrator restarts the pod, as it would a single-process api."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess  # nosec B404
import sys
import tempfile
import time

from bulwark_api.settings import ApiSettings

# Set by the supervisor in each worker's environment.
WORKER_FD = "BULWARK_API_LISTEN_FD"
WORKER_INDEX = "BULWARK_API_WORKER"
log = logging.getLogger("bulwark.api.workers")


def inherited() -> bool:
    return WORKER_FD in os.environ


def inherited_socket() -> socket.socket | None:
    """In a worker: the listening socket the supervisor passed down, else None. A worker
    also asks Linux for SIGTERM when the supervisor dies (even by SIGKILL): no orphan keeps
    serving the port."""
    fd = os.environ.get(WORKER_FD)
    if fd is None:
        return None
    if sys.platform == "linux":
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
        if os.getppid() == 1:  # the supervisor died before that
            raise SystemExit("bulwark-api: the worker supervisor is gone")
    return socket.socket(fileno=int(fd))


def is_first() -> bool:
    """Worker 0, or a single-process api: the one that applies dev's startup migrations."""
    return os.environ.get(WORKER_INDEX, "0") == "0"


def supervise(settings: ApiSettings) -> int:
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    sock.listen(2048)
    sock.set_inheritable(True)
    procs: list[subprocess.Popen[bytes]] = []
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    # One /metrics for all workers: prometheus-client's multi-process mode needs a shared
    # directory, set before the workers import it (under /tmp: the only writable place).
    shared = {"PROMETHEUS_MULTIPROC_DIR": os.environ.get("PROMETHEUS_MULTIPROC_DIR") or ""}
    if not shared["PROMETHEUS_MULTIPROC_DIR"]:
        shared["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="bulwark-api-metrics-")
    for i in range(settings.workers):
        env = {**os.environ, **shared, WORKER_FD: str(sock.fileno()), WORKER_INDEX: str(i)}
        if i > 0:
            env["API_MANAGEMENT_PORT"] = "0"
        procs.append(
            # bandit: this interpreter and this module, nothing from input in argv.
            subprocess.Popen(  # nosec B603
                [sys.executable, "-m", "bulwark_api", "serve"],
                env=env,
                pass_fds=(sock.fileno(),),
            )
        )
    log.info("workers started", extra={"workers": settings.workers, "port": settings.port})
    while all(p.poll() is None for p in procs):
        time.sleep(0.2)
    status = next(p.returncode for p in procs if p.returncode is not None)
    if not stopping:
        log.error("a worker exited; stopping the others", extra={"status": status})
    stop()
    for p in procs:
        p.wait()
    sock.close()
    return 0 if stopping else (status or 1)
