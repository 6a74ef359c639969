"""The SDK's retry policy against a real gRPC server that fails on purpose: UNAVAILABLE is
retried with backoff within the deadline, every other status is not."""

from concurrent import futures

import grpc
import pytest
from conftest import png_bytes

from safetypairs.client import NO_RETRY, ChannelOptions, GuardClient, RetryPolicy
from safetypairs.contract.errors import InvalidInput, Unavailable
from safetypairs.v1 import common_pb2, guard_pb2, guard_pb2_grpc


class FlakyGuard(guard_pb2_grpc.GuardServicer):
    """Fails the first `failures` calls with `code`, then answers."""

    def __init__(self, failures: int, code: grpc.StatusCode) -> None:
        self.failures, self.code, self.calls = failures, code, 0

    def Screen(self, request, context):
        self.calls += 1
        if self.calls <= self.failures:
            context.abort(self.code, f"failure {self.calls}")
        return guard_pb2.ScreenResponse(verdict=common_pb2.Verdict(rating=common_pb2.RATING_SAFE))


@pytest.fixture
def flaky_server():
    servers = []

    def start(failures: int, code: grpc.StatusCode) -> tuple[str, FlakyGuard]:
        servicer = FlakyGuard(failures, code)
        server = grpc.server(futures.ThreadPoolExecutor(2))
        guard_pb2_grpc.add_GuardServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        return f"127.0.0.1:{port}", servicer

    yield start
    for server in servers:
        server.stop(0)


FAST = ChannelOptions(retry=RetryPolicy(max_attempts=4, initial_backoff_s=0.01, max_backoff_s=0.05))


def test_unavailable_is_retried_until_it_succeeds(flaky_server):
    target, servicer = flaky_server(2, grpc.StatusCode.UNAVAILABLE)
    with GuardClient(target, timeout=10, options=FAST) as client:
        assert client.screen(png_bytes()).rating == "safe"
    assert servicer.calls == 3


def test_a_call_the_server_cancels_is_unavailable(flaky_server):
    """A grpc server that is stopping answers calls caught in its shutdown CANCELLED (seen in
    CI: an editor stopped mid-run); the SDK reports that as Unavailable, which callers retry."""
    target, servicer = flaky_server(1, grpc.StatusCode.CANCELLED)
    with (
        GuardClient(target, timeout=10, options=ChannelOptions(retry=NO_RETRY)) as client,
        pytest.raises(Unavailable),
    ):
        client.screen(png_bytes())
    assert servicer.calls == 1


def test_retries_stop_at_max_attempts(flaky_server):
    target, servicer = flaky_server(10, grpc.StatusCode.UNAVAILABLE)
    with GuardClient(target, timeout=10, options=FAST) as client, pytest.raises(Unavailable):
        client.screen(png_bytes())
    assert servicer.calls == 4


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    ],
)
def test_other_statuses_are_not_retried(flaky_server, code):
    target, servicer = flaky_server(1, code)
    with GuardClient(target, timeout=10, options=FAST) as client, pytest.raises(Exception) as err:
        client.screen(png_bytes())
    assert servicer.calls == 1
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        assert isinstance(err.value, InvalidInput)


def test_retries_can_be_turned_off(flaky_server):
    target, servicer = flaky_server(1, grpc.StatusCode.UNAVAILABLE)
    options = ChannelOptions(retry=NO_RETRY)
    with GuardClient(target, options=options) as client, pytest.raises(Unavailable):
        client.screen(png_bytes())
    assert servicer.calls == 1
