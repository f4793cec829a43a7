"""The framed-socket fast path for the Service API: the wire format and the plugin's client.

The gRPC `HostService` costs a few hundred microseconds per unary call over its unix socket;
the hot methods (counters, KV) are called on every request, so the host also serves its unary
methods on a framed unix socket next to the gRPC one, announced in the `CELGATE_HOST_SERVICE_FAST`
environment variable. Frames are those of `celgate.sdk.fasthooks` (4-byte big-endian length,
then the payload); the messages are HostService's own protobuf requests and replies.

    hello  (plugin -> host, first frame): b"CGFS1 " + the per-process secret (utf-8)
    hello reply (host -> plugin):          status byte 0, or an error reply and the host closes
    call   (plugin -> host): call_id (u32 BE) | method-name length (u8) | method name | request
    reply  (host -> plugin): call_id (u32 BE) | status (u8, a grpc.StatusCode value) | body
                             body = the serialized reply when status is 0 (OK), else utf-8 details

The host derives the plugin from the secret once per connection and checks every call with the
same code as the gRPC path (scopes included); an error status reaches the caller as the same
`grpc.aio.AioRpcError` the gRPC path raises. `FastServiceClient.call` raises `FastUnavailable`
when the fast path cannot be used *before the request was sent* (no socket, refused, closed),
so the caller can fall back to gRPC without the risk of applying a call twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from typing import TypeVar

import grpc
from google.protobuf.message import Message

from celgate.sdk.fasthooks import FrameProtocol
from celgate.sdk.protocol import ENV_HOST_SERVICE_FAST

__all__ = ["ENV_HOST_SERVICE_FAST", "FastServiceClient", "FastUnavailable", "rpc_error"]
HELLO_PREFIX = b"CGFS1 "
CALL_HEAD = struct.Struct(">IB")  # call_id, method-name length
REPLY_HEAD = struct.Struct(">IB")  # call_id, status code
RETRY_AFTER_S = 1.0  # after a failed connect, use gRPC this long before trying the socket again
CONNECT_TIMEOUT_S = 2.0

_CODES: dict[int, grpc.StatusCode] = {code.value[0]: code for code in grpc.StatusCode}

M = TypeVar("M", bound=Message)


class FastUnavailable(Exception):
    """The fast path is not usable and the request was not sent: use the gRPC path."""


def status_code(value: int) -> grpc.StatusCode:
    return _CODES.get(value, grpc.StatusCode.UNKNOWN)


def rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    """The exception the gRPC client raises for a failed call, built for the fast path."""
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


def encode_call(call_id: int, method: bytes, request: bytes) -> bytes:
    return CALL_HEAD.pack(call_id, len(method)) + method + request


def encode_reply(call_id: int, code: int, body: bytes) -> bytes:
    return REPLY_HEAD.pack(call_id, code) + body


def _closing(proto: FrameProtocol) -> bool:
    return proto.transport is None or proto.transport.is_closing()


class _Conn:
    """One authenticated connection to the host's fast socket."""

    def __init__(self) -> None:
        self.proto: FrameProtocol | None = None
        self.ready: asyncio.Future[None] | None = None
        self.pending: dict[int, asyncio.Future[tuple[int, bytes]]] = {}
        self.closed = False


class FastServiceClient:
    """Calls HostService methods over the host's framed socket; one connection, multiplexed."""

    def __init__(self, address: str, secret: str) -> None:
        self.address = address
        self._secret = secret
        self._conn: _Conn | None = None
        self._connecting: asyncio.Future[_Conn] | None = None
        self._next_id = 0
        self._retry_at = 0.0
        self._methods: dict[str, bytes] = {}

    @property
    def usable(self) -> bool:
        """False while a recent failure sends calls to gRPC (and when no address was given)."""
        return bool(self.address) and time.monotonic() >= self._retry_at

    async def call(
        self, method: str, request: Message, reply_type: type[M], timeout: float | None = None
    ) -> M:
        conn = self._conn
        if conn is None or conn.closed or conn.proto is None or _closing(conn.proto):
            conn = await self._connect()
        name = self._methods.get(method)
        if name is None:
            name = self._methods[method] = method.encode()
        self._next_id = call_id = (self._next_id + 1) & 0xFFFFFFFF
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[tuple[int, bytes]] = loop.create_future()
        conn.pending[call_id] = fut
        proto = conn.proto
        assert proto is not None
        try:
            proto.write(encode_call(call_id, name, request.SerializeToString()))
            if timeout is None:
                code, body = await fut
            else:
                try:
                    async with asyncio.timeout(timeout):
                        code, body = await fut
                except TimeoutError:
                    raise rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded") from None
        finally:
            conn.pending.pop(call_id, None)
        if code:
            raise rpc_error(status_code(code), body.decode("utf-8", "replace"))
        try:
            return reply_type.FromString(body)
        except Exception as exc:
            raise rpc_error(grpc.StatusCode.INTERNAL, f"undecodable reply: {exc}") from None

    async def _connect(self) -> _Conn:
        if not self.usable:
            raise FastUnavailable("the fast Service API socket is not usable")
        if self._connecting is None:
            self._connecting = asyncio.get_running_loop().create_future()
            try:
                conn = await self._open()
            except BaseException as exc:
                self._retry_at = time.monotonic() + RETRY_AFTER_S
                waiter, self._connecting = self._connecting, None
                failure = exc if isinstance(exc, FastUnavailable) else FastUnavailable(str(exc))
                waiter.set_exception(failure)
                waiter.exception()  # retrieved: no "never retrieved" warning when nobody else waits
                raise failure from None
            self._conn = conn
            waiter, self._connecting = self._connecting, None
            waiter.set_result(conn)
            return conn
        return await asyncio.shield(self._connecting)

    async def _open(self) -> _Conn:
        if not self.address.startswith("unix:"):
            raise FastUnavailable(f"unsupported fast Service API address {self.address!r}")
        loop = asyncio.get_running_loop()
        conn = _Conn()
        conn.ready = loop.create_future()

        def on_frame(payload: bytes) -> None:
            ready = conn.ready
            if ready is not None and not ready.done():
                if payload[:1] == b"\x00" and len(payload) == 1:
                    ready.set_result(None)
                else:
                    ready.set_exception(FastUnavailable(f"the host refused the fast path: {payload[5:]!r}"))
                return
            if len(payload) < REPLY_HEAD.size:
                return
            call_id, code = REPLY_HEAD.unpack_from(payload)
            fut = conn.pending.get(call_id)
            if fut is not None and not fut.done():
                fut.set_result((code, payload[REPLY_HEAD.size :]))

        def on_oversize(size: int, head: bytes) -> None:
            if proto.transport is not None:
                proto.transport.close()

        def on_close(exc: Exception | None) -> None:
            conn.closed = True
            ready = conn.ready
            if ready is not None and not ready.done():
                ready.set_exception(FastUnavailable(f"the host closed the fast socket ({exc or 'EOF'})"))
            for fut in list(conn.pending.values()):
                if not fut.done():
                    # The request may have been applied: never retried, reported like gRPC would.
                    lost = rpc_error(grpc.StatusCode.UNAVAILABLE, "the fast Service API socket closed")
                    fut.set_exception(lost)

        proto = FrameProtocol(on_frame, on_oversize, on_close)
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                await loop.create_unix_connection(lambda: proto, self.address[5:])
                proto.write(HELLO_PREFIX + self._secret.encode())
                await conn.ready
        except BaseException:
            if proto.transport is not None:
                proto.transport.close()
            raise
        conn.proto = proto
        return conn

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and conn.proto is not None and conn.proto.transport is not None:
            conn.closed = True
            conn.proto.transport.close()
            with contextlib.suppress(Exception):
                await asyncio.sleep(0)
