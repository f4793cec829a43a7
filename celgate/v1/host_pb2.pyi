from celgate.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CounterAlgorithm(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COUNTER_ALGORITHM_UNSPECIFIED: _ClassVar[CounterAlgorithm]
    SLIDING_WINDOW: _ClassVar[CounterAlgorithm]
    FIXED_WINDOW: _ClassVar[CounterAlgorithm]
    TOKEN_BUCKET: _ClassVar[CounterAlgorithm]
COUNTER_ALGORITHM_UNSPECIFIED: CounterAlgorithm
SLIDING_WINDOW: CounterAlgorithm
FIXED_WINDOW: CounterAlgorithm
TOKEN_BUCKET: CounterAlgorithm

class KvGetRequest(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: str
    def __init__(self, key: _Optional[str] = ...) -> None: ...

class KvGetReply(_message.Message):
    __slots__ = ("found", "value")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    found: bool
    value: bytes
    def __init__(self, found: _Optional[bool] = ..., value: _Optional[bytes] = ...) -> None: ...

class KvSetRequest(_message.Message):
    __slots__ = ("key", "value", "ttl_ms")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: bytes
    ttl_ms: int
    def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ..., ttl_ms: _Optional[int] = ...) -> None: ...

class KvSetReply(_message.Message):
    __slots__ = ("created",)
    CREATED_FIELD_NUMBER: _ClassVar[int]
    created: bool
    def __init__(self, created: _Optional[bool] = ...) -> None: ...

class KvDeleteRequest(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: str
    def __init__(self, key: _Optional[str] = ...) -> None: ...

class KvDeleteReply(_message.Message):
    __slots__ = ("existed",)
    EXISTED_FIELD_NUMBER: _ClassVar[int]
    existed: bool
    def __init__(self, existed: _Optional[bool] = ...) -> None: ...

class KvListRequest(_message.Message):
    __slots__ = ("prefix", "limit", "after")
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    prefix: str
    limit: int
    after: str
    def __init__(self, prefix: _Optional[str] = ..., limit: _Optional[int] = ..., after: _Optional[str] = ...) -> None: ...

class KvListReply(_message.Message):
    __slots__ = ("keys", "more")
    KEYS_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedScalarFieldContainer[str]
    more: bool
    def __init__(self, keys: _Optional[_Iterable[str]] = ..., more: _Optional[bool] = ...) -> None: ...

class LogRecord(_message.Message):
    __slots__ = ("level", "message", "fields")
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    level: str
    message: str
    fields: _containers.ScalarMap[str, str]
    def __init__(self, level: _Optional[str] = ..., message: _Optional[str] = ..., fields: _Optional[_Mapping[str, str]] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("topics",)
    TOPICS_FIELD_NUMBER: _ClassVar[int]
    topics: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, topics: _Optional[_Iterable[str]] = ...) -> None: ...

class CounterLimit(_message.Message):
    __slots__ = ("key", "algorithm", "limit", "window_ms", "cost")
    KEY_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    WINDOW_MS_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    key: str
    algorithm: CounterAlgorithm
    limit: float
    window_ms: int
    cost: float
    def __init__(self, key: _Optional[str] = ..., algorithm: _Optional[_Union[CounterAlgorithm, str]] = ..., limit: _Optional[float] = ..., window_ms: _Optional[int] = ..., cost: _Optional[float] = ...) -> None: ...

class CounterAcquireRequest(_message.Message):
    __slots__ = ("limits", "dry_run", "force")
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    limits: _containers.RepeatedCompositeFieldContainer[CounterLimit]
    dry_run: bool
    force: bool
    def __init__(self, limits: _Optional[_Iterable[_Union[CounterLimit, _Mapping]]] = ..., dry_run: _Optional[bool] = ..., force: _Optional[bool] = ...) -> None: ...

class CounterState(_message.Message):
    __slots__ = ("limit", "remaining", "reset_ms")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    RESET_MS_FIELD_NUMBER: _ClassVar[int]
    limit: float
    remaining: float
    reset_ms: int
    def __init__(self, limit: _Optional[float] = ..., remaining: _Optional[float] = ..., reset_ms: _Optional[int] = ...) -> None: ...

class CounterAcquireReply(_message.Message):
    __slots__ = ("admitted", "states", "retry_after_ms")
    ADMITTED_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    admitted: bool
    states: _containers.RepeatedCompositeFieldContainer[CounterState]
    retry_after_ms: int
    def __init__(self, admitted: _Optional[bool] = ..., states: _Optional[_Iterable[_Union[CounterState, _Mapping]]] = ..., retry_after_ms: _Optional[int] = ...) -> None: ...

class CounterAdjustRequest(_message.Message):
    __slots__ = ("limits",)
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    limits: _containers.RepeatedCompositeFieldContainer[CounterLimit]
    def __init__(self, limits: _Optional[_Iterable[_Union[CounterLimit, _Mapping]]] = ...) -> None: ...

class CounterAdjustReply(_message.Message):
    __slots__ = ("states",)
    STATES_FIELD_NUMBER: _ClassVar[int]
    states: _containers.RepeatedCompositeFieldContainer[CounterState]
    def __init__(self, states: _Optional[_Iterable[_Union[CounterState, _Mapping]]] = ...) -> None: ...
