"""Hot reload under load: latency during `POST /api/v1/plugins/{id}/reload` against steady state.

    .venv/bin/python benchmarks/reload.py [--clients 8] [--reloads 5] [--steady 2.0]

Runs the real host in process (stand-in upstream, the pass-through plugin from
tests/gateway/plugins, the studio on a throw-away SQLite file),
keeps `--clients` connections sending chat completions, and alternates a steady window of
`--steady` seconds with a window that spans one reload through the studio API (measured from
the reload request until the old process is gone, plus 0.2 s). Target (PERFORMANCE.md): zero
failed requests; p99 during the reloads <= 2x steady-state p99. Prints the figures and writes
benchmarks/results/reload.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from celgate.engine.config import parse_config  # noqa: E402
from celgate.engine.host import Host  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "reload.json"
PLUGIN = ROOT / "tests" / "gateway" / "plugins" / "passthrough"
TOKEN = "cgt_benchmark-admin-token-0123456789abcdef"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def run(clients: int, reloads: int, steady: float) -> dict[str, Any]:
    os.environ["CELGATE_ADMIN_TOKEN"] = TOKEN
    tmp = tempfile.mkdtemp(prefix="celgate-bench-reload-")
    config = parse_config(
        f"""
gateway: {{listen: "127.0.0.1:0"}}
studio: {{listen: "127.0.0.1:0", db: "{tmp}/studio.db"}}
upstreams: [{{id: s, base_url: standin}}]
plugins: [{{id: passthrough, ref: "file://{PLUGIN}", deadline_ms: 2000}}]
""",
        base_dir=Path(tmp),
    )
    host = Host(config)
    await host.start()
    assert host.plugin_manager is not None
    assert host.gateway_server is not None and host.studio_server is not None
    url = host.gateway_server.url + "/v1/chat/completions"
    reload_url = host.studio_server.url + "/api/v1/plugins/passthrough/reload"
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    samples: list[tuple[float, float, int]] = []  # (start, seconds, status)
    stop = asyncio.Event()

    async def client(session: aiohttp.ClientSession) -> None:
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                async with session.post(url, json=body) as r:
                    await r.read()
                    status = r.status
            except aiohttp.ClientError:
                status = -1
            samples.append((t0, time.perf_counter() - t0, status))

    windows: list[tuple[str, float, float]] = []
    try:
        async with aiohttp.ClientSession() as session:
            workers = [asyncio.create_task(client(session)) for _ in range(clients)]
            await asyncio.sleep(0.5)  # warm-up, not counted
            headers = {"Authorization": f"Bearer {TOKEN}"}
            for _ in range(reloads):
                t0 = time.perf_counter()
                await asyncio.sleep(steady)
                windows.append(("steady", t0, time.perf_counter()))
                t0 = time.perf_counter()
                async with session.post(reload_url, headers=headers) as r:
                    assert r.status == 200, await r.text()
                await asyncio.sleep(0.2)
                windows.append(("reload", t0, time.perf_counter()))
            stop.set()
            await asyncio.gather(*workers)
    finally:
        await host.stop()

    def pick(kind: str) -> list[tuple[float, float, int]]:
        return [s for s in samples if any(k == kind and a <= s[0] < b for k, a, b in windows)]

    figures: dict[str, Any] = {}
    for kind in ("steady", "reload"):
        chosen = pick(kind)
        latencies = [s[1] * 1000 for s in chosen]
        figures[kind] = {
            "requests": len(chosen),
            "failed": sum(1 for s in chosen if s[2] != 200),
            "p50_ms": round(statistics.median(latencies), 3) if latencies else 0.0,
            "p99_ms": round(pct(latencies, 0.99), 3),
        }
    figures["failed_total"] = sum(1 for s in samples if s[2] != 200)
    figures["requests_total"] = len(samples)
    steady_p99 = figures["steady"]["p99_ms"] or 1e-9
    figures["p99_ratio_reload_over_steady"] = round(figures["reload"]["p99_ms"] / steady_p99, 2)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--reloads", type=int, default=5)
    parser.add_argument("--steady", type=float, default=2.0)
    args = parser.parse_args()
    figures = asyncio.run(run(args.clients, args.reloads, args.steady))
    report = {
        "benchmark": "reload",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "clients": args.clients,
        "reloads": args.reloads,
        **figures,
        "targets": {"failed_total": 0, "p99_ratio_reload_over_steady": "<= 2"},
    }
    print(json.dumps(report, indent=2))
    ok = figures["failed_total"] == 0 and figures["p99_ratio_reload_over_steady"] <= 2
    print("target met" if ok else "target NOT met")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
