"""Start a service as its own server process (serving.one_process) on loopback and wait until both
protocols are ready; used by tests and benchmarks (and handy in scripts)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from safetypairs.serving.one_process import one_process_command
from safetypairs.serving.serve import SERVICES

GUARD_SERVICE = SERVICES["guard"].bento
JUDGE_SERVICE = SERVICES["judge"].bento
EDIT_SERVICE = SERVICES["edit"].bento


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ServiceProcess:
    process: subprocess.Popen[bytes]
    http_url: str
    grpc_target: str
    log_path: Path
    http_tls: ssl.SSLContext | None = None

    @classmethod
    def start(
        cls,
        service: str,
        log_path: Path,
        env: Mapping[str, str],
        *,
        ready_timeout_s: float = 180.0,
        grpc_credentials: grpc.ChannelCredentials | None = None,
        http_tls: ssl.SSLContext | None = None,
    ) -> ServiceProcess:
        """Run `service` with `env` added to this process's environment (SAFETYPAIRS_GRPC_* are
        set to a free loopback port unless `env` sets the port) and return once gRPC health
        says SERVING and /readyz answers 200 (over HTTPS with `http_tls`, for a service with
        TLS configured). Raises RuntimeError with the log tail otherwise."""
        # A caller that needs a fixed gRPC address (to restart a service on it) sets it in env.
        http_port = free_port()
        grpc_port = int(env.get("SAFETYPAIRS_GRPC_PORT") or free_port())
        full_env = {
            **os.environ,
            "SAFETYPAIRS_GRPC_HOST": "127.0.0.1",
            "SAFETYPAIRS_GRPC_PORT": str(grpc_port),
            **env,
        }
        return cls.launch(
            one_process_command(service, "127.0.0.1", http_port),
            log_path,
            full_env,
            http_port,
            grpc_port,
            ready_timeout_s=ready_timeout_s,
            grpc_credentials=grpc_credentials,
            http_tls=http_tls,
        )

    @classmethod
    def launch(
        cls,
        command: list[str],
        log_path: Path,
        env: Mapping[str, str],
        http_port: int,
        grpc_port: int,
        *,
        ready_timeout_s: float = 180.0,
        grpc_credentials: grpc.ChannelCredentials | None = None,
        http_tls: ssl.SSLContext | None = None,
    ) -> ServiceProcess:
        """Run `command`, which serves HTTP on loopback `http_port` and gRPC on `grpc_port`
        (serving.one_process, `bentoml serve`, or a container engine running a service image),
        in its own process group with `env`, and return once both protocols are ready."""
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        scheme = "https" if http_tls is not None else "http"
        handle = cls(
            process, f"{scheme}://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}", log_path
        )
        handle.http_tls = http_tls
        try:
            handle._wait_ready(ready_timeout_s, grpc_credentials)
        except BaseException:
            handle.stop()
            raise
        return handle

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _wait_ready(self, timeout_s: float, credentials: grpc.ChannelCredentials | None) -> None:
        deadline = time.monotonic() + timeout_s
        # A plain channel: the SDK's (retries, interceptors) sits in a layer above serving.
        channel = (
            grpc.secure_channel(self.grpc_target, credentials)
            if credentials is not None
            else grpc.insecure_channel(self.grpc_target)
        )
        with channel:
            health = health_pb2_grpc.HealthStub(channel)
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"service exited early:\n{self.log()[-4000:]}")
                if self._serving(health) and self._http_ready():
                    return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"service not ready in {timeout_s}s:\n{self.log()[-4000:]}")
                time.sleep(0.3)

    @staticmethod
    def _serving(health: health_pb2_grpc.HealthStub) -> bool:
        try:
            reply = health.Check(health_pb2.HealthCheckRequest(), timeout=1)
        except grpc.RpcError:
            return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING

    def _http_ready(self) -> bool:
        try:
            url = f"{self.http_url}/readyz"
            with urllib.request.urlopen(url, timeout=2, context=self.http_tls) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM the process group, SIGKILL after `timeout_s`; return the exit code."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode


PAGE = os.sysconf("SC_PAGE_SIZE")


def process_tree(root: int) -> list[int]:
    """`root` and its descendants (BentoML's workers run in process groups of their own)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError):
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    found = [root]
    for pid in found:
        found.extend(child for child, parent in parents.items() if parent == pid)
    return found


def resident_bytes(pids: list[int]) -> int:
    """Resident bytes of `pids` (a service's processes), read fast enough to catch peaks."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    return total
