from celgate.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ManifestReply(_message.Message):
    __slots__ = ("manifest_json", "capabilities", "response_chunks", "subscriptions", "hooks_address")
    MANIFEST_JSON_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_CHUNKS_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTIONS_FIELD_NUMBER: _ClassVar[int]
    HOOKS_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    manifest_json: str
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    response_chunks: bool
    subscriptions: _containers.RepeatedScalarFieldContainer[str]
    hooks_address: str
    def __init__(self, manifest_json: _Optional[str] = ..., capabilities: _Optional[_Iterable[str]] = ..., response_chunks: _Optional[bool] = ..., subscriptions: _Optional[_Iterable[str]] = ..., hooks_address: _Optional[str] = ...) -> None: ...

class ConfigSchemaReply(_message.Message):
    __slots__ = ("schema_json",)
    SCHEMA_JSON_FIELD_NUMBER: _ClassVar[int]
    schema_json: str
    def __init__(self, schema_json: _Optional[str] = ...) -> None: ...

class ConfigureRequest(_message.Message):
    __slots__ = ("plugin_id", "runtime", "config_json", "host_version", "host_service_address", "plugin_secret")
    PLUGIN_ID_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    HOST_VERSION_FIELD_NUMBER: _ClassVar[int]
    HOST_SERVICE_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PLUGIN_SECRET_FIELD_NUMBER: _ClassVar[int]
    plugin_id: str
    runtime: str
    config_json: str
    host_version: str
    host_service_address: str
    plugin_secret: str
    def __init__(self, plugin_id: _Optional[str] = ..., runtime: _Optional[str] = ..., config_json: _Optional[str] = ..., host_version: _Optional[str] = ..., host_service_address: _Optional[str] = ..., plugin_secret: _Optional[str] = ...) -> None: ...

class ConfigureReply(_message.Message):
    __slots__ = ("ok", "error")
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    error: str
    def __init__(self, ok: _Optional[bool] = ..., error: _Optional[str] = ...) -> None: ...

class ShutdownRequest(_message.Message):
    __slots__ = ("grace_ms",)
    GRACE_MS_FIELD_NUMBER: _ClassVar[int]
    grace_ms: int
    def __init__(self, grace_ms: _Optional[int] = ...) -> None: ...

class HttpRequest(_message.Message):
    __slots__ = ("id", "method", "path", "query_string", "headers", "body", "remote_addr", "client_ip", "host", "scheme")
    ID_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    QUERY_STRING_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    REMOTE_ADDR_FIELD_NUMBER: _ClassVar[int]
    CLIENT_IP_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    SCHEME_FIELD_NUMBER: _ClassVar[int]
    id: str
    method: str
    path: str
    query_string: str
    headers: _containers.RepeatedCompositeFieldContainer[_common_pb2.Header]
    body: bytes
    remote_addr: str
    client_ip: str
    host: str
    scheme: str
    def __init__(self, id: _Optional[str] = ..., method: _Optional[str] = ..., path: _Optional[str] = ..., query_string: _Optional[str] = ..., headers: _Optional[_Iterable[_Union[_common_pb2.Header, _Mapping]]] = ..., body: _Optional[bytes] = ..., remote_addr: _Optional[str] = ..., client_ip: _Optional[str] = ..., host: _Optional[str] = ..., scheme: _Optional[str] = ...) -> None: ...

class LLMRef(_message.Message):
    __slots__ = ("id", "slug", "vendor", "model")
    ID_FIELD_NUMBER: _ClassVar[int]
    SLUG_FIELD_NUMBER: _ClassVar[int]
    VENDOR_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    id: str
    slug: str
    vendor: str
    model: str
    def __init__(self, id: _Optional[str] = ..., slug: _Optional[str] = ..., vendor: _Optional[str] = ..., model: _Optional[str] = ...) -> None: ...

class RequestContext(_message.Message):
    __slots__ = ("request", "identity", "llm", "runtime", "metadata", "received_unix_ms")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    LLM_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    request: HttpRequest
    identity: _common_pb2.Identity
    llm: LLMRef
    runtime: str
    metadata: _containers.ScalarMap[str, str]
    received_unix_ms: int
    def __init__(self, request: _Optional[_Union[HttpRequest, _Mapping]] = ..., identity: _Optional[_Union[_common_pb2.Identity, _Mapping]] = ..., llm: _Optional[_Union[LLMRef, _Mapping]] = ..., runtime: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., received_unix_ms: _Optional[int] = ...) -> None: ...

class RequestChanges(_message.Message):
    __slots__ = ("set_headers", "add_headers", "remove_headers", "replace_body", "body", "path", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SET_HEADERS_FIELD_NUMBER: _ClassVar[int]
    ADD_HEADERS_FIELD_NUMBER: _ClassVar[int]
    REMOVE_HEADERS_FIELD_NUMBER: _ClassVar[int]
    REPLACE_BODY_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    set_headers: _containers.RepeatedCompositeFieldContainer[_common_pb2.Header]
    add_headers: _containers.RepeatedCompositeFieldContainer[_common_pb2.Header]
    remove_headers: _containers.RepeatedScalarFieldContainer[str]
    replace_body: bool
    body: bytes
    path: str
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, set_headers: _Optional[_Iterable[_Union[_common_pb2.Header, _Mapping]]] = ..., add_headers: _Optional[_Iterable[_Union[_common_pb2.Header, _Mapping]]] = ..., remove_headers: _Optional[_Iterable[str]] = ..., replace_body: _Optional[bool] = ..., body: _Optional[bytes] = ..., path: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Reply(_message.Message):
    __slots__ = ("status", "headers", "body")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    status: int
    headers: _containers.RepeatedCompositeFieldContainer[_common_pb2.Header]
    body: bytes
    def __init__(self, status: _Optional[int] = ..., headers: _Optional[_Iterable[_Union[_common_pb2.Header, _Mapping]]] = ..., body: _Optional[bytes] = ...) -> None: ...

class RequestVerdict(_message.Message):
    __slots__ = ("proceed", "changes", "reply", "decisions", "response_headers")
    PROCEED_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    REPLY_FIELD_NUMBER: _ClassVar[int]
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_HEADERS_FIELD_NUMBER: _ClassVar[int]
    proceed: _common_pb2.Empty
    changes: RequestChanges
    reply: Reply
    decisions: _containers.RepeatedCompositeFieldContainer[Decision]
    response_headers: _containers.RepeatedCompositeFieldContainer[_common_pb2.Header]
    def __init__(self, proceed: _Optional[_Union[_common_pb2.Empty, _Mapping]] = ..., changes: _Optional[_Union[RequestChanges, _Mapping]] = ..., reply: _Optional[_Union[Reply, _Mapping]] = ..., decisions: _Optional[_Iterable[_Union[Decision, _Mapping]]] = ..., response_headers: _Optional[_Iterable[_Union[_common_pb2.Header, _Mapping]]] = ...) -> None: ...

class AuthRequest(_message.Message):
    __slots__ = ("context", "credential")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    context: RequestContext
    credential: str
    def __init__(self, context: _Optional[_Union[RequestContext, _Mapping]] = ..., credential: _Optional[str] = ...) -> None: ...

class AuthVerdict(_message.Message):
    __slots__ = ("identity", "reject", "decisions")
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    REJECT_FIELD_NUMBER: _ClassVar[int]
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    identity: _common_pb2.Identity
    reject: Reply
    decisions: _containers.RepeatedCompositeFieldContainer[Decision]
    def __init__(self, identity: _Optional[_Union[_common_pb2.Identity, _Mapping]] = ..., reject: _Optional[_Union[Reply, _Mapping]] = ..., decisions: _Optional[_Iterable[_Union[Decision, _Mapping]]] = ...) -> None: ...

class ResponseHeaders(_message.Message):
    __slots__ = ("context", "status", "headers", "streaming")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    STREAMING_FIELD_NUMBER: _ClassVar[int]
    context: RequestContext
    status: int
    headers: _containers.RepeatedCompositeFieldContainer[_common_pb2.Header]
    streaming: bool
    def __init__(self, context: _Optional[_Union[RequestContext, _Mapping]] = ..., status: _Optional[int] = ..., headers: _Optional[_Iterable[_Union[_common_pb2.Header, _Mapping]]] = ..., streaming: _Optional[bool] = ...) -> None: ...

class ResponseHeadersVerdict(_message.Message):
    __slots__ = ("modified", "status", "headers")
    MODIFIED_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    modified: bool
    status: int
    headers: _containers.RepeatedCompositeFieldContainer[_common_pb2.Header]
    def __init__(self, modified: _Optional[bool] = ..., status: _Optional[int] = ..., headers: _Optional[_Iterable[_Union[_common_pb2.Header, _Mapping]]] = ...) -> None: ...

class ResponseChunk(_message.Message):
    __slots__ = ("context", "index", "data", "streaming")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    STREAMING_FIELD_NUMBER: _ClassVar[int]
    context: RequestContext
    index: int
    data: bytes
    streaming: bool
    def __init__(self, context: _Optional[_Union[RequestContext, _Mapping]] = ..., index: _Optional[int] = ..., data: _Optional[bytes] = ..., streaming: _Optional[bool] = ...) -> None: ...

class ResponseChunkVerdict(_message.Message):
    __slots__ = ("modified", "data")
    MODIFIED_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    modified: bool
    data: bytes
    def __init__(self, modified: _Optional[bool] = ..., data: _Optional[bytes] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("prompt_tokens", "completion_tokens", "total_tokens")
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    def __init__(self, prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., total_tokens: _Optional[int] = ...) -> None: ...

class ResponseEnd(_message.Message):
    __slots__ = ("context", "status", "chunks", "usage", "streaming", "aborted")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    STREAMING_FIELD_NUMBER: _ClassVar[int]
    ABORTED_FIELD_NUMBER: _ClassVar[int]
    context: RequestContext
    status: int
    chunks: int
    usage: Usage
    streaming: bool
    aborted: bool
    def __init__(self, context: _Optional[_Union[RequestContext, _Mapping]] = ..., status: _Optional[int] = ..., chunks: _Optional[int] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., streaming: _Optional[bool] = ..., aborted: _Optional[bool] = ...) -> None: ...

class ResponseEndVerdict(_message.Message):
    __slots__ = ("append", "decisions")
    APPEND_FIELD_NUMBER: _ClassVar[int]
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    append: bytes
    decisions: _containers.RepeatedCompositeFieldContainer[Decision]
    def __init__(self, append: _Optional[bytes] = ..., decisions: _Optional[_Iterable[_Union[Decision, _Mapping]]] = ...) -> None: ...

class HookCall(_message.Message):
    __slots__ = ("call_id", "deadline_ms", "pre_auth", "auth", "post_auth", "response_headers", "response_chunk", "response_end")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_MS_FIELD_NUMBER: _ClassVar[int]
    PRE_AUTH_FIELD_NUMBER: _ClassVar[int]
    AUTH_FIELD_NUMBER: _ClassVar[int]
    POST_AUTH_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_HEADERS_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_CHUNK_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_END_FIELD_NUMBER: _ClassVar[int]
    call_id: int
    deadline_ms: int
    pre_auth: RequestContext
    auth: AuthRequest
    post_auth: RequestContext
    response_headers: ResponseHeaders
    response_chunk: ResponseChunk
    response_end: ResponseEnd
    def __init__(self, call_id: _Optional[int] = ..., deadline_ms: _Optional[int] = ..., pre_auth: _Optional[_Union[RequestContext, _Mapping]] = ..., auth: _Optional[_Union[AuthRequest, _Mapping]] = ..., post_auth: _Optional[_Union[RequestContext, _Mapping]] = ..., response_headers: _Optional[_Union[ResponseHeaders, _Mapping]] = ..., response_chunk: _Optional[_Union[ResponseChunk, _Mapping]] = ..., response_end: _Optional[_Union[ResponseEnd, _Mapping]] = ...) -> None: ...

class HookReply(_message.Message):
    __slots__ = ("call_id", "error", "request", "auth", "response_headers", "response_chunk", "response_end")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    AUTH_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_HEADERS_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_CHUNK_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_END_FIELD_NUMBER: _ClassVar[int]
    call_id: int
    error: str
    request: RequestVerdict
    auth: AuthVerdict
    response_headers: ResponseHeadersVerdict
    response_chunk: ResponseChunkVerdict
    response_end: ResponseEndVerdict
    def __init__(self, call_id: _Optional[int] = ..., error: _Optional[str] = ..., request: _Optional[_Union[RequestVerdict, _Mapping]] = ..., auth: _Optional[_Union[AuthVerdict, _Mapping]] = ..., response_headers: _Optional[_Union[ResponseHeadersVerdict, _Mapping]] = ..., response_chunk: _Optional[_Union[ResponseChunkVerdict, _Mapping]] = ..., response_end: _Optional[_Union[ResponseEndVerdict, _Mapping]] = ...) -> None: ...

class Decision(_message.Message):
    __slots__ = ("policy", "rule", "decision", "mode", "reason")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    policy: str
    rule: str
    decision: str
    mode: str
    reason: str
    def __init__(self, policy: _Optional[str] = ..., rule: _Optional[str] = ..., decision: _Optional[str] = ..., mode: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class DataRecord(_message.Message):
    __slots__ = ("request_id", "started_unix_ms", "duration_ms", "method", "path", "status", "identity", "llm", "usage", "streaming", "request_body", "response_body", "decisions", "client_ip")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    STARTED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    LLM_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    STREAMING_FIELD_NUMBER: _ClassVar[int]
    REQUEST_BODY_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_BODY_FIELD_NUMBER: _ClassVar[int]
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    CLIENT_IP_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    started_unix_ms: int
    duration_ms: int
    method: str
    path: str
    status: int
    identity: _common_pb2.Identity
    llm: LLMRef
    usage: Usage
    streaming: bool
    request_body: bytes
    response_body: bytes
    decisions: _containers.RepeatedCompositeFieldContainer[Decision]
    client_ip: str
    def __init__(self, request_id: _Optional[str] = ..., started_unix_ms: _Optional[int] = ..., duration_ms: _Optional[int] = ..., method: _Optional[str] = ..., path: _Optional[str] = ..., status: _Optional[int] = ..., identity: _Optional[_Union[_common_pb2.Identity, _Mapping]] = ..., llm: _Optional[_Union[LLMRef, _Mapping]] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., streaming: _Optional[bool] = ..., request_body: _Optional[bytes] = ..., response_body: _Optional[bytes] = ..., decisions: _Optional[_Iterable[_Union[Decision, _Mapping]]] = ..., client_ip: _Optional[str] = ...) -> None: ...

class DataBatch(_message.Message):
    __slots__ = ("records",)
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[DataRecord]
    def __init__(self, records: _Optional[_Iterable[_Union[DataRecord, _Mapping]]] = ...) -> None: ...

class DataAck(_message.Message):
    __slots__ = ("accepted", "error")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    error: str
    def __init__(self, accepted: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class EndpointRoute(_message.Message):
    __slots__ = ("path", "methods", "stream", "require_auth", "description")
    PATH_FIELD_NUMBER: _ClassVar[int]
    METHODS_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_AUTH_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    path: str
    methods: _containers.RepeatedScalarFieldContainer[str]
    stream: bool
    require_auth: bool
    description: str
    def __init__(self, path: _Optional[str] = ..., methods: _Optional[_Iterable[str]] = ..., stream: _Optional[bool] = ..., require_auth: _Optional[bool] = ..., description: _Optional[str] = ...) -> None: ...

class EndpointList(_message.Message):
    __slots__ = ("routes",)
    ROUTES_FIELD_NUMBER: _ClassVar[int]
    routes: _containers.RepeatedCompositeFieldContainer[EndpointRoute]
    def __init__(self, routes: _Optional[_Iterable[_Union[EndpointRoute, _Mapping]]] = ...) -> None: ...

class EndpointRequest(_message.Message):
    __slots__ = ("method", "path", "query_string", "headers", "body", "remote_addr", "identity", "request_id")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    QUERY_STRING_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    REMOTE_ADDR_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    method: str
    path: str
    query_string: str
    headers: _containers.RepeatedCompositeFieldContainer[_common_pb2.Header]
    body: bytes
    remote_addr: str
    identity: _common_pb2.Identity
    request_id: str
    def __init__(self, method: _Optional[str] = ..., path: _Optional[str] = ..., query_string: _Optional[str] = ..., headers: _Optional[_Iterable[_Union[_common_pb2.Header, _Mapping]]] = ..., body: _Optional[bytes] = ..., remote_addr: _Optional[str] = ..., identity: _Optional[_Union[_common_pb2.Identity, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class EndpointChunk(_message.Message):
    __slots__ = ("status", "headers", "data")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    status: int
    headers: _containers.RepeatedCompositeFieldContainer[_common_pb2.Header]
    data: bytes
    def __init__(self, status: _Optional[int] = ..., headers: _Optional[_Iterable[_Union[_common_pb2.Header, _Mapping]]] = ..., data: _Optional[bytes] = ...) -> None: ...

class ObjectHookRegistration(_message.Message):
    __slots__ = ("object_type", "hook", "priority")
    OBJECT_TYPE_FIELD_NUMBER: _ClassVar[int]
    HOOK_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    object_type: str
    hook: str
    priority: int
    def __init__(self, object_type: _Optional[str] = ..., hook: _Optional[str] = ..., priority: _Optional[int] = ...) -> None: ...

class ObjectHookList(_message.Message):
    __slots__ = ("hooks",)
    HOOKS_FIELD_NUMBER: _ClassVar[int]
    hooks: _containers.RepeatedCompositeFieldContainer[ObjectHookRegistration]
    def __init__(self, hooks: _Optional[_Iterable[_Union[ObjectHookRegistration, _Mapping]]] = ...) -> None: ...

class Actor(_message.Message):
    __slots__ = ("id", "email", "groups")
    ID_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    id: str
    email: str
    groups: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., email: _Optional[str] = ..., groups: _Optional[_Iterable[str]] = ...) -> None: ...

class ObjectHookRequest(_message.Message):
    __slots__ = ("hook", "object_type", "operation", "object_json", "previous_json", "actor", "request_id")
    HOOK_FIELD_NUMBER: _ClassVar[int]
    OBJECT_TYPE_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    OBJECT_JSON_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_JSON_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    hook: str
    object_type: str
    operation: str
    object_json: str
    previous_json: str
    actor: Actor
    request_id: str
    def __init__(self, hook: _Optional[str] = ..., object_type: _Optional[str] = ..., operation: _Optional[str] = ..., object_json: _Optional[str] = ..., previous_json: _Optional[str] = ..., actor: _Optional[_Union[Actor, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class Approvers(_message.Message):
    __slots__ = ("groups", "min_approvals", "expires_after_ms")
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    MIN_APPROVALS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    groups: _containers.RepeatedScalarFieldContainer[str]
    min_approvals: int
    expires_after_ms: int
    def __init__(self, groups: _Optional[_Iterable[str]] = ..., min_approvals: _Optional[int] = ..., expires_after_ms: _Optional[int] = ...) -> None: ...

class ObjectVerdict(_message.Message):
    __slots__ = ("allow", "deny", "modify", "pending_approval", "message", "rule", "decisions")
    ALLOW_FIELD_NUMBER: _ClassVar[int]
    DENY_FIELD_NUMBER: _ClassVar[int]
    MODIFY_FIELD_NUMBER: _ClassVar[int]
    PENDING_APPROVAL_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    allow: _common_pb2.Empty
    deny: str
    modify: str
    pending_approval: Approvers
    message: str
    rule: str
    decisions: _containers.RepeatedCompositeFieldContainer[Decision]
    def __init__(self, allow: _Optional[_Union[_common_pb2.Empty, _Mapping]] = ..., deny: _Optional[str] = ..., modify: _Optional[str] = ..., pending_approval: _Optional[_Union[Approvers, _Mapping]] = ..., message: _Optional[str] = ..., rule: _Optional[str] = ..., decisions: _Optional[_Iterable[_Union[Decision, _Mapping]]] = ...) -> None: ...

class AgentMessage(_message.Message):
    __slots__ = ("session_id", "message", "history", "config_json", "actor")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    message: str
    history: _containers.RepeatedCompositeFieldContainer[AgentTurn]
    config_json: str
    actor: Actor
    def __init__(self, session_id: _Optional[str] = ..., message: _Optional[str] = ..., history: _Optional[_Iterable[_Union[AgentTurn, _Mapping]]] = ..., config_json: _Optional[str] = ..., actor: _Optional[_Union[Actor, _Mapping]] = ...) -> None: ...

class AgentTurn(_message.Message):
    __slots__ = ("role", "content")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    role: str
    content: str
    def __init__(self, role: _Optional[str] = ..., content: _Optional[str] = ...) -> None: ...

class AgentChunk(_message.Message):
    __slots__ = ("type", "content", "metadata_json")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    type: str
    content: str
    metadata_json: str
    def __init__(self, type: _Optional[str] = ..., content: _Optional[str] = ..., metadata_json: _Optional[str] = ...) -> None: ...

class AssetListRequest(_message.Message):
    __slots__ = ("prefix", "portal")
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    PORTAL_FIELD_NUMBER: _ClassVar[int]
    prefix: str
    portal: bool
    def __init__(self, prefix: _Optional[str] = ..., portal: _Optional[bool] = ...) -> None: ...

class AssetInfo(_message.Message):
    __slots__ = ("path", "content_type", "size")
    PATH_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    path: str
    content_type: str
    size: int
    def __init__(self, path: _Optional[str] = ..., content_type: _Optional[str] = ..., size: _Optional[int] = ...) -> None: ...

class AssetList(_message.Message):
    __slots__ = ("assets",)
    ASSETS_FIELD_NUMBER: _ClassVar[int]
    assets: _containers.RepeatedCompositeFieldContainer[AssetInfo]
    def __init__(self, assets: _Optional[_Iterable[_Union[AssetInfo, _Mapping]]] = ...) -> None: ...

class AssetRequest(_message.Message):
    __slots__ = ("path", "portal")
    PATH_FIELD_NUMBER: _ClassVar[int]
    PORTAL_FIELD_NUMBER: _ClassVar[int]
    path: str
    portal: bool
    def __init__(self, path: _Optional[str] = ..., portal: _Optional[bool] = ...) -> None: ...

class Asset(_message.Message):
    __slots__ = ("found", "content_type", "data")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    found: bool
    content_type: str
    data: bytes
    def __init__(self, found: _Optional[bool] = ..., content_type: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class UiCallRequest(_message.Message):
    __slots__ = ("method", "payload", "portal", "user")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    PORTAL_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    method: str
    payload: bytes
    portal: bool
    user: Actor
    def __init__(self, method: _Optional[str] = ..., payload: _Optional[bytes] = ..., portal: _Optional[bool] = ..., user: _Optional[_Union[Actor, _Mapping]] = ...) -> None: ...

class UiCallReply(_message.Message):
    __slots__ = ("payload", "error")
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    error: str
    def __init__(self, payload: _Optional[bytes] = ..., error: _Optional[str] = ...) -> None: ...

class ScheduledTaskRequest(_message.Message):
    __slots__ = ("schedule_id", "run_id", "config_json", "scheduled_unix_ms")
    SCHEDULE_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    schedule_id: str
    run_id: str
    config_json: str
    scheduled_unix_ms: int
    def __init__(self, schedule_id: _Optional[str] = ..., run_id: _Optional[str] = ..., config_json: _Optional[str] = ..., scheduled_unix_ms: _Optional[int] = ...) -> None: ...

class ScheduledTaskReply(_message.Message):
    __slots__ = ("ok", "error", "output")
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    error: str
    output: str
    def __init__(self, ok: _Optional[bool] = ..., error: _Optional[str] = ..., output: _Optional[str] = ...) -> None: ...
