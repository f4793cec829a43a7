"""Checks on loading: handshake, health, manifest, capabilities, config schema."""

from __future__ import annotations

import contextlib
import json

import grpc
from grpc_health.v1 import health_pb2

from celgate.conformance import config as cfg
from celgate.conformance.checks.common import active
from celgate.conformance.registry import Failed, Options, Skipped, check
from celgate.conformance.session import Session
from celgate.engine.handle import HookError
from celgate.engine.service_api import KNOWN_SCOPES
from celgate.sdk.capabilities import CAPABILITIES
from celgate.v1 import common_pb2, plugin_pb2


def _reached(session: Session) -> None:
    """Later load steps are not reached when the handshake failed: skip, do not repeat it."""
    if session.observed.handshake_error:
        raise Skipped("not reached: the plugin did not complete its handshake (see plugin.handshake)")


@check(
    "plugin.handshake",
    "The plugin starts, prints one valid handshake line (file://) and accepts a gRPC connection.",
    "core",
    needs_load=False,
)
async def handshake(session: Session, options: Options) -> str | None:
    if session.observed.handshake_error:
        raise Failed(session.observed.handshake_error)
    return f"dialled {session.endpoint.target if session.endpoint else '?'}"


@check(
    "plugin.health",
    'grpc.health.v1 reports SERVING for the services "" and "plugin".',
    "core",
    needs_load=False,
)
async def health(session: Session, options: Options) -> str | None:
    _reached(session)
    if session.conn is None:
        raise Failed(f"not reachable: {session.observed.load_error}")
    for service in ("", "plugin"):
        try:
            reply = await session.conn.health.Check(
                health_pb2.HealthCheckRequest(service=service), timeout=session.call_timeout
            )
        except grpc.aio.AioRpcError as exc:
            raise Failed(f"Health.Check({service!r}): {exc.code().name}: {exc.details()}") from None
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            raise Failed(f"Health.Check({service!r}) reported status {reply.status}, not SERVING")
    return None


@check(
    "manifest.valid",
    "GetManifest returns a JSON object with an id, known capability names, and the reply's fields agree.",
    "core",
    needs_load=False,
)
async def manifest_valid(session: Session, options: Options) -> str | None:
    _reached(session)
    obs = session.observed
    if obs.manifest_reply is None:
        raise Failed(obs.manifest_error or obs.load_error or "no manifest")
    if obs.manifest is None:
        raise Failed(obs.manifest_error or "manifest_json is empty")
    manifest = obs.manifest
    problems = []
    pid = manifest.get("id")
    if not isinstance(pid, str) or not pid:
        problems.append("no string 'id'")
    caps = manifest.get("capabilities")
    if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
        problems.append("'capabilities' is not a list of names")
    else:
        unknown = sorted(set(caps) - set(CAPABILITIES))
        if unknown:
            problems.append(f"unknown capabilities {unknown}")
    unknown_reported = sorted(set(obs.manifest_reply.capabilities) - set(CAPABILITIES))
    if unknown_reported:
        problems.append(f"ManifestReply.capabilities has unknown names {unknown_reported}")
    for key in ("name", "version", "description"):
        if key in manifest and not isinstance(manifest[key], str):
            problems.append(f"'{key}' is not a string")
    perms = manifest.get("permissions")
    if perms is not None and not isinstance(perms, dict):
        problems.append("'permissions' is not an object")
    declared = {"permissions.scopes": perms.get("scopes") if isinstance(perms, dict) else None}
    declared["scopes"] = manifest.get("scopes")  # where `celgate compile` writes them
    for where, scopes in declared.items():
        if scopes is None:
            continue
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            problems.append(f"'{where}' is not a list of names")
        elif set(scopes) - KNOWN_SCOPES:
            problems.append(f"unknown scopes in {where}: {sorted(set(scopes) - KNOWN_SCOPES)}")
    reply = obs.manifest_reply
    if reply.response_chunks and "response" not in reply.capabilities:
        problems.append("response_chunks is set but the plugin does not implement response")
    if reply.subscriptions and "event_subscriber" not in reply.capabilities:
        problems.append("subscriptions are set but the plugin does not implement event_subscriber")
    if reply.hooks_address and not reply.hooks_address.startswith("unix:"):
        problems.append(f"hooks_address {reply.hooks_address!r} is not unix:PATH")
    if problems:
        raise Failed("; ".join(problems))
    return f"{pid} {manifest.get('version', '')}".strip()


@check(
    "manifest.capabilities-agree",
    "The manifest's capabilities equal the ones the plugin reports as implemented.",
    "core",
    needs_load=False,
)
async def capabilities_agree(session: Session, options: Options) -> str | None:
    _reached(session)
    if session.observed.manifest_reply is None:
        raise Failed(session.observed.load_error or "no manifest")
    declared, implemented = session.declared, session.capabilities
    if declared != implemented:
        parts = []
        if implemented - declared:
            parts.append(f"implemented but not declared: {sorted(implemented - declared)}")
        if declared - implemented:
            parts.append(f"declared but not implemented: {sorted(declared - implemented)}")
        raise Failed("; ".join(parts))
    return ", ".join(sorted(declared))


async def _probe(session: Session, capability: str) -> tuple[bool, str]:
    """(answers, detail): does the plugin actually serve `capability`?"""
    stub = session.conn.stub if session.conn is not None else None
    assert stub is not None
    timeout = session.call_timeout
    ctx = plugin_pb2.RequestContext(
        request=plugin_pb2.HttpRequest(id="probe", method="GET", path="/v1/models"), runtime="gateway"
    )
    hook_calls = {
        "pre_auth": plugin_pb2.HookCall(pre_auth=ctx),
        "post_auth": plugin_pb2.HookCall(post_auth=ctx),
        "auth": plugin_pb2.HookCall(auth=plugin_pb2.AuthRequest(context=ctx, credential="probe")),
        "response": plugin_pb2.HookCall(response_end=plugin_pb2.ResponseEnd(context=ctx, status=200)),
    }
    try:
        if capability in hook_calls:
            try:
                reply = await session.raw_hook(hook_calls[capability], timeout)
            except HookError as exc:
                return False, f"{exc.kind}: {exc.message}"
            if reply.error:
                return False, reply.error
            return reply.WhichOneof("reply") is not None, reply.WhichOneof("reply") or "an empty reply"
        if capability == "data_collection":
            ack = await stub.CollectData(plugin_pb2.DataBatch(), timeout=timeout)
            return not ack.error, ack.error or "acknowledged an empty batch"
        if capability == "custom_endpoints":
            routes = await stub.ListEndpoints(common_pb2.Empty(), timeout=timeout)
            return bool(routes.routes), f"{len(routes.routes)} routes"
        if capability == "object_hooks":
            hooks = await stub.ListObjectHooks(common_pb2.Empty(), timeout=timeout)
            return bool(hooks.hooks), f"{len(hooks.hooks)} object hooks"
        if capability == "config_provider":
            schema = await stub.GetConfigSchema(common_pb2.Empty(), timeout=timeout)
            return bool(schema.schema_json), "a config schema" if schema.schema_json else "no schema"
        if capability in ("ui_provider", "portal_ui"):
            assets = await stub.ListAssets(
                plugin_pb2.AssetListRequest(portal=capability == "portal_ui"), timeout=timeout
            )
            return bool(assets.assets), f"{len(assets.assets)} assets"
        if capability == "scheduled_tasks":
            task = await stub.RunScheduledTask(
                plugin_pb2.ScheduledTaskRequest(schedule_id="conformance-probe", run_id="probe"),
                timeout=timeout,
            )
            return True, "ran" if task.ok else f"answered: {task.error}"
        if capability == "agent":
            call = stub.HandleAgentMessage(
                plugin_pb2.AgentMessage(session_id="probe", message="ping"), timeout=timeout
            )
            async for _ in call:
                return True, "streamed a chunk"
            return True, "an empty stream"
        if capability == "event_subscriber":
            announced = session.observed.manifest_reply
            return bool(announced and announced.subscriptions), "subscriptions announced"
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
            return False, "UNIMPLEMENTED"
        return True, f"answered {exc.code().name}: {exc.details()}"
    return True, "not probed"


@check(
    "capabilities.declared-implemented",
    "Every declared capability answers its calls (not UNIMPLEMENTED, not a 'not implemented' error).",
    "core",
)
async def declared_implemented(session: Session, options: Options) -> str | None:
    missing = []
    for capability in sorted(session.declared & set(CAPABILITIES)):
        if capability == "manifest_provider":
            continue
        answers, detail = await _probe(session, capability)
        if not answers:
            missing.append(f"{capability} ({detail})")
    if missing:
        raise Failed(f"declared but not implemented: {', '.join(missing)}")
    return None


@check(
    "capabilities.undeclared-unimplemented",
    "Every capability the manifest does not declare is refused "
    "(UNIMPLEMENTED, an empty list, or an error reply).",
    "core",
)
async def undeclared_unimplemented(session: Session, options: Options) -> str | None:
    extra = []
    for capability in sorted(set(CAPABILITIES) - active(session)):
        if capability in ("manifest_provider", "event_subscriber", "agent", "scheduled_tasks"):
            continue  # nothing observable, or a call with side effects we do not make unasked
        answers, detail = await _probe(session, capability)
        if answers:
            extra.append(f"{capability} ({detail})")
    if extra:
        raise Failed(f"implemented but not declared: {', '.join(extra)}")
    return None


@check(
    "config.schema-valid",
    "GetConfigSchema returns a valid JSON Schema for a JSON object ('' when the plugin takes no config).",
    "core",
    capabilities=("config_provider",),
)
async def schema_valid(session: Session, options: Options) -> str | None:
    obs = session.observed
    if obs.schema_error:
        raise Failed(obs.schema_error)
    try:
        schema = cfg.parse_schema(obs.schema_json or "")
    except ValueError as exc:
        raise Failed(f"schema_json is not a JSON object: {exc}") from None
    if schema is None:
        raise Failed("the plugin declares config_provider but returns no schema")
    problems = cfg.schema_problems(schema)
    if problems:
        raise Failed("; ".join(problems))
    return None


@check(
    "config.defaults-valid",
    "The schema accepts the plugin's own defaults, and Configure accepts the run's config.",
    "core",
    needs_load=False,
)
async def defaults_valid(session: Session, options: Options) -> str | None:
    _reached(session)
    obs = session.observed
    if obs.manifest_reply is None:
        raise Failed(obs.load_error or "no manifest")
    problems: list[str] = []
    schema = None
    with contextlib.suppress(ValueError):  # reported by config.schema-valid
        schema = cfg.parse_schema(obs.schema_json or "")
    if schema is not None and not cfg.schema_problems(schema):
        problems += cfg.default_problems(schema)
        problems += [
            f"the run's config {json.dumps(session.config)[:200]}: {p}"
            for p in cfg.config_problems(schema, session.config or {})
        ]
    if obs.configure_error:
        problems.append(obs.configure_error)
    if problems:
        raise Failed("; ".join(problems))
    if schema is None and "config_provider" not in active(session):
        return "no config schema: Configure accepted {}"
    return f"Configure accepted {json.dumps(session.config)[:120]}"
