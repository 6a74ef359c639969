"""The service images (bin/build-images): each image's size, and the time from `run` to SERVING
(gRPC health SERVING and /readyz 200), started the way tests/test_containers.py starts them
(read-only root filesystem, no capabilities, tmpfs where the manifests mount emptyDirs).

    python benchmarks/image_start.py [--rounds 3] [IMAGE ...]

IMAGE defaults to the three images of this version (build them first with bin/build-images).
Rounds interleave the images, so that load on a shared machine hits them alike; each figure is
set against the issue's aim (guard: under 500 MB and ready under 3 s; judge CPU image under
2.5 GB) as a ratio. The judge and editor build their untrained embedded defaults at every start
(into the writable cache), which is most of their time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import tomllib
from pathlib import Path

from safetypairs.serving.containers import find_engine, inspect_image, run_image

ROOT = Path(__file__).resolve().parent.parent
AIMS = {  # image name -> (size MB, ready s); None: no aim given
    "safetypairs-guard": (500, 3.0),
    "safetypairs-judge": (2500, None),
}


def default_images() -> list[str]:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    return [f"safetypairs-{name}:{version}" for name in ("guard", "judge", "edit")]


def ready_seconds(engine: str, image: str, log: Path) -> float:
    start = time.monotonic()
    service = run_image(engine, image, log, ready_timeout_s=600)
    elapsed = time.monotonic() - start
    code = service.stop()
    if code != 0:
        raise SystemExit(f"{image} exited {code} on SIGTERM:\n{service.log()[-3000:]}")
    return elapsed


def ratio(value: float, aim: float | None) -> str:
    return "-" if aim is None else f"{value / aim:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("images", nargs="*", help="image references (default: the three)")
    parser.add_argument("--rounds", type=int, default=3, help="starts per image, interleaved")
    args = parser.parse_args()
    engine = find_engine()
    if engine is None:
        raise SystemExit("no container engine works here (podman or docker)")
    images = args.images or default_images()
    times: dict[str, list[float]] = {image: [] for image in images}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for image in images:
                times[image].append(ready_seconds(engine, image, Path(tmp) / "service.log"))
    print(f"engine {engine}, {args.rounds} rounds, load average {os.getloadavg()[0]:.2f}\n")
    print(
        f"{'image':32} {'size MB':>8} {'/ aim':>6} {'ready s (median)':>17} {'min':>6} {'/ aim':>6}"
    )
    for image in images:
        size_mb = inspect_image(engine, image).size_bytes / 1e6
        size_aim, ready_aim = AIMS.get(image.split(":")[0], (None, None))
        median = statistics.median(times[image])
        print(
            f"{image:32} {size_mb:8.0f} {ratio(size_mb, size_aim):>6} {median:17.2f} "
            f"{min(times[image]):6.2f} {ratio(median, ready_aim):>6}"
        )


if __name__ == "__main__":
    main()
