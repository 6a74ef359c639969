"""A real Prometheus server (Debian's `prometheus`, installed by bin/test) scrapes the running
guard service's /metrics; its HTTP API must show the request counter and the latency
histogram move after a few calls."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import free_port, png_bytes

from safetypairs.client import GuardClient
from safetypairs.serving.launcher import ServiceProcess

CALLS = 5
DASHBOARD = Path(__file__).resolve().parent.parent / "deploy/grafana/safetypairs-services.json"
SERIES = '{service="guard",protocol="grpc",method="Screen",code="200",grpc_code="OK"}'
LATENCY = '{service="guard",protocol="grpc",method="Screen"}'


class Prometheus:
    def __init__(self, url: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.url = url
        self.process = process
        self.log = log

    def query(self, expr: str) -> float | None:
        """The value of an instant query with one result, None when it has none."""
        result = self.series(expr)
        assert len(result) <= 1, f"{expr} matched several series: {result}"
        return float(result[0]["value"][1]) if result else None

    def series(self, expr: str) -> list[dict]:
        """Every result of an instant query (a query Prometheus cannot parse fails here)."""
        qs = urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/query?{qs}", timeout=5) as r:
                body = json.load(r)
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{expr}: {exc.read().decode()}") from None
        assert body["status"] == "success", body
        return body["data"]["result"]

    def wait_for(self, expr: str, check, timeout_s: float = 30.0) -> float | None:
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited:\n{self.log.read_text()[-3000:]}")
            value = self.query(expr) if self._ready() else None
            if check(value):
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"{expr} = {value} after {timeout_s}s")
            time.sleep(0.5)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False


@pytest.fixture(scope="module")
def prometheus(guard_service: ServiceProcess, tmp_path_factory) -> Iterator[Prometheus]:
    """Prometheus on loopback scraping the guard every second, with its own storage: the
    Debian package's systemd unit plays no part."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise RuntimeError("prometheus not found: run the tests through bin/test (it installs it)")
    work = tmp_path_factory.mktemp("prometheus")
    target = guard_service.http_url.removeprefix("http://")
    config = {  # JSON is YAML
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "guard", "static_configs": [{"targets": [target]}]}],
    }
    (work / "prometheus.yml").write_text(json.dumps(config))
    port = free_port()
    log = work / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={work / 'prometheus.yml'}",
                f"--storage.tsdb.path={work / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield Prometheus(f"http://127.0.0.1:{port}", process, log)
    finally:
        process.terminate()
        process.wait(10)


def test_prometheus_sees_requests_and_latency_move(
    prometheus: Prometheus, guard_service: ServiceProcess
) -> None:
    prometheus.wait_for('up{job="guard"}', lambda v: v == 1.0)
    # A scrape after the target is up: the baseline (absent = no call of this kind yet).
    before = prometheus.query(f"safetypairs_requests_total{SERIES}") or 0.0
    count_before = prometheus.query(f"safetypairs_request_duration_seconds_count{LATENCY}") or 0.0
    with GuardClient(guard_service.grpc_target, timeout=30) as guard:
        for _ in range(CALLS):
            guard.screen(png_bytes())
    after = prometheus.wait_for(
        f"safetypairs_requests_total{SERIES}", lambda v: v is not None and v >= before + CALLS
    )
    count = prometheus.wait_for(
        f"safetypairs_request_duration_seconds_count{LATENCY}",
        lambda v: v is not None and v >= count_before + CALLS,
    )
    assert after - before == count - count_before  # no other caller in between
    # The histogram's buckets moved too, and its observations lie under the largest bucket.
    inf = prometheus.query(
        f'safetypairs_request_duration_seconds_bucket{{{LATENCY[1:-1]},le="+Inf"}}'
    )
    slow = prometheus.query(
        f'safetypairs_request_duration_seconds_bucket{{{LATENCY[1:-1]},le="600.0"}}'
    )
    assert inf == count and slow == count
    assert (prometheus.query(f"safetypairs_request_duration_seconds_sum{LATENCY}") or 0) > 0


def test_dashboard_queries_run_on_the_scraped_metrics(prometheus: Prometheus) -> None:
    """Every panel of the Grafana dashboard is PromQL the real Prometheus accepts, and (after
    the calls above) finds data, except the error ratio of a service without errors."""
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 6
    for title, expr in exprs:
        concrete = expr.replace("$__rate_interval", "1m").replace("$service", ".*")
        result = prometheus.series(concrete)
        deadline = time.monotonic() + 15  # a rate needs two scrapes of a new series
        while not result and title != "Error ratio" and time.monotonic() < deadline:
            time.sleep(0.5)
            result = prometheus.series(concrete)
        assert result or title == "Error ratio", f"{title}: {concrete} found nothing"
