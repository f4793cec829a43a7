"""The plugin's client for the Service API (HostService): KV, logs, events and counters.

Every call carries the per-process secret in the `celgate-plugin-secret` metadata entry; the
host derives the calling plugin from it. The clients are async (`await ctx.kv.get(...)`); a sync
handler, which runs in a worker thread, calls them through `ctx.run(ctx.kv.get(...))`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc

from celgate.sdk.counters import AcquireResult, CounterLimit, CounterState
from celgate.sdk.protocol import MAX_MESSAGE_BYTES, SECRET_METADATA
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


class HostConnection:
    """One channel to the host's Service API, shared by the KV, log, event and counter clients."""

    def __init__(self, address: str, secret: str, plugin_id: str) -> None:
        self.address = address
        self.plugin_id = plugin_id
        self._metadata = ((SECRET_METADATA, secret),)
        self._channel: grpc.aio.Channel | None = None
        self._stub: host_pb2_grpc.HostServiceStub | None = None

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

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
            self._stub = None


class KV:
    """Key-value storage namespaced to this plugin by the host."""

    def __init__(self, conn: HostConnection) -> None:
        self._conn = conn

    async def get(self, key: str) -> bytes | None:
        stub, md = self._conn.stub()
        reply = await stub.KvGet(host_pb2.KvGetRequest(key=key), metadata=md)
        return bytes(reply.value) if reply.found else None

    async def set(self, key: str, value: bytes | str, ttl: float | None = None) -> bool:
        """Store `value`; `ttl` in seconds (None: no expiry). Returns True when the key was new."""
        stub, md = self._conn.stub()
        data = value.encode() if isinstance(value, str) else value
        ttl_ms = 0 if ttl is None else max(1, int(ttl * 1000))
        reply = await stub.KvSet(host_pb2.KvSetRequest(key=key, value=data, ttl_ms=ttl_ms), metadata=md)
        return bool(reply.created)

    async def delete(self, key: str) -> bool:
        stub, md = self._conn.stub()
        reply = await stub.KvDelete(host_pb2.KvDeleteRequest(key=key), metadata=md)
        return bool(reply.existed)

    async def list(self, prefix: str = "", limit: int = 0, after: str = "") -> tuple[list[str], bool]:
        """Keys starting with `prefix`, sorted, after `after`; returns (keys, more)."""
        stub, md = self._conn.stub()
        reply = await stub.KvList(
            host_pb2.KvListRequest(prefix=prefix, limit=limit, after=after), metadata=md
        )
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
        stub, md = self._conn.stub()
        request = host_pb2.CounterAcquireRequest(
            limits=[limit_to(x) for x in limits], dry_run=dry_run, force=force
        )
        reply = await stub.CounterAcquire(request, metadata=md)
        return AcquireResult(
            admitted=reply.admitted,
            states=tuple(state_from(s) for s in reply.states),
            retry_after_s=reply.retry_after_ms / 1000,
        )

    async def adjust(self, limits: Sequence[CounterLimit]) -> tuple[CounterState, ...]:
        """Apply each limit's `cost` as a delta (negative refunds)."""
        stub, md = self._conn.stub()
        reply = await stub.CounterAdjust(
            host_pb2.CounterAdjustRequest(limits=[limit_to(x) for x in limits]), metadata=md
        )
        return tuple(state_from(s) for s in reply.states)


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
