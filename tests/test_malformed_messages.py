"""Requests whose bytes are no valid protobuf message, or valid messages with wrong or missing
fields, sent raw to the running services: always a status naming the problem (never UNKNOWN or
INTERNAL), and the service keeps serving."""

from __future__ import annotations

import grpc
import pytest
from conftest import png_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from safetypairs.client import GuardClient
from safetypairs.v1 import common_pb2, guard_pb2, judge_pb2

pytestmark = pytest.mark.slow
CORRUPT = [b"\xff\xff\xff", b"\x0a\x05abc", b"\x12\x03\x0a\x01", b"\x0a\xff\xff\xff\xff\x0f"]
ANSWERED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}


def raw(target: str, method: str):
    channel = grpc.insecure_channel(target)
    return channel, channel.unary_unary(method)  # bytes in, bytes out: no client-side parsing


@pytest.mark.parametrize("payload", CORRUPT)
@pytest.mark.parametrize(
    "method", ["/safetypairs.v1.Guard/Screen", "/safetypairs.v1.Guard/ScreenBatch"]
)
def test_corrupt_bytes_to_the_guard(guard_service, method, payload):
    channel, call = raw(guard_service.grpc_target, method)
    with channel, pytest.raises(grpc.RpcError) as err:
        call(payload, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "is not a valid protobuf message" in err.value.details()
    with GuardClient(guard_service.grpc_target) as guard:
        assert guard.screen(png_bytes()).rating in ("safe", "unsafe")


@pytest.mark.parametrize(
    ("method", "message", "phrase"),
    [
        # Wrong field type: a float where the Image message belongs (field 1). Protobuf keeps
        # it as an unknown field, so the request has no image, and the answer says that.
        ("/safetypairs.v1.Judge/Rate", b"\x0d\x00\x00\x80\x3f", "image is empty"),
        # Missing fields: an empty request.
        ("/safetypairs.v1.Judge/Rate", b"", "image is empty"),
        (
            "/safetypairs.v1.Judge/ProposeEdits",
            b"",
            "direction must be EDIT_DIRECTION_TO_SAFE or EDIT_DIRECTION_TO_UNSAFE",
        ),
        ("/safetypairs.v1.Judge/RateBatch", b"", "the request holds no images"),
        # An enum value the contract does not have.
        (
            "/safetypairs.v1.Judge/ProposeEdits",
            judge_pb2.ProposeEditsRequest(
                image=common_pb2.Image(data=png_bytes()), direction=7, count=1
            ).SerializeToString(),
            "direction must be EDIT_DIRECTION_TO_SAFE or EDIT_DIRECTION_TO_UNSAFE",
        ),
    ],
)
def test_wrong_and_missing_fields_to_the_judge(judge_service, method, message, phrase):
    channel, call = raw(judge_service.grpc_target, method)
    with channel, pytest.raises(grpc.RpcError) as err:
        call(message, timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert phrase in err.value.details()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=64))
def test_any_bytes_get_an_answer_or_a_named_refusal(guard_service, payload):
    channel, call = raw(guard_service.grpc_target, "/safetypairs.v1.Guard/Screen")
    with channel:
        try:
            answer = call(payload, timeout=10)
        except grpc.RpcError as err:
            assert err.code() in ANSWERED, (err.code(), err.details())
            assert err.details()
        else:
            guard_pb2.ScreenResponse.FromString(answer)
