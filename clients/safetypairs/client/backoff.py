"""Waiting out a service that is overloaded or away (restarting, rolled, briefly unreachable).

The channel's own retries (see channel.RetryPolicy) cover blips of about a second; a restart
takes longer. Long jobs (pair generation, evaluation) wrap each call in a Backoff: jittered,
doubling pauses up to a total, then the error goes through. A call is repeated only when the
service refused it (Overloaded) or never answered (Unavailable), and the callers only keep a
result once it has arrived, so nothing is lost or counted twice.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from safetypairs.contract.errors import Overloaded, Unavailable

T = TypeVar("T")
log = logging.getLogger(__name__)

# What a caller waits out; anything else is an answer.
TRANSIENT = (Overloaded, Unavailable)


class Backoff:
    """Jittered exponential pauses (first_s, doubling to at most cap_s) totalling max_wait_s."""

    def __init__(self, max_wait_s: float, first_s: float = 0.2, cap_s: float = 5.0) -> None:
        self.max_wait_s = max_wait_s
        self.cap_s = cap_s
        self.waited = 0.0
        self._delay = first_s

    def next_pause(self) -> float | None:
        """Seconds to sleep before the next try, or None when the total has been waited."""
        if self.waited >= self.max_wait_s:
            return None
        pause = min(self._delay * (0.5 + random.random()), self.max_wait_s - self.waited)
        self.waited += pause
        self._delay = min(self._delay * 2, self.cap_s)
        return pause


def call_with_backoff(fn: Callable[[], T], max_wait_s: float) -> T:
    """`fn()`, tried again after a pause while the service is overloaded or away (each pause
    logged as a warning, so a person watching knows why the job stands still)."""
    backoff = Backoff(max_wait_s)
    while True:
        try:
            return fn()
        except TRANSIENT as exc:
            pause = backoff.next_pause()
            if pause is None:
                raise
            log.warning("%s; trying again in %.1f s", exc.message, pause)
            time.sleep(pause)
