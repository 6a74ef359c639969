"""The request metrics' and access log's status labels: one vocabulary per label whatever the
protocol, and the same pair for an error whichever protocol or side names it."""

from __future__ import annotations

import grpc
import pytest

from safetypairs.contract import errors
from safetypairs.serving.status_labels import status_labels

ERRORS = [
    cls
    for cls in vars(errors).values()
    if isinstance(cls, type) and issubclass(cls, errors.SafetyPairsError)
]


@pytest.mark.parametrize("cls", ERRORS, ids=lambda c: c.__name__)
def test_an_error_is_labelled_alike_by_its_class_and_by_its_http_status(cls) -> None:
    """The HTTP access log sees only the status number; the metrics see the error: the two
    lines of one call must agree."""
    exc = cls("x")
    assert status_labels(exc) == (str(exc.http_status.value), exc.grpc_code.name)
    assert status_labels(exc.http_status) == status_labels(exc)


def test_every_grpc_status_gets_an_http_number_and_back() -> None:
    for code in grpc.StatusCode:
        http, name = status_labels(code)
        assert http.isdigit() and name == code.name
    assert status_labels(200) == ("200", "OK") and status_labels(204) == ("204", "OK")
    assert status_labels(418) == ("418", "UNKNOWN") and status_labels(502) == ("502", "INTERNAL")
    assert status_labels(grpc.StatusCode.CANCELLED) == ("499", "CANCELLED")
