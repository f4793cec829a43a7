"""Custom endpoints: `/plugins/{plugin-id}/...` relayed to plugins with custom_endpoints.

Only the routes a plugin registered answer (`/x` exact, `/x/*` a subtree): an unknown plugin
or path is 404, a known path with another method 405 with `Allow`. Routes that require auth
go through the gateway's auth plugins first (401 without an identity, also when no auth
plugin is configured: fail closed). The plugin's first chunk carries status and headers;
later chunks are forwarded as they arrive.
"""

from __future__ import annotations

import logging
from typing import Protocol

from celgate.engine.asgi import BodyTooLarge, Receive, Scope, Send, encode_headers, read_body, send_reply
from celgate.engine.config import HostConfig
from celgate.engine.handle import HookError
from celgate.engine.pipeline import CUSTOM_ENDPOINTS, Exchange, Pipeline, PluginFailure, error_json
from celgate.v1 import common_pb2, plugin_pb2


class Gateway(Protocol):
    """What the endpoints need of engine.gateway.Gateway."""

    config: HostConfig
    pipeline: Pipeline
    max_body: int

    def new_exchange(self, scope: Scope, body: bytes, headers: list[tuple[str, str]]) -> Exchange: ...

    def final_headers(self, ex: Exchange, headers: list[tuple[str, str]]) -> list[tuple[str, str]]: ...


log = logging.getLogger("celgate.gateway")


async def serve_endpoint(gw: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    """`/plugins/{plugin_id}/{rest}`: route to the plugin, authenticate if the route says so,
    relay the plugin's (possibly streamed) answer."""
    params = scope.get("path_params", {})
    plugin_id = params.get("plugin_id", "")
    rel = "/" + params.get("rest", "")
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
    ex = gw.new_exchange(scope, b"", headers)
    slot = gw.pipeline.custom_endpoints.get(plugin_id)
    if slot is None:
        await send_reply(
            send,
            error_json(404, f"no plugin endpoint at {scope['path']}", "invalid_request_error", "not_found"),
            gw.final_headers(ex, []),
        )
        return
    handle = gw.pipeline.handle(slot)
    try:
        routes = await handle.routes()
    except HookError:
        await send_reply(
            send,
            error_json(503, "the plugin is unavailable", "server_error", "plugin_unavailable"),
            gw.final_headers(ex, []),
        )
        return
    route, allowed = match_route(routes, rel, ex.method)
    if route is None:
        if allowed:
            await send_reply(
                send,
                error_json(
                    405, f"method {ex.method} not allowed", "invalid_request_error", "method_not_allowed"
                ),
                gw.final_headers(ex, [("allow", ", ".join(sorted(allowed)))]),
            )
        else:
            await send_reply(
                send,
                error_json(
                    404, f"no plugin endpoint at {scope['path']}", "invalid_request_error", "not_found"
                ),
                gw.final_headers(ex, []),
            )
        return
    declared = next((v for k, v in headers if k.lower() == "content-length"), "")
    try:
        ex.body = await read_body(receive, gw.max_body, declared)
    except BodyTooLarge:
        await send_reply(
            send,
            error_json(413, "request body too large", "invalid_request_error", "request_too_large"),
            gw.final_headers(ex, []),
        )
        return
    if route.require_auth:
        try:
            reply = (
                await gw.pipeline.auth_phase(ex)
                if gw.pipeline.auth
                else error_json(
                    401,
                    "this endpoint requires authentication",
                    "authentication_error",
                    "invalid_api_key",
                )
            )
        except PluginFailure:
            reply = error_json(503, "authentication is unavailable", "server_error", "plugin_unavailable")
        if reply is not None:
            await send_reply(send, reply, gw.final_headers(ex, []))
            return
    req = plugin_pb2.EndpointRequest(
        method=ex.method,
        path=rel,
        query_string=ex.query_string,
        headers=[common_pb2.Header(name=k, value=v) for k, v in ex.headers],
        body=ex.body,
        remote_addr=ex.remote_addr,
        identity=ex.identity,
        request_id=ex.request_id,
    )
    # A plain route gets the plugin's custom_endpoints deadline; a streamed one may run
    # as long as gateway.endpoint_timeout_s allows.
    limit = gw.config.gateway.endpoint_timeout_s
    timeout = limit if route.stream else min(slot.timeouts[CUSTOM_ENDPOINTS], limit)
    started = False
    try:
        async for chunk in handle.endpoint(req, timeout):
            if not started:
                hdrs = [(h.name, h.value) for h in chunk.headers if h.name.lower() != "content-length"]
                await send(
                    {
                        "type": "http.response.start",
                        "status": chunk.status or 200,
                        "headers": encode_headers(gw.final_headers(ex, hdrs)),
                    }
                )
                started = True
            if chunk.data:
                await send({"type": "http.response.body", "body": chunk.data, "more_body": True})
    except HookError as exc:
        log.warning("request %s: endpoint of plugin %s failed (%s)", ex.request_id, plugin_id, exc.kind)
        if not started:
            status = 504 if exc.kind == "deadline" else 503
            await send_reply(
                send,
                error_json(status, "the plugin endpoint failed", "server_error", "plugin_unavailable"),
                gw.final_headers(ex, []),
            )
            return
    if not started:
        await send(
            {
                "type": "http.response.start",
                "status": 204,
                "headers": encode_headers(gw.final_headers(ex, [])),
            }
        )
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def match_route(
    routes: list[plugin_pb2.EndpointRoute], rel: str, method: str
) -> tuple[plugin_pb2.EndpointRoute | None, set[str]]:
    """The route for (path, method); else the methods the path allows (empty: no such path)."""
    allowed: set[str] = set()
    for route in routes:
        p = route.path if route.path.startswith("/") else "/" + route.path
        if p.endswith("/*"):
            prefix = p[:-2]
            hit = rel == prefix or rel.startswith(prefix + "/") or prefix == ""
        else:
            hit = rel == p or rel.rstrip("/") == p.rstrip("/")
        if not hit:
            continue
        methods = {m.upper() for m in route.methods} or {"GET"}
        if method.upper() in methods or (method.upper() == "HEAD" and "GET" in methods):
            return route, allowed
        allowed |= methods
    return None, allowed
