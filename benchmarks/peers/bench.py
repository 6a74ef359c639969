"""The guard against its peers: KServe's ModelServer, MLServer and Triton (PyTriton), serving the
same ONNX file with the same preprocessing, measured with one client in interleaved rounds.

    python benchmarks/peers/bench.py [--rounds 3] [--servers project,kserve,mlserver,pytriton]
    python benchmarks/peers/bench.py --ensemble      # the default ensemble vs its members alone
    python benchmarks/peers/bench.py --peer-ort tuned   # peers with the guard's ORT options
    python benchmarks/peers/bench.py --without-opencv   # the guard's decoders as installed

Each peer runs in its own virtual environment under .bench/peers/ (created on first use by
envs.py: minutes). Every server is started fresh in every round, one after another, and all
stay up (idle when not measured) until the round ends. They are measured with
`tritonclient.grpc.aio`, OIP v2 ModelInfer with the encoded image as a BYTES tensor of shape
[1, 1]:

* start-up: from the process start until ModelReady answers true (polled every 20 ms, with a
  20 ms reconnect backoff);
* RSS idle (a second after start-up) and peak RSS under load, over the whole process tree;
* p50/p99 latency with 1 client (sequential calls), the servers taking turns in blocks of 25
  calls, so that drift in the machine's speed falls on all of them alike;
* throughput and p99 with 16 clients (concurrent calls), one server after another, and the
  server's CPU time per image over that phase (user + system of the process tree).

Ratios are taken within each round (this project / the best peer of the round) and the median
over rounds is printed, with the load average before each round: the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import skimage
import tritonclient.grpc as triton
import tritonclient.grpc.aio as triton_aio

from safetypairs.guard.default_model import ensure_default_guard
from safetypairs.serving.launcher import free_port, process_tree, resident_bytes
from safetypairs.serving.settings import GuardSettings

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import envs  # noqa: E402  (beside this script)

TICK = os.sysconf("SC_CLK_TCK")
PEERS = ("kserve", "mlserver", "pytriton")
MB = 2**20


@dataclass
class Figures:
    startup_s: float = 0.0
    rss_idle_mb: float = 0.0
    rss_load_mb: float = 0.0
    p50_1_ms: float = 0.0
    p99_1_ms: float = 0.0
    throughput_16: float = 0.0
    p99_16_ms: float = 0.0
    cpu_ms_per_image: float = 0.0
    answer: list[float] = field(default_factory=list)


# What each metric's "better" is: lower for all but throughput.
METRICS: tuple[tuple[str, str, bool], ...] = (
    ("p50_1_ms", "p50 1 client (ms)", False),
    ("p99_1_ms", "p99 1 client (ms)", False),
    ("throughput_16", "throughput 16 clients (img/s)", True),
    ("p99_16_ms", "p99 16 clients (ms)", False),
    ("cpu_ms_per_image", "CPU ms per image (16 clients)", False),
    ("rss_idle_mb", "RSS idle (MB)", False),
    ("rss_load_mb", "RSS under load (MB)", False),
    ("startup_s", "start-up to ready (s)", False),
)


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


FAST_RECONNECT = [
    ("grpc.initial_reconnect_backoff_ms", 20),
    ("grpc.min_reconnect_backoff_ms", 20),
    ("grpc.max_reconnect_backoff_ms", 20),
]


class Server:
    """One server process (group) and the model name it serves."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], model: str) -> None:
        self.name, self.command, self.env, self.model = name, command, env, model
        self.grpc_port = int(env["BENCH_GRPC_PORT"])
        self.figures = Figures()
        self.process: subprocess.Popen[bytes] | None = None
        handle, log = tempfile.mkstemp(prefix=f"peer-{name}-", suffix=".log")
        os.close(handle)
        self.log = Path(log)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self, timeout_s: float = 180.0) -> float:
        """Start and wait until ModelReady; the seconds that took."""
        started = time.monotonic()
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.command,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        # gRPC backs off about 1 s, then 1.6 s, ... between connection attempts to a port
        # nobody listens on yet: without a short backoff the figure would be the first attempt
        # after the server is up, rounded up to that schedule, not when it became ready.
        client = triton.InferenceServerClient(self.target, channel_args=FAST_RECONNECT)
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early; log: {self.log}")
            with contextlib.suppress(Exception):
                if client.is_model_ready(self.model, client_timeout=1):
                    client.close()
                    return time.monotonic() - started
            if time.monotonic() - started > timeout_s:
                raise RuntimeError(f"{self.name} not ready in {timeout_s}s; log: {self.log}")
            time.sleep(0.02)

    def pids(self) -> list[int]:
        assert self.process is not None
        return process_tree(self.process.pid)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        pids = self.pids()
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        for pid in pids:  # tritonserver and MLServer workers may sit in groups of their own
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def project_server(model: str, onnx: str, shadow: Path | None = None) -> Server:
    """The guard; with `shadow`, a folder put first on its import path (see no_opencv)."""
    grpc_port, http_port = free_port(), free_port()
    env = {
        "BENCH_GRPC_PORT": str(grpc_port),
        "SAFETYPAIRS_GUARD_MODEL": onnx,
        "SAFETYPAIRS_GRPC_HOST": "127.0.0.1",
        "SAFETYPAIRS_GRPC_PORT": str(grpc_port),
    }
    if shadow is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(shadow), os.environ.get("PYTHONPATH")])
        )
    command = [sys.executable, "-m", "safetypairs.cli", "serve", "guard", "--host", "127.0.0.1"]
    return Server("project", [*command, "--http-port", str(http_port)], env, model)


def no_opencv(work: Path) -> Path:
    """A folder whose cv2 module fails to import, as in a default install of the guard (the
    guard extras and images have no OpenCV; this environment has it from the dev extra)."""
    shadow = work / "no-opencv"
    shadow.mkdir(exist_ok=True)
    (shadow / "cv2.py").write_text('raise ImportError("bench.py --without-opencv")\n')
    return shadow


def peer_server(peer: str, model: str, onnx: str, work: Path, peer_ort: str) -> Server:
    python = str(envs.ensure(peer))
    grpc_port, http_port, metrics_port = free_port(), free_port(), free_port()
    ports = [str(grpc_port), str(http_port)]
    if peer != "kserve":
        ports.append(str(metrics_port))
    extra = [str(work / peer)] if peer == "mlserver" else []
    (work / peer).mkdir(exist_ok=True)
    command = [python, str(HERE / f"serve_{peer}.py"), onnx, *ports, *extra]
    env = {"BENCH_GRPC_PORT": str(grpc_port), "PYTHONPATH": str(HERE), "PEER_ORT": peer_ort}
    return Server(peer, command, env, model)


def request(data: bytes) -> list[triton.InferInput]:
    tensor = triton.InferInput("images", [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[data]], dtype=np.object_))
    return [tensor]


async def _calls(
    target: str, model: str, data: bytes, clients: int, count: int
) -> tuple[list[float], float, list[float]]:
    """`count` calls from `clients` concurrent callers: latencies, wall seconds, first answer."""
    client = triton_aio.InferenceServerClient(target)
    remaining = count
    latencies: list[float] = []
    answer: list[float] = []
    outputs = [triton_aio.InferRequestedOutput("probabilities")]

    async def caller() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            result = await client.infer(model, request(data), outputs=outputs)
            latencies.append(time.perf_counter() - started)
            if not answer:
                answer.extend(result.as_numpy("probabilities").reshape(-1).tolist())

    started = time.perf_counter()
    try:
        await asyncio.gather(*(caller() for _ in range(clients)))
    finally:
        await client.close()
    return latencies, time.perf_counter() - started, answer


def calls(target: str, model: str, data: bytes, clients: int, count: int):
    return asyncio.run(_calls(target, model, data, clients, count))


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) * 1000.0


BLOCK = 25  # one-client calls per server in turn


def one_client(servers: dict[str, Server], data: bytes, single: int) -> None:
    """p50/p99 with 1 client, the servers taking turns in blocks of BLOCK calls (the order
    reversed every block), so that the machine's drift, which moves one server's median by up
    to 20% from one minute to the next here, falls on every server alike. Each block starts
    with one uncounted call: the other servers' blocks have taken its caches meanwhile."""
    latencies: dict[str, list[float]] = {name: [] for name in servers}
    for server in servers.values():
        calls(server.target, server.model, data, 1, 20)  # warm-up
    names = list(servers)
    for block in range(-(-single // BLOCK)):
        for name in names if block % 2 == 0 else names[::-1]:
            server = servers[name]
            count = min(BLOCK, single - len(latencies[name]))
            calls(server.target, server.model, data, 1, 1)
            lat, _, answer = calls(server.target, server.model, data, 1, count)
            latencies[name].extend(lat)
            server.figures.answer = server.figures.answer or answer
    for name, lat in latencies.items():
        servers[name].figures.p50_1_ms, servers[name].figures.p99_1_ms = pct(lat, 50), pct(lat, 99)


def sixteen_clients(server: Server, data: bytes, loaded: int) -> None:
    """Throughput, p99, CPU per image and peak RSS with 16 clients, the other servers idle."""
    fig = server.figures
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], resident_bytes(server.pids()))
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cpu0 = cpu_seconds(server.pids())
    lat, wall, _ = calls(server.target, server.model, data, 16, loaded)
    cpu = cpu_seconds(server.pids()) - cpu0
    done.set()
    sampler.join()
    fig.throughput_16 = len(lat) / wall
    fig.p99_16_ms = pct(lat, 99)
    fig.cpu_ms_per_image = cpu * 1000.0 / len(lat)
    fig.rss_load_mb = peak[0] / MB


def started(maker: Callable[[], Server], attempts: int = 3) -> Server:
    """A started server, its start-up timed. free_port's port is free when picked, but with
    other servers up one of them may take it for a connection before this server binds it:
    then the server exits at once, and starts again on fresh ports."""
    for attempt in range(1, attempts + 1):
        server = maker()
        try:
            server.figures.startup_s = server.start()
            return server
        except RuntimeError as exc:
            server.stop()
            if attempt == attempts:
                raise
            print(f"  ({exc}; starting again on fresh ports)", flush=True)
    raise AssertionError("unreachable")


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run_rounds(
    makers: dict[str, Callable[[], Server]], rounds: int, data: bytes, single: int, loaded: int
) -> list[dict[str, Figures]]:
    """Each round starts every server fresh, one after another (the start-up figure, and RSS
    idle a second later), measures them with one client taking turns, then each with 16
    clients in turn, and stops them all."""
    results = []
    names = list(makers)
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]  # rotate who goes first
        print(f"round {r + 1}/{rounds}: load average {loadavg()}; order {', '.join(order)}")
        servers: dict[str, Server] = {}
        try:
            for name in order:
                server = servers[name] = started(makers[name])
                time.sleep(1.0)
                server.figures.rss_idle_mb = resident_bytes(server.pids()) / MB
            one_client(servers, data, single)
            for server in servers.values():
                sixteen_clients(server, data, loaded)
        finally:
            for server in servers.values():
                server.stop()
        for name in order:
            f = servers[name].figures
            print(
                f"  {name:9s} start {f.startup_s:5.2f}s  p50 {f.p50_1_ms:6.2f}ms  "
                f"p99 {f.p99_1_ms:6.2f}ms  16c {f.throughput_16:6.1f}/s p99 {f.p99_16_ms:6.1f}ms  "
                f"cpu {f.cpu_ms_per_image:5.2f}ms/img  "
                f"rss {f.rss_idle_mb:4.0f}/{f.rss_load_mb:4.0f}MB",
                flush=True,
            )
        print(f"  load average after the round {loadavg()}")
        results.append({name: servers[name].figures for name in order})
    return results


def print_peer_ratios(results: list[dict[str, Figures]]) -> None:
    peers = [n for n in results[0] if n != "project"]
    print("\nmedian over rounds; ratio = project / best peer of the same round")
    print(f"| figure | project | {' | '.join(peers)} | project / best peer |")
    print(f"|---|---|{'---|' * len(peers)}---|")
    for key, label, higher in METRICS:
        ratios = []
        for figures in results:
            values = [getattr(figures[p], key) for p in peers]
            best = max(values) if higher else min(values)
            ratios.append(getattr(figures["project"], key) / best)
        cols = [
            f"{statistics.median(getattr(f[n], key) for f in results):.2f}"
            for n in ("project", *peers)
        ]
        spread = f"{min(ratios):.2f}-{max(ratios):.2f}"
        print(f"| {label} | {' | '.join(cols)} | {statistics.median(ratios):.2f}x ({spread}) |")
    ref = np.asarray(results[0]["project"].answer)
    for name in peers:
        diff = np.abs(np.asarray(results[0][name].answer) - ref).max()
        print(f"max |answer difference| project vs {name}: {diff:.2e}")


def ensemble_makers(home: Path, work: Path) -> dict[str, Callable[[], Server]]:
    """The default ensemble and each of its members served alone (a one-member ensemble)."""
    manifest_path = home / "ensemble.json"
    manifest = json.loads(manifest_path.read_text())
    makers: dict[str, Callable[[], Server]] = {
        "ensemble": lambda: project_server(manifest["name"], str(manifest_path))
    }
    for member in manifest["members"]:
        solo = work / member["name"]
        solo.mkdir(exist_ok=True)
        spec = dict(member)
        if not spec["onnx"].startswith("package:"):
            spec["onnx"] = str(home / spec["onnx"])
        if spec.get("sidecar"):
            spec["sidecar"] = str(home / spec["sidecar"])
        alone = {**manifest, "name": member["name"], "members": [spec], "fusion": {}}
        alone.pop("thresholds", None)
        (solo / "ensemble.json").write_text(json.dumps(alone))
        makers[member["name"]] = lambda solo=solo, name=member["name"]: project_server(
            name, str(solo / "ensemble.json")
        )
    return makers


def print_ensemble_ratios(results: list[dict[str, Figures]]) -> None:
    members = [n for n in results[0] if n != "ensemble"]
    ratios = []
    for figures in results:
        bound = 1.0 / sum(1.0 / figures[m].throughput_16 for m in members)
        ratios.append(figures["ensemble"].throughput_16 / bound)
        print(
            f"ensemble {figures['ensemble'].throughput_16:.1f}/s, members alone "
            + ", ".join(f"{m} {figures[m].throughput_16:.1f}/s" for m in members)
            + f", sum-of-members bound {bound:.1f}/s: {ratios[-1]:.2f}x"
        )
    print(f"ensemble / sum-of-members bound, median over rounds: {statistics.median(ratios):.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--servers", default="project," + ",".join(PEERS))
    parser.add_argument("--single", type=int, default=200, help="calls with 1 client")
    parser.add_argument("--loaded", type=int, default=800, help="calls with 16 clients")
    parser.add_argument("--ensemble", action="store_true", help="ensemble vs its members alone")
    parser.add_argument(
        "--peer-ort",
        choices=("default", "tuned"),
        default="default",
        help="the peers' onnxruntime session options: its defaults, or the guard's own",
    )
    parser.add_argument(
        "--without-opencv",
        action="store_true",
        help="the guard decoding as a default install does: libspng and Pillow, no OpenCV",
    )
    args = parser.parse_args()

    photo = (Path(skimage.__file__).parent / "data" / "chelsea.png").read_bytes()
    ref = ensure_default_guard(GuardSettings().home_dir())
    home = ref.parent if ref.is_file() else ref  # the ensemble's folder
    onnx = str(home / "imagenet-baseline" / "guard.onnx")
    model = json.loads((home / "imagenet-baseline" / "guard.json").read_text())["name"]
    print(f"image chelsea 451x300 PNG ({len(photo)} bytes); cores {os.cpu_count()}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.ensemble:
            print("model: the default ensemble and each member alone, this project only")
            results = run_rounds(
                ensemble_makers(home, work), args.rounds, photo, args.single, args.loaded
            )
            print_ensemble_ratios(results)
            return
        shadow = no_opencv(work) if args.without_opencv else None
        print(
            f"model: {onnx}; peers' onnxruntime options: {args.peer_ort}; "
            f"the guard {'without' if shadow else 'with'} OpenCV"
        )
        makers: dict[str, Callable[[], Server]] = {}
        for name in args.servers.split(","):
            if name == "project":
                makers[name] = lambda: project_server(model, onnx, shadow)
            else:
                envs.ensure(name)  # before any timing
                makers[name] = lambda name=name: peer_server(name, model, onnx, work, args.peer_ort)
        results = run_rounds(makers, args.rounds, photo, args.single, args.loaded)
        print_peer_ratios(results)


if __name__ == "__main__":
    main()
