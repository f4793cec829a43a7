"""engine.httpclient against a raw socket server that answers exactly what each test needs."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from celgate.engine import httpclient

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


class RawServer:
    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[bytes] = []
        self.handler: Handler | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        n = self.connections
        try:
            assert self.handler is not None
            await self.handler(reader, writer, n)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        body = await reader.readexactly(length) if length else b""
        self.requests.append(head + body)
        return head + body


@pytest.fixture
async def server() -> AsyncIterator[tuple[RawServer, str]]:
    rs = RawServer()
    srv = await asyncio.start_server(rs._serve, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    yield rs, f"http://127.0.0.1:{port}"
    srv.close()
    await srv.wait_closed()


OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


async def req(pool: httpclient.Pool, url: str, **kw: float) -> tuple[int, bytes]:
    r = await pool.request(
        "POST",
        url + "/v1/x?a=1",
        [("x-h", "v")],
        b"body",
        connect_timeout=kw.get("connect", 2),
        read_timeout=kw.get("read", 2),
    )
    return r.status, await r.read()


async def test_keep_alive_connection_is_reused(server: tuple[RawServer, str]) -> None:
    rs, url = server

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        while True:
            await rs.read_request(reader)
            writer.write(OK)

    rs.handler = handler
    pool = httpclient.Pool()
    for _ in range(3):
        assert await req(pool, url) == (200, b"ok")
    assert rs.connections == 1
    assert rs.requests[0].startswith(b"POST /v1/x?a=1 HTTP/1.1\r\nhost: 127.0.0.1:")
    assert b"content-length: 4\r\n" in rs.requests[0] and rs.requests[0].endswith(b"\r\n\r\nbody")
    pool.close()


async def test_stale_keep_alive_connection_is_retried_once_on_a_fresh_one(
    server: tuple[RawServer, str],
) -> None:
    rs, url = server

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await rs.read_request(reader)
        writer.write(OK)
        await writer.drain()
        # then close without saying so: the client's pooled connection is stale

    rs.handler = handler
    pool = httpclient.Pool()
    assert await req(pool, url) == (200, b"ok")
    await asyncio.sleep(0)  # let the close arrive or not: both must work
    assert await req(pool, url) == (200, b"ok")
    assert rs.connections == 2
    pool.close()


async def test_chunked_and_close_delimited_bodies(server: tuple[RawServer, str]) -> None:
    rs, url = server

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await rs.read_request(reader)
        if n == 1:
            writer.write(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
            )
            await writer.drain()
            await rs.read_request(reader)
            writer.write(OK)
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end")
            await writer.drain()

    rs.handler = handler
    pool = httpclient.Pool()
    assert await req(pool, url) == (200, b"abcde")
    assert await req(pool, url) == (200, b"ok")  # same connection after a chunked body
    pool.close()
    pool = httpclient.Pool()
    assert await req(pool, url) == (200, b"until the end")
    pool.close()


async def test_read_timeout_refused_and_garbage(server: tuple[RawServer, str]) -> None:
    rs, url = server

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await rs.read_request(reader)
        if n == 1:
            await asyncio.sleep(5)
        else:
            writer.write(b"SPDY/9 what\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(1)

    rs.handler = handler
    pool = httpclient.Pool()
    with pytest.raises(httpclient.ReadTimeout):
        await req(pool, url, read=0.1)
    with pytest.raises(httpclient.ProtocolError):
        await req(pool, url)
    with pytest.raises(httpclient.ConnectError):
        await req(pool, "http://127.0.0.1:9")
    pool.close()


async def test_header_values_cannot_split_the_request(server: tuple[RawServer, str]) -> None:
    rs, url = server

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await rs.read_request(reader)
        writer.write(OK)

    rs.handler = handler
    pool = httpclient.Pool()
    r = await pool.request(
        "GET",
        url + "/",
        [("x-a", "1\r\nx-injected: yes"), ("x-b", "2")],
        b"",
        connect_timeout=2,
        read_timeout=2,
    )
    await r.read()
    assert b"x-injected" not in rs.requests[0] and b"x-b: 2\r\n" in rs.requests[0]
    pool.close()


async def test_large_body_streams_with_backpressure(server: tuple[RawServer, str]) -> None:
    rs, url = server
    size = 3 * 1024 * 1024

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await rs.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size)
        for _ in range(size // 65536):
            writer.write(b"x" * 65536)
            await writer.drain()

    rs.handler = handler
    pool = httpclient.Pool()
    r = await pool.request("GET", url + "/", [], b"", connect_timeout=2, read_timeout=5)
    total = 0
    async for chunk in r.chunks():
        total += len(chunk)
        await asyncio.sleep(0)  # a slow consumer
    assert total == size
    pool.close()


async def test_tls_upstream(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(OK)
        await writer.drain()
        writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    port = srv.sockets[0].getsockname()[1]
    try:
        trusting = httpclient.Pool(ssl_context=ssl.create_default_context(cafile=str(cert)))
        r = await trusting.request(
            "GET", f"https://localhost:{port}/", [], b"", connect_timeout=5, read_timeout=5
        )
        assert (r.status, await r.read()) == (200, b"ok")
        trusting.close()
        default = httpclient.Pool()  # the system trust store does not know this certificate
        with pytest.raises(httpclient.ConnectError):
            await default.request(
                "GET", f"https://localhost:{port}/", [], b"", connect_timeout=5, read_timeout=5
            )
        default.close()
    finally:
        srv.close()
        await srv.wait_closed()
