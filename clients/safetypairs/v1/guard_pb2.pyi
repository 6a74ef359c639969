from safetypairs.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ScreenOptions(_message.Message):
    __slots__ = ("categories", "thresholds", "member_details")
    class ThresholdsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    MEMBER_DETAILS_FIELD_NUMBER: _ClassVar[int]
    categories: _containers.RepeatedScalarFieldContainer[str]
    thresholds: _containers.ScalarMap[str, float]
    member_details: bool
    def __init__(self, categories: _Optional[_Iterable[str]] = ..., thresholds: _Optional[_Mapping[str, float]] = ..., member_details: _Optional[bool] = ...) -> None: ...

class ScreenRequest(_message.Message):
    __slots__ = ("image", "options")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    image: _common_pb2.Image
    options: ScreenOptions
    def __init__(self, image: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., options: _Optional[_Union[ScreenOptions, _Mapping]] = ...) -> None: ...

class ScreenResponse(_message.Message):
    __slots__ = ("image_id", "verdict")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    verdict: _common_pb2.Verdict
    def __init__(self, image_id: _Optional[str] = ..., verdict: _Optional[_Union[_common_pb2.Verdict, _Mapping]] = ...) -> None: ...

class ScreenBatchRequest(_message.Message):
    __slots__ = ("images", "options")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedCompositeFieldContainer[_common_pb2.Image]
    options: ScreenOptions
    def __init__(self, images: _Optional[_Iterable[_Union[_common_pb2.Image, _Mapping]]] = ..., options: _Optional[_Union[ScreenOptions, _Mapping]] = ...) -> None: ...

class ScreenResult(_message.Message):
    __slots__ = ("image_id", "verdict", "error")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    verdict: _common_pb2.Verdict
    error: _common_pb2.ItemError
    def __init__(self, image_id: _Optional[str] = ..., verdict: _Optional[_Union[_common_pb2.Verdict, _Mapping]] = ..., error: _Optional[_Union[_common_pb2.ItemError, _Mapping]] = ...) -> None: ...

class ScreenBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ScreenResult]
    def __init__(self, results: _Optional[_Iterable[_Union[ScreenResult, _Mapping]]] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "version", "description", "untrained", "notice", "categories", "thresholds", "providers", "runtime", "input_size", "max_batch_size", "max_image_bytes", "max_image_pixels", "max_images_per_request", "not_covered", "weights", "training", "members", "fusion", "reference", "batching", "batch_costs")
    class ThresholdsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class FusionEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    UNTRAINED_FIELD_NUMBER: _ClassVar[int]
    NOTICE_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    INPUT_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_IMAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_IMAGE_PIXELS_FIELD_NUMBER: _ClassVar[int]
    MAX_IMAGES_PER_REQUEST_FIELD_NUMBER: _ClassVar[int]
    NOT_COVERED_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    TRAINING_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    FUSION_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    BATCHING_FIELD_NUMBER: _ClassVar[int]
    BATCH_COSTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    description: str
    untrained: bool
    notice: str
    categories: _containers.RepeatedScalarFieldContainer[str]
    thresholds: _containers.ScalarMap[str, float]
    providers: _containers.RepeatedScalarFieldContainer[str]
    runtime: str
    input_size: int
    max_batch_size: int
    max_image_bytes: int
    max_image_pixels: int
    max_images_per_request: int
    not_covered: _containers.RepeatedScalarFieldContainer[str]
    weights: str
    training: str
    members: _containers.RepeatedCompositeFieldContainer[MemberInfo]
    fusion: _containers.ScalarMap[str, str]
    reference: str
    batching: str
    batch_costs: _containers.RepeatedCompositeFieldContainer[BatchCost]
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., description: _Optional[str] = ..., untrained: _Optional[bool] = ..., notice: _Optional[str] = ..., categories: _Optional[_Iterable[str]] = ..., thresholds: _Optional[_Mapping[str, float]] = ..., providers: _Optional[_Iterable[str]] = ..., runtime: _Optional[str] = ..., input_size: _Optional[int] = ..., max_batch_size: _Optional[int] = ..., max_image_bytes: _Optional[int] = ..., max_image_pixels: _Optional[int] = ..., max_images_per_request: _Optional[int] = ..., not_covered: _Optional[_Iterable[str]] = ..., weights: _Optional[str] = ..., training: _Optional[str] = ..., members: _Optional[_Iterable[_Union[MemberInfo, _Mapping]]] = ..., fusion: _Optional[_Mapping[str, str]] = ..., reference: _Optional[str] = ..., batching: _Optional[str] = ..., batch_costs: _Optional[_Iterable[_Union[BatchCost, _Mapping]]] = ...) -> None: ...

class BatchCost(_message.Message):
    __slots__ = ("batch_size", "ms_per_image")
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MS_PER_IMAGE_FIELD_NUMBER: _ClassVar[int]
    batch_size: int
    ms_per_image: float
    def __init__(self, batch_size: _Optional[int] = ..., ms_per_image: _Optional[float] = ...) -> None: ...

class MemberInfo(_message.Message):
    __slots__ = ("name", "description", "categories", "weights", "training", "providers")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    TRAINING_FIELD_NUMBER: _ClassVar[int]
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    categories: _containers.RepeatedScalarFieldContainer[str]
    weights: str
    training: str
    providers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., categories: _Optional[_Iterable[str]] = ..., weights: _Optional[str] = ..., training: _Optional[str] = ..., providers: _Optional[_Iterable[str]] = ...) -> None: ...
