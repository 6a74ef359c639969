from safetypairs.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EditDirection(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EDIT_DIRECTION_UNSPECIFIED: _ClassVar[EditDirection]
    EDIT_DIRECTION_TO_SAFE: _ClassVar[EditDirection]
    EDIT_DIRECTION_TO_UNSAFE: _ClassVar[EditDirection]

class EditAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EDIT_ACTION_UNSPECIFIED: _ClassVar[EditAction]
    EDIT_ACTION_ADD: _ClassVar[EditAction]
    EDIT_ACTION_REMOVE: _ClassVar[EditAction]
    EDIT_ACTION_CHANGE: _ClassVar[EditAction]
EDIT_DIRECTION_UNSPECIFIED: EditDirection
EDIT_DIRECTION_TO_SAFE: EditDirection
EDIT_DIRECTION_TO_UNSAFE: EditDirection
EDIT_ACTION_UNSPECIFIED: EditAction
EDIT_ACTION_ADD: EditAction
EDIT_ACTION_REMOVE: EditAction
EDIT_ACTION_CHANGE: EditAction

class PolicyChoice(_message.Message):
    __slots__ = ("name", "custom")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_FIELD_NUMBER: _ClassVar[int]
    name: str
    custom: _common_pb2.Policy
    def __init__(self, name: _Optional[str] = ..., custom: _Optional[_Union[_common_pb2.Policy, _Mapping]] = ...) -> None: ...

class RateOptions(_message.Message):
    __slots__ = ("categories", "rationale", "threshold")
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    RATIONALE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    categories: _containers.RepeatedScalarFieldContainer[str]
    rationale: bool
    threshold: float
    def __init__(self, categories: _Optional[_Iterable[str]] = ..., rationale: _Optional[bool] = ..., threshold: _Optional[float] = ...) -> None: ...

class RateRequest(_message.Message):
    __slots__ = ("image", "policy", "options")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    image: _common_pb2.Image
    policy: PolicyChoice
    options: RateOptions
    def __init__(self, image: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., policy: _Optional[_Union[PolicyChoice, _Mapping]] = ..., options: _Optional[_Union[RateOptions, _Mapping]] = ...) -> None: ...

class RateResponse(_message.Message):
    __slots__ = ("image_id", "verdict", "prompt_version")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    PROMPT_VERSION_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    verdict: _common_pb2.Verdict
    prompt_version: str
    def __init__(self, image_id: _Optional[str] = ..., verdict: _Optional[_Union[_common_pb2.Verdict, _Mapping]] = ..., prompt_version: _Optional[str] = ...) -> None: ...

class RateBatchRequest(_message.Message):
    __slots__ = ("images", "policy", "options")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedCompositeFieldContainer[_common_pb2.Image]
    policy: PolicyChoice
    options: RateOptions
    def __init__(self, images: _Optional[_Iterable[_Union[_common_pb2.Image, _Mapping]]] = ..., policy: _Optional[_Union[PolicyChoice, _Mapping]] = ..., options: _Optional[_Union[RateOptions, _Mapping]] = ...) -> None: ...

class RateResult(_message.Message):
    __slots__ = ("image_id", "verdict", "error")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    verdict: _common_pb2.Verdict
    error: _common_pb2.ItemError
    def __init__(self, image_id: _Optional[str] = ..., verdict: _Optional[_Union[_common_pb2.Verdict, _Mapping]] = ..., error: _Optional[_Union[_common_pb2.ItemError, _Mapping]] = ...) -> None: ...

class RateBatchResponse(_message.Message):
    __slots__ = ("results", "prompt_version")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_VERSION_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[RateResult]
    prompt_version: str
    def __init__(self, results: _Optional[_Iterable[_Union[RateResult, _Mapping]]] = ..., prompt_version: _Optional[str] = ...) -> None: ...

class ProposeEditsRequest(_message.Message):
    __slots__ = ("image", "policy", "direction", "category", "count", "seed")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    image: _common_pb2.Image
    policy: PolicyChoice
    direction: EditDirection
    category: str
    count: int
    seed: int
    def __init__(self, image: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., policy: _Optional[_Union[PolicyChoice, _Mapping]] = ..., direction: _Optional[_Union[EditDirection, str]] = ..., category: _Optional[str] = ..., count: _Optional[int] = ..., seed: _Optional[int] = ...) -> None: ...

class EditProposal(_message.Message):
    __slots__ = ("instruction", "action", "element", "category")
    INSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    ELEMENT_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    instruction: str
    action: EditAction
    element: str
    category: str
    def __init__(self, instruction: _Optional[str] = ..., action: _Optional[_Union[EditAction, str]] = ..., element: _Optional[str] = ..., category: _Optional[str] = ...) -> None: ...

class ProposeEditsResponse(_message.Message):
    __slots__ = ("image_id", "proposals", "model", "untrained", "prompt_version")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    PROPOSALS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    UNTRAINED_FIELD_NUMBER: _ClassVar[int]
    PROMPT_VERSION_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    proposals: _containers.RepeatedCompositeFieldContainer[EditProposal]
    model: str
    untrained: bool
    prompt_version: str
    def __init__(self, image_id: _Optional[str] = ..., proposals: _Optional[_Iterable[_Union[EditProposal, _Mapping]]] = ..., model: _Optional[str] = ..., untrained: _Optional[bool] = ..., prompt_version: _Optional[str] = ...) -> None: ...

class JudgeModelInfo(_message.Message):
    __slots__ = ("name", "reference", "architecture", "dtype", "device", "untrained", "notice", "prompt_versions", "verdict_mode", "default_policy", "max_batch_size", "max_proposals", "max_prompt_chars", "runtime")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    UNTRAINED_FIELD_NUMBER: _ClassVar[int]
    NOTICE_FIELD_NUMBER: _ClassVar[int]
    PROMPT_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    VERDICT_MODE_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_POLICY_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_PROPOSALS_FIELD_NUMBER: _ClassVar[int]
    MAX_PROMPT_CHARS_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    reference: str
    architecture: str
    dtype: str
    device: str
    untrained: bool
    notice: str
    prompt_versions: _containers.RepeatedScalarFieldContainer[str]
    verdict_mode: str
    default_policy: str
    max_batch_size: int
    max_proposals: int
    max_prompt_chars: int
    runtime: str
    def __init__(self, name: _Optional[str] = ..., reference: _Optional[str] = ..., architecture: _Optional[str] = ..., dtype: _Optional[str] = ..., device: _Optional[str] = ..., untrained: _Optional[bool] = ..., notice: _Optional[str] = ..., prompt_versions: _Optional[_Iterable[str]] = ..., verdict_mode: _Optional[str] = ..., default_policy: _Optional[str] = ..., max_batch_size: _Optional[int] = ..., max_proposals: _Optional[int] = ..., max_prompt_chars: _Optional[int] = ..., runtime: _Optional[str] = ...) -> None: ...
