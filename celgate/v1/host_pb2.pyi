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

class ObjectGetRequest(_message.Message):
    __slots__ = ("object_type", "object_id")
    OBJECT_TYPE_FIELD_NUMBER: _ClassVar[int]
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    object_type: str
    object_id: str
    def __init__(self, object_type: _Optional[str] = ..., object_id: _Optional[str] = ...) -> None: ...

class ObjectReply(_message.Message):
    __slots__ = ("found", "object_json", "version")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    OBJECT_JSON_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    found: bool
    object_json: str
    version: int
    def __init__(self, found: _Optional[bool] = ..., object_json: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class ObjectListRequest(_message.Message):
    __slots__ = ("object_type", "limit", "after")
    OBJECT_TYPE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    object_type: str
    limit: int
    after: str
    def __init__(self, object_type: _Optional[str] = ..., limit: _Optional[int] = ..., after: _Optional[str] = ...) -> None: ...

class ObjectListReply(_message.Message):
    __slots__ = ("items", "next")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ObjectReply]
    next: str
    def __init__(self, items: _Optional[_Iterable[_Union[ObjectReply, _Mapping]]] = ..., next: _Optional[str] = ...) -> None: ...

class ObjectWriteRequest(_message.Message):
    __slots__ = ("operation", "object_type", "object_id", "object_json", "expected_version")
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    OBJECT_TYPE_FIELD_NUMBER: _ClassVar[int]
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    OBJECT_JSON_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    operation: str
    object_type: str
    object_id: str
    object_json: str
    expected_version: int
    def __init__(self, operation: _Optional[str] = ..., object_type: _Optional[str] = ..., object_id: _Optional[str] = ..., object_json: _Optional[str] = ..., expected_version: _Optional[int] = ...) -> None: ...

class ObjectWriteReply(_message.Message):
    __slots__ = ("status", "object_json", "version", "reason", "approval_id")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    OBJECT_JSON_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_ID_FIELD_NUMBER: _ClassVar[int]
    status: str
    object_json: str
    version: int
    reason: str
    approval_id: str
    def __init__(self, status: _Optional[str] = ..., object_json: _Optional[str] = ..., version: _Optional[int] = ..., reason: _Optional[str] = ..., approval_id: _Optional[str] = ...) -> None: ...

class ScheduleInfo(_message.Message):
    __slots__ = ("id", "name", "cron", "next_due_unix_ms", "running")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CRON_FIELD_NUMBER: _ClassVar[int]
    NEXT_DUE_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    cron: str
    next_due_unix_ms: int
    running: bool
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., cron: _Optional[str] = ..., next_due_unix_ms: _Optional[int] = ..., running: _Optional[bool] = ...) -> None: ...

class ScheduleListReply(_message.Message):
    __slots__ = ("schedules",)
    SCHEDULES_FIELD_NUMBER: _ClassVar[int]
    schedules: _containers.RepeatedCompositeFieldContainer[ScheduleInfo]
    def __init__(self, schedules: _Optional[_Iterable[_Union[ScheduleInfo, _Mapping]]] = ...) -> None: ...

class ScheduleTriggerRequest(_message.Message):
    __slots__ = ("schedule_id",)
    SCHEDULE_ID_FIELD_NUMBER: _ClassVar[int]
    schedule_id: str
    def __init__(self, schedule_id: _Optional[str] = ...) -> None: ...

class ScheduleTriggerReply(_message.Message):
    __slots__ = ("started",)
    STARTED_FIELD_NUMBER: _ClassVar[int]
    started: bool
    def __init__(self, started: _Optional[bool] = ...) -> None: ...

class ApprovalListRequest(_message.Message):
    __slots__ = ("state", "limit")
    STATE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    state: str
    limit: int
    def __init__(self, state: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ApprovalListReply(_message.Message):
    __slots__ = ("approvals_json",)
    APPROVALS_JSON_FIELD_NUMBER: _ClassVar[int]
    approvals_json: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, approvals_json: _Optional[_Iterable[str]] = ...) -> None: ...

class ApprovalGetRequest(_message.Message):
    __slots__ = ("approval_id",)
    APPROVAL_ID_FIELD_NUMBER: _ClassVar[int]
    approval_id: str
    def __init__(self, approval_id: _Optional[str] = ...) -> None: ...

class ApprovalReply(_message.Message):
    __slots__ = ("approval_json",)
    APPROVAL_JSON_FIELD_NUMBER: _ClassVar[int]
    approval_json: str
    def __init__(self, approval_json: _Optional[str] = ...) -> None: ...

class ApprovalVoteRequest(_message.Message):
    __slots__ = ("approval_id", "decision", "comment")
    APPROVAL_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    approval_id: str
    decision: str
    comment: str
    def __init__(self, approval_id: _Optional[str] = ..., decision: _Optional[str] = ..., comment: _Optional[str] = ...) -> None: ...
