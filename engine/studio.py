"""The studio's HTTP port: host health and runtime status, plus the studio REST API.

`GET /healthz` answers `{"status": "ok"}` while the host runs. `GET /api/v1/runtime/plugins`
lists the plugins configured in celgate.yaml in pipeline order: id, reference, runtime,
failure policy, capabilities, version, health, restarts and pid (`/api/v1/runtime/plugins/{id}`
for one). `GET /api/v1/runtime/stats` gives the gateway's data-collection counters. These are
unauthenticated, like /healthz: keep the studio port on loopback or behind a proxy.

The studio REST API (`engine.studio_api`: objects, tokens, approvals, installed plugins,
schedules; token-authenticated) is mounted after these routes by the host.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from celgate.engine.config import PluginConfig


def plugin_info(plugin: PluginConfig, handle: Any | None) -> dict[str, Any]:
    info: dict[str, Any] = {
        "id": plugin.id,
        "ref": plugin.ref,
        "runtime": plugin.runtime,
        "order": plugin.order,
        "failure_policy": plugin.failure_policy,
        "healthy": bool(handle is not None and handle.healthy),
        "capabilities": sorted(handle.capabilities) if handle is not None else [],
    }
    if handle is not None:
        manifest = getattr(handle, "manifest", None) or {}
        info["version"] = str(manifest.get("version", ""))
        info["restarts"] = int(getattr(handle, "restarts", 0) or 0)
        info["pid"] = getattr(handle, "pid", None)
    return info


def studio_app(
    plugins: Sequence[PluginConfig],
    handle_of: Callable[[str], Any | None],
    gateway_stats: Callable[[], dict[str, Any]] | None = None,
    api_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def list_plugins(request: Request) -> JSONResponse:
        return JSONResponse({"plugins": [plugin_info(p, handle_of(p.id)) for p in plugins]})

    async def get_plugin(request: Request) -> JSONResponse:
        pid = request.path_params["plugin_id"]
        for p in plugins:
            if p.id == pid:
                return JSONResponse(plugin_info(p, handle_of(p.id)))
        return JSONResponse(
            {"error": {"message": f"no plugin {pid!r}", "code": "not_found"}}, status_code=404
        )

    async def stats(request: Request) -> JSONResponse:
        return JSONResponse(gateway_stats() if gateway_stats is not None else {})

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/api/v1/runtime/plugins", list_plugins),
            Route("/api/v1/runtime/plugins/{plugin_id}", get_plugin),
            Route("/api/v1/runtime/stats", stats),
            *api_routes,
        ]
    )
