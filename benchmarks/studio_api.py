"""Benchmark: studio REST API latency through real uvicorn and a real SQLite file.

Measures, one request at a time from an aiohttp client: a no-op route on the same server
(the baseline), an authenticated GET of an object (token lookup + read), a PATCH with
If-Match (token lookup + version check + write + audit row + event), and a create that
passes one in-process before-hook. Prints p50/p99 in ms and each p50 as a ratio to the
baseline's (the machine is noisy: compare ratios, not absolute times). Writes
benchmarks/results/studio_api.json.

Run: .venv/bin/python benchmarks/studio_api.py [--requests 400]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from celgate.engine.eventbus import EventBus
from celgate.engine.httpserver import AsgiServer, bind
from celgate.engine.objecthooks import HookRegistration, StaticTargets
from celgate.engine.studio_api import studio_routes
from celgate.engine.studio_state import open_studio
from celgate.v1 import common_pb2, plugin_pb2

RESULTS = Path(__file__).parent / "results" / "studio_api.json"
TOKEN = "cgt_benchmark-admin-token-000000"


class AllowAll:
    plugin_id = "allow"
    registrations = (HookRegistration("tool", "before_create", 1),)
    failure_policy = "fail-closed"
    timeout = 5.0

    async def call(self, request: plugin_pb2.ObjectHookRequest, timeout: float) -> plugin_pb2.ObjectVerdict:
        return plugin_pb2.ObjectVerdict(allow=common_pb2.Empty())


async def measure(n: int, fn: Callable[[int], Awaitable[int]]) -> dict[str, float]:
    for i in range(20):  # warm up
        await fn(-1 - i)
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        status = await fn(i)
        times.append((time.perf_counter() - t0) * 1000)
        assert status < 400, status
    times.sort()
    return {"p50_ms": statistics.median(times), "p99_ms": times[int(len(times) * 0.99) - 1]}


async def main(n: int) -> dict[str, object]:
    bus = EventBus()
    bus.subscribe(["system.*"], size=10)
    with tempfile.TemporaryDirectory() as tmp:
        state = await open_studio(
            str(Path(tmp) / "bench.db"), plugins=StaticTargets([AllowAll()]), events=bus, admin_token=TOKEN
        )

        async def noop(request: Request) -> JSONResponse:
            return JSONResponse({"ok": True})

        server = AsgiServer(
            Starlette(routes=[Route("/noop", noop), *studio_routes(state)]), bind("127.0.0.1", 0)
        )
        await server.start()
        auth = {"Authorization": f"Bearer {TOKEN}"}
        url = server.url
        version = 1
        try:
            async with aiohttp.ClientSession() as http:

                async def call(method: str, path: str, body: object = None, **headers: str) -> int:
                    data = json.dumps(body).encode() if body is not None else None
                    async with http.request(method, url + path, data=data, headers={**auth, **headers}) as r:
                        await r.read()
                        return r.status

                await call("POST", "/api/v1/llms", {"id": "gpt", "name": "GPT", "api_key": "sk-x"})

                async def patch(i: int) -> int:
                    nonlocal version
                    status = await call(
                        "PATCH",
                        "/api/v1/llms/gpt",
                        {"privacy_score": abs(i) % 100},
                        **{"If-Match": f'"{version}"'},
                    )
                    version += 1
                    return status

                results = {
                    "noop": await measure(n, lambda i: call("GET", "/noop")),
                    "get_object": await measure(n, lambda i: call("GET", "/api/v1/llms/gpt")),
                    "patch_object": await measure(n, patch),
                    "create_with_hook": await measure(
                        n, lambda i: call("POST", "/api/v1/tools", {"id": f"t{i + 100}", "name": "t"})
                    ),
                }
        finally:
            await server.stop()
            await state.close()
    base = results["noop"]["p50_ms"]
    for name, r in results.items():
        r["ratio_p50_to_noop"] = r["p50_ms"] / base
        ratio = r["ratio_p50_to_noop"]
        print(f"{name:18s} p50 {r['p50_ms']:.3f} ms  p99 {r['p99_ms']:.3f} ms  x{ratio:.2f} of no-op")
    return {
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "requests": n,
        "results": results,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args()
    out = asyncio.run(main(args.requests))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS}")
