"""Checks on data collection, custom endpoints, object hooks and the Service API scopes."""

from __future__ import annotations

import contextlib
import json

import grpc
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from celgate.conformance import inputs
from celgate.conformance.checks.common import hook_calls
from celgate.conformance.registry import Failed, Options, Skipped, check
from celgate.conformance.session import Session
from celgate.engine.handle import HookError
from celgate.engine.service_api import ALWAYS_GRANTED, METHOD_SCOPES
from celgate.sdk.protocol import SECRET_METADATA
from celgate.v1 import common_pb2, host_pb2, plugin_pb2

_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
_OBJECT_TYPES = {"llm", "app", "tool", "datasource", "user"}
_OBJECT_HOOKS = {
    "before_create",
    "after_create",
    "before_update",
    "after_update",
    "before_delete",
    "after_delete",
}


@check(
    "data-collection.ack",
    "CollectData acknowledges every batch (empty, one record, many) with 0 <= accepted <= size and no error.",
    "core",
    capabilities=("data_collection",),
)
async def collect_ack(session: Session, options: Options) -> str | None:
    assert session.handle is not None
    records = inputs.examples(inputs.data_records(), max(options.examples, 10))
    for size in (0, 1, len(records)):
        batch = plugin_pb2.DataBatch(records=records[:size])
        try:
            ack = await session.handle.collect(batch, session.call_timeout)
        except HookError as exc:
            raise Failed(f"a batch of {size}: {exc.kind}: {exc.message}") from None
        assert isinstance(ack, plugin_pb2.DataAck)
        if not 0 <= ack.accepted <= size:
            raise Failed(f"a batch of {size}: accepted={ack.accepted}")
    return None


def _route_path(route: plugin_pb2.EndpointRoute) -> str:
    path = route.path
    return path[:-2] + "/conformance" if path.endswith("/*") else path


async def _call_endpoint(session: Session, method: str, path: str) -> tuple[int | None, str]:
    """(status, error): the first chunk's status, or None with the gRPC error."""
    assert session.handle is not None
    req = plugin_pb2.EndpointRequest(
        method=method,
        path=path,
        remote_addr="127.0.0.1:1",
        request_id="conformance",
        identity=common_pb2.Identity(authenticated=True, app_id="conformance-app"),
    )
    status: int | None = None
    try:
        async for chunk in session.handle.endpoint(req, session.call_timeout):
            if status is None:
                status = chunk.status
    except HookError as exc:
        return None, f"{exc.kind}: {exc.message}"
    return status, "" if status is not None else "no chunk at all"


@check(
    "endpoints.routes-valid",
    "ListEndpoints returns routes with absolute paths, known HTTP methods and no duplicates.",
    "core",
    capabilities=("custom_endpoints",),
)
async def routes_valid(session: Session, options: Options) -> str | None:
    assert session.conn is not None
    routes = (await session.conn.stub.ListEndpoints(common_pb2.Empty(), timeout=session.call_timeout)).routes
    if not routes:
        raise Failed("custom_endpoints is declared but ListEndpoints returns no routes")
    problems, seen = [], set()
    for r in routes:
        if not r.path.startswith("/") or any(c in r.path for c in " ?#\r\n"):
            problems.append(f"path {r.path!r} is not an absolute path")
        bad = sorted(set(r.methods) - _METHODS)
        if not r.methods or bad:
            problems.append(f"{r.path}: methods {list(r.methods)} (unknown: {bad})")
        for m in r.methods:
            if (r.path, m) in seen:
                problems.append(f"{m} {r.path} registered twice")
            seen.add((r.path, m))
    session.observed.routes = list(routes)
    if problems:
        raise Failed("; ".join(problems))
    return f"{len(routes)} routes"


@check(
    "endpoints.registered-answer",
    "Each registered route answers each of its methods with a status that is not 404 or 405.",
    "core",
    capabilities=("custom_endpoints",),
)
async def registered_answer(session: Session, options: Options) -> str | None:
    assert session.conn is not None
    routes = (await session.conn.stub.ListEndpoints(common_pb2.Empty(), timeout=session.call_timeout)).routes
    for r in routes:
        for method in r.methods:
            status, error = await _call_endpoint(session, method, _route_path(r))
            if status is None:
                raise Failed(f"{method} {r.path}: {error}")
            if not 100 <= status <= 599 or status in (404, 405):
                raise Failed(f"{method} {r.path}: answered status {status}")
    return None


@check(
    "endpoints.only-registered",
    "Paths and methods the plugin did not register are refused (404/405, or NOT_FOUND/UNIMPLEMENTED).",
    "core",
    capabilities=("custom_endpoints",),
)
async def only_registered(session: Session, options: Options) -> str | None:
    assert session.conn is not None
    routes = (await session.conn.stub.ListEndpoints(common_pb2.Empty(), timeout=session.call_timeout)).routes
    probes = [("GET", "/__celgate-conformance/unregistered"), ("POST", "/../__celgate-conformance")]
    for r in routes:
        unused = sorted(_METHODS - set(r.methods) - {"HEAD", "OPTIONS"})
        if unused:
            probes.append((unused[0], _route_path(r)))
    for method, path in probes:
        status, error = await _call_endpoint(session, method, path)
        if status is None:
            if "NOT_FOUND" in error or "UNIMPLEMENTED" in error:
                continue
            raise Failed(f"{method} {path} (not registered): {error}")
        if status not in (404, 405):
            raise Failed(f"{method} {path} is not registered but answered status {status}")
    return f"{len(probes)} unregistered requests refused"


def _object_request(
    reg: plugin_pb2.ObjectHookRegistration, obj: dict[str, object]
) -> plugin_pb2.ObjectHookRequest:
    operation = reg.hook.split("_", 1)[1] if "_" in reg.hook else "create"
    after_delete = reg.hook == "after_delete"
    return plugin_pb2.ObjectHookRequest(
        hook=reg.hook,
        object_type=reg.object_type,
        operation=operation,
        object_json="" if after_delete else json.dumps(obj),
        previous_json="" if operation == "create" else json.dumps(obj),
        actor=plugin_pb2.Actor(id="conformance", email="conformance@example.com", groups=["admins"]),
        request_id="conformance",
    )


async def _object_hooks(session: Session) -> list[plugin_pb2.ObjectHookRegistration]:
    assert session.conn is not None
    regs = (await session.conn.stub.ListObjectHooks(common_pb2.Empty(), timeout=session.call_timeout)).hooks
    problems = [
        f"{r.object_type}/{r.hook}"
        for r in regs
        if r.object_type not in _OBJECT_TYPES or r.hook not in _OBJECT_HOOKS
    ]
    if problems:
        raise Failed(f"unknown object types or hooks registered: {problems}")
    if not regs:
        raise Failed("object_hooks is declared but ListObjectHooks returns nothing")
    return list(regs)


async def _verdicts(session: Session, options: Options, regs: list[plugin_pb2.ObjectHookRegistration]):  # type: ignore[no-untyped-def]
    assert session.handle is not None
    for reg in regs:
        for obj in inputs.examples(inputs.object_objects(reg.object_type), max(3, options.examples // 5)):
            req = _object_request(reg, obj)
            try:
                verdict = await session.handle.unary("HandleObjectHook", req, session.call_timeout)
            except HookError as exc:
                raise Failed(f"{reg.object_type}/{reg.hook}: {exc.kind}: {exc.message}") from None
            assert isinstance(verdict, plugin_pb2.ObjectVerdict)
            yield reg, obj, verdict


@check(
    "object-hooks.verdict-valid",
    "Object hooks register known types and hooks, and answer allow, deny(reason), modify(JSON object) "
    "or pending_approval(approvers) in time.",
    "core",
    capabilities=("object_hooks",),
)
async def object_verdicts(session: Session, options: Options) -> str | None:
    regs = await _object_hooks(session)
    async for reg, obj, verdict in _verdicts(session, options, regs):
        where = f"{reg.object_type}/{reg.hook} on {json.dumps(obj)[:80]}"
        which = verdict.WhichOneof("verdict")
        if which is None:
            raise Failed(f"{where}: no verdict")
        if which == "deny" and not verdict.deny:
            raise Failed(f"{where}: deny without a reason")
        if which == "modify":
            try:
                doc = json.loads(verdict.modify)
            except ValueError:
                doc = None
            if not isinstance(doc, dict):
                raise Failed(
                    f"{where}: modify with something that is not a JSON object: {verdict.modify[:80]!r}"
                )
        if which == "pending_approval" and not verdict.pending_approval.groups:
            raise Failed(f"{where}: pending_approval without approver groups")
    return None


@check(
    "object-hooks.after-cannot-block",
    "After-hooks (after_create, after_update, after_delete) answer allow: they cannot deny, modify or hold.",
    "core",
    capabilities=("object_hooks",),
)
async def after_cannot_block(session: Session, options: Options) -> str | None:
    regs = [r for r in await _object_hooks(session) if r.hook.startswith("after_")]
    if not regs:
        raise Skipped("the plugin registers no after-hooks")
    async for reg, obj, verdict in _verdicts(session, options, regs):
        which = verdict.WhichOneof("verdict")
        if which not in ("allow", None):
            raise Failed(f"{reg.object_type}/{reg.hook} answered {which} on {json.dumps(obj)[:80]}")
    return None


# ---------------------------------------------------------------- Service API scopes


_HOST_SERVICE = host_pb2.DESCRIPTOR.services_by_name["HostService"]


async def _probe_method(channel: grpc.aio.Channel, method: str, secret: str) -> str:
    """The status code name the host answers `method` with, called as the plugin (its secret)
    with an empty request: a scope is checked before the request is looked at."""
    desc = _HOST_SERVICE.methods_by_name.get(method)
    if desc is None:
        return "NOT_IN_PROTO"
    request = GetMessageClass(desc.input_type)()
    if "object_type" in desc.input_type.fields_by_name:
        setattr(request, "object_type", "llm")  # noqa: B010 - per-type scopes need a real type
    path = f"/{_HOST_SERVICE.full_name}/{method}"
    md = ((SECRET_METADATA, secret),)
    try:
        if desc.server_streaming:
            stream = channel.unary_stream(path, request_serializer=_serialize, response_deserializer=bytes)
            call = stream(request, metadata=md, timeout=3.0)
            async for _ in call:
                break
            call.cancel()
        else:
            unary = channel.unary_unary(path, request_serializer=_serialize, response_deserializer=bytes)
            await unary(request, metadata=md, timeout=5.0)
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED and desc.server_streaming:
            return "OK"  # subscribed, then waited for an event that never came
        return str(exc.code().name)
    return "OK"


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


@check(
    "service-api.scopes",
    "With no scopes granted, every Service API call made with the plugin's secret is refused "
    "(PERMISSION_DENIED; log.write is held by every plugin) and the plugin keeps answering; with "
    "its declared permissions.scopes granted, calls outside them are refused and the plugin made none.",
    "extended",
)
async def scopes(session: Session, options: Options) -> str | None:
    if session.api is None or not session.secret:
        raise Skipped("no Service API in this run")
    channel = grpc.aio.insecure_channel(session.api.address)
    saved = session.granted
    session.recording = False
    try:
        session.granted = frozenset()
        for method in sorted(METHOD_SCOPES):
            code = await _probe_method(channel, method, session.secret)
            if code == "NOT_IN_PROTO":
                continue  # mapped by the host but not in host.proto: nothing a plugin can call
            if METHOD_SCOPES[method] in ALWAYS_GRANTED:
                if code == "PERMISSION_DENIED":
                    raise Failed(
                        f"{method} needs {METHOD_SCOPES[method]}, which every plugin holds, but was refused"
                    )
                continue
            if code != "PERMISSION_DENIED":
                raise Failed(
                    f"the host does not enforce scopes: {method}, called with no scopes granted, "
                    f"answered {code} instead of PERMISSION_DENIED"
                )
        ctx = inputs.examples(inputs.request_contexts(), 1)[0]
        for name, call in hook_calls(session, ctx):
            try:
                await session.hook(call, 5.0)
            except HookError as exc:
                if exc.kind in ("deadline", "crash", "unavailable"):
                    raise Failed(f"with no scopes granted, {name}: {exc.kind}: {exc.message}") from None
        declared = session.declared_scopes
        if declared is not None:
            session.granted = declared
            session.recording = True  # the plugin at work, holding exactly what it declares
            for ctx in inputs.examples(inputs.request_contexts(), 3):
                for _, call in hook_calls(session, ctx):
                    with contextlib.suppress(HookError):  # other checks judge the verdicts
                        await session.hook(call, 5.0)
            session.recording = False
            for method in sorted(METHOD_SCOPES):
                scope = METHOD_SCOPES[method]
                scope = scope.replace("{type}", "llm")  # the type the probe names
                if scope in declared | ALWAYS_GRANTED:
                    continue
                code = await _probe_method(channel, method, session.secret)
                if code not in ("PERMISSION_DENIED", "NOT_IN_PROTO"):
                    raise Failed(f"{method} needs {scope}, which the plugin does not declare, but got {code}")
    finally:
        session.granted = saved
        session.recording = True
        await channel.close()
    undeclared = sorted({f"{r.method} ({r.scope})" for r in session.refusals})
    if undeclared:
        raise Failed(
            f"the plugin called the Service API outside its declared scopes: {', '.join(undeclared)}"
        )
    if session.declared_scopes is None:
        held = (
            f" (except {', '.join(sorted(ALWAYS_GRANTED))}, which every plugin holds)"
            if ALWAYS_GRANTED
            else ""
        )
        return f"refused every call with no scopes granted{held}; the manifest declares no permissions.scopes"
    return f"declared scopes {sorted(session.declared_scopes)} enforced"
