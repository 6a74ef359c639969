"""Admission control shared by the services: a bound on the work inside a service at once."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from safetypairs.errors import InvalidInput, Overloaded, PayloadTooLarge


class Admission:
    """At most `limit` units (images) in the service at once: being decoded, waiting for the
    model or in it. Past that a request is refused at once, so no stage builds a backlog that
    only deadlines would clear. Used from the event-loop thread only."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_service = 0

    @contextlib.contextmanager
    def admit(self, units: int) -> Iterator[None]:
        if self.in_service + units > self.limit:
            raise Overloaded(
                f"server overloaded: {self.in_service} images in the service, {units} more "
                f"would pass the limit of {self.limit}; retry later or on another replica"
            )
        self.in_service += units
        try:
            yield
        finally:
            self.in_service -= units


def check_image_count(images: int, limit: int) -> None:
    """A batch request holds 1..limit images."""
    if not images:
        raise InvalidInput("the request holds no images")
    if images > limit:
        raise PayloadTooLarge(f"{images} images in one request, over the limit of {limit}")
