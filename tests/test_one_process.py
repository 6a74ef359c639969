"""`safetypairs serve` is one process for one worker (serving.one_process): BentoML's worker
without its arbiter, serving HTTP, gRPC and /metrics, gRPC first (before BentoML starts), stopping
with status 0; a port in use is an error naming it before any model loads; with more workers it
hands over to BentoML's arbiter."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
from conftest import png_bytes, start_guard_service
from grpc_health.v1 import health_pb2, health_pb2_grpc

from safetypairs.client import GuardClient
from safetypairs.serving.launcher import ServiceProcess, process_tree


def metrics_dir(home: Path, service: ServiceProcess) -> Path:
    """The server's own Prometheus multiprocess directory (other servers share the home)."""
    return home / "bentoml" / "prometheus_multiproc_dir" / f"serve-{service.process.pid}"


def served_requests(service: ServiceProcess) -> str:
    with urllib.request.urlopen(f"{service.http_url}/metrics", timeout=10) as response:
        text = response.read().decode()
    return "\n".join(line for line in text.splitlines() if "safetypairs_requests_total{" in line)


def test_one_worker_is_one_process_serving_both_protocols_and_metrics(sp_home, tmp_path):
    service = start_guard_service(sp_home, tmp_path / "guard.log")
    try:
        assert process_tree(service.process.pid) == [service.process.pid]
        log = service.log()
        # gRPC served before BentoML started its HTTP side (its start-up hooks run in it).
        assert log.index("gRPC serving") < log.index("Running startup hook"), log[-3000:]
        with GuardClient(service.grpc_target, timeout=30) as client:
            assert client.screen(png_bytes()).scores
        assert 'method="Screen"' in served_requests(service)
        assert metrics_dir(sp_home, service).is_dir(), "no metrics directory while serving"
        os.kill(service.process.pid, signal.SIGTERM)
        assert service.process.wait(60) == 0, service.log()[-3000:]
    finally:
        service.stop()
    assert not metrics_dir(sp_home, service).exists(), "the stopped server left its metrics"


def test_a_port_in_use_is_named_before_the_model_loads(sp_home):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        serve = [sys.executable, "-m", "safetypairs.cli", "serve", "guard", "--host", "127.0.0.1"]
        result = subprocess.run(
            [*serve, "--http-port", str(port)],
            env={**os.environ, "SAFETYPAIRS_HOME": str(sp_home), "SAFETYPAIRS_GRPC_PORT": "0"},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 2, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last == f"error: cannot serve HTTP on 127.0.0.1:{port}: Address already in use"
    assert "runs on CPUExecutionProvider" not in result.stderr  # no model was loaded


def test_more_workers_hand_over_to_bentoml_arbiter(sp_home, tmp_path):
    """Two workers share both ports (SO_REUSEPORT for gRPC): an arbiter and two workers."""
    service = start_guard_service(sp_home, tmp_path / "guard.log", {"SAFETYPAIRS_WORKERS": "2"})
    try:
        deadline = time.monotonic() + 120
        while len(process_tree(service.process.pid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(process_tree(service.process.pid)) == 3, service.log()[-3000:]
        with GuardClient(service.grpc_target, timeout=60) as client:
            assert all(client.screen(png_bytes()).scores for _ in range(4))
        with grpc.insecure_channel(service.grpc_target) as channel:
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        assert 'method="Screen"' in served_requests(service)
    finally:
        assert service.stop() == 0, service.log()[-3000:]
