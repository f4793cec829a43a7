"""The upstream LLM client: pooled keep-alive connections, streaming bodies, clean errors.

The transport is `engine.httpclient` (asyncio + httptools), picked in `benchmarks/gateway.py`
against aiohttp's client, a pooled httpcore connection and httpx2 (figures in docs/config.md).
Bodies are never decompressed or buffered here: the gateway asks for `identity` encoding and
reads the body as it arrives. Connection failures become `UpstreamError(502)`, timeouts
`UpstreamError(504)`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable

from celgate.engine import httpclient
from celgate.engine.config import UpstreamConfig

log = logging.getLogger("celgate.upstream")

# Hop-by-hop headers (RFC 9110 7.6.1) and those the client sets itself.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authorization",
        "proxy-authenticate",
        "host",
        "content-length",
    }
)


class UpstreamError(Exception):
    """The upstream could not be reached or did not answer in time."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


class UpstreamResponse:
    """Status, raw multi-valued headers and a body read incrementally."""

    def __init__(self, resp: httpclient.Response, upstream_id: str) -> None:
        self._resp = resp
        self._id = upstream_id
        self.status = resp.status
        self.headers: list[tuple[str, str]] = [
            (k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.raw_headers
        ]

    def header(self, name: str) -> str:
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return ""

    async def chunks(self) -> AsyncIterator[bytes]:
        """Body bytes as they arrive (any split); raises UpstreamError when the upstream fails."""
        try:
            async for data in self._resp.chunks():
                yield data
        except httpclient.ReadTimeout:
            raise UpstreamError(
                504, f"upstream {self._id!r} stopped sending before the response ended", "upstream_timeout"
            ) from None
        except httpclient.ProtocolError as exc:
            raise UpstreamError(
                502, f"upstream {self._id!r} failed mid-response ({exc})", "upstream_error"
            ) from None

    async def read(self) -> bytes:
        return b"".join([c async for c in self.chunks()])

    def release(self) -> None:
        """Done with the response: the connection goes back to the pool when it can."""
        self._resp.release()

    def close(self) -> None:
        """Drop the connection (the client went away, or a plugin stopped the response)."""
        self._resp.close()


class UpstreamClient:
    """One connection pool for all upstreams of the host."""

    def __init__(self) -> None:
        self._pool = httpclient.Pool()

    async def request(
        self,
        upstream: UpstreamConfig,
        method: str,
        path: str,
        query_string: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
    ) -> UpstreamResponse:
        url = upstream.base_url + path + (f"?{query_string}" if query_string else "")
        key = upstream.api_key
        out = [
            (k, v)
            for k, v in headers
            if (lk := k.lower()) not in HOP_BY_HOP
            and lk != "accept-encoding"
            and not (key and lk == "authorization")
        ]
        out.append(("accept-encoding", "identity"))  # response hooks see plain bytes
        if key:
            out.append(("authorization", f"Bearer {key}"))
        try:
            resp = await self._pool.request(
                method,
                url,
                out,
                body,
                connect_timeout=upstream.connect_timeout_s,
                read_timeout=upstream.timeout_s,
            )
        except (TimeoutError, httpclient.ReadTimeout):
            raise UpstreamError(
                504, f"upstream {upstream.id!r} did not answer in time", "upstream_timeout"
            ) from None
        except httpclient.ConnectError:
            raise UpstreamError(
                502, f"upstream {upstream.id!r} is unreachable", "upstream_unreachable"
            ) from None
        except httpclient.ProtocolError as exc:
            raise UpstreamError(502, f"upstream {upstream.id!r} failed ({exc})", "upstream_error") from None
        return UpstreamResponse(resp, upstream.id)

    async def close(self) -> None:
        self._pool.close()
