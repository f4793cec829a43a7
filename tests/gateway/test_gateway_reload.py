"""The host in process with real plugin processes: hot reload under load fails no request."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from celgate.engine.config import parse_config
from celgate.engine.host import Host

PLUGINS = Path(__file__).parent / "plugins"


async def test_reloading_a_plugin_under_load_fails_no_request(tmp_path: Path) -> None:
    config = parse_config(
        f"""
gateway: {{listen: "127.0.0.1:0"}}
studio: {{enabled: false}}
upstreams: [{{id: s, base_url: standin}}]
plugins: [{{id: passthrough, ref: "file://{PLUGINS / "passthrough"}", deadline_ms: 2000}}]
""",
        base_dir=tmp_path,
    )
    host = Host(config)
    await host.start()
    try:
        assert host.gateway_server is not None and host.supervisor is not None
        url = host.gateway_server.url + "/v1/chat/completions"
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        old_pid = host.supervisor.get("passthrough").pid
        statuses: list[int] = []
        stop = asyncio.Event()

        async def client(session: aiohttp.ClientSession) -> None:
            while not stop.is_set():
                async with session.post(url, json=body) as r:
                    await r.read()
                    statuses.append(r.status)

        async with asyncio.timeout(30), aiohttp.ClientSession() as session:  # bounded, never hangs
            workers = [asyncio.create_task(client(session)) for _ in range(8)]
            while len(statuses) < 50:
                await asyncio.sleep(0.01)
            await host.reload_plugin("passthrough")
            before = len(statuses)
            while len(statuses) < before + 50:
                await asyncio.sleep(0.01)
            stop.set()
            await asyncio.gather(*workers)
        assert host.supervisor.get("passthrough").pid != old_pid
        assert statuses and set(statuses) == {200}
    finally:
        await host.stop()
