"""Running ASGI apps on sockets we bind ourselves, several in one event loop.

uvicorn's `Server.serve()` installs its own SIGINT/SIGTERM handlers; with a gateway, a studio
and perhaps the stand-in upstream in one process, the host owns the signals instead and tells
every server to exit. Binding the socket here lets callers ask for port 0 and learn the port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("celgate.http")


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket (raises OSError with the address in the message)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # asyncio sets TCP_NODELAY only then
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


class _CorkedTransport:
    """Collects the writes of one event-loop step and sends them in one syscall.

    uvicorn writes a response's head and body separately; a plain JSON response then costs
    two `send()`s. Flushing at the end of the step (call_soon) adds no latency."""

    __slots__ = ("_buf", "_loop", "_t")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._t = transport
        self._buf: list[bytes] = []
        self._loop = asyncio.get_running_loop()

    def write(self, data: bytes) -> None:
        if not self._buf:
            self._loop.call_soon(self._flush)
        self._buf.append(data)

    def _flush(self) -> None:
        if self._buf:
            data = self._buf[0] if len(self._buf) == 1 else b"".join(self._buf)
            self._buf.clear()
            if not self._t.is_closing():
                self._t.write(data)

    def close(self) -> None:
        self._flush()
        self._t.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._t, name)


class _CorkedHttpTools(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_CorkedTransport(transport))  # type: ignore[arg-type]


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the host handles signals


class AsgiServer:
    """One uvicorn server (uvloop-friendly, httptools) on a pre-bound socket."""

    def __init__(
        self, app: Any, sock: socket.socket, *, name: str = "http", access_log: bool = False
    ) -> None:
        self.sock = sock
        self.name = name
        config = uvicorn.Config(
            app,
            http=_CorkedHttpTools,
            loop="none",
            lifespan="off",
            access_log=access_log,
            log_level="warning",
            timeout_graceful_shutdown=5,
            server_header=False,
            date_header=False,
        )
        self.server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    @property
    def host(self) -> str:
        return str(self.sock.getsockname()[0])

    @property
    def url(self) -> str:
        host = self.host
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    async def start(self) -> None:
        self._task = asyncio.create_task(self.server.serve(sockets=[self.sock]), name=f"uvicorn-{self.name}")
        while not self.server.started:
            if self._task.done():
                self._task.result()  # re-raise the startup failure
                raise RuntimeError(f"{self.name} server exited during startup")
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            try:
                await self._task
            except Exception:  # a failing server must not stop the rest of the shutdown
                log.exception("%s server failed while stopping", self.name)
        self.sock.close()
