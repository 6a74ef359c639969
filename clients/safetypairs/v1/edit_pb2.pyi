from safetypairs.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OutputFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTPUT_FORMAT_UNSPECIFIED: _ClassVar[OutputFormat]
    OUTPUT_FORMAT_PNG: _ClassVar[OutputFormat]
    OUTPUT_FORMAT_WEBP: _ClassVar[OutputFormat]
OUTPUT_FORMAT_UNSPECIFIED: OutputFormat
OUTPUT_FORMAT_PNG: OutputFormat
OUTPUT_FORMAT_WEBP: OutputFormat

class Region(_message.Message):
    __slots__ = ("x", "y", "width", "height")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    x: int
    y: int
    width: int
    height: int
    def __init__(self, x: _Optional[int] = ..., y: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class EditOptions(_message.Message):
    __slots__ = ("steps", "guidance_scale", "image_guidance_scale", "negative_prompt", "format", "change_threshold")
    STEPS_FIELD_NUMBER: _ClassVar[int]
    GUIDANCE_SCALE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_GUIDANCE_SCALE_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_PROMPT_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    CHANGE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    steps: int
    guidance_scale: float
    image_guidance_scale: float
    negative_prompt: str
    format: OutputFormat
    change_threshold: int
    def __init__(self, steps: _Optional[int] = ..., guidance_scale: _Optional[float] = ..., image_guidance_scale: _Optional[float] = ..., negative_prompt: _Optional[str] = ..., format: _Optional[_Union[OutputFormat, str]] = ..., change_threshold: _Optional[int] = ...) -> None: ...

class EditRequest(_message.Message):
    __slots__ = ("image", "instruction", "seed", "mask", "region", "options")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    image: _common_pb2.Image
    instruction: str
    seed: int
    mask: _common_pb2.Image
    region: Region
    options: EditOptions
    def __init__(self, image: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., instruction: _Optional[str] = ..., seed: _Optional[int] = ..., mask: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., region: _Optional[_Union[Region, _Mapping]] = ..., options: _Optional[_Union[EditOptions, _Mapping]] = ...) -> None: ...

class ChangeMap(_message.Message):
    __slots__ = ("map", "bbox", "changed_fraction", "threshold", "max_diff_outside")
    MAP_FIELD_NUMBER: _ClassVar[int]
    BBOX_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FRACTION_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MAX_DIFF_OUTSIDE_FIELD_NUMBER: _ClassVar[int]
    map: _common_pb2.Image
    bbox: Region
    changed_fraction: float
    threshold: int
    max_diff_outside: int
    def __init__(self, map: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., bbox: _Optional[_Union[Region, _Mapping]] = ..., changed_fraction: _Optional[float] = ..., threshold: _Optional[int] = ..., max_diff_outside: _Optional[int] = ...) -> None: ...

class EditResponse(_message.Message):
    __slots__ = ("image_id", "image", "mime_type", "width", "height", "seed", "steps", "guidance_scale", "image_guidance_scale", "model", "pipeline", "untrained", "change", "seconds")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    MIME_TYPE_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    GUIDANCE_SCALE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_GUIDANCE_SCALE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    UNTRAINED_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    image: _common_pb2.Image
    mime_type: str
    width: int
    height: int
    seed: int
    steps: int
    guidance_scale: float
    image_guidance_scale: float
    model: str
    pipeline: str
    untrained: bool
    change: ChangeMap
    seconds: float
    def __init__(self, image_id: _Optional[str] = ..., image: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., mime_type: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., seed: _Optional[int] = ..., steps: _Optional[int] = ..., guidance_scale: _Optional[float] = ..., image_guidance_scale: _Optional[float] = ..., model: _Optional[str] = ..., pipeline: _Optional[str] = ..., untrained: _Optional[bool] = ..., change: _Optional[_Union[ChangeMap, _Mapping]] = ..., seconds: _Optional[float] = ...) -> None: ...

class EditProgress(_message.Message):
    __slots__ = ("step", "total", "elapsed_s")
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_S_FIELD_NUMBER: _ClassVar[int]
    step: int
    total: int
    elapsed_s: float
    def __init__(self, step: _Optional[int] = ..., total: _Optional[int] = ..., elapsed_s: _Optional[float] = ...) -> None: ...

class EditEvent(_message.Message):
    __slots__ = ("progress", "result")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    progress: EditProgress
    result: EditResponse
    def __init__(self, progress: _Optional[_Union[EditProgress, _Mapping]] = ..., result: _Optional[_Union[EditResponse, _Mapping]] = ...) -> None: ...

class EditModelInfo(_message.Message):
    __slots__ = ("name", "version", "description", "untrained", "notice", "pipeline", "reference", "runtime", "device", "dtype", "scheduler", "attention_backend", "compiled", "default_steps", "default_guidance_scale", "default_image_guidance_scale", "max_steps", "max_guidance_scale", "max_instruction_chars", "size_multiple", "max_edit_pixels", "max_image_bytes", "max_image_pixels", "concurrency", "queue")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    UNTRAINED_FIELD_NUMBER: _ClassVar[int]
    NOTICE_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SCHEDULER_FIELD_NUMBER: _ClassVar[int]
    ATTENTION_BACKEND_FIELD_NUMBER: _ClassVar[int]
    COMPILED_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_STEPS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_GUIDANCE_SCALE_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_IMAGE_GUIDANCE_SCALE_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    MAX_GUIDANCE_SCALE_FIELD_NUMBER: _ClassVar[int]
    MAX_INSTRUCTION_CHARS_FIELD_NUMBER: _ClassVar[int]
    SIZE_MULTIPLE_FIELD_NUMBER: _ClassVar[int]
    MAX_EDIT_PIXELS_FIELD_NUMBER: _ClassVar[int]
    MAX_IMAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_IMAGE_PIXELS_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    description: str
    untrained: bool
    notice: str
    pipeline: str
    reference: str
    runtime: str
    device: str
    dtype: str
    scheduler: str
    attention_backend: str
    compiled: bool
    default_steps: int
    default_guidance_scale: float
    default_image_guidance_scale: float
    max_steps: int
    max_guidance_scale: float
    max_instruction_chars: int
    size_multiple: int
    max_edit_pixels: int
    max_image_bytes: int
    max_image_pixels: int
    concurrency: int
    queue: int
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., description: _Optional[str] = ..., untrained: _Optional[bool] = ..., notice: _Optional[str] = ..., pipeline: _Optional[str] = ..., reference: _Optional[str] = ..., runtime: _Optional[str] = ..., device: _Optional[str] = ..., dtype: _Optional[str] = ..., scheduler: _Optional[str] = ..., attention_backend: _Optional[str] = ..., compiled: _Optional[bool] = ..., default_steps: _Optional[int] = ..., default_guidance_scale: _Optional[float] = ..., default_image_guidance_scale: _Optional[float] = ..., max_steps: _Optional[int] = ..., max_guidance_scale: _Optional[float] = ..., max_instruction_chars: _Optional[int] = ..., size_multiple: _Optional[int] = ..., max_edit_pixels: _Optional[int] = ..., max_image_bytes: _Optional[int] = ..., max_image_pixels: _Optional[int] = ..., concurrency: _Optional[int] = ..., queue: _Optional[int] = ...) -> None: ...
