"""The plugin's client for the Service API (HostService): KV, logs, events, counters, and in
the studio, objects, the plugin's own schedules and approvals.

Every call carries the per-process secret in the `celgate-plugin-secret` metadata entry; the
host derives the calling plugin from it. The clients are async (`await ctx.kv.get(...)`); a sync
handler, which runs in a worker thread, calls them through `ctx.run(ctx.kv.get(...))`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import grpc
from google.protobuf.message import Message

from celgate.sdk.counters import AcquireResult, CounterLimit, CounterState
from celgate.sdk.fastservice import FastServiceClient, FastUnavailable
from celgate.sdk.protocol import ENV_HOST_SERVICE, ENV_HOST_SERVICE_FAST, MAX_MESSAGE_BYTES, SECRET_METADATA
from celgate.sdk.types import Event
from celgate.v1 import common_pb2, host_pb2, host_pb2_grpc

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class ServiceUnavailable(RuntimeError):
    """The host gave this plugin no Service API (for example when run outside a host)."""


_ALGORITHMS = {
    "sliding-window": host_pb2.SLIDING_WINDOW,
    "fixed-window": host_pb2.FIXED_WINDOW,
    "token-bucket": host_pb2.TOKEN_BUCKET,
}


_M = TypeVar("_M", bound=Message)


class HostConnection:
    """One channel to the host's Service API, shared by the KV, log, event and counter clients."""

    def __init__(self, address: str, secret: str, plugin_id: str, fast_address: str | None = None) -> None:
        self.address = address
        self.plugin_id = plugin_id
        self._metadata = ((SECRET_METADATA, secret),)
        self._channel: grpc.aio.Channel | None = None
        self._stub: host_pb2_grpc.HostServiceStub | None = None
        if fast_address is None:  # the host's fast path goes with the address it launched us with
            same = bool(address) and address == os.environ.get(ENV_HOST_SERVICE)
            fast_address = os.environ.get(ENV_HOST_SERVICE_FAST, "") if same else ""
        self._fast = FastServiceClient(fast_address, secret) if fast_address and secret else None

    @property
    def available(self) -> bool:
        return bool(self.address)

    def stub(self) -> tuple[host_pb2_grpc.HostServiceStub, tuple[tuple[str, str], ...]]:
        if not self.address:
            raise ServiceUnavailable("this plugin was not given a Service API address by its host")
        if self._stub is None:
            options = [
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ]
            self._channel = grpc.aio.insecure_channel(self.address, options=options)
            self._stub = host_pb2_grpc.HostServiceStub(self._channel)  # type: ignore[no-untyped-call]
        return self._stub, self._metadata

    async def unary(self, method: str, request: Message, reply_type: type[_M]) -> _M:
        """One unary HostService call: on the host's fast socket when it offers one (sdk/fastservice.py),
        else, or when that socket cannot be reached before sending, over gRPC. Errors are the same
        `grpc.aio.AioRpcError` either way."""
        fast = self._fast
        if fast is not None and fast.usable:
            try:
                return await fast.call(method, request, reply_type)
            except FastUnavailable:
                pass
        stub, md = self.stub()
        return cast(_M, await getattr(stub, method)(request, metadata=md))

    async def close(self) -> None:
        if self._fast is not None:
            await self._fast.close()
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
            self._stub = None


class KV:
    """Key-value storage namespaced to this plugin by the host."""

    def __init__(self, conn: HostConnection) -> None:
        self._conn = conn

    async def get(self, key: str) -> bytes | None:
        reply = await self._conn.unary("KvGet", host_pb2.KvGetRequest(key=key), host_pb2.KvGetReply)
        return bytes(reply.value) if reply.found else None

    async def set(self, key: str, value: bytes | str, ttl: float | None = None) -> bool:
        """Store `value`; `ttl` in seconds (None: no expiry). Returns True when the key was new."""
        data = value.encode() if isinstance(value, str) else value
        ttl_ms = 0 if ttl is None else max(1, int(ttl * 1000))
        request = host_pb2.KvSetRequest(key=key, value=data, ttl_ms=ttl_ms)
        reply = await self._conn.unary("KvSet", request, host_pb2.KvSetReply)
        return bool(reply.created)

    async def delete(self, key: str) -> bool:
        reply = await self._conn.unary("KvDelete", host_pb2.KvDeleteRequest(key=key), host_pb2.KvDeleteReply)
        return bool(reply.existed)

    async def list(self, prefix: str = "", limit: int = 0, after: str = "") -> tuple[list[str], bool]:
        """Keys starting with `prefix`, sorted, after `after`; returns (keys, more)."""
        request = host_pb2.KvListRequest(prefix=prefix, limit=limit, after=after)
        reply = await self._conn.unary("KvList", request, host_pb2.KvListReply)
        return list(reply.keys), bool(reply.more)


class Log:
    """Structured log records sent to the host (which logs them with this plugin's id).

    The methods never block and never raise: records are queued and sent in the background;
    without a host they go to stderr.
    """

    def __init__(self, conn: HostConnection, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._conn = conn
        self._loop = loop
        self._queue: asyncio.Queue[host_pb2.LogRecord] | None = None
        self._task: asyncio.Task[None] | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def debug(self, message: str, **fields: Any) -> None:
        self.log("debug", message, **fields)

    def info(self, message: str, **fields: Any) -> None:
        self.log("info", message, **fields)

    def warning(self, message: str, **fields: Any) -> None:
        self.log("warning", message, **fields)

    def error(self, message: str, **fields: Any) -> None:
        self.log("error", message, **fields)

    def log(self, level: str, message: str, **fields: Any) -> None:
        record = host_pb2.LogRecord(
            level=level,
            message=message,
            fields={k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()},
        )
        loop = self._loop
        if not self._conn.available or loop is None or loop.is_closed():
            print(f"[{level}] {message} {dict(record.fields) or ''}", file=sys.stderr, flush=True)
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._enqueue(record)
        else:
            loop.call_soon_threadsafe(self._enqueue, record)

    def _enqueue(self, record: host_pb2.LogRecord) -> None:
        if self._queue is None:
            self._queue = asyncio.Queue(maxsize=10_000)
            self._task = asyncio.get_running_loop().create_task(self._sender())
        try:
            self._queue.put_nowait(record)
        except asyncio.QueueFull:
            print(f"[{record.level}] (log queue full) {record.message}", file=sys.stderr, flush=True)

    async def _sender(self) -> None:
        assert self._queue is not None
        while True:
            record = await self._queue.get()
            try:
                stub, md = self._conn.stub()
                await stub.Log(record, metadata=md, timeout=5)
            except Exception as exc:  # the host may be going away: keep the record on stderr
                print(f"[{record.level}] {record.message} (not sent: {exc})", file=sys.stderr, flush=True)

    async def flush(self, timeout: float = 1.0) -> None:
        deadline = time.monotonic() + timeout
        while self._queue is not None and not self._queue.empty() and time.monotonic() < deadline:
            await asyncio.sleep(0.005)


class Events:
    """Publish to and subscribe on the host's event bus (payloads are JSON values)."""

    def __init__(self, conn: HostConnection) -> None:
        self._conn = conn

    async def publish(self, topic: str, payload: Any) -> None:
        stub, md = self._conn.stub()
        event = common_pb2.Event(topic=topic, payload=json.dumps(payload).encode())
        await stub.Publish(event, metadata=md)

    async def subscribe(self, topics: Sequence[str]) -> AsyncIterator[Event]:
        """Yield events on `topics` (exact names or "prefix.*") until cancelled; payloads are
        decoded JSON values (raw bytes when not JSON)."""
        stub, md = self._conn.stub()
        call = stub.Subscribe(host_pb2.SubscribeRequest(topics=list(topics)), metadata=md)
        try:
            async for pb in call:
                try:
                    payload: Any = json.loads(pb.payload) if pb.payload else None
                except ValueError:
                    payload = bytes(pb.payload)
                yield Event(topic=pb.topic, payload=payload, id=pb.id, origin=pb.origin, unix_ms=pb.unix_ms)
        finally:
            call.cancel()


class Counters:
    """Atomic rate-limit counters kept by the host (shared by every plugin process it runs).

    Implements `celgate.sdk.counters.AsyncCounters`, so policy code runs unchanged on it.
    """

    def __init__(self, conn: HostConnection) -> None:
        self._conn = conn

    async def acquire(
        self, limits: Sequence[CounterLimit], *, dry_run: bool = False, force: bool = False
    ) -> AcquireResult:
        request = host_pb2.CounterAcquireRequest(
            limits=[limit_to(x) for x in limits], dry_run=dry_run, force=force
        )
        reply = await self._conn.unary("CounterAcquire", request, host_pb2.CounterAcquireReply)
        return AcquireResult(
            admitted=reply.admitted,
            states=tuple(state_from(s) for s in reply.states),
            retry_after_s=reply.retry_after_ms / 1000,
        )

    async def adjust(self, limits: Sequence[CounterLimit]) -> tuple[CounterState, ...]:
        """Apply each limit's `cost` as a delta (negative refunds)."""
        request = host_pb2.CounterAdjustRequest(limits=[limit_to(x) for x in limits])
        reply = await self._conn.unary("CounterAdjust", request, host_pb2.CounterAdjustReply)
        return tuple(state_from(s) for s in reply.states)


@dataclass(frozen=True)
class StudioObject:
    """A studio object as the host stores it (secrets are never included)."""

    type: str
    id: str
    version: int
    data: dict[str, Any]


@dataclass(frozen=True)
class WriteResult:
    """What happened to an object write: applied, denied (with a reason) or pending approval."""

    status: str  # applied | denied | pending
    object: StudioObject | None = None
    reason: str = ""
    approval_id: str = ""


@dataclass(frozen=True)
class ScheduleInfo:
    id: str
    name: str
    cron: str
    next_due_unix_ms: int
    running: bool


def _object(object_type: str, pb: host_pb2.ObjectReply) -> StudioObject | None:
    if not pb.found:
        return None
    data = json.loads(pb.object_json)
    return StudioObject(object_type, str(data.get("id", "")), pb.version, data)


class Objects:
    """Studio objects (llm, app, tool, datasource, user), scope `objects.<type>.read|write`.

    Writes run the same object hooks and approvals as the REST API, as the actor "plugin:<id>".
    """

    def __init__(self, conn: HostConnection) -> None:
        self._conn = conn

    async def get(self, object_type: str, object_id: str) -> StudioObject | None:
        stub, md = self._conn.stub()
        reply = await stub.ObjectGet(
            host_pb2.ObjectGetRequest(object_type=object_type, object_id=object_id), metadata=md
        )
        return _object(object_type, reply)

    async def list(self, object_type: str, limit: int = 0, after: str = "") -> tuple[list[StudioObject], str]:
        """One page of objects in id order, and the `after` of the next page ("" on the last)."""
        stub, md = self._conn.stub()
        reply = await stub.ObjectList(
            host_pb2.ObjectListRequest(object_type=object_type, limit=limit, after=after), metadata=md
        )
        items = [o for o in (_object(object_type, pb) for pb in reply.items) if o is not None]
        return items, reply.next

    async def _write(self, request: host_pb2.ObjectWriteRequest) -> WriteResult:
        stub, md = self._conn.stub()
        reply = await stub.ObjectWrite(request, metadata=md)
        obj = None
        if reply.object_json:
            data = json.loads(reply.object_json)
            obj = StudioObject(request.object_type, str(data.get("id", "")), reply.version, data)
        return WriteResult(reply.status, obj, reply.reason, reply.approval_id)

    async def create(self, object_type: str, data: dict[str, Any]) -> WriteResult:
        return await self._write(
            host_pb2.ObjectWriteRequest(
                operation="create", object_type=object_type, object_json=json.dumps(data)
            )
        )

    async def update(
        self, object_type: str, object_id: str, data: dict[str, Any], expected_version: int = 0
    ) -> WriteResult:
        """Replace the object; `expected_version` 0 means whatever version is current."""
        return await self._write(
            host_pb2.ObjectWriteRequest(
                operation="update",
                object_type=object_type,
                object_id=object_id,
                object_json=json.dumps(data),
                expected_version=expected_version,
            )
        )

    async def delete(self, object_type: str, object_id: str, expected_version: int = 0) -> WriteResult:
        return await self._write(
            host_pb2.ObjectWriteRequest(
                operation="delete",
                object_type=object_type,
                object_id=object_id,
                expected_version=expected_version,
            )
        )


class Schedules:
    """This plugin's own scheduled tasks (scope `schedules.manage`)."""

    def __init__(self, conn: HostConnection) -> None:
        self._conn = conn

    async def list(self) -> list[ScheduleInfo]:
        stub, md = self._conn.stub()
        reply = await stub.ScheduleList(common_pb2.Empty(), metadata=md)
        return [ScheduleInfo(s.id, s.name, s.cron, s.next_due_unix_ms, s.running) for s in reply.schedules]

    async def trigger(self, schedule_id: str) -> bool:
        """Start a run now (FAILED_PRECONDITION while one is running)."""
        stub, md = self._conn.stub()
        reply = await stub.ScheduleTrigger(
            host_pb2.ScheduleTriggerRequest(schedule_id=schedule_id), metadata=md
        )
        return bool(reply.started)


class Approvals:
    """Approvals (scopes `approvals.read`, `approvals.write`); records are the REST API's JSON.

    A vote is cast as "plugin:<id>" and counts only on approvals routed to that group.
    """

    def __init__(self, conn: HostConnection) -> None:
        self._conn = conn

    async def list(self, state: str = "pending", limit: int = 0) -> list[dict[str, Any]]:
        stub, md = self._conn.stub()
        reply = await stub.ApprovalList(host_pb2.ApprovalListRequest(state=state, limit=limit), metadata=md)
        return [_json_object(x) for x in reply.approvals_json]

    async def get(self, approval_id: str) -> dict[str, Any]:
        stub, md = self._conn.stub()
        reply = await stub.ApprovalGet(host_pb2.ApprovalGetRequest(approval_id=approval_id), metadata=md)
        return _json_object(reply.approval_json)

    async def vote(self, approval_id: str, decision: str, comment: str = "") -> dict[str, Any]:
        """decision: approve | reject."""
        stub, md = self._conn.stub()
        reply = await stub.ApprovalVote(
            host_pb2.ApprovalVoteRequest(approval_id=approval_id, decision=decision, comment=comment),
            metadata=md,
        )
        return _json_object(reply.approval_json)


def _json_object(text: str) -> dict[str, Any]:
    value = json.loads(text)
    return value if isinstance(value, dict) else {}


def limit_to(x: CounterLimit) -> host_pb2.CounterLimit:
    algorithm = _ALGORITHMS.get(x.algorithm)
    if algorithm is None:
        raise ValueError(f"unknown counter algorithm {x.algorithm!r}; expected one of {sorted(_ALGORITHMS)}")
    return host_pb2.CounterLimit(
        key=x.key,
        algorithm=algorithm,
        limit=float(x.limit),
        window_ms=round(x.window_s * 1000),
        cost=float(x.cost),
    )


def state_from(s: host_pb2.CounterState) -> CounterState:
    return CounterState(limit=s.limit, remaining=s.remaining, reset_s=s.reset_ms / 1000)
