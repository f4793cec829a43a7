"""Helpers for the studio2 tests: the real host in process (real plugin processes, a real
SQLite file, real HTTP ports) with its plugin manager, and a small JSON client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from celgate.engine.config import parse_config
from celgate.engine.host import Host
from celgate.engine.plugin_manager import PluginManager

PLUGINS = Path(__file__).parent / "plugins"
ADMIN_TOKEN = "cgt_studio2-admin-token-0123456789abcdef"


@dataclass
class Reply:
    status: int
    body: Any
    headers: Any


@dataclass
class Running:
    host: Host
    manager: PluginManager
    session: aiohttp.ClientSession

    @property
    def studio(self) -> str:
        assert self.host.studio_server is not None
        return self.host.studio_server.url

    @property
    def gateway(self) -> str:
        assert self.host.gateway_server is not None
        return self.host.gateway_server.url

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str = ADMIN_TOKEN,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        h = {"Authorization": f"Bearer {token}", **(headers or {})}
        data = json.dumps(body).encode() if body is not None else None
        if data is not None:
            h["Content-Type"] = "application/json"
        async with self.session.request(method, self.studio + path, data=data, headers=h) as r:
            raw = await r.read()
            try:
                parsed: Any = json.loads(raw) if raw else None
            except ValueError:
                parsed = raw.decode(errors="replace")
            return Reply(r.status, parsed, r.headers)

    async def run_task(self, plugin_id: str, schedule_id: str, timeout: float = 30.0) -> dict[str, Any]:
        """Trigger a scheduled task through the API and wait (bounded) for its finished run."""
        base = f"/api/v1/plugins/{plugin_id}/schedules/{schedule_id}"
        before = (await self.call("GET", base + "/runs")).body.get("items", [])
        started = await self.call("POST", base + "/run")
        assert started.status == 202, started.body
        run = await wait_for(lambda: self._new_finished_run(base, len(before)), timeout)
        assert isinstance(run, dict)
        return run

    async def _new_finished_run(self, base: str, seen: int) -> dict[str, Any] | None:
        runs = (await self.call("GET", base + "/runs")).body["items"]
        done = [r for r in runs if r["state"] != "running"]
        return done[0] if len(done) > seen else None


async def wait_for(probe: Callable[[], Awaitable[Any]], timeout: float = 20.0) -> Any:
    """Poll `probe` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("the condition was not met in time")
        await asyncio.sleep(0.02)


def host_yaml(db: Path, plugins: str = "[]", upstream: bool = True) -> str:
    ups = "upstreams: [{id: s, base_url: standin}]\n" if upstream else ""
    return (
        'gateway: {listen: "127.0.0.1:0"}\n'
        f'studio: {{listen: "127.0.0.1:0", db: "{db}"}}\n'
        f"{ups}plugins: {plugins}\n"
    )


@contextlib.asynccontextmanager
async def running_host(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, yaml_text: str
) -> AsyncIterator[Running]:
    monkeypatch.setenv("CELGATE_ADMIN_TOKEN", ADMIN_TOKEN)
    host = Host(parse_config(yaml_text, base_dir=tmp_path))
    await host.start()
    try:
        manager = host.plugin_manager
        assert manager is not None, "the host attaches its plugin manager when the studio runs"
        async with aiohttp.ClientSession() as session:
            yield Running(host, manager, session)
    finally:
        await host.stop()
