"""The studio REST API under `/api/v1`: objects, users and tokens, approvals, plugins, schedules.

Every call needs `Authorization: Bearer <token>`. Roles: `admin` may do everything;
`approver` is a member who may vote on approvals; `member` reads llms, apps, tools and
datasources, creates and changes apps, and manages its own tokens. Objects carry an ETag
(their version); updates need `If-Match` (428 without it, 412 when stale). Errors are JSON:
`{"error": {"type": ..., "message": ...}}`. See docs/studio-api.md.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from celgate.engine import objects
from celgate.engine import studio_plugins_api as plugins_api
from celgate.engine.approvals import ApprovalDenied
from celgate.engine.audit import audit_json, entry
from celgate.engine.changes import ChangeResult, approval_event
from celgate.engine.objecthooks import Actor
from celgate.engine.objects import ObjectError
from celgate.engine.plugin_manager import ManagerError, PluginManager
from celgate.engine.scheduler import Busy, run_json, schedule_json
from celgate.engine.store.base import (
    ApprovalRecord,
    Conflict,
    NotFound,
    PluginInstall,
    StoredObject,
    VersionMismatch,
)
from celgate.engine.studio_state import StudioState

MAX_BODY = 1 << 20
TYPE_OF_PLURAL = {plural: otype for otype, plural in objects.PLURALS.items()}
MEMBER_WRITABLE = frozenset({"app"})
ADMIN_READ_ONLY = frozenset({"user"})


class ApiError(Exception):
    def __init__(self, status: int, kind: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.kind, self.message, self.extra = status, kind, message, extra


def _error(status: int, kind: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message, **extra}}, status_code=status)


Handler = Callable[[Request, StudioState, StoredObject], Awaitable[Response]]


def _endpoint(state: StudioState, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Authenticate, call the handler, and turn every expected failure into a JSON error."""

    async def endpoint(request: Request) -> Response:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _error(
                401,
                "unauthenticated",
                "a bearer token is required",
            )
        user = await state.authenticate(token.strip())
        if user is None:
            return _error(401, "unauthenticated", "the token is invalid or revoked")
        try:
            return await handler(request, state, user)
        except ApiError as exc:
            return _error(exc.status, exc.kind, exc.message, **exc.extra)
        except ObjectError as exc:
            return _error(
                422,
                "invalid",
                str(exc),
                fields=[{"field": e.field, "message": e.message} for e in exc.errors],
            )
        except VersionMismatch as exc:
            return _error(
                412,
                "precondition_failed",
                "the object changed since you read it",
                current_etag=f'"{exc.current}"',
            )
        except NotFound as exc:
            return _error(404, "not_found", str(exc))
        except Conflict as exc:
            return _error(409, "conflict", str(exc))
        except ApprovalDenied as exc:
            return _error(403, "forbidden", str(exc))
        except ManagerError as exc:
            return _error(exc.status, exc.kind, exc.message, **exc.extra)

    return endpoint


# ---------------------------------------------------------------------- helpers


def _actor(user: StoredObject) -> Actor:
    return Actor(user.id, str(user.data.get("email", "")), tuple(user.data.get("groups", [])))


def _role(user: StoredObject) -> str:
    return str(user.data.get("role", "member"))


def _require_admin(user: StoredObject) -> None:
    if _role(user) != "admin":
        raise ApiError(403, "forbidden", "this needs the admin role")


async def _json_body(request: Request) -> Any:
    body = await request.body()
    if len(body) > MAX_BODY:
        raise ApiError(413, "too_large", f"the body exceeds {MAX_BODY} bytes")
    if not body:
        raise ApiError(400, "bad_request", "a JSON body is required")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ApiError(400, "bad_request", f"the body is not valid JSON: {exc}") from None


async def _json_object(request: Request) -> dict[str, Any]:
    value = await _json_body(request)
    if not isinstance(value, dict):
        raise ApiError(400, "bad_request", "the body must be a JSON object")
    return value


def _if_match(request: Request, *, required: bool) -> int | None:
    """The version named by If-Match (None for `*` or, when optional, absent)."""
    raw = request.headers.get("if-match")
    if raw is None:
        if required:
            raise ApiError(428, "precondition_required", "send If-Match with the ETag you read")
        return None
    raw = raw.strip()
    if raw == "*":
        return None
    raw = raw.removeprefix("W/").strip('"')
    if not raw.isdigit():
        raise ApiError(412, "precondition_failed", "If-Match does not name a version of this object")
    return int(raw)


def _object_type(request: Request) -> str:
    plural = request.path_params["plural"]
    if plural not in TYPE_OF_PLURAL:
        raise ApiError(404, "not_found", f"no object type {plural!r}")
    return TYPE_OF_PLURAL[plural]


def _can_read(user: StoredObject, object_type: str, object_id: str = "") -> bool:
    if object_type in ADMIN_READ_ONLY:
        return _role(user) == "admin" or object_id == user.id
    return True


def _check_write(user: StoredObject, object_type: str) -> None:
    if _role(user) == "admin" or object_type in MEMBER_WRITABLE:
        return
    raise ApiError(403, "forbidden", f"changing {objects.PLURALS[object_type]} needs the admin role")


def _object_response(obj: StoredObject, status: int = 200, **headers: str) -> JSONResponse:
    return JSONResponse(obj.data, status_code=status, headers={"ETag": obj.etag, **headers})


def _request_id(request: Request) -> str:
    return request.headers.get("x-request-id") or secrets.token_hex(8)


def _change_response(result: ChangeResult, object_type: str, created: bool = False) -> Response:
    if result.status == "denied":
        return _error(403, "denied", result.reason, plugin=result.plugin, rule=result.rule)
    if result.status == "pending":
        assert result.approval is not None
        return JSONResponse(
            {"status": "pending_approval", "approval": approval_event(result.approval)},
            status_code=202,
            headers={"Location": f"/api/v1/approvals/{result.approval.id}"},
        )
    assert result.object is not None
    if created:
        location = f"/api/v1/{objects.PLURALS[object_type]}/{result.object.id}"
        return _object_response(result.object, 201, Location=location)
    return _object_response(result.object)


# ---------------------------------------------------------------------- objects


async def list_objects(request: Request, state: StudioState, user: StoredObject) -> Response:
    object_type = _object_type(request)
    if object_type in ADMIN_READ_ONLY:
        _require_admin(user)
    try:
        limit = max(1, min(int(request.query_params.get("limit", "100")), 1000))
    except ValueError:
        raise ApiError(400, "bad_request", "limit must be an integer") from None
    items = await state.store.list_objects(
        object_type, limit=limit, after=request.query_params.get("after", "")
    )
    body: dict[str, Any] = {"items": [{**o.data, "version": o.version} for o in items]}
    if len(items) == limit:
        body["next"] = items[-1].id
    return JSONResponse(body)


async def create_object(request: Request, state: StudioState, user: StoredObject) -> Response:
    object_type = _object_type(request)
    _check_write(user, object_type)
    data = await _json_object(request)
    if "owner" in objects.FIELDS[object_type] and not data.get("owner"):
        data["owner"] = user.id
    result = await state.changes.create(object_type, data, _actor(user), _request_id(request))
    return _change_response(result, object_type, created=True)


async def _load(state: StudioState, user: StoredObject, object_type: str, object_id: str) -> StoredObject:
    obj = await state.store.get_object(object_type, object_id)
    if obj is None or not _can_read(user, object_type, object_id):
        raise ApiError(404, "not_found", f"{object_type} {object_id!r} not found")
    return obj


async def get_object(request: Request, state: StudioState, user: StoredObject) -> Response:
    object_type = _object_type(request)
    obj = await _load(state, user, object_type, request.path_params["id"])
    if request.headers.get("if-none-match", "").strip() == obj.etag:
        return Response(status_code=304, headers={"ETag": obj.etag})
    return _object_response(obj)


async def update_object(request: Request, state: StudioState, user: StoredObject) -> Response:
    object_type = _object_type(request)
    object_id = request.path_params["id"]
    _check_write(user, object_type)
    expected = _if_match(request, required=True)
    current = await _load(state, user, object_type, object_id)
    body = await _json_object(request)
    # PATCH is a JSON merge patch on the current object; PUT replaces it
    data = objects.merge_patch(current.data, body) if request.method == "PATCH" else {"id": object_id, **body}
    if isinstance(data, dict) and object_type == "llm":
        data.pop("api_key_set", None)
    result = await state.changes.update(
        object_type,
        object_id,
        data,
        current.version if expected is None else expected,
        _actor(user),
        _request_id(request),
    )
    return _change_response(result, object_type)


async def delete_object(request: Request, state: StudioState, user: StoredObject) -> Response:
    object_type = _object_type(request)
    object_id = request.path_params["id"]
    _check_write(user, object_type)
    if object_type == "user" and object_id == user.id:
        raise ApiError(409, "conflict", "you cannot delete yourself")
    expected = _if_match(request, required=False)
    await _load(state, user, object_type, object_id)
    result = await state.changes.delete(object_type, object_id, expected, _actor(user), _request_id(request))
    if result.status == "applied":
        return Response(status_code=204)
    return _change_response(result, object_type)


async def me(request: Request, state: StudioState, user: StoredObject) -> Response:
    return _object_response(user)


async def list_groups(request: Request, state: StudioState, user: StoredObject) -> Response:
    groups: dict[str, list[str]] = {}
    after = ""
    while True:
        page = await state.store.list_objects("user", limit=500, after=after)
        for u in page:
            for g in u.data.get("groups", []):
                groups.setdefault(g, []).append(u.id)
        if len(page) < 500:
            break
        after = page[-1].id
    if _role(user) != "admin":  # members see group names and their own membership only
        return JSONResponse(
            {"items": [{"name": g, "member": user.id in m} for g, m in sorted(groups.items())]}
        )
    return JSONResponse({"items": [{"name": g, "members": m} for g, m in sorted(groups.items())]})


# ---------------------------------------------------------------------- tokens


def _token_owner(request: Request, user: StoredObject) -> str:
    owner = str(request.path_params["id"])
    if owner != user.id:
        _require_admin(user)
    return owner


async def list_tokens(request: Request, state: StudioState, user: StoredObject) -> Response:
    owner = _token_owner(request, user)
    tokens = await state.store.list_tokens(owner)
    return JSONResponse(
        {
            "items": [
                {"id": t.id, "name": t.name, "created_at": t.created_at, "last_used_at": t.last_used_at}
                for t in tokens
            ]
        }
    )


async def create_token(request: Request, state: StudioState, user: StoredObject) -> Response:
    owner = _token_owner(request, user)
    body = await _json_object(request) if await request.body() else {}
    name = body.get("name", "")
    if not isinstance(name, str) or len(name) > 100:
        raise ApiError(422, "invalid", "name must be a string of at most 100 characters")
    record, token = await state.issue_token(owner, name, user.id)
    return JSONResponse(
        {"id": record.id, "name": record.name, "created_at": record.created_at, "token": token},
        status_code=201,
    )


async def delete_token(request: Request, state: StudioState, user: StoredObject) -> Response:
    owner = _token_owner(request, user)
    token_id = request.path_params["token_id"]
    await state.store.delete_token(
        owner, token_id, entry(user.id, "token.deleted", "user", owner, token_id=token_id)
    )
    return Response(status_code=204)


# ---------------------------------------------------------------------- approvals


async def list_approvals(request: Request, state: StudioState, user: StoredObject) -> Response:
    wanted = request.query_params.get("state", "pending")
    if wanted not in ("pending", "approved", "rejected", "expired", "failed", "all"):
        raise ApiError(
            400, "bad_request", "state must be pending, approved, rejected, expired, failed or all"
        )
    records = await state.approvals.list("" if wanted == "all" else wanted)
    if request.query_params.get("votable") in ("1", "true"):
        records = [r for r in records if _may_vote(state, r, user)]
    return JSONResponse({"items": [approval_event(r) for r in records]})


def _may_vote(state: StudioState, record: ApprovalRecord, user: StoredObject) -> bool:
    if record.state != "pending" or any(v.user_id == user.id for v in record.votes):
        return False
    try:
        state.approvals.check_voter(record, user)
    except ApprovalDenied:
        return False
    return True


async def get_approval(request: Request, state: StudioState, user: StoredObject) -> Response:
    return JSONResponse(approval_event(await state.approvals.get(request.path_params["id"])))


async def _vote(request: Request, state: StudioState, user: StoredObject, decision: str) -> Response:
    body = await _json_object(request) if await request.body() else {}
    comment = body.get("comment", "")
    if not isinstance(comment, str) or len(comment) > 2000:
        raise ApiError(422, "invalid", "comment must be a string of at most 2000 characters")
    record = await state.approvals.vote(request.path_params["id"], user, decision, comment)
    return JSONResponse(approval_event(record))


async def approve(request: Request, state: StudioState, user: StoredObject) -> Response:
    return await _vote(request, state, user, "approve")


async def reject(request: Request, state: StudioState, user: StoredObject) -> Response:
    return await _vote(request, state, user, "reject")


# ---------------------------------------------------------------------- plugin installs


def _plugin_json(p: PluginInstall) -> dict[str, Any]:
    return {
        "id": p.id,
        "ref": p.ref,
        "config": p.config,
        "enabled": p.enabled,
        "scopes": list(p.scopes),
        "version": p.version,
        "created_at": p.created_at,
        "updated_at": p.updated_at,
    }


def _plugin_from(body: dict[str, Any], plugin_id: str) -> PluginInstall:
    unknown = set(body) - {"id", "ref", "config", "enabled", "scopes", "version", "created_at", "updated_at"}
    if unknown:
        raise ApiError(422, "invalid", f"unknown fields: {', '.join(sorted(unknown))}")
    ref, config, enabled, scopes = (
        body.get("ref"),
        body.get("config", {}),
        body.get("enabled", True),
        body.get("scopes", []),
    )
    if not isinstance(ref, str) or ref.split("://", 1)[0] not in ("file", "grpc", "oci") or "://" not in ref:
        raise ApiError(422, "invalid", "ref must be a file://, grpc:// or oci:// reference")
    if not isinstance(config, dict):
        raise ApiError(422, "invalid", "config must be an object")
    if not isinstance(enabled, bool):
        raise ApiError(422, "invalid", "enabled must be true or false")
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise ApiError(422, "invalid", "scopes must be a list of strings")
    if not plugin_id or not objects._ID_RE.match(plugin_id):
        raise ApiError(422, "invalid", "id must match [a-z0-9][a-z0-9_.-]*")
    return PluginInstall(plugin_id, ref, config, enabled, tuple(scopes))


def _with_status(state: StudioState, body: dict[str, Any]) -> dict[str, Any]:
    if state.plugin_status is not None:
        body["status"] = state.plugin_status(body["id"])
    return body


async def list_plugins(request: Request, state: StudioState, user: StoredObject) -> Response:
    manager = plugins_api.manager_of(state)
    if manager is not None:
        return await plugins_api.list_plugins(manager)
    return JSONResponse(
        {"items": [_with_status(state, _plugin_json(p)) for p in await state.store.list_plugins()]}
    )


async def install_plugin(request: Request, state: StudioState, user: StoredObject) -> Response:
    _require_admin(user)
    body = await _json_object(request)
    record = _plugin_from(body, str(body.get("id", "")))
    manager = plugins_api.manager_of(state)
    if manager is not None:
        if record.scopes:
            raise ApiError(422, "invalid", "grant scopes after install: POST /api/v1/plugins/{id}/scopes")
        saved = await manager.install(record.id, record.ref, record.config, record.enabled, user.id)
    else:
        saved = await state.store.put_plugin(
            record, None, entry(user.id, "plugin.install", "plugin", record.id, ref=record.ref)
        )
    await state.events.publish("system.plugin.created", _plugin_json(saved))
    return JSONResponse(
        _with_status(state, _plugin_json(saved)), status_code=201, headers={"ETag": saved.etag}
    )


async def get_plugin(request: Request, state: StudioState, user: StoredObject) -> Response:
    manager = plugins_api.manager_of(state)
    if manager is not None:
        found = await plugins_api.get_plugin(manager, request.path_params["id"])
        if found is None:
            raise ApiError(404, "not_found", "plugin not installed")
        return found
    p = await state.store.get_plugin(request.path_params["id"])
    if p is None:
        raise ApiError(404, "not_found", "plugin not installed")
    return JSONResponse(_with_status(state, _plugin_json(p)), headers={"ETag": p.etag})


async def update_plugin(request: Request, state: StudioState, user: StoredObject) -> Response:
    """PATCH (JSON merge patch): `config` is validated and applied by a reload, `enabled` starts or
    stops the plugin; scopes change only through POST .../scopes."""
    _require_admin(user)
    expected = _if_match(request, required=True)
    manager = plugins_api.manager_of(state)
    if manager is not None and request.path_params["id"] in manager.configured:
        raise ApiError(409, "conflict", "this plugin is configured in the host config; change it there")
    current = await state.store.get_plugin(request.path_params["id"])
    if current is None:
        raise ApiError(404, "not_found", "plugin not installed")
    if expected is not None and expected != current.version:
        raise VersionMismatch(current.version)
    merged = objects.merge_patch(_plugin_json(current), await _json_object(request))
    if not isinstance(merged, dict):
        raise ApiError(400, "bad_request", "the body must be a JSON object")
    record = _plugin_from(merged, current.id)
    if manager is None:
        saved = await state.store.put_plugin(
            record, current.version, entry(user.id, "plugin.update", "plugin", current.id)
        )
    else:
        if record.ref != current.ref:
            raise ApiError(422, "invalid", "ref cannot change: uninstall and install again")
        if record.scopes != current.scopes:
            raise ApiError(422, "invalid", "scopes change through POST /api/v1/plugins/{id}/scopes")
        saved = current
        if record.config != current.config:
            saved = await manager.update_config(current.id, record.config, current.version, user.id)
        if record.enabled != saved.enabled:
            saved = await manager.set_enabled(current.id, record.enabled, user.id)
    await state.events.publish("system.plugin.updated", _plugin_json(saved))
    return JSONResponse(_with_status(state, _plugin_json(saved)), headers={"ETag": saved.etag})


async def uninstall_plugin(request: Request, state: StudioState, user: StoredObject) -> Response:
    _require_admin(user)
    plugin_id = request.path_params["id"]
    expected = _if_match(request, required=False)
    manager = plugins_api.manager_of(state)
    if manager is not None:
        await manager.uninstall(plugin_id, expected, user.id)
    else:
        await state.store.delete_plugin(
            plugin_id, expected, entry(user.id, "plugin.uninstall", "plugin", plugin_id)
        )
    await state.events.publish("system.plugin.deleted", {"id": plugin_id})
    return Response(status_code=204)


def _manager(state: StudioState) -> PluginManager:
    manager = plugins_api.manager_of(state)
    if manager is None:
        raise ApiError(503, "unavailable", "plugin management needs the studio running inside a host")
    return manager


async def reload_plugin(request: Request, state: StudioState, user: StoredObject) -> Response:
    _require_admin(user)
    manager = _manager(state)
    plugin_id = request.path_params["id"]
    await manager.reload(plugin_id, user.id)
    await state.events.publish("system.plugin.reloaded", {"id": plugin_id})
    return JSONResponse({"id": plugin_id, "status": manager.status(plugin_id)})


async def grant_scopes(request: Request, state: StudioState, user: StoredObject) -> Response:
    _require_admin(user)
    manager = _manager(state)
    scopes = (await _json_object(request)).get("scopes")
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise ApiError(422, "invalid", "scopes must be a list of strings")
    saved = await manager.grant(request.path_params["id"], scopes, user.id)
    await state.events.publish("system.plugin.updated", _plugin_json(saved))
    return plugins_api.saved_response(manager, saved)


async def _set_enabled(request: Request, state: StudioState, user: StoredObject, enabled: bool) -> Response:
    _require_admin(user)
    manager = _manager(state)
    saved = await manager.set_enabled(request.path_params["id"], enabled, user.id)
    await state.events.publish("system.plugin.updated", _plugin_json(saved))
    return plugins_api.saved_response(manager, saved)


async def enable_plugin(request: Request, state: StudioState, user: StoredObject) -> Response:
    return await _set_enabled(request, state, user, True)


async def disable_plugin(request: Request, state: StudioState, user: StoredObject) -> Response:
    return await _set_enabled(request, state, user, False)


async def config_schema(request: Request, state: StudioState, user: StoredObject) -> Response:
    manager = _manager(state)
    plugin_id = request.path_params["id"]
    if manager.status(plugin_id) is None:
        raise ApiError(404, "not_found", f"no plugin {plugin_id!r}")
    if manager.handle(plugin_id) is None:
        raise ApiError(409, "conflict", f"plugin {plugin_id} is not running")
    return JSONResponse({"id": plugin_id, "schema": await manager.config_schema(plugin_id)})


# ---------------------------------------------------------------------- schedules and audit


async def list_schedules(request: Request, state: StudioState, user: StoredObject) -> Response:
    return JSONResponse(
        {"items": [schedule_json(s, due, running) for s, due, running in state.scheduler.schedules()]}
    )


def _schedule_key(request: Request, state: StudioState) -> tuple[str, str]:
    plugin_id, schedule_id = request.path_params["id"], request.path_params["schedule_id"]
    if state.scheduler.get(plugin_id, schedule_id) is None:
        raise ApiError(404, "not_found", f"no schedule {schedule_id!r} for plugin {plugin_id!r}")
    return plugin_id, schedule_id


async def list_runs(request: Request, state: StudioState, user: StoredObject) -> Response:
    plugin_id, schedule_id = request.path_params["id"], request.path_params["schedule_id"]
    runs = await state.store.list_runs(plugin_id, schedule_id, limit=100)
    if not runs and state.scheduler.get(plugin_id, schedule_id) is None:
        raise ApiError(404, "not_found", f"no schedule {schedule_id!r} for plugin {plugin_id!r}")
    return JSONResponse({"items": [run_json(r) for r in runs]})


async def trigger_run(request: Request, state: StudioState, user: StoredObject) -> Response:
    _require_admin(user)
    plugin_id, schedule_id = _schedule_key(request, state)
    try:
        await state.scheduler.trigger(plugin_id, schedule_id)
    except Busy as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    await state.store.add_audit(
        [entry(user.id, "schedule.trigger", "plugin", plugin_id, schedule_id=schedule_id)]
    )
    return JSONResponse({"status": "started"}, status_code=202)


async def list_audit(request: Request, state: StudioState, user: StoredObject) -> Response:
    _require_admin(user)
    q = request.query_params
    try:
        limit = max(1, min(int(q.get("limit", "100")), 1000))
        before = int(q.get("before", "0"))
    except ValueError:
        raise ApiError(400, "bad_request", "limit and before must be integers") from None
    rows = await state.store.list_audit(
        limit=limit, object_type=q.get("object_type", ""), object_id=q.get("object_id", ""), before_id=before
    )
    return JSONResponse({"items": [audit_json(r) for r in rows]})


def studio_routes(state: StudioState) -> list[BaseRoute]:
    """The `/api/v1` routes; mount them in the studio app."""

    def r(path: str, handler: Handler, methods: list[str]) -> Route:
        return Route("/api/v1" + path, _endpoint(state, handler), methods=methods)

    return [
        r("/me", me, ["GET"]),
        r("/groups", list_groups, ["GET"]),
        r("/approvals", list_approvals, ["GET"]),
        r("/approvals/{id}", get_approval, ["GET"]),
        r("/approvals/{id}/approve", approve, ["POST"]),
        r("/approvals/{id}/reject", reject, ["POST"]),
        r("/plugins", list_plugins, ["GET"]),
        r("/plugins", install_plugin, ["POST"]),
        r("/plugins/{id}", get_plugin, ["GET"]),
        r("/plugins/{id}", update_plugin, ["PATCH"]),
        r("/plugins/{id}", uninstall_plugin, ["DELETE"]),
        r("/plugins/{id}/reload", reload_plugin, ["POST"]),
        r("/plugins/{id}/scopes", grant_scopes, ["POST"]),
        r("/plugins/{id}/enable", enable_plugin, ["POST"]),
        r("/plugins/{id}/disable", disable_plugin, ["POST"]),
        r("/plugins/{id}/config-schema", config_schema, ["GET"]),
        r("/plugins/{id}/schedules/{schedule_id}/runs", list_runs, ["GET"]),
        r("/plugins/{id}/schedules/{schedule_id}/run", trigger_run, ["POST"]),
        r("/schedules", list_schedules, ["GET"]),
        r("/audit", list_audit, ["GET"]),
        r("/users/{id}/tokens", list_tokens, ["GET"]),
        r("/users/{id}/tokens", create_token, ["POST"]),
        r("/users/{id}/tokens/{token_id}", delete_token, ["DELETE"]),
        r("/{plural}", list_objects, ["GET"]),
        r("/{plural}", create_object, ["POST"]),
        r("/{plural}/{id}", get_object, ["GET"]),
        r("/{plural}/{id}", update_object, ["PUT", "PATCH"]),
        r("/{plural}/{id}", delete_object, ["DELETE"]),
    ]
