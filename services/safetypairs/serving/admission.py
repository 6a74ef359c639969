"""Admission control shared by the services: a bound on the work inside a service at once."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from safetypairs.contract.errors import InvalidInput, Overloaded, PayloadTooLarge

# The service-time estimate remembers about this many recent images: long enough to smooth
# one batch's noise, short enough to follow a change of load within a second or two.
_MEMORY_UNITS = 64.0


class Admission:
    """At most `limit` units (images) in the service at once: being decoded, waiting for the
    model or in it. Past that a request is refused at once, so no stage builds a backlog that
    only deadlines would clear.

    With `max_wait_s > 0` a request is also refused when the images already inside would keep
    it waiting longer than that: the wait is estimated from the service's recent time per
    image while busy (batching included), so the bound holds whatever the hardware, where a
    fixed `limit` would need sizing per machine. An idle service always admits.
    Used from the event-loop thread only."""

    def __init__(self, limit: int, max_wait_s: float = 0.0) -> None:
        self.limit = limit
        self.max_wait_s = max_wait_s
        self.in_service = 0
        self._busy_s = 0.0  # time with something inside, decayed like _done
        self._done = 0.0  # units that left the service, decayed to _MEMORY_UNITS
        self._mark = time.monotonic()

    def seconds_per_unit(self) -> float | None:
        """Recent busy time per finished image (None until one has finished)."""
        return self._busy_s / self._done if self._done else None

    def estimated_wait_s(self) -> float:
        """How long an image admitted now would wait behind those inside."""
        per_unit = self.seconds_per_unit()
        return self.in_service * per_unit if per_unit is not None else 0.0

    @contextlib.contextmanager
    def admit(self, units: int) -> Iterator[None]:
        if self.in_service + units > self.limit:
            raise Overloaded(
                f"server overloaded: {self.in_service} images in the service, {units} more "
                f"would pass the limit of {self.limit}; retry later or on another replica"
            )
        if self.max_wait_s > 0 and (wait := self.estimated_wait_s()) > self.max_wait_s:
            raise Overloaded(
                f"server overloaded: {self.in_service} images in the service, an estimated "
                f"{wait * 1e3:.0f} ms of work, past the queue-wait limit of "
                f"{self.max_wait_s * 1e3:.0f} ms; retry later or on another replica"
            )
        self._tick()
        self.in_service += units
        try:
            yield
        finally:
            self._tick()
            self.in_service -= units
            self._done += units
            if self._done > _MEMORY_UNITS:
                keep = _MEMORY_UNITS / self._done
                self._busy_s *= keep
                self._done = _MEMORY_UNITS

    def _tick(self) -> None:
        """Account the time since the last change to busy time if anything was inside."""
        now = time.monotonic()
        if self.in_service:
            self._busy_s += now - self._mark
        self._mark = now


def check_image_count(images: int, limit: int) -> None:
    """A batch request holds 1..limit images."""
    if not images:
        raise InvalidInput("the request holds no images")
    if images > limit:
        raise PayloadTooLarge(f"{images} images in one request, over the limit of {limit}")


class ByteBudget:
    """At most `limit` request bytes held at once. `take` answers at once (no waiting): a
    caller over the budget is refused, not queued, so what an attacker's large messages cost
    is bounded. Used from the event-loop thread only."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0

    def take(self, size: int) -> bool:
        if self.in_use + size > self.limit:
            return False
        self.in_use += size
        return True

    def give(self, size: int) -> None:
        self.in_use -= size
