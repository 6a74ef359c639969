"""Each peer server in its own virtual environment, created here on first use.

The peers (KServe's ModelServer, MLServer, Triton through PyTriton) are benchmark tools, never
dependencies of the project: they live under `.bench/peers/NAME` (git-ignored), each with the
same onnxruntime and Pillow as the project so that only the server differs.

    python benchmarks/peers/envs.py [kserve mlserver pytriton]   # create (or check) them
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENVS = ROOT / ".bench" / "peers"

# The server packages, pinned: the versions the issue measured against.
SERVERS: dict[str, tuple[str, ...]] = {
    "kserve": ("kserve==0.21.0",),
    # MLServer 1.7.1's inference-pool workers call asyncio.get_event_loop(), which uvloop 0.22+
    # refuses outside a running loop: the workers die at start.
    "mlserver": ("mlserver==1.7.1", "uvloop<0.22"),
    "pytriton": ("nvidia-pytriton==0.7.0",),
}


def _same_as_project() -> tuple[str, ...]:
    """The model-side packages at the project's own versions (numpy is left to each
    server's resolver: PyTriton 0.7 needs numpy 1.x)."""
    return tuple(
        f"{dist}=={importlib.metadata.version(dist)}" for dist in ("onnxruntime", "pillow")
    )


def python_of(name: str) -> Path:
    return ENVS / name / "bin" / "python"


def ensure(name: str) -> Path:
    """The peer's interpreter, creating its environment when missing (minutes, once)."""
    env = ENVS / name
    wanted = "\n".join((*SERVERS[name], *_same_as_project()))
    stamp = env / "requirements.txt"
    if stamp.is_file() and stamp.read_text() == wanted:
        return python_of(name)
    print(f"creating the {name} environment in {env} ...", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(env)], check=True)
    subprocess.run(
        [str(python_of(name)), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True
    )
    subprocess.run(
        [str(python_of(name)), "-m", "pip", "install", "-q", *wanted.split("\n")], check=True
    )
    stamp.write_text(wanted)
    return python_of(name)


if __name__ == "__main__":
    for peer in sys.argv[1:] or list(SERVERS):
        print(peer, ensure(peer))
