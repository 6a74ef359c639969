"""The client SDK. Imports grpcio, protobuf and PyYAML only: no torch, onnxruntime or bentoml."""

from safetypairs.client.channel import NO_RETRY, ChannelOptions, RetryPolicy, tls_credentials
from safetypairs.client.guard import AsyncGuardClient, GuardClient
from safetypairs.client.results import CategoryScore, ModelInfo, ScreenResult, Verdict

__all__ = [
    "NO_RETRY",
    "AsyncGuardClient",
    "CategoryScore",
    "ChannelOptions",
    "GuardClient",
    "ModelInfo",
    "RetryPolicy",
    "ScreenResult",
    "Verdict",
    "tls_credentials",
]
