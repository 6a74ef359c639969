"""The service metrics follow Prometheus naming conventions, and their latency buckets cover
both millisecond guard calls and minutes-long edits."""

from __future__ import annotations

import grpc
import prometheus_client
from prometheus_client import CollectorRegistry

from safetypairs.serving.metrics import LATENCY_BUCKETS, ServiceMetrics


def test_names_units_and_suffixes() -> None:
    registry = CollectorRegistry()
    metrics = ServiceMetrics("guard", prometheus_client, registry)
    # One observation each, so that every labelled family has samples to look at.
    metrics.record("grpc", "Screen", grpc.StatusCode.OK, 0.002)
    metrics.batch_done(4, 0.01)
    metrics.member_done("open-nsfw", 0.005)
    metrics.queue_depth(3)
    families = list(registry.collect())
    assert len(families) == 6
    for family in families:
        name = family.name + ("_total" if family.type == "counter" else "")
        assert name.startswith("safetypairs_") and name == name.lower(), name
        if family.type == "counter":
            assert name.endswith("_total"), name
        if "duration" in name:
            assert name.endswith("_seconds"), name  # base unit, not ms
        assert family.documentation, name
        assert "service" in {label for s in family.samples for label in s.labels}, name


def test_latency_buckets_span_milliseconds_to_minutes() -> None:
    assert list(LATENCY_BUCKETS) == sorted(set(LATENCY_BUCKETS))
    assert LATENCY_BUCKETS[0] <= 0.001  # guard calls: a few milliseconds
    assert sum(b <= 0.01 for b in LATENCY_BUCKETS) >= 5  # resolution where the guard lives
    assert LATENCY_BUCKETS[-1] >= 600  # edits of large images: minutes
