"""A minimal pooled HTTP/1.1 client on asyncio protocols and httptools' response parser.

The gateway's upstream hop is on every request, so it is the one place where a general
client's per-request Python work shows: measured in `benchmarks/gateway.py` against aiohttp,
a pooled httpcore connection and httpx2, this client costs about half of aiohttp's time per
request. It does only what the gateway needs: one request at a time per connection, keep-alive
pooling per (scheme, host, port), request head and body in one write, response bodies
delivered as they arrive (chunked decoding by httptools) with backpressure, TLS through the
standard `ssl` module, connect and read timeouts, and one retry on a fresh connection when a
reused keep-alive connection turns out to be closed before any response byte came back.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import AsyncIterator, Iterable
from typing import cast
from urllib.parse import urlsplit

import httptools

_HIGH_WATER = 256 * 1024  # buffered body bytes before the socket is paused


class ConnectError(Exception):
    """The connection could not be made (refused, unreachable, DNS, TLS)."""


class ReadTimeout(Exception):
    """No response byte arrived within the read timeout."""


class ProtocolError(Exception):
    """The connection broke or the upstream sent something that is not HTTP/1.1."""


class _Connection(asyncio.Protocol):
    """One upstream connection and the response in progress on it."""

    def __init__(self, key: tuple[str, str, int]) -> None:
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False
        self._parser = httptools.HttpResponseParser(self)
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_done = False
        self.complete = False
        self.keep_alive = True
        self.until_close = False
        self.head_only = False
        self.got_bytes = False
        self.error: BaseException | None = None
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.paused = False
        self.waiter: asyncio.Future[None] | None = None

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ProtocolError(f"invalid HTTP response: {exc}"))
            self.close()
            return
        self._wake()

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.until_close and self.head_done and exc is None:
            self.complete = True  # a body delimited by the end of the connection
        if not self.complete:
            self._fail(ProtocolError("the upstream closed the connection" + (f" ({exc})" if exc else "")))
        self._wake()

    # ------------------------------------------------------------------ httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        self.keep_alive = self._parser.should_keep_alive()
        self.head_done = True
        framed = any(n.lower() in (b"content-length", b"transfer-encoding") for n, _ in self.headers)
        self.until_close = not framed and self.status >= 200 and self.status not in (204, 304)
        if self.head_only:
            self.complete = True
            self.keep_alive = False  # the parser would wait for a body that never comes

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        self.complete = True

    # ------------------------------------------------------------------ helpers

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc

    def _wake(self) -> None:
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def wait(self, timeout: float) -> None:
        """Wait for the next parser progress (or failure), at most `timeout` seconds."""
        loop = asyncio.get_running_loop()
        self.waiter = w = loop.create_future()
        handle = loop.call_later(timeout, _expire, w)
        try:
            await w
        finally:
            handle.cancel()
            self.waiter = None

    def take(self) -> bytes:
        data = self.chunks.popleft()
        self.buffered -= len(data)
        if self.paused and self.buffered <= _HIGH_WATER // 4 and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return data

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _expire(w: asyncio.Future[None]) -> None:
    if not w.done():
        w.set_exception(ReadTimeout())


class Response:
    """Status and raw headers of a response; the body is read with `chunks()` or `read()`."""

    def __init__(self, conn: _Connection, pool: Pool, read_timeout: float) -> None:
        self._conn = conn
        self._pool = pool
        self._timeout = read_timeout
        self.status = conn.status
        self.raw_headers = conn.headers
        self._released = False

    async def chunks(self) -> AsyncIterator[bytes]:
        conn = self._conn
        try:
            while True:
                while conn.chunks:
                    yield conn.take()
                if conn.complete:
                    break
                if conn.error is not None:
                    raise conn.error
                await conn.wait(self._timeout)
        except BaseException:
            self.close()
            raise
        self.release()

    async def read(self) -> bytes:
        return b"".join([c async for c in self.chunks()])

    def release(self) -> None:
        """Give the connection back to the pool (if the response is complete), else close it."""
        if self._released:
            return
        self._released = True
        conn = self._conn
        if conn.complete and conn.keep_alive and not conn.closed and conn.error is None:
            self._pool.put(conn)
        else:
            conn.close()

    def close(self) -> None:
        if not self._released:
            self._released = True
            self._conn.close()


class Pool:
    """Keep-alive connections per (scheme, host, port)."""

    def __init__(self, *, max_idle_per_host: int = 256, ssl_context: ssl.SSLContext | None = None) -> None:
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._max_idle = max_idle_per_host
        self._ssl = ssl_context  # None: the system's default trust store, made on first use

    def put(self, conn: _Connection) -> None:
        idle = self._idle.setdefault(conn.key, [])
        if len(idle) >= self._max_idle:
            conn.close()
            return
        conn._reset()
        idle.append(conn)

    async def _connect(self, key: tuple[str, str, int], timeout: float) -> _Connection:
        scheme, host, port = key
        loop = asyncio.get_running_loop()
        ctx: ssl.SSLContext | None = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            ctx = self._ssl
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(key), host, port, ssl=ctx, server_hostname=host if ctx else None
                )
        except TimeoutError:
            raise
        except (OSError, ssl.SSLError) as exc:
            raise ConnectError(str(exc) or type(exc).__name__) from None
        return conn

    def _take_idle(self, key: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if not conn.closed and conn.transport is not None and not conn.transport.is_closing():
                conn.reused = True
                return conn
        return None

    async def request(
        self,
        method: str,
        url: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        *,
        connect_timeout: float,
        read_timeout: float,
    ) -> Response:
        """Send a request and wait for the response head. Raises ConnectError, TimeoutError
        (connect), ReadTimeout, ProtocolError."""
        parts = urlsplit(url)
        scheme = parts.scheme
        host = parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
        key = (scheme, host, port)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        host_header = parts.netloc.rpartition("@")[2]
        head = [f"{method} {target} HTTP/1.1\r\nhost: {host_header}\r\ncontent-length: {len(body)}\r\n"]
        for name, value in headers:
            if "\r" in name or "\n" in name or "\r" in value or "\n" in value or ":" in name:
                continue  # never let a header value split the request
            head.append(f"{name}: {value}\r\n")
        head.append("\r\n")
        payload = "".join(head).encode("latin-1", "replace") + body
        for attempt in (0, 1):
            conn = self._take_idle(key)
            if conn is None:
                conn = await self._connect(key, connect_timeout)
            assert conn.transport is not None
            conn.head_only = method == "HEAD"
            conn.transport.write(payload)
            try:
                while not conn.head_done:
                    if conn.error is not None:
                        raise conn.error
                    await conn.wait(read_timeout)
            except ProtocolError:
                conn.close()
                if attempt == 0 and conn.reused and not conn.got_bytes:
                    continue  # a stale keep-alive connection: once more on a fresh one
                raise
            except BaseException:
                conn.close()
                raise
            return Response(conn, self, read_timeout)
        raise AssertionError("unreachable")

    def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
