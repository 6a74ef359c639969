"""The client SDK. Imports grpcio, protobuf and PyYAML only: no torch, onnxruntime or bentoml."""

from safetypairs.client.channel import NO_RETRY, ChannelOptions, RetryPolicy, tls_credentials
from safetypairs.client.guard import AsyncGuardClient, GuardClient
from safetypairs.client.judge import AsyncJudgeClient, JudgeClient
from safetypairs.client.results import (
    CategoryScore,
    EditProposal,
    JudgeModelInfo,
    ModelInfo,
    Proposals,
    Rated,
    ScreenResult,
    Verdict,
)

__all__ = [
    "NO_RETRY",
    "AsyncGuardClient",
    "AsyncJudgeClient",
    "CategoryScore",
    "ChannelOptions",
    "EditProposal",
    "GuardClient",
    "JudgeClient",
    "JudgeModelInfo",
    "ModelInfo",
    "Proposals",
    "Rated",
    "RetryPolicy",
    "ScreenResult",
    "Verdict",
    "tls_credentials",
]
