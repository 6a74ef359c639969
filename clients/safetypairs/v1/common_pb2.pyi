from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Rating(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RATING_UNSPECIFIED: _ClassVar[Rating]
    RATING_SAFE: _ClassVar[Rating]
    RATING_UNSAFE: _ClassVar[Rating]
RATING_UNSPECIFIED: Rating
RATING_SAFE: Rating
RATING_UNSAFE: Rating

class Image(_message.Message):
    __slots__ = ("data", "id")
    DATA_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    id: str
    def __init__(self, data: _Optional[bytes] = ..., id: _Optional[str] = ...) -> None: ...

class Category(_message.Message):
    __slots__ = ("code", "name", "should_not", "can")
    CODE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SHOULD_NOT_FIELD_NUMBER: _ClassVar[int]
    CAN_FIELD_NUMBER: _ClassVar[int]
    code: str
    name: str
    should_not: _containers.RepeatedScalarFieldContainer[str]
    can: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, code: _Optional[str] = ..., name: _Optional[str] = ..., should_not: _Optional[_Iterable[str]] = ..., can: _Optional[_Iterable[str]] = ...) -> None: ...

class Policy(_message.Message):
    __slots__ = ("name", "version", "categories")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    categories: _containers.RepeatedCompositeFieldContainer[Category]
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., categories: _Optional[_Iterable[_Union[Category, _Mapping]]] = ...) -> None: ...

class CategoryScore(_message.Message):
    __slots__ = ("category", "probability", "threshold", "flagged", "not_covered")
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    FLAGGED_FIELD_NUMBER: _ClassVar[int]
    NOT_COVERED_FIELD_NUMBER: _ClassVar[int]
    category: str
    probability: float
    threshold: float
    flagged: bool
    not_covered: bool
    def __init__(self, category: _Optional[str] = ..., probability: _Optional[float] = ..., threshold: _Optional[float] = ..., flagged: _Optional[bool] = ..., not_covered: _Optional[bool] = ...) -> None: ...

class Verdict(_message.Message):
    __slots__ = ("rating", "category", "probability", "rationale", "scores", "model", "untrained", "members")
    RATING_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    RATIONALE_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    UNTRAINED_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    rating: Rating
    category: str
    probability: float
    rationale: str
    scores: _containers.RepeatedCompositeFieldContainer[CategoryScore]
    model: str
    untrained: bool
    members: _containers.RepeatedCompositeFieldContainer[MemberResult]
    def __init__(self, rating: _Optional[_Union[Rating, str]] = ..., category: _Optional[str] = ..., probability: _Optional[float] = ..., rationale: _Optional[str] = ..., scores: _Optional[_Iterable[_Union[CategoryScore, _Mapping]]] = ..., model: _Optional[str] = ..., untrained: _Optional[bool] = ..., members: _Optional[_Iterable[_Union[MemberResult, _Mapping]]] = ...) -> None: ...

class MemberResult(_message.Message):
    __slots__ = ("name", "latency_ms", "scores")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    name: str
    latency_ms: float
    scores: _containers.RepeatedCompositeFieldContainer[CategoryScore]
    def __init__(self, name: _Optional[str] = ..., latency_ms: _Optional[float] = ..., scores: _Optional[_Iterable[_Union[CategoryScore, _Mapping]]] = ...) -> None: ...

class ItemError(_message.Message):
    __slots__ = ("code", "message", "kind")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    kind: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ..., kind: _Optional[str] = ...) -> None: ...

class ListCategoriesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListCategoriesResponse(_message.Message):
    __slots__ = ("categories",)
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    categories: _containers.RepeatedCompositeFieldContainer[Category]
    def __init__(self, categories: _Optional[_Iterable[_Union[Category, _Mapping]]] = ...) -> None: ...

class GetModelInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
