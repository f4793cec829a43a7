"""Plain data a plugin author works with: headers, request contexts and hook results.

Nothing here knows about protobuf; `celgate.sdk.convert` maps these to and from the wire.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any


class Headers:
    """Multi-valued, case-insensitive HTTP headers that keep their order and original case.

    Built from the wire, the (name, value) list is only materialised when needed: the first
    lookup scans the wire headers directly, a second one builds an index (hook calls sit on
    the request path, and most handlers read one or two headers).
    """

    __slots__ = ("_index", "_items", "_scanned", "_source")

    def __init__(self, items: Iterable[tuple[str, str]] | dict[str, str] | None = None) -> None:
        if items is None:
            self._items: list[tuple[str, str]] | None = []
        elif isinstance(items, dict):
            self._items = list(items.items())
        else:
            self._items = list(items)
        self._source: Any = None
        self._index: dict[str, str] | None = None  # lower-case name -> first value
        self._scanned = False

    @classmethod
    def from_wire(cls, source: Any) -> Headers:
        """Wrap a sequence of objects with `.name` and `.value` (protobuf Header messages)."""
        headers = cls.__new__(cls)
        headers._items = None
        headers._source = source
        headers._index = None
        headers._scanned = False
        return headers

    def _list(self) -> list[tuple[str, str]]:
        items = self._items
        if items is None:
            items = self._items = [(h.name, h.value) for h in self._source]
            self._source = None
        return items

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of `name`, or `default`."""
        index = self._index
        if index is not None:
            return index.get(name.lower(), default)
        low = name.lower()
        if self._items is None and not self._scanned:
            self._scanned = True
            for h in self._source:
                if h.name.lower() == low:
                    value: str = h.value
                    return value
            return default
        # reversed: the first value of a repeated header wins
        index = self._index = {key.lower(): value for key, value in reversed(self._list())}
        return index.get(low, default)

    def get_all(self, name: str) -> list[str]:
        low = name.lower()
        return [value for key, value in self._list() if key.lower() == low]

    def set(self, name: str, value: str) -> None:
        """Replace every value of `name` with one value."""
        self.remove(name)
        self._list().append((name, value))
        self._index = None

    def add(self, name: str, value: str) -> None:
        self._list().append((name, value))
        self._index = None

    def remove(self, name: str) -> None:
        low = name.lower()
        self._items = [(k, v) for k, v in self._list() if k.lower() != low]
        self._index = None

    def items(self) -> list[tuple[str, str]]:
        return list(self._list())

    def copy(self) -> Headers:
        return Headers(self._list())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for key, _ in self._list():
            if key.lower() not in seen:
                seen.add(key.lower())
                yield key

    def __len__(self) -> int:
        return len(self._list())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(k.lower(), v) for k, v in self._list()] == [(k.lower(), v) for k, v in other._list()]

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({self._list()!r})"


# ---------------------------------------------------------------- request context


@dataclass(slots=True)
class Request:
    method: str = "GET"
    path: str = "/"
    query_string: str = ""
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    id: str = ""
    remote_addr: str = ""
    client_ip: str = ""
    host: str = ""
    scheme: str = ""

    def json(self) -> Any:
        """The body parsed as JSON (raises ValueError when it is not JSON)."""
        return json.loads(self.body)


@dataclass(slots=True)
class Identity:
    authenticated: bool = False
    app_id: str = ""
    user_id: str = ""
    groups: list[str] = field(default_factory=list)
    claims: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class LLM:
    id: str = ""
    slug: str = ""
    vendor: str = ""
    model: str = ""


@dataclass(slots=True)
class Decision:
    """One decision-log entry (what a policy rule decided and why)."""

    policy: str = ""
    rule: str = ""
    decision: str = ""  # allow | deny | skipped | warn | audit | pending_approval
    mode: str = ""
    reason: str = ""


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


@dataclass(slots=True)
class ResponseHead:
    """The upstream response status and headers, given to `Response.on_response_headers`."""

    status: int = 200
    headers: Headers = field(default_factory=Headers)
    streaming: bool = False


@dataclass(slots=True)
class ResponseChunk:
    index: int = 0
    data: bytes = b""
    streaming: bool = False  # False: `data` is the whole (non-streamed) body


@dataclass(slots=True)
class ResponseEnd:
    status: int = 200
    chunks: int = 0
    usage: Usage = field(default_factory=Usage)
    streaming: bool = False
    aborted: bool = False


# ---------------------------------------------------------------- request results


@dataclass(slots=True)
class Continue:
    """Let the request go on unchanged."""

    decisions: list[Decision] = field(default_factory=list)
    response_headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class Modify:
    """Continue with changes to the request."""

    set_headers: dict[str, str] = field(default_factory=dict)
    add_headers: list[tuple[str, str]] = field(default_factory=list)
    remove_headers: list[str] = field(default_factory=list)
    body: bytes | None = None  # None keeps the body
    path: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    decisions: list[Decision] = field(default_factory=list)
    response_headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class Respond:
    """Reply now; the request goes no further."""

    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    decisions: list[Decision] = field(default_factory=list)
    response_headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(
        cls,
        status: int,
        payload: Any,
        headers: Iterable[tuple[str, str]] = (),
        decisions: Iterable[Decision] = (),
    ) -> Respond:
        body = json.dumps(payload, separators=(",", ":")).encode()
        return cls(
            status=status,
            headers=[("content-type", "application/json"), *headers],
            body=body,
            decisions=list(decisions),
        )


RequestResult = Continue | Modify | Respond


@dataclass(slots=True)
class Authenticated:
    identity: Identity
    decisions: list[Decision] = field(default_factory=list)


@dataclass(slots=True)
class Rejected:
    status: int = 401
    message: str = "unauthorized"
    headers: list[tuple[str, str]] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)


AuthResult = Authenticated | Rejected

# ---------------------------------------------------------------- data collection


@dataclass(slots=True)
class DataRecord:
    request_id: str = ""
    started_unix_ms: int = 0
    duration_ms: int = 0
    method: str = ""
    path: str = ""
    status: int = 0
    identity: Identity = field(default_factory=Identity)
    llm: LLM = field(default_factory=LLM)
    usage: Usage = field(default_factory=Usage)
    streaming: bool = False
    request_body: bytes = b""
    response_body: bytes = b""
    decisions: list[Decision] = field(default_factory=list)
    client_ip: str = ""


# ---------------------------------------------------------------- custom endpoints


@dataclass(slots=True)
class Route:
    path: str  # relative to /plugins/{plugin-id}; a trailing "/*" matches a subtree
    methods: list[str] = field(default_factory=lambda: ["GET"])
    stream: bool = False
    require_auth: bool = True
    description: str = ""


@dataclass(slots=True)
class EndpointRequest:
    method: str = "GET"
    path: str = "/"
    query_string: str = ""
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    remote_addr: str = ""
    identity: Identity = field(default_factory=Identity)
    request_id: str = ""


@dataclass(slots=True)
class HttpResponse:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @classmethod
    def json(cls, payload: Any, status: int = 200) -> HttpResponse:
        body = json.dumps(payload, separators=(",", ":")).encode()
        return cls(status=status, headers=[("content-type", "application/json")], body=body)


@dataclass(slots=True)
class StreamResponse:
    """A streamed endpoint response; `chunks` may be a sync or an async iterable of bytes."""

    chunks: Any
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)


# ---------------------------------------------------------------- object hooks


@dataclass(slots=True)
class ObjectHookRegistration:
    object_type: str  # llm | app | tool | datasource | user
    hook: str  # before_create | after_create | before_update | after_update | before_delete | after_delete
    priority: int = 100


@dataclass(slots=True)
class Actor:
    id: str = ""
    email: str = ""
    groups: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ObjectEvent:
    hook: str
    object_type: str
    operation: str
    object: dict[str, Any] | None
    previous: dict[str, Any] | None
    actor: Actor = field(default_factory=Actor)
    request_id: str = ""


@dataclass(slots=True)
class Allow:
    message: str = ""
    decisions: list[Decision] = field(default_factory=list)


@dataclass(slots=True)
class Deny:
    reason: str
    rule: str = ""
    decisions: list[Decision] = field(default_factory=list)


@dataclass(slots=True)
class Mutate:
    obj: dict[str, Any]
    message: str = ""
    decisions: list[Decision] = field(default_factory=list)


@dataclass(slots=True)
class PendingApproval:
    groups: list[str]
    min_approvals: int = 1
    expires_after: float = 86400.0  # seconds
    message: str = ""
    decisions: list[Decision] = field(default_factory=list)


ObjectVerdict = Allow | Deny | Mutate | PendingApproval

# ---------------------------------------------------------------- agent, ui, tasks, events


@dataclass(slots=True)
class AgentTurn:
    role: str
    content: str


@dataclass(slots=True)
class AgentRequest:
    session_id: str
    message: str
    history: list[AgentTurn] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    actor: Actor = field(default_factory=Actor)


@dataclass(slots=True)
class AgentChunk:
    type: str  # content | thinking | tool_call | tool_result | error | done
    content: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Asset:
    path: str
    content_type: str
    data: bytes


@dataclass(slots=True)
class ScheduledTask:
    schedule_id: str
    run_id: str
    config: dict[str, Any] = field(default_factory=dict)
    scheduled_unix_ms: int = 0


@dataclass(slots=True)
class Event:
    topic: str
    payload: Any
    id: str = ""
    origin: str = ""
    unix_ms: int = 0
