"""The framed-socket fast path for request hooks (the framing, and the plugin side).

The same HookCall/HookReply messages as the gRPC `Hooks` stream, without HTTP/2: each message is
a 4-byte big-endian length followed by the serialized protobuf. Calls are multiplexed by call_id
and handled concurrently; replies go back in completion order. The socket lives next to the
gRPC socket in the plugin's private 0700 folder and is announced in `ManifestReply.hooks_address`.
A host that does not know it simply uses the gRPC stream.

Both ends use a bare `asyncio.Protocol`: a frame is handled in `data_received`, with no reader
task in between, which is what keeps the hop close to a raw socket round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable
from typing import cast

from celgate.sdk.protocol import MAX_MESSAGE_BYTES
from celgate.v1 import plugin_pb2

HookHandler = Callable[[plugin_pb2.HookCall], Awaitable[plugin_pb2.HookReply]]
InlineHandler = Callable[[plugin_pb2.HookCall], "plugin_pb2.HookReply | None"]


def frame(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


class FrameProtocol(asyncio.Protocol):
    """Splits a byte stream into length-prefixed frames.

    `on_frame(payload)` gets each frame; a frame longer than `limit` is skipped without being
    buffered and reported to `on_oversize(size, first_bytes)`; `on_close(exc)` runs once.
    """

    def __init__(
        self,
        on_frame: Callable[[bytes], None],
        on_oversize: Callable[[int, bytes], None],
        on_close: Callable[[Exception | None], None],
        limit: int = MAX_MESSAGE_BYTES,
    ) -> None:
        self.on_frame = on_frame
        self.on_oversize = on_oversize
        self.on_close = on_close
        self.limit = limit
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._skip = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio subclasses

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        if not buf and not self._skip and len(data) > 4:
            # The common case: exactly one whole frame arrived; no copy into the buffer.
            size = int.from_bytes(data[:4], "big")
            if len(data) == size + 4 and size <= self.limit:
                self.on_frame(data[4:])
                return
        buf += data
        while True:
            if self._skip:
                dropped = min(self._skip, len(buf))
                del buf[:dropped]
                self._skip -= dropped
                if self._skip:
                    return
            if len(buf) < 4:
                return
            size = int.from_bytes(buf[:4], "big")
            if size > self.limit:
                head = bytes(buf[4:20])
                del buf[:4]
                self._skip = size
                self.on_oversize(size, head)
                continue
            end = 4 + size
            if len(buf) < end:
                return
            payload = bytes(buf[4:end])
            del buf[:end]
            self.on_frame(payload)

    def connection_lost(self, exc: Exception | None) -> None:
        self.on_close(exc)

    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(len(data).to_bytes(4, "big") + data)


class FastHooksServer:
    """Serves hook calls on a unix socket, one `FrameProtocol` per host connection."""

    def __init__(self, handler: HookHandler, inline: InlineHandler) -> None:
        self._handler = handler
        self._inline = inline
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._transports: list[asyncio.BaseTransport] = []

    async def start(self, path: str) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(self._protocol, path)

    def _protocol(self) -> FrameProtocol:
        loop = asyncio.get_running_loop()
        handler, inline, tasks = self._handler, self._inline, self._tasks
        proto: FrameProtocol

        async def handle(call: plugin_pb2.HookCall) -> None:
            proto.write((await handler(call)).SerializeToString())

        def on_frame(payload: bytes) -> None:
            try:
                call = plugin_pb2.HookCall.FromString(payload)
            except Exception as exc:  # the host broke the protocol: drop the connection
                print(f"fast hooks: undecodable call ({exc}); closing", file=sys.stderr, flush=True)
                if proto.transport is not None:
                    proto.transport.close()
                return
            reply = inline(call)
            if reply is not None:
                proto.write(reply.SerializeToString())
                return
            task = loop.create_task(handle(call))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        def on_oversize(size: int, head: bytes) -> None:
            print(f"fast hooks: a {size}-byte call exceeds the limit; closing", file=sys.stderr, flush=True)
            if proto.transport is not None:
                proto.transport.close()

        proto = FrameProtocol(on_frame, on_oversize, lambda exc: None)
        return proto

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
        for task in list(self._tasks):
            task.cancel()
