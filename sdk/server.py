"""PluginService on the plugin side: turns wire calls into calls on the author's plugin object.

Request hooks arrive on the long-lived `Hooks` stream and are handled concurrently; a handler
that raises produces `HookReply.error` and never takes the plugin down.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import sys
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from celgate.sdk import capabilities as caps
from celgate.sdk import convert
from celgate.sdk.context import Context, Services
from celgate.sdk.host import HostConnection
from celgate.sdk.protocol import MAX_MESSAGE_BYTES
from celgate.sdk.types import (
    AgentChunk,
    AgentRequest,
    AgentTurn,
    Asset,
    Continue,
    Event,
    HttpResponse,
    ObjectEvent,
    ScheduledTask,
)
from celgate.v1 import common_pb2, plugin_pb2, plugin_pb2_grpc


class PluginServicer(plugin_pb2_grpc.PluginServiceServicer):
    """Serves one plugin object. `runtime` stays "" until the host says it in Configure."""

    def __init__(
        self,
        plugin: caps.Plugin,
        manifest: dict[str, Any],
        services: Services,
        on_shutdown: Callable[[], None],
    ) -> None:
        self.plugin = plugin
        self.manifest = manifest
        self.capabilities = caps.capabilities_of(plugin)
        self.services = services
        self.runtime = ""
        self._on_shutdown = on_shutdown
        self._tasks: set[asyncio.Task[None]] = set()
        self._asyncness: dict[str, bool] = {}
        self.shut_down = False
        self.hooks_address = ""  # set by serve() when the framed-socket fast path is up
        self._inline_fns: dict[str, Any] = {}
        self._capability_set = frozenset(self.capabilities)

    # ------------------------------------------------------------ helpers

    def context(self) -> Context:
        return Context(plugin_id=self.plugin.id, runtime=self.runtime, services=self.services)

    async def call(self, name: str, *args: Any) -> Any:
        """Call the plugin's method `name`: inline when async (or `inline_sync`), else in a thread."""
        fn = getattr(self.plugin, name)
        is_async = self._asyncness.get(name)
        if is_async is None:
            is_async = inspect.iscoroutinefunction(fn) or self.plugin.inline_sync
            self._asyncness[name] = is_async
        if is_async:
            result = fn(*args)
        else:
            result = await asyncio.get_running_loop().run_in_executor(None, fn, *args)
        if inspect.isawaitable(result):
            result = await result
        return result

    def _require(self, capability: str) -> None:
        if capability not in self._capability_set:
            raise _NotImplementedCapability(capability)

    # ------------------------------------------------------------ lifecycle

    async def GetManifest(self, request: common_pb2.Empty, context: Any) -> plugin_pb2.ManifestReply:
        plugin = self.plugin
        return plugin_pb2.ManifestReply(
            manifest_json=json.dumps(self.manifest),
            capabilities=self.capabilities,
            response_chunks=bool(isinstance(plugin, caps.Response) and plugin.response_chunks),
            subscriptions=list(plugin.subscriptions) if isinstance(plugin, caps.EventSubscriber) else [],
            hooks_address=self.hooks_address,
        )

    async def GetConfigSchema(self, request: common_pb2.Empty, context: Any) -> plugin_pb2.ConfigSchemaReply:
        if isinstance(self.plugin, caps.ConfigProvider):
            return plugin_pb2.ConfigSchemaReply(schema_json=json.dumps(self.plugin.config_schema()))
        return plugin_pb2.ConfigSchemaReply(schema_json="")

    async def Configure(
        self, request: plugin_pb2.ConfigureRequest, context: Any
    ) -> plugin_pb2.ConfigureReply:
        if request.plugin_id and request.plugin_id != self.plugin.id:
            return plugin_pb2.ConfigureReply(
                ok=False, error=f"host configures plugin {request.plugin_id!r}, this is {self.plugin.id!r}"
            )
        if request.runtime not in ("gateway", "studio"):
            return plugin_pb2.ConfigureReply(ok=False, error=f"unknown runtime {request.runtime!r}")
        self.runtime = request.runtime
        if request.host_service_address and request.plugin_secret:
            old = self.services.conn
            self.services.conn = HostConnection(
                request.host_service_address, request.plugin_secret, self.plugin.id
            )
            rebuilt = Services(self.services.conn, self.services.loop)
            self.services.kv, self.services.log = rebuilt.kv, rebuilt.log
            self.services.events, self.services.counters = rebuilt.events, rebuilt.counters
            await old.close()
        try:
            config = json.loads(request.config_json) if request.config_json else {}
            if not isinstance(config, dict):
                raise ValueError("config must be a JSON object")
            await self.call("configure", self.context(), config)
        except Exception as exc:
            return plugin_pb2.ConfigureReply(ok=False, error=_describe(exc))
        return plugin_pb2.ConfigureReply(ok=True)

    async def Shutdown(self, request: plugin_pb2.ShutdownRequest, context: Any) -> common_pb2.Empty:
        await self.run_shutdown()
        self._on_shutdown()
        return common_pb2.Empty()

    async def run_shutdown(self) -> None:
        if self.shut_down:
            return
        self.shut_down = True
        try:
            await self.call("shutdown")
        except Exception as exc:
            print(f"plugin shutdown() raised: {_describe(exc)}", file=sys.stderr, flush=True)
        await self.services.log.flush()

    # ------------------------------------------------------------ request hooks

    async def Hooks(
        self, request_iterator: AsyncIterator[plugin_pb2.HookCall], context: Any
    ) -> AsyncIterator[plugin_pb2.HookReply]:
        queue: asyncio.Queue[plugin_pb2.HookReply | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        async def handle(call: plugin_pb2.HookCall) -> None:
            queue.put_nowait(await self._hook(call))

        async def read() -> None:
            try:
                async for call in request_iterator:
                    reply = self.hook_inline(call)
                    if reply is not None:
                        queue.put_nowait(reply)
                        continue
                    task = loop.create_task(handle(call))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            finally:
                queue.put_nowait(None)

        reader = loop.create_task(read())
        try:
            while True:
                reply = await queue.get()
                if reply is None:
                    break
                yield reply
        finally:
            reader.cancel()

    async def handle_hook(self, call: plugin_pb2.HookCall) -> plugin_pb2.HookReply:
        """One hook call, from either transport."""
        return await self._hook(call)

    def hook_inline(self, call: plugin_pb2.HookCall) -> plugin_pb2.HookReply | None:
        """Answer at once when the handler runs inline and is not a coroutine (no task, no
        extra loop turn); None when the call must go through `handle_hook`."""
        if not self.plugin.inline_sync:
            return None
        try:
            method, args, finish = self._begin(call)
        except Exception as exc:
            return self._error(call, exc)
        fn = self._inline_fns.get(method, _UNKNOWN)
        if fn is _UNKNOWN:
            candidate = getattr(self.plugin, method)
            fn = None if inspect.iscoroutinefunction(candidate) else candidate
            self._inline_fns[method] = fn
        if fn is None:
            return None
        try:
            result = fn(*args)
            if hasattr(result, "__await__"):
                raise TypeError(f"{method}() returned an awaitable but the class sets inline_sync")
            return self._finish(call, finish, result)
        except Exception as exc:
            return self._error(call, exc)

    async def _hook(self, call: plugin_pb2.HookCall) -> plugin_pb2.HookReply:
        try:
            method, args, finish = self._begin(call)
            return self._finish(call, finish, await self.call(method, *args))
        except Exception as exc:
            return self._error(call, exc)

    def _error(self, call: plugin_pb2.HookCall, exc: Exception) -> plugin_pb2.HookReply:
        return plugin_pb2.HookReply(call_id=call.call_id, error=_describe(exc))

    def _begin(self, call: plugin_pb2.HookCall) -> tuple[str, tuple[Any, ...], str]:
        """The handler method, its arguments, and the reply kind, for one call."""
        kind = call.WhichOneof("hook")
        plugin_id, services, runtime = self.plugin.id, self.services, self.runtime
        if kind == "pre_auth" or kind == "post_auth":
            self._require(kind)
            ctx = convert.request_context_from(getattr(call, kind), plugin_id, services, runtime)
            return "on_" + kind, (ctx,), "request"
        if kind == "auth":
            self._require("auth")
            ctx = convert.request_context_from(call.auth.context, plugin_id, services, runtime)
            return "authenticate", (ctx, call.auth.credential), "auth"
        if kind == "response_headers":
            self._require("response")
            pb = call.response_headers
            ctx = convert.request_context_from(pb.context, plugin_id, services, runtime)
            return "on_response_headers", (ctx, convert.response_head_from(pb)), kind
        if kind == "response_chunk":
            self._require("response")
            pb_chunk = call.response_chunk
            ctx = convert.request_context_from(pb_chunk.context, plugin_id, services, runtime)
            return "on_response_chunk", (ctx, convert.response_chunk_from(pb_chunk)), kind
        if kind == "response_end":
            self._require("response")
            pb_end = call.response_end
            ctx = convert.request_context_from(pb_end.context, plugin_id, services, runtime)
            return "on_response_end", (ctx, convert.response_end_from(pb_end)), kind
        raise ValueError(f"unknown hook {kind!r}")

    def _finish(self, call: plugin_pb2.HookCall, kind: str, result: Any) -> plugin_pb2.HookReply:
        reply = plugin_pb2.HookReply(call_id=call.call_id)
        if kind == "request":
            convert.request_verdict_into(reply.request, result)
            if result is None or type(result) is Continue:
                return reply  # small by construction
        elif kind == "auth":
            reply.auth.CopyFrom(convert.auth_verdict_to(result))
        elif kind == "response_headers":
            reply.response_headers.CopyFrom(convert.response_head_to(result))
        elif kind == "response_chunk":
            reply.response_chunk.SetInParent()
            if result is not None:
                reply.response_chunk.modified = True
                reply.response_chunk.data = bytes(result)
        else:
            reply.response_end.SetInParent()
            if result:
                reply.response_end.append = bytes(result)
        if reply.ByteSize() > MAX_MESSAGE_BYTES - 1024:
            return plugin_pb2.HookReply(call_id=call.call_id, error="reply larger than the 16 MiB limit")
        return reply

    # ------------------------------------------------------------ data collection, endpoints

    async def CollectData(self, request: plugin_pb2.DataBatch, context: Any) -> plugin_pb2.DataAck:
        try:
            self._require("data_collection")
            records = [convert.data_record_from(r) for r in request.records]
            accepted = await self.call("collect", self.context(), records)
            return plugin_pb2.DataAck(accepted=len(records) if accepted is None else int(accepted))
        except Exception as exc:
            return plugin_pb2.DataAck(accepted=0, error=_describe(exc))

    async def ListEndpoints(self, request: common_pb2.Empty, context: Any) -> plugin_pb2.EndpointList:
        if not isinstance(self.plugin, caps.CustomEndpoints):
            return plugin_pb2.EndpointList()
        routes = await self.call("routes")
        return plugin_pb2.EndpointList(
            routes=[
                plugin_pb2.EndpointRoute(
                    path=r.path,
                    methods=[m.upper() for m in r.methods],
                    stream=r.stream,
                    require_auth=r.require_auth,
                    description=r.description,
                )
                for r in routes
            ]
        )

    async def HandleEndpoint(
        self, request: plugin_pb2.EndpointRequest, context: Any
    ) -> AsyncIterator[plugin_pb2.EndpointChunk]:
        await self._guard(context, "custom_endpoints")
        refusal = _route_refusal(await self.call("routes"), request.path, request.method)
        if refusal is not None:  # only registered routes reach the handler (the host filters too)
            yield plugin_pb2.EndpointChunk(
                status=refusal.status, headers=convert.headers_to(refusal.headers), data=refusal.body
            )
            return
        result = await self._or_abort(
            context, self.call("handle_endpoint", self.context(), convert.endpoint_request_from(request))
        )
        if isinstance(result, HttpResponse):
            yield plugin_pb2.EndpointChunk(
                status=result.status, headers=convert.headers_to(result.headers), data=result.body
            )
            return
        yield plugin_pb2.EndpointChunk(status=result.status, headers=convert.headers_to(result.headers))
        async for piece in _aiter(result.chunks):
            yield plugin_pb2.EndpointChunk(data=piece if isinstance(piece, bytes) else str(piece).encode())

    # ------------------------------------------------------------ studio capabilities

    async def ListObjectHooks(self, request: common_pb2.Empty, context: Any) -> plugin_pb2.ObjectHookList:
        if not isinstance(self.plugin, caps.ObjectHooks):
            return plugin_pb2.ObjectHookList()
        regs = await self.call("object_hooks")
        return plugin_pb2.ObjectHookList(
            hooks=[
                plugin_pb2.ObjectHookRegistration(object_type=r.object_type, hook=r.hook, priority=r.priority)
                for r in regs
            ]
        )

    async def HandleObjectHook(
        self, request: plugin_pb2.ObjectHookRequest, context: Any
    ) -> plugin_pb2.ObjectVerdict:
        await self._guard(context, "object_hooks")
        event = ObjectEvent(
            hook=request.hook,
            object_type=request.object_type,
            operation=request.operation,
            object=convert.json_or_none(request.object_json),
            previous=convert.json_or_none(request.previous_json),
            actor=convert.actor_from(request.actor),
            request_id=request.request_id,
        )
        verdict = await self._or_abort(context, self.call("handle_object_hook", self.context(), event))
        return convert.object_verdict_to(verdict)

    async def HandleAgentMessage(
        self, request: plugin_pb2.AgentMessage, context: Any
    ) -> AsyncIterator[plugin_pb2.AgentChunk]:
        await self._guard(context, "agent")
        message = AgentRequest(
            session_id=request.session_id,
            message=request.message,
            history=[AgentTurn(role=t.role, content=t.content) for t in request.history],
            config=json.loads(request.config_json) if request.config_json else {},
            actor=convert.actor_from(request.actor),
        )
        try:
            chunks = self.plugin.handle_message(self.context(), message)  # type: ignore[attr-defined]
            async for chunk in _aiter(chunks):
                if not isinstance(chunk, AgentChunk):
                    raise TypeError(f"handle_message() must yield AgentChunk, not {type(chunk).__name__}")
                yield plugin_pb2.AgentChunk(
                    type=chunk.type,
                    content=chunk.content,
                    metadata_json=json.dumps(chunk.metadata) if chunk.metadata else "",
                )
        except Exception as exc:
            yield plugin_pb2.AgentChunk(type="error", content=_describe(exc))

    def _assets(self, portal: bool) -> list[Asset]:
        if portal:
            return self.plugin.portal_assets() if isinstance(self.plugin, caps.PortalUI) else []
        return self.plugin.ui_assets() if isinstance(self.plugin, caps.UIProvider) else []

    async def ListAssets(self, request: plugin_pb2.AssetListRequest, context: Any) -> plugin_pb2.AssetList:
        assets = [a for a in self._assets(request.portal) if a.path.startswith(request.prefix)]
        return plugin_pb2.AssetList(
            assets=[
                plugin_pb2.AssetInfo(path=a.path, content_type=a.content_type, size=len(a.data))
                for a in assets
            ]
        )

    async def GetAsset(self, request: plugin_pb2.AssetRequest, context: Any) -> plugin_pb2.Asset:
        for asset in self._assets(request.portal):
            if asset.path == request.path:
                return plugin_pb2.Asset(found=True, content_type=asset.content_type, data=asset.data)
        return plugin_pb2.Asset(found=False)

    async def UiCall(self, request: plugin_pb2.UiCallRequest, context: Any) -> plugin_pb2.UiCallReply:
        try:
            payload = json.loads(request.payload) if request.payload else None
            if request.portal:
                self._require("portal_ui")
                result = await self.call(
                    "portal_call", self.context(), request.method, payload, convert.actor_from(request.user)
                )
            else:
                self._require("ui_provider")
                result = await self.call("ui_call", self.context(), request.method, payload)
            return plugin_pb2.UiCallReply(payload=json.dumps(result).encode())
        except Exception as exc:
            return plugin_pb2.UiCallReply(error=_describe(exc))

    async def RunScheduledTask(
        self, request: plugin_pb2.ScheduledTaskRequest, context: Any
    ) -> plugin_pb2.ScheduledTaskReply:
        try:
            self._require("scheduled_tasks")
            task = ScheduledTask(
                schedule_id=request.schedule_id,
                run_id=request.run_id,
                config=json.loads(request.config_json) if request.config_json else {},
                scheduled_unix_ms=request.scheduled_unix_ms,
            )
            output = await self.call("run_task", self.context(), task)
            return plugin_pb2.ScheduledTaskReply(ok=True, output=output or "")
        except Exception as exc:
            return plugin_pb2.ScheduledTaskReply(ok=False, error=_describe(exc))

    async def DeliverEvent(self, request: common_pb2.Event, context: Any) -> common_pb2.Empty:
        await self._guard(context, "event_subscriber")
        try:
            payload = json.loads(request.payload) if request.payload else None
        except ValueError:
            payload = bytes(request.payload)
        event = Event(
            topic=request.topic,
            payload=payload,
            id=request.id,
            origin=request.origin,
            unix_ms=request.unix_ms,
        )
        await self._or_abort(context, self.call("on_event", self.context(), event))
        return common_pb2.Empty()

    # ------------------------------------------------------------ errors

    async def _guard(self, context: Any, capability: str) -> None:
        if capability not in self.capabilities:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"plugin does not implement {capability}")

    async def _or_abort(self, context: Any, awaitable: Awaitable[Any]) -> Any:
        try:
            return await awaitable
        except Exception as exc:
            await context.abort(grpc.StatusCode.UNKNOWN, _describe(exc))


def _route_refusal(routes: list[Any], path: str, method: str) -> HttpResponse | None:
    """404 for a path no route registers, 405 for a method it does not; None when one matches.
    Same matching as the host: exact paths (a trailing slash aside), or "/prefix/*" subtrees."""
    method = method.upper()
    allowed: set[str] = set()
    for route in routes:
        p = route.path if route.path.startswith("/") else "/" + route.path
        if p.endswith("/*"):
            prefix = p[:-2]
            hit = path == prefix or path.startswith(prefix + "/") or prefix == ""
        else:
            hit = path == p or path.rstrip("/") == p.rstrip("/")
        if not hit:
            continue
        methods = {m.upper() for m in route.methods} or {"GET"}
        if method in methods or (method == "HEAD" and "GET" in methods):
            return None
        allowed |= methods
    if allowed:
        response = HttpResponse.json({"error": {"message": f"{method} is not allowed here"}}, status=405)
        response.headers.append(("allow", ", ".join(sorted(allowed))))
        return response
    return HttpResponse.json({"error": {"message": f"no endpoint {path}"}}, status=404)


class _NotImplementedCapability(Exception):
    def __init__(self, capability: str) -> None:
        super().__init__(f"plugin does not implement {capability}")


_UNKNOWN: Any = object()


async def _aiter(iterable: Any) -> AsyncIterator[Any]:
    if hasattr(iterable, "__aiter__"):
        async for item in iterable:
            yield item
    else:
        for item in iterable:
            yield item


def _describe(exc: BaseException) -> str:
    """One line for the host: the exception type, message and where it was raised."""
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"
