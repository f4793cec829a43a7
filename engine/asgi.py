"""Raw ASGI helpers shared by the gateway's endpoints: body reading, replies, safe headers.

The gateway's endpoints are plain ASGI callables (Starlette routes them, but builds no Request
or Response on the hot path); `AsgiEndpoint` wraps one so that an unexpected error becomes a
clean 500 in the OpenAI error shape instead of a traceback on the wire.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from celgate.engine.pipeline import error_json
from celgate.v1 import plugin_pb2

log = logging.getLogger("celgate.gateway")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class BodyTooLarge(Exception):
    """The request body is larger than the configured limit (413)."""


def request_id(value: str) -> str:
    """The client's x-request-id when it is sane (printable ASCII, <= 128 chars), else a new one."""
    if value and len(value) <= 128 and value.isascii() and value.isprintable():
        return value
    return uuid.uuid4().hex


# What HTTP/1.1 (and uvicorn) refuse in header names and values.
_BAD_NAME = re.compile(r'[\x00-\x1f\x7f()<>@,;:\[\]={} \t\\"]')
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def encode_headers(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """Headers for the ASGI server; ones a plugin made invalid (control characters, separators
    in names, non-latin-1) are dropped and logged rather than failing the response."""
    out: list[tuple[bytes, bytes]] = []
    for k, v in headers:
        if not k or _BAD_NAME.search(k) or _BAD_VALUE.search(v):
            log.warning("dropped an invalid response header %r", k)
            continue
        try:
            out.append((k.encode("latin-1"), v.encode("latin-1")))
        except UnicodeEncodeError:
            log.warning("dropped a non-latin-1 response header %r", k)
    return out


async def read_body(receive: Receive, limit: int, declared: str) -> bytes:
    """The whole request body; BodyTooLarge past `limit` (checked on Content-Length first)."""
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    parts: list[bytes] = []
    size = 0
    more = True
    while more:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            break
        chunk = msg.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        parts.append(chunk)
        more = msg.get("more_body", False)
    return parts[0] if len(parts) == 1 else b"".join(parts)


async def send_reply(send: Send, reply: plugin_pb2.Reply, extra: list[tuple[str, str]]) -> None:
    """Send a whole Reply (status, headers plus `extra`, body) with a correct Content-Length."""
    headers = [
        (h.name, h.value)
        for h in reply.headers
        if h.name.lower() not in ("content-length", "transfer-encoding")
    ]
    headers += extra
    headers.append(("content-length", str(len(reply.body))))
    await send(
        {"type": "http.response.start", "status": reply.status or 200, "headers": encode_headers(headers)}
    )
    await send({"type": "http.response.body", "body": reply.body})


class AsgiEndpoint:
    """An ASGI endpoint for Starlette's router that turns unexpected errors into a clean 500."""

    def __init__(self, handler: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.handler(scope, receive, tracking_send)
        except Exception:
            log.exception("internal error on %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await send_reply(
                    send, error_json(500, "internal gateway error", "server_error", "internal_error"), []
                )
