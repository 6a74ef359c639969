"""How many cores this process may really use, and how the guard splits them.

In a container the host's core count (os.cpu_count) is not what the process gets: the cgroup
CPU quota is (`cpu.max` in cgroup v2, `cpu.cfs_quota_us / cpu.cfs_period_us` in v1), and the
CPU affinity mask may narrow it further. Sizing threads by the host count oversubscribes a
2-core pod on a 64-core node by 32 times.

The rule, the same for one model and for an ensemble (docs/settings.md):
* request threads (decode, preprocess and, when the guard does not batch, the model call) =
  the usable cores, so each core has one request in hand;
* each onnxruntime session (an ensemble's members run one after another) runs as many intra-op
  threads as there are usable cores, one inter-op thread, and no spinning: an idle spinning
  thread would take the core another request needs. The one exception is a call alone in the
  service, which has the cores to itself: on the CPU it runs on a second session whose threads
  spin between operators and stop when its run ends (docs/guard.md, "A call alone").
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def _quota_cores(root: Path) -> float | None:
    """The cgroup CPU quota in cores, or None when unlimited or unreadable."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        if quota == "max":
            return None
        return int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:  # cgroup v1
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def usable_cores(cgroup_root: Path = CGROUP) -> int:
    """Cores this process may use: its CPU affinity, capped by the cgroup quota (rounded up:
    a 1.5-core quota keeps two threads busy part of the time)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    quota = _quota_cores(cgroup_root)
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores)
