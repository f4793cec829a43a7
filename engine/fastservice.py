"""The host side of the Service API fast path: HostService's unary methods on a framed socket.

Wire format and client: `celgate.sdk.fastservice` (docs/protocol.md, "Service API fast path").
A connection starts with a hello carrying the plugin's per-process secret; the host identifies
the plugin from it (`HostService.identify`) or answers UNAUTHENTICATED and closes. Every call
then runs the very servicer method the gRPC server runs, with a stand-in for the gRPC context
whose metadata is the connection's secret: identity (re-checked on every call, so revoking a
secret cuts its connections off too), scopes and argument checks are the gRPC path's own code,
and `context.abort(code, details)` becomes an error reply with that code and details.

Calls on in-process backends (Log; counters with a synchronous store such as the memory
counters; the memory KV) are started inside `data_received` and, as they finish without
suspending, answered there with no task and no extra loop turn; the others (Redis counters,
SQLite KV, the studio methods) run in a task, where `asyncio.timeout` and the like work. A peer
that breaks the framing is disconnected; nothing it sends can raise out of the protocol or take
the host down.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import types
from collections.abc import Callable, Coroutine, Generator
from typing import Any, NoReturn

import grpc
from google.protobuf import message_factory
from google.protobuf.message import Message

from celgate.engine.kv import MemoryKV
from celgate.sdk.fasthooks import FrameProtocol
from celgate.sdk.fastservice import CALL_HEAD, HELLO_PREFIX, encode_reply
from celgate.sdk.protocol import SECRET_METADATA
from celgate.v1 import host_pb2

log = logging.getLogger("celgate.service_api.fast")

MAX_IN_FLIGHT = 1024  # unanswered calls per connection before new ones are refused
_OK = 0


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


class _CallContext:
    """What HostService's methods use of a gRPC servicer context, for one connection."""

    __slots__ = ("_metadata",)

    def __init__(self, secret: str) -> None:
        self._metadata = ((SECRET_METADATA, secret),)

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    async def abort(self, code: grpc.StatusCode, details: str = "") -> NoReturn:
        raise _Abort(code, details)


def unary_methods(service: Any) -> dict[bytes, tuple[type[Message], Callable[..., Any]]]:
    """name -> (request class, bound servicer method) for HostService's unary-unary methods."""
    table: dict[bytes, tuple[type[Message], Callable[..., Any]]] = {}
    for method in host_pb2.DESCRIPTOR.services_by_name["HostService"].methods:
        if method.client_streaming or method.server_streaming:
            continue
        impl = getattr(service, method.name, None)
        if impl is not None:
            table[method.name.encode()] = (message_factory.GetMessageClass(method.input_type), impl)
    return table


def runs_inline(service: Any, method: bytes) -> bool:
    """Whether `method` may start outside a task: its backend is in-process and never needs one."""
    if method == b"Log":
        return True
    if method in (b"CounterAcquire", b"CounterAdjust"):
        return not inspect.iscoroutinefunction(getattr(service.counters, "acquire", None))
    if method.startswith(b"Kv"):
        return isinstance(service.kv, MemoryKV)
    return False


@types.coroutine
def _resume(coro: Coroutine[Any, Any, Any], yielded: Any) -> Generator[Any, Any, Any]:
    """Go on driving a coroutine that was started by hand and suspended, yielding `yielded`."""
    while True:
        try:
            sent = yield yielded
        except BaseException as exc:  # thrown in by the task (cancellation): pass it on
            try:
                yielded = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                yielded = coro.send(sent)
            except StopIteration as stop:
                return stop.value


class FastServiceServer:
    """Serves `service`'s unary methods on a unix socket (see the module docstring)."""

    def __init__(self, service: Any) -> None:
        self.service = service
        self.address = ""
        self.calls = 0  # calls received on the fast path (tests and diagnostics)
        self.connections = 0  # connections that passed the hello
        self._methods = unary_methods(service)
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._transports: set[asyncio.BaseTransport] = set()

    async def start(self, path: str) -> str:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(self._protocol, path)
        with contextlib.suppress(OSError):
            os.chmod(path, 0o600)
        self.address = f"unix:{path}"
        return self.address

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for transport in list(self._transports):
                transport.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None
        for task in list(self._tasks):
            task.cancel()

    # ------------------------------------------------------------ one connection

    def _protocol(self) -> FrameProtocol:
        loop = asyncio.get_running_loop()
        service, methods, tasks, transports = self.service, self._methods, self._tasks, self._transports
        proto: FrameProtocol
        state: dict[str, Any] = {"ctx": None, "in_flight": 0}

        def close(reason: str) -> None:
            log.warning("fast Service API: %s; closing the connection", reason)
            if proto.transport is not None:
                proto.transport.close()

        def reply(call_id: int, code: int, body: bytes) -> None:
            proto.write(encode_reply(call_id, code, body))

        def fail(call_id: int, exc: BaseException) -> None:
            if isinstance(exc, _Abort):
                reply(call_id, exc.code.value[0], exc.details.encode("utf-8", "replace"))
            else:
                log.error("fast Service API: %s failed", call_id, exc_info=exc)
                text = f"Unexpected {type(exc)}: {exc}"
                reply(call_id, grpc.StatusCode.UNKNOWN.value[0], text.encode("utf-8", "replace"))

        def hello(payload: bytes) -> None:
            secret = ""
            if payload.startswith(HELLO_PREFIX):
                with contextlib.suppress(UnicodeDecodeError):
                    secret = payload[len(HELLO_PREFIX) :].decode()
            if not secret or service.identify(secret) is None:
                code = grpc.StatusCode.UNAUTHENTICATED.value[0]
                reply(0, code, b"unknown or missing plugin secret")
                close("a hello with an unknown or missing plugin secret")
                return
            state["ctx"] = _CallContext(secret)
            self.connections += 1
            proto.write(b"\x00")

        async def finish(call_id: int, awaitable: Any) -> None:
            try:
                result = await awaitable
            except BaseException as exc:
                state["in_flight"] -= 1
                if isinstance(exc, asyncio.CancelledError):
                    reply(call_id, grpc.StatusCode.CANCELLED.value[0], b"the host is stopping")
                    raise
                fail(call_id, exc)
                return
            state["in_flight"] -= 1
            reply(call_id, _OK, result.SerializeToString())

        def on_frame(payload: bytes) -> None:
            ctx = state["ctx"]
            if ctx is None:
                hello(payload)
                return
            if len(payload) < CALL_HEAD.size:
                close(f"a {len(payload)}-byte frame is not a call")
                return
            call_id, name_len = CALL_HEAD.unpack_from(payload)
            self.calls += 1
            start = CALL_HEAD.size + name_len
            if len(payload) < start:
                close("a call frame shorter than its method name")
                return
            name = payload[CALL_HEAD.size : start]
            entry = methods.get(name)
            if entry is None:
                reply(call_id, grpc.StatusCode.UNIMPLEMENTED.value[0], b"Method not found!")
                return
            if state["in_flight"] >= MAX_IN_FLIGHT:
                reply(call_id, grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], b"too many calls in flight")
                return
            request_type, impl = entry
            try:
                request = request_type.FromString(payload[start:])
            except Exception:
                reply(call_id, grpc.StatusCode.INTERNAL.value[0], b"Failed to deserialize the request")
                return
            coro = impl(request, ctx)
            if not runs_inline(service, name):
                state["in_flight"] += 1
                task = loop.create_task(finish(call_id, coro))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                return
            try:
                yielded = coro.send(None)
            except StopIteration as stop:
                reply(call_id, _OK, stop.value.SerializeToString())
                return
            except Exception as exc:
                fail(call_id, exc)
                return
            state["in_flight"] += 1
            task = loop.create_task(finish(call_id, _resume(coro, yielded)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        def on_oversize(size: int, head: bytes) -> None:
            close(f"a {size}-byte frame exceeds the limit")

        def on_close(exc: Exception | None) -> None:
            if proto.transport is not None:
                transports.discard(proto.transport)

        proto = FrameProtocol(on_frame, on_oversize, on_close)
        original = proto.connection_made

        def connection_made(transport: asyncio.BaseTransport) -> None:
            original(transport)
            transports.add(transport)

        proto.connection_made = connection_made  # type: ignore[method-assign]
        return proto
