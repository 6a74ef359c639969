"""Admission control: the image bound and the estimated-wait bound, on a clock the test sets."""

import contextlib

import pytest

from safetypairs.contract.errors import Overloaded
from safetypairs.serving import admission
from safetypairs.serving.admission import Admission


@pytest.fixture
def clock(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(admission.time, "monotonic", lambda: now[0])
    return now


def test_the_image_bound_refuses_a_request_that_would_pass_it(clock):
    gate = Admission(limit=3)
    with gate.admit(2):
        with pytest.raises(Overloaded, match="2 images in the service, 2 more would pass"):
            gate.admit(2).__enter__()
        with gate.admit(1):
            assert gate.in_service == 3
    assert gate.in_service == 0


def test_time_per_image_is_busy_time_over_images_finished(clock):
    gate = Admission(limit=100)
    assert gate.seconds_per_unit() is None and gate.estimated_wait_s() == 0.0
    # Four images inside together for 80 ms, then a lone one for 20 ms.
    with gate.admit(4):
        clock[0] += 0.08
    clock[0] += 5.0  # idle time is not service time
    with gate.admit(1):
        clock[0] += 0.02
    assert gate.seconds_per_unit() == pytest.approx(0.1 / 5)


def test_a_request_is_refused_when_those_inside_would_keep_it_waiting_too_long(clock):
    gate = Admission(limit=100, max_wait_s=0.05)
    with gate.admit(1):  # 20 ms per image
        clock[0] += 0.02
    with contextlib.ExitStack() as inside:
        inside.enter_context(gate.admit(1))  # an idle service always admits
        inside.enter_context(gate.admit(1))  # 1 inside: about 20 ms to wait
        inside.enter_context(gate.admit(1))  # 2 inside: about 40 ms
        with pytest.raises(Overloaded, match="estimated 60 ms of work, past the queue-wait"):
            gate.admit(1).__enter__()  # 3 inside: about 60 ms, past 50
    assert gate.in_service == 0


def test_the_estimate_follows_a_change_of_speed(clock):
    gate = Admission(limit=100)
    for _ in range(200):  # a long slow spell: 100 ms per image
        with gate.admit(1):
            clock[0] += 0.1
    for _ in range(400):  # then fast: 10 ms per image (the memory is about 64 images)
        with gate.admit(1):
            clock[0] += 0.01
    assert gate.seconds_per_unit() == pytest.approx(0.01, rel=0.05)
