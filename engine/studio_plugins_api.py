"""Views of plugins for the `/api/v1/plugins` routes of `engine.studio_api`, with live status.

Reading (list, one plugin, its config schema) is open to every authenticated user; every change
(install, config, enable/disable, scopes, reload, uninstall) needs the admin role. Without a
manager (a studio run outside a host) the plugin routes of `engine.studio_api` keep only the
install records. See docs/studio-api.md for the shapes and an example call per endpoint.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, Response

from celgate.engine.plugin_manager import PluginManager
from celgate.engine.store.base import PluginInstall
from celgate.engine.studio_state import StudioState


def manager_of(state: StudioState) -> PluginManager | None:
    manager = getattr(state, "plugin_manager", None)
    return manager if isinstance(manager, PluginManager) else None


def record_json(p: PluginInstall) -> dict[str, Any]:
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


def configured_json(manager: PluginManager, plugin_id: str) -> dict[str, Any]:
    spec = manager.configured[plugin_id]
    return {"id": spec.id, "ref": spec.ref, "runtime": spec.runtime, "enabled": True}


def with_status(manager: PluginManager, body: dict[str, Any]) -> dict[str, Any]:
    body["status"] = manager.status(body["id"])
    return body


async def list_plugins(manager: PluginManager) -> Response:
    items = [configured_json(manager, pid) for pid in manager.configured]
    items += [record_json(p) for p in await manager.store.list_plugins() if p.id not in manager.configured]
    return JSONResponse({"items": [with_status(manager, b) for b in items]})


async def get_plugin(manager: PluginManager, plugin_id: str) -> Response | None:
    """The plugin, or None when neither configured nor installed."""
    if plugin_id in manager.configured:
        return JSONResponse(with_status(manager, configured_json(manager, plugin_id)))
    record = await manager.store.get_plugin(plugin_id)
    if record is None:
        return None
    return JSONResponse(with_status(manager, record_json(record)), headers={"ETag": record.etag})


def saved_response(manager: PluginManager, saved: PluginInstall, status: int = 200) -> JSONResponse:
    return JSONResponse(
        with_status(manager, record_json(saved)), status_code=status, headers={"ETag": saved.etag}
    )
