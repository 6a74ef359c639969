"""A dataset writer as the generator writes, in a process of its own for the kill tests: open
the dataset (a folder, or an object-store URL with a short lease), skip the done units, and
commit each unit's records (a rejected candidate, then the accepted pair) in one call."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable

WRITER = """
import sys
from safetypairs.contract.pair_record import PairRecord
from safetypairs.pairs.store import open_dataset

ds = open_dataset(sys.argv[1], {"run": {"seed": 1}}, lease_s=float(sys.argv[3]))
done = ds.done_units()
print("ready", flush=True)
for n in range(int(sys.argv[2])):
    unit = f"u{n}"
    if unit not in done:
        ds.commit([
            PairRecord(status="rejected", id=f"{unit}-0", unit=unit, reasons=("no_flip",)),
            PairRecord(status="accepted", id=f"{unit}-1", unit=unit),
        ])
print("finished", flush=True)
ds.close()
"""


def start_writer(location: str, units: int, lease_s: float = 30.0) -> subprocess.Popen[str]:
    """The writer, once it has opened the dataset (and taken its lock or lease)."""
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, location, str(units), str(lease_s)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n"
    return process


def kill_mid_run(
    start: Callable[[], subprocess.Popen[str]], rng: random.Random, late_s: float, kills: int
) -> int:
    """Start writers with `start` and SIGKILL each at a random moment up to `late_s` after it
    opened the dataset, until `kills` kills or one finishes first; the kills made."""
    made = 0
    while made < kills:
        process = start()
        time.sleep(rng.uniform(0, late_s))
        if process.poll() is not None:
            break
        process.send_signal(signal.SIGKILL)
        process.wait()
        made += 1
    return made
