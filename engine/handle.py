"""`PluginHandle`: what the gateway and the studio call a plugin through.

A handle is stable for the life of the host; underneath, the supervisor swaps `Connection`s
when the plugin restarts or reloads. Request hooks travel on one long-lived `Hooks` stream per
connection, multiplexed by call_id; every failure becomes a `HookError` with a kind the caller
maps onto its failure policy, and nothing a plugin sends can crash the host.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

from celgate.sdk.fasthooks import FrameProtocol
from celgate.v1 import plugin_pb2, plugin_pb2_grpc

log = logging.getLogger("celgate.plugin")

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.enable_retries", 0),
    ("grpc.keepalive_time_ms", 30_000),
]

# The reply each hook must get back.
EXPECTED_REPLY = {
    "pre_auth": "request",
    "post_auth": "request",
    "auth": "auth",
    "response_headers": "response_headers",
    "response_chunk": "response_chunk",
    "response_end": "response_end",
}

_HOOK_CAPABILITY = {
    "pre_auth": "pre_auth",
    "auth": "auth",
    "post_auth": "post_auth",
    "response_headers": "response",
    "response_chunk": "response",
    "response_end": "response",
}

HOOK_KINDS = ("deadline", "crash", "error", "unavailable", "invalid")

FAILURE_POLICIES = ("fail-closed", "fail-open")
RUNTIMES = ("gateway", "studio")
PHASES = (
    "pre_auth",
    "auth",
    "post_auth",
    "response",
    "data_collection",
    "custom_endpoints",
    "object_hooks",
    "agent",
    "ui",
    "scheduled_tasks",
    "events",
)
_PLUGIN_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@dataclass
class PluginSpec:
    """One configured plugin: where it comes from and how the host treats its failures."""

    id: str
    ref: str  # file://PATH | grpc://HOST:PORT
    config: dict[str, Any] = field(default_factory=dict)
    runtime: str = "gateway"
    failure_policy: str = "fail-closed"
    deadline_ms: int = 1000
    deadlines: dict[str, int] = field(default_factory=dict)  # phase -> ms, overrides deadline_ms
    env: dict[str, str] = field(default_factory=dict)
    base_dir: str = ""  # relative file:// paths resolve here ("" = the current directory)

    def __post_init__(self) -> None:
        if not _PLUGIN_ID.match(self.id):
            raise ValueError(
                f"plugin id {self.id!r}: use 1-64 of a-z 0-9 . _ - (starting with a letter or digit)"
            )
        if self.runtime not in RUNTIMES:
            raise ValueError(f"plugin {self.id}: runtime must be one of {RUNTIMES}, not {self.runtime!r}")
        if self.failure_policy not in FAILURE_POLICIES:
            raise ValueError(f"plugin {self.id}: failure_policy must be one of {FAILURE_POLICIES}")
        if self.deadline_ms <= 0 or any(v <= 0 for v in self.deadlines.values()):
            raise ValueError(f"plugin {self.id}: deadlines must be positive")
        unknown = sorted(set(self.deadlines) - set(PHASES))
        if unknown:
            raise ValueError(f"plugin {self.id}: unknown phases in deadlines: {unknown}")

    @property
    def fail_open(self) -> bool:
        return self.failure_policy == "fail-open"

    def timeout(self, phase: str) -> float:
        """The deadline for `phase`, in seconds."""
        return self.deadlines.get(phase, self.deadline_ms) / 1000


class HookError(Exception):
    """A plugin call that produced no usable answer. `kind` is one of HOOK_KINDS."""

    def __init__(self, kind: str, plugin_id: str, message: str = "") -> None:
        super().__init__(f"plugin {plugin_id}: {kind}" + (f": {message}" if message else ""))
        self.kind = kind
        self.plugin_id = plugin_id
        self.message = message


_BACKLOG_LIMIT = 4 * MAX_MESSAGE_BYTES  # unsent hook calls before new ones are refused


def _expire(fut: asyncio.Future[plugin_pb2.HookReply], plugin_id: str, timeout: float) -> None:
    if not fut.done():
        fut.set_exception(HookError("deadline", plugin_id, f"no reply within {timeout * 1000:g} ms"))


class _Deadlines:
    """Hook deadlines in 2 ms buckets: one timer per bucket instead of one per call (a timer
    per call costs more than the rest of the host's per-call work). A deadline fires up to
    2 ms late, never early. Buckets hold call ids, not futures, so a finished call's reply is
    not kept alive until its deadline would have passed."""

    TICK = 0.002

    def __init__(self, pending: dict[int, asyncio.Future[plugin_pb2.HookReply]], plugin_id: str) -> None:
        self._pending = pending
        self._plugin_id = plugin_id
        self._buckets: dict[int, list[tuple[int, float]]] = {}

    def add(self, loop: asyncio.AbstractEventLoop, call_id: int, timeout: float) -> None:
        slot = math.ceil((loop.time() + timeout) / self.TICK)
        bucket = self._buckets.get(slot)
        if bucket is None:
            bucket = self._buckets[slot] = []
            loop.call_at(slot * self.TICK, self._fire, slot)
        bucket.append((call_id, timeout))

    def _fire(self, slot: int) -> None:
        pending = self._pending
        for call_id, timeout in self._buckets.pop(slot, ()):
            fut = pending.get(call_id)
            if fut is not None:
                _expire(fut, self._plugin_id, timeout)


def _leading_call_id(data: bytes) -> int | None:
    """call_id is field 1 (a varint), serialized first: read it from a message's first bytes."""
    if not data or data[0] != 0x08:
        return None
    value, shift = 0, 0
    for byte in data[1:11]:
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value
        shift += 7
    return None


def _status_kind(code: grpc.StatusCode | None) -> str:
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return "deadline"
    if code in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INTERNAL):
        return "invalid"  # oversized or undecodable message
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
        return "crash"
    return "error"


def _cancelled(plugin_id: str) -> BaseException:
    """What a cancelled gRPC call becomes. grpc.aio raises CancelledError both when our own task
    is cancelled and when the call's channel is closed under it (a retiring instance after a
    drain timeout, a crash): only the first is a cancellation; the second is the plugin
    becoming unavailable, which the caller's failure policy handles like any other."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        return asyncio.CancelledError()
    return HookError("unavailable", plugin_id, "the call was cut off: the plugin instance went away")


class Connection:
    """One gRPC channel to one plugin instance, with its Hooks stream."""

    def __init__(self, plugin_id: str, target: str) -> None:
        self.plugin_id = plugin_id
        self.target = target
        self.channel = grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
        self.stub = plugin_pb2_grpc.PluginServiceStub(self.channel)  # type: ignore[no-untyped-call]
        self.health = health_pb2_grpc.HealthStub(self.channel)
        self.alive = True
        self._stream: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[plugin_pb2.HookReply]] = {}
        self._write_lock = asyncio.Lock()
        self._closed = False
        self._fast: FrameProtocol | None = None
        self._deadlines = _Deadlines(self._pending, plugin_id)
        self._rpcs = 0  # unary and server-streaming calls under way (object hooks, endpoints, ...)

    @property
    def in_flight(self) -> int:
        return len(self._pending) + self._rpcs

    @contextlib.contextmanager
    def rpc(self) -> Iterator[None]:
        """Count a unary or streaming call as in flight, so a reload drains it too."""
        self._rpcs += 1
        try:
            yield
        finally:
            self._rpcs -= 1

    async def check_health(self, timeout: float) -> bool:
        try:
            reply = await self.health.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.aio.AioRpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    async def wait_ready(self, timeout: float) -> None:
        await asyncio.wait_for(self.channel.channel_ready(), timeout)

    @property
    def transport(self) -> str:
        """How hook calls travel: "socket" (framed fast path), "stream" (gRPC Hooks) or ""."""
        return "socket" if self._fast is not None else "stream" if self._stream is not None else ""

    async def open_hooks(self, fast_address: str = "") -> None:
        """Open the framed-socket fast path when the plugin offers one, else the gRPC Hooks stream."""
        if self._closed:
            return
        if fast_address.startswith("unix:"):
            loop = asyncio.get_running_loop()
            try:
                _, proto = await loop.create_unix_connection(self._fast_protocol, fast_address[5:])
            except OSError as exc:
                log.warning(
                    "plugin %s: fast hooks socket unusable (%s); using the gRPC stream", self.plugin_id, exc
                )
            else:
                self._fast = proto
                return
        self._open_stream()

    def _open_stream(self) -> None:
        self._stream = self.stub.Hooks()
        self._reader = asyncio.get_running_loop().create_task(self._read(self._stream))

    def _fast_protocol(self) -> FrameProtocol:
        pending = self._pending
        proto: FrameProtocol

        def on_frame(payload: bytes) -> None:
            try:
                reply = plugin_pb2.HookReply.FromString(payload)
            except Exception as exc:  # undecodable: fail the call it names, if it names one
                self._fail_one(payload, f"undecodable reply: {type(exc).__name__}: {exc}")
                return
            fut = pending.get(reply.call_id)
            if fut is not None and not fut.done():
                fut.set_result(reply)

        def on_oversize(size: int, head: bytes) -> None:
            self._fail_one(head, f"a {size}-byte reply exceeds the {MAX_MESSAGE_BYTES}-byte limit")

        def on_close(exc: Exception | None) -> None:
            self.fail_pending("crash", f"the hooks socket closed ({exc or 'EOF'})")
            if self._fast is proto and not self._closed:
                self._fast = None
                self.alive = False  # the supervisor notices and restarts

        proto = FrameProtocol(on_frame, on_oversize, on_close)
        return proto

    def _fail_one(self, head: bytes, message: str) -> None:
        call_id = _leading_call_id(head)
        targets = [self._pending.get(call_id)] if call_id is not None else list(self._pending.values())
        for fut in targets:
            if fut is not None and not fut.done():
                fut.set_exception(HookError("invalid", self.plugin_id, message))

    async def _read(self, stream: Any) -> None:
        kind, message = "crash", "the hooks stream ended"
        try:
            while True:
                reply = await stream.read()
                if reply is grpc.aio.EOF:
                    break
                fut = self._pending.get(reply.call_id)
                if fut is not None and not fut.done():
                    fut.set_result(reply)
        except grpc.aio.AioRpcError as exc:
            kind, message = _status_kind(exc.code()), f"{exc.code().name}: {exc.details()}"
        except asyncio.CancelledError:
            kind, message = "unavailable", "the connection was closed"
            raise
        except Exception as exc:  # a reply that cannot be decoded
            kind, message = "invalid", f"{type(exc).__name__}: {exc}"
        finally:
            self.fail_pending(kind, message)
            if self._stream is stream and not self._closed:
                if kind == "invalid":
                    # The plugin is up but sent something unusable: fail those calls, keep going.
                    log.warning("plugin %s: %s; reopening its hooks stream", self.plugin_id, message)
                    with contextlib.suppress(Exception):
                        self._open_stream()
                else:
                    self._stream = None
                    self.alive = False  # the supervisor notices and restarts or reconnects

    def fail_pending(self, kind: str, message: str) -> None:
        for fut in list(self._pending.values()):
            if not fut.done():
                fut.set_exception(HookError(kind, self.plugin_id, message))

    async def hook(self, call: plugin_pb2.HookCall, call_id: int, timeout: float) -> plugin_pb2.HookReply:
        if self._fast is not None and self.alive:
            return await self._hook_fast(self._fast, call, call_id, timeout)
        stream = self._stream
        if stream is None or not self.alive:
            raise HookError("unavailable", self.plugin_id, "no hooks stream")
        # A private copy: the caller may hand the same message to several plugins at once, and
        # the stream serializes it only after the write lock (the fast path serializes at once).
        own = plugin_pb2.HookCall()
        own.CopyFrom(call)
        call = own
        call.call_id = call_id
        call.deadline_ms = max(1, int(timeout * 1000))
        fut: asyncio.Future[plugin_pb2.HookReply] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = fut
        try:
            async with asyncio.timeout(timeout):
                async with self._write_lock:
                    await stream.write(call)
                return await fut
        except TimeoutError:
            raise HookError("deadline", self.plugin_id, f"no reply within {timeout * 1000:g} ms") from None
        except grpc.aio.AioRpcError as exc:
            raise HookError(
                _status_kind(exc.code()), self.plugin_id, f"{exc.code().name}: {exc.details()}"
            ) from None
        except (grpc.aio.UsageError, RuntimeError, ValueError) as exc:
            raise HookError("crash", self.plugin_id, str(exc)) from None
        finally:
            self._pending.pop(call_id, None)

    async def _hook_fast(
        self, proto: FrameProtocol, call: plugin_pb2.HookCall, call_id: int, timeout: float
    ) -> plugin_pb2.HookReply:
        call.call_id = call_id
        call.deadline_ms = max(1, int(timeout * 1000))
        data = call.SerializeToString()
        if len(data) > MAX_MESSAGE_BYTES:
            raise ValueError(f"a {len(data)}-byte hook call exceeds the {MAX_MESSAGE_BYTES}-byte limit")
        transport = proto.transport
        if transport is not None and transport.get_write_buffer_size() > _BACKLOG_LIMIT:
            raise HookError("unavailable", self.plugin_id, "the plugin is not reading its hook calls")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[plugin_pb2.HookReply] = loop.create_future()
        self._pending[call_id] = fut
        self._deadlines.add(loop, call_id, timeout)
        try:
            proto.write(data)
            return await fut
        finally:
            self._pending.pop(call_id, None)
            if not fut.done():  # the caller was cancelled: nothing will read this future
                fut.cancel()

    async def drain(self, timeout: float) -> None:
        """Wait until no call is in flight, hooks and other RPCs alike (bounded)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self._pending or self._rpcs:
                    await asyncio.sleep(0.01)

    async def close(self) -> None:
        self._closed = True
        self.alive = False
        self.fail_pending("unavailable", "the connection was closed")
        if self._stream is not None:
            with contextlib.suppress(Exception):
                self._stream.cancel()
        if self._fast is not None and self._fast.transport is not None:
            self._fast.transport.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        await self.channel.close()


class PluginHandle:
    """A plugin as the gateway and studio see it; stable across restarts and reloads."""

    def __init__(self, spec: PluginSpec) -> None:
        self.plugin_id = spec.id
        self.spec = spec
        self.manifest: dict[str, Any] = {}
        self.capabilities: frozenset[str] = frozenset()
        self.response_chunks = False
        self.subscriptions: list[str] = []
        self.config_schema: dict[str, Any] | None = None
        self._routes: list[plugin_pb2.EndpointRoute] = []
        self._conn: Connection | None = None
        self._ids = itertools.count(1)
        self.pid: int | None = None
        self.restarts = 0

    @property
    def healthy(self) -> bool:
        conn = self._conn
        return conn is not None and conn.alive

    @property
    def connection(self) -> Connection | None:
        return self._conn

    def _swap(self, conn: Connection | None) -> Connection | None:
        old, self._conn = self._conn, conn
        return old

    def _live(self) -> Connection:
        conn = self._conn
        if conn is None or not conn.alive:
            raise HookError("unavailable", self.plugin_id, "the plugin is down or restarting")
        return conn

    async def hook(self, call: plugin_pb2.HookCall, timeout: float) -> plugin_pb2.HookReply:
        kind = call.WhichOneof("hook")
        if kind is None:
            raise ValueError("HookCall has no hook set")
        capability = _HOOK_CAPABILITY[kind]
        if capability not in self.capabilities and self.capabilities:
            raise HookError("error", self.plugin_id, f"the plugin does not implement {capability}")
        conn = self._live()
        reply = await conn.hook(call, next(self._ids), timeout)
        if reply.error:
            raise HookError("error", self.plugin_id, reply.error)
        got = reply.WhichOneof("reply")
        if got != EXPECTED_REPLY[kind]:
            raise HookError("invalid", self.plugin_id, f"answered {got or 'nothing'} to a {kind} call")
        problem = _check_reply(reply, got)
        if problem:
            raise HookError("invalid", self.plugin_id, problem)
        return reply

    async def collect(self, batch: plugin_pb2.DataBatch, timeout: float) -> plugin_pb2.DataAck:
        ack = await self.unary("CollectData", batch, timeout)
        assert isinstance(ack, plugin_pb2.DataAck)
        if ack.error:
            raise HookError("error", self.plugin_id, ack.error)
        return ack

    async def routes(self) -> list[plugin_pb2.EndpointRoute]:
        return list(self._routes)

    async def endpoint(
        self, req: plugin_pb2.EndpointRequest, timeout: float
    ) -> AsyncIterator[plugin_pb2.EndpointChunk]:
        conn = self._live()
        call = conn.stub.HandleEndpoint(req, timeout=timeout)
        try:
            with conn.rpc():
                async for chunk in call:
                    yield chunk
        except grpc.aio.AioRpcError as exc:
            raise HookError(
                _status_kind(exc.code()), self.plugin_id, f"{exc.code().name}: {exc.details()}"
            ) from None
        except asyncio.CancelledError:
            raise _cancelled(self.plugin_id) from None
        finally:
            call.cancel()

    async def unary(self, method: str, request: Message, timeout: float) -> Message:
        conn = self._live()
        rpc = getattr(conn.stub, method, None)
        if rpc is None:
            raise ValueError(f"PluginService has no method {method!r}")
        try:
            with conn.rpc():
                reply: Message = await rpc(request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise HookError(
                _status_kind(exc.code()), self.plugin_id, f"{exc.code().name}: {exc.details()}"
            ) from None
        except asyncio.CancelledError:
            raise _cancelled(self.plugin_id) from None
        return reply

    async def stream(self, method: str, request: Message, timeout: float) -> AsyncIterator[Message]:
        """Server-streaming calls other than endpoints (HandleAgentMessage)."""
        conn = self._live()
        call = getattr(conn.stub, method)(request, timeout=timeout)
        try:
            with conn.rpc():
                async for item in call:
                    yield item
        except asyncio.CancelledError:
            raise _cancelled(self.plugin_id) from None
        except grpc.aio.AioRpcError as exc:
            raise HookError(
                _status_kind(exc.code()), self.plugin_id, f"{exc.code().name}: {exc.details()}"
            ) from None
        finally:
            call.cancel()


def _valid_status(status: int) -> bool:
    return 100 <= status <= 599


def _check_reply(reply: plugin_pb2.HookReply, got: str) -> str:
    """Semantic checks the wire format cannot express; "" when the reply is usable."""
    if got == "request":
        verdict = reply.request
        which = verdict.WhichOneof("verdict")
        if which is None:
            return "a request verdict with neither proceed, changes nor reply"
        if which == "reply" and not _valid_status(verdict.reply.status):
            return f"reply status {verdict.reply.status} is not an HTTP status"
    elif got == "auth":
        which = reply.auth.WhichOneof("verdict")
        if which is None:
            return "an auth verdict with neither identity nor reject"
        if which == "reject" and not _valid_status(reply.auth.reject.status):
            return f"reject status {reply.auth.reject.status} is not an HTTP status"
    elif got == "response_headers" and (
        reply.response_headers.modified and not _valid_status(reply.response_headers.status)
    ):
        return f"response status {reply.response_headers.status} is not an HTTP status"
    return ""
