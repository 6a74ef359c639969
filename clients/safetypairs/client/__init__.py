"""The client SDK. Imports grpcio, protobuf and PyYAML only: no torch, onnxruntime or bentoml."""

from safetypairs.client.channel import NO_RETRY, ChannelOptions, RetryPolicy, tls_credentials
from safetypairs.client.edit import (
    AsyncEditClient,
    ChangeMap,
    EditClient,
    EditModelInfo,
    EditProgress,
    EditResult,
    Region,
)
from safetypairs.client.guard import AsyncGuardClient, GuardClient
from safetypairs.client.judge import AsyncJudgeClient, JudgeClient
from safetypairs.contract.results import (
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
    "AsyncEditClient",
    "AsyncGuardClient",
    "AsyncJudgeClient",
    "CategoryScore",
    "ChangeMap",
    "ChannelOptions",
    "EditClient",
    "EditModelInfo",
    "EditProgress",
    "EditProposal",
    "EditResult",
    "GuardClient",
    "JudgeClient",
    "JudgeModelInfo",
    "ModelInfo",
    "Proposals",
    "Rated",
    "Region",
    "RetryPolicy",
    "ScreenResult",
    "Verdict",
    "tls_credentials",
]
