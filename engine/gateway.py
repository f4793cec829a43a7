"""The gateway: a Starlette app that proxies the OpenAI API through the plugin pipeline.

`/v1/chat/completions`, `/v1/completions`, `/v1/embeddings` and `/v1/models` go to the
upstream that serves the request's `model` (or the default upstream) after pre_auth, auth
and post_auth; the upstream's answer goes back through the response hooks, streamed chunk by
chunk as it arrives (never buffered), and a data record is queued for the data_collection
plugins off the request path. `/plugins/{plugin-id}/...` reaches plugins' custom endpoints
(engine/endpoints.py). The hook semantics live in engine/pipeline.py; this module does the
HTTP side: bodies, the upstream call, streaming, error mapping, the data record.

Endpoints are raw ASGI callables (engine/asgi.py): Starlette routes, but the hot path builds
no Request or Response objects. Every error a client sees is JSON in the OpenAI error shape.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from typing import Any

from starlette.applications import Starlette
from starlette.routing import Route

from celgate.engine.asgi import (
    AsgiEndpoint,
    BodyTooLarge,
    Receive,
    Scope,
    Send,
    encode_headers,
    read_body,
    request_id,
    send_reply,
)
from celgate.engine.config import HostConfig, UpstreamConfig
from celgate.engine.datacollect import DataCollector
from celgate.engine.endpoints import serve_endpoint
from celgate.engine.pipeline import Exchange, Pipeline, PluginFailure, error_json, resolve_client_ip
from celgate.engine.sse import SSEFramer, usage_from_body
from celgate.engine.upstream import HOP_BY_HOP, UpstreamClient, UpstreamError
from celgate.v1 import common_pb2, plugin_pb2

log = logging.getLogger("celgate.gateway")

PROXIED = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models")
_ID = frozenset({"x-request-id"})  # sent once, as the gateway settled it
_CREDENTIAL_AND_ID = frozenset({"authorization", "x-api-key"}) | _ID
_RESPONSE_DROP = HOP_BY_HOP | {"content-encoding", "date", "server", "x-request-id"}


class Gateway:
    """The gateway's state: config, pipeline, upstream client and data collector."""

    def __init__(
        self, config: HostConfig, pipeline: Pipeline, client: UpstreamClient, collector: DataCollector
    ) -> None:
        self.config = config
        self.pipeline = pipeline
        self.client = client
        self.collector = collector
        self.default_upstream = next(u for u in config.upstreams if u.default)
        self._exact: dict[str, UpstreamConfig] = {}
        # "prefix*" patterns, longest prefix first, so a catch-all "*" only takes what is left.
        self._patterns: list[tuple[str, UpstreamConfig]] = []
        for up in config.upstreams:
            for m in up.models:
                if m.endswith("*"):
                    self._patterns.append((m[:-1], up))
                else:
                    self._exact.setdefault(m, up)
        self._patterns.sort(key=lambda p: -len(p[0]))
        self.max_body = config.gateway.max_body_bytes
        self._record_cap = config.data_collection.max_body_bytes

    def app(self) -> Starlette:
        routes = [Route(path, AsgiEndpoint(self.proxy), methods=None) for path in PROXIED]
        routes += [
            Route("/plugins/{plugin_id}", AsgiEndpoint(functools.partial(serve_endpoint, self))),
            Route("/plugins/{plugin_id}/{rest:path}", AsgiEndpoint(functools.partial(serve_endpoint, self))),
            Route("/healthz", AsgiEndpoint(self.healthz)),
        ]
        return Starlette(routes=routes)

    # ------------------------------------------------------------------ helpers

    def choose_upstream(self, model: str) -> UpstreamConfig:
        if model:
            up = self._exact.get(model)
            if up is not None:
                return up
            for prefix, up in self._patterns:
                if model.startswith(prefix):
                    return up
        return self.default_upstream

    @staticmethod
    def model_of(body: bytes) -> str:
        if not body or b'"model"' not in body:
            return ""
        try:
            doc = json.loads(body)
        except ValueError:
            return ""
        model = doc.get("model") if isinstance(doc, dict) else None
        return model if isinstance(model, str) else ""

    def new_exchange(self, scope: Scope, body: bytes, headers: list[tuple[str, str]]) -> Exchange:
        client = scope.get("client")
        remote = client[0] if client else ""
        host = ""
        forwarded = ""
        rid = ""
        for k, v in headers:
            lk = k.lower()
            if lk == "x-request-id":
                rid = v
            elif lk == "host":
                host = v
            elif lk == "x-forwarded-for":
                forwarded = f"{forwarded}, {v}" if forwarded else v
        return Exchange(
            request_id=request_id(rid),
            method=scope["method"],
            path=scope["path"],
            query_string=scope["query_string"].decode("latin-1"),
            headers=headers,
            body=body,
            remote_addr=remote,
            client_ip=resolve_client_ip(remote, forwarded, self.config.gateway.trusted_proxies),
            host=host,
            scheme=scope.get("scheme", "http"),
        )

    def final_headers(self, ex: Exchange, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return [*headers, *ex.response_headers, ("x-request-id", ex.request_id)]

    async def _error(
        self, send: Send, ex: Exchange | None, status: int, message: str, type_: str, code: str
    ) -> None:
        extra = self.final_headers(ex, []) if ex is not None else []
        await send_reply(send, error_json(status, message, type_, code), extra)
        if ex is not None:
            self._record(ex, status, False, b"", None)

    def _record(
        self, ex: Exchange, status: int, streaming: bool, response_body: bytes, usage: plugin_pb2.Usage | None
    ) -> None:
        if not self.collector.enabled:
            return
        cap = self._record_cap
        self.collector.submit(
            plugin_pb2.DataRecord(
                request_id=ex.request_id,
                started_unix_ms=ex.started_ms,
                duration_ms=(time.perf_counter_ns() - ex.started_ns) // 1_000_000,
                method=ex.method,
                path=ex.path,
                status=status,
                identity=ex.identity,
                llm=ex.llm_ref() if ex.upstream else None,
                usage=usage,
                streaming=streaming,
                request_body=ex.body[:cap],
                response_body=response_body[:cap],
                decisions=ex.decisions,
                client_ip=ex.client_ip,
            )
        )

    def _upstream_headers(self, ex: Exchange) -> list[tuple[str, str]]:
        up = ex.upstream
        assert up is not None
        # The client's credential belongs to the gateway when the gateway authenticates or the
        # upstream has its own key: it never travels upstream then.
        drop = _CREDENTIAL_AND_ID if (self.pipeline.auth or up.api_key_env) else _ID
        headers = [(k, v) for k, v in ex.headers if k.lower() not in drop]
        headers.append(("x-request-id", ex.request_id))
        return headers

    # ------------------------------------------------------------------ the proxy

    async def healthz(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_reply(
            send,
            plugin_pb2.Reply(
                status=200,
                body=b'{"status":"ok"}',
                headers=[common_pb2.Header(name="content-type", value="application/json")],
            ),
            [],
        )

    async def proxy(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        declared = next((v for k, v in headers if k.lower() == "content-length"), "")
        try:
            body = await read_body(receive, self.max_body, declared)
        except BodyTooLarge:
            rid = request_id(next((v for k, v in headers if k.lower() == "x-request-id"), ""))
            await send_reply(
                send,
                error_json(
                    413,
                    f"request body larger than {self.max_body} bytes",
                    "invalid_request_error",
                    "request_too_large",
                ),
                [("x-request-id", rid)],
            )
            return
        ex = self.new_exchange(scope, body, headers)
        ex.model = self.model_of(body)
        ex.upstream = self.choose_upstream(ex.model)
        pipeline = self.pipeline
        if pipeline.has_request_hooks:
            try:
                reply = await pipeline.run_request(ex)
            except PluginFailure:
                await self._error(
                    send,
                    ex,
                    503,
                    "the gateway cannot check this request right now; try again later",
                    "server_error",
                    "plugin_unavailable",
                )
                return
            if reply is not None:
                await send_reply(send, reply, self.final_headers(ex, []))
                self._record(ex, reply.status, False, reply.body, None)
                return
            if ex.body_changed:
                ex.model = self.model_of(ex.body)
                ex.upstream = self.choose_upstream(ex.model)
                ex.invalidate()
        up = ex.upstream
        try:
            resp = await self.client.request(
                up, ex.method, ex.path, ex.query_string, self._upstream_headers(ex), ex.body
            )
        except UpstreamError as exc:
            log.warning("request %s: %s", ex.request_id, exc.message)
            await self._error(send, ex, exc.status, exc.message, "upstream_error", exc.code)
            return
        if resp.status >= 500:
            resp.release()
            log.warning("request %s: upstream %s answered %d", ex.request_id, up.id, resp.status)
            await self._error(
                send,
                ex,
                502,
                f"upstream {up.id!r} failed (status {resp.status})",
                "upstream_error",
                "upstream_error",
            )
            return
        streaming = resp.header("content-type").startswith("text/event-stream")
        status = resp.status
        out_headers = [(k, v) for k, v in resp.headers if k.lower() not in _RESPONSE_DROP]
        try:
            if pipeline.response:
                status, out_headers = await pipeline.on_headers(ex, status, out_headers, streaming)
            if streaming:
                await self._stream(ex, resp, status, out_headers, receive, send)
            else:
                await self._whole(ex, resp, status, out_headers, send)
        except PluginFailure:
            resp.close()
            await self._error(
                send,
                ex,
                503,
                "the gateway cannot deliver this response right now; try again later",
                "server_error",
                "plugin_unavailable",
            )
        except UpstreamError as exc:
            resp.close()
            await self._error(send, ex, exc.status, exc.message, "upstream_error", exc.code)

    async def _whole(
        self, ex: Exchange, resp: Any, status: int, headers: list[tuple[str, str]], send: Send
    ) -> None:
        body = await resp.read()
        resp.release()
        pipeline = self.pipeline
        usage = usage_from_body(body) if (pipeline.response or self.collector.enabled) else None
        if pipeline.response_chunks:
            body = await pipeline.on_chunk(ex, 0, body, False)
        if pipeline.response:
            body += await pipeline.on_end(ex, status, 1, usage, False, False)
        headers = [(k, v) for k, v in self.final_headers(ex, headers) if k.lower() != "content-length"]
        headers.append(("content-length", str(len(body))))
        await send({"type": "http.response.start", "status": status, "headers": encode_headers(headers)})
        await send({"type": "http.response.body", "body": body})
        self._record(ex, status, False, body, usage)

    async def _stream(
        self,
        ex: Exchange,
        resp: Any,
        status: int,
        headers: list[tuple[str, str]],
        receive: Receive,
        send: Send,
    ) -> None:
        pipeline = self.pipeline
        collecting = self.collector.enabled
        need_usage = collecting or bool(pipeline.response)
        framer = SSEFramer() if pipeline.response_chunks else None
        kept: list[bytes] = []
        kept_size = 0
        tail = b""
        index = 0
        aborted = False
        headers = [(k, v) for k, v in self.final_headers(ex, headers) if k.lower() != "content-length"]
        await send({"type": "http.response.start", "status": status, "headers": encode_headers(headers)})
        # The request body is consumed, so receive() now returns only when the client leaves.
        gone = asyncio.ensure_future(receive())
        try:
            async for data in resp.chunks():
                pieces = framer.feed(data) if framer is not None else [data]
                for piece in pieces:
                    if framer is not None:
                        piece = await pipeline.on_chunk(ex, index, piece, True)
                    index += 1
                    if piece:
                        await send({"type": "http.response.body", "body": piece, "more_body": True})
                    if collecting and kept_size < self._record_cap:
                        kept.append(piece)
                        kept_size += len(piece)
                    if need_usage and not collecting:
                        tail = (tail + piece)[-8192:]
                if gone.done():
                    aborted = True
                    break
            if framer is not None and not aborted:
                rest = framer.flush()
                if rest:
                    rest = await pipeline.on_chunk(ex, index, rest, True)
                    index += 1
                    await send({"type": "http.response.body", "body": rest, "more_body": True})
        except PluginFailure as exc:
            # Headers are gone already: end the stream with an SSE error event instead of a 503.
            log.warning("request %s: stream stopped: %s", ex.request_id, exc)
            ex.decisions.append(
                plugin_pb2.Decision(
                    policy=exc.plugin_id,
                    rule="response",
                    decision="deny",
                    mode="fail-closed",
                    reason=exc.kind,
                )
            )
            event = _sse_error(
                "the response was stopped by the gateway", "server_error", "plugin_unavailable"
            )
            await send({"type": "http.response.body", "body": event, "more_body": False})
            resp.close()
            gone.cancel()
            self._record(ex, status, True, b"".join(kept), None)
            return
        except UpstreamError as exc:
            log.warning("request %s: upstream stream failed: %s", ex.request_id, exc.message)
            aborted = True
            # Headers are sent: tell the client in the stream why it ends without [DONE].
            await send(
                {
                    "type": "http.response.body",
                    "body": _sse_error(exc.message, "upstream_error", exc.code),
                    "more_body": True,
                }
            )
        finally:
            gone.cancel()
        if aborted:
            resp.close()
        else:
            resp.release()
        body = b"".join(kept)
        usage = usage_from_body(body if collecting else tail) if need_usage else None
        appended = b""
        if pipeline.response:
            try:
                appended = await pipeline.on_end(ex, status, index, usage, True, aborted)
            except PluginFailure:
                appended = b""
        await send({"type": "http.response.body", "body": appended, "more_body": False})
        self._record(ex, status, True, body + appended, usage)


def _sse_error(message: str, type_: str, code: str) -> bytes:
    """An OpenAI-shaped error as one SSE event, for failures after a stream has started."""
    return b"data: " + error_json(500, message, type_, code).body + b"\n\n"
