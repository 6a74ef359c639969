"""Where one call's time goes: the guard against KServe (the peer with the lowest latency at
one client in bench.py's runs), the same model, image and client as bench.py.

    python benchmarks/peers/breakdown.py [--rounds 3] [--calls 300]

Each round starts both servers fresh, in turn, each under timed_server.py, which times the model
work inside the server: `pixels` (decode and preprocess) and `model` (onnxruntime). One client
makes sequential OIP v2 ModelInfer calls; per server the medians of the client's latency, of
pixels and of model are printed, and `rest` = latency - pixels - model: the client, gRPC both
ways and the server's own handling of the call (hand-offs between threads included).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import skimage

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import envs  # noqa: E402  (beside this script)
from bench import Server, calls, loadavg, pct  # noqa: E402

from safetypairs.guard.default_model import ensure_default_guard  # noqa: E402
from safetypairs.serving.launcher import free_port  # noqa: E402
from safetypairs.serving.settings import GuardSettings  # noqa: E402

WARM_UP = 30


def timed_server(which: str, onnx: str, model: str, out: Path) -> Server:
    grpc_port, http_port = free_port(), free_port()
    env = {"BENCH_GRPC_PORT": str(grpc_port), "BREAKDOWN_OUT": str(out)}
    script = str(HERE / "timed_server.py")
    if which == "project":
        env |= {
            "SAFETYPAIRS_GUARD_MODEL": onnx,
            "SAFETYPAIRS_GRPC_HOST": "127.0.0.1",
            "SAFETYPAIRS_GRPC_PORT": str(grpc_port),
        }
        return Server(which, [sys.executable, script, which, str(http_port)], env, model)
    env |= {"PYTHONPATH": str(HERE), "PEER_ORT": "default"}
    command = [str(envs.ensure(which)), script, which, onnx, str(grpc_port), str(http_port)]
    return Server(which, command, env, model)


def measure(server: Server, out: Path, data: bytes, count: int) -> dict[str, float]:
    server.start()
    try:
        latencies, _, _ = calls(server.target, server.model, data, 1, WARM_UP + count)
    finally:
        server.stop()
    times = json.loads(out.read_text())
    pixels = statistics.median(times["pixels"][WARM_UP:]) * 1e3
    model = statistics.median(times["model"][WARM_UP:]) * 1e3
    if server.name != "project":  # KServe's timed call holds the pixel work too
        model -= pixels
    latency = pct(latencies[WARM_UP:], 50)
    return {"latency": latency, "pixels": pixels, "model": model}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    data = (Path(skimage.__file__).parent / "data" / "chelsea.png").read_bytes()
    ref = ensure_default_guard(GuardSettings().home_dir())
    home = ref.parent if ref.is_file() else ref
    onnx = str(home / "imagenet-baseline" / "guard.onnx")
    model = json.loads((home / "imagenet-baseline" / "guard.json").read_text())["name"]
    envs.ensure("kserve")
    print(f"chelsea 451x300 PNG, 1 client, {args.calls} calls per server and round; medians (ms)")
    print("| round | server | latency | pixels | model | rest |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = ("project", "kserve") if r % 2 == 0 else ("kserve", "project")
            print(f"<!-- round {r + 1}: load average {loadavg()} -->", flush=True)
            for which in order:
                out = Path(tmp) / f"{which}-{r}.json"
                f = measure(timed_server(which, onnx, model, out), out, data, args.calls)
                rest = f["latency"] - f["pixels"] - f["model"]
                print(
                    f"| {r + 1} | {which} | {f['latency']:.2f} | {f['pixels']:.2f} | "
                    f"{f['model']:.2f} | {rest:.2f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
