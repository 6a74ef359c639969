"""Backoff: the pauses a long job takes while a service is overloaded or away."""

import pytest

from safetypairs.client import backoff as backoff_module
from safetypairs.client.backoff import Backoff, call_with_backoff
from safetypairs.contract.errors import InvalidInput, Overloaded, Unavailable


def test_pauses_double_with_jitter_and_stop_at_the_total():
    b = Backoff(max_wait_s=3.0, first_s=0.2, cap_s=1.0)
    pauses = []
    while (p := b.next_pause()) is not None:
        pauses.append(p)
    assert sum(pauses) == pytest.approx(3.0)
    assert 0.1 <= pauses[0] <= 0.3 and 0.2 <= pauses[1] <= 0.6
    assert all(p <= 1.5 for p in pauses)  # capped at 1 s, jitter up to 1.5x


def test_call_with_backoff_waits_out_transient_errors_only(monkeypatch, caplog):
    slept: list[float] = []
    monkeypatch.setattr(backoff_module.time, "sleep", slept.append)
    outcomes = [Unavailable("restarting"), Overloaded("busy"), "answer"]

    def call():
        out = outcomes.pop(0)
        if isinstance(out, Exception):
            raise out
        return out

    assert call_with_backoff(call, 10.0) == "answer"
    assert len(slept) == 2
    assert ["restarting" in r.message for r in caplog.records] == [True, False]

    def bad():
        raise InvalidInput("not an image")

    with pytest.raises(InvalidInput):
        call_with_backoff(bad, 10.0)

    def away():
        raise Unavailable("gone")

    slept.clear()
    with pytest.raises(Unavailable):
        call_with_backoff(away, 2.0)
    assert sum(slept) == pytest.approx(2.0)
