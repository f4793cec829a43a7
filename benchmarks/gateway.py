"""Gateway overhead: added latency and throughput over calling the stand-in upstream directly.

Everything runs as separate processes, measured side by side in one run: the stand-in
upstream and the gateway (uvloop + httptools) share CPU 0, the load generator (wrk, else a
small aiohttp client) runs on CPU 1. Variants: the upstream directly, the gateway with zero
plugins, the gateway with one pass-through plugin (a post_auth hook hop per request), and for
the single-connection stream also one response plugin that rewrites every chunk.
Workloads: non-streaming chat completion at 1 and 32 connections, a 20-chunk SSE stream at 1
and 16 connections. A first part compares upstream HTTP clients (aiohttp, a pooled httpcore
connection, httpx2, and celgate's own httptools-based pool) on the same stand-in, which is how
the gateway's client was chosen.

    .venv/bin/python benchmarks/gateway.py [--duration 5] [--repeat 3] [--quick]

Prints a table with ratios and writes benchmarks/results/gateway.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "gateway.json"
PASSTHROUGH = ROOT / "tests" / "gateway" / "plugins" / "passthrough"
REWRITE = ROOT / "examples" / "plugins" / "header-rewrite"
PY = sys.executable
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello big world"}]}
# 19 words -> "echo:" + 19 = 20 content chunks (plus the role and finish events and [DONE]).
STREAM = {
    "model": "gpt-4o-mini",
    "stream": True,
    "messages": [{"role": "user", "content": " ".join(f"w{i}" for i in range(19))}],
}
SERVER_CPU, LOAD_CPU = "0", "1"


def _pin(cpu: str) -> list[str]:
    return ["taskset", "-c", cpu] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []


# ------------------------------------------------------------------ processes


class Proc:
    def __init__(self, args: list[str], ready: str, cwd: Path = ROOT) -> None:
        self.p = subprocess.Popen(args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.url = ""
        deadline = time.monotonic() + 30
        assert self.p.stdout is not None
        lines = []
        while time.monotonic() < deadline:
            line = self.p.stdout.readline()
            if not line:
                break
            lines.append(line)
            m = re.search(ready, line)
            if m:
                self.url = m.group(1)
                break
        if not self.url:
            self.stop()
            raise RuntimeError(f"{args[0:4]} did not start:\n" + "".join(lines))
        # Keep draining output so the process never blocks on a full pipe.
        import threading

        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.p.stdout is not None
        for _ in self.p.stdout:
            pass

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def start_standin() -> Proc:
    args = [*_pin(SERVER_CPU), PY, "-m", "celgate.engine.standin", "--listen", "127.0.0.1:0"]
    return Proc(args, r"^(http://\S+)")


def start_gateway(upstream: str, plugins: str, tmp: Path) -> Proc:
    """plugins: "" (none), "passthrough" (one post_auth hop), "chunks" (header-rewrite, a
    response plugin that rewrites every stream chunk)."""
    cfg = tmp / f"gateway-{plugins or 'none'}.yaml"
    text = (
        f"gateway: {{listen: '127.0.0.1:0'}}\nstudio: {{enabled: false}}\n"
        f"upstreams: [{{id: standin, base_url: '{upstream}', models: ['*']}}]\n"
    )
    if plugins == "passthrough":
        text += f"plugins: [{{id: passthrough, ref: 'file://{PASSTHROUGH}'}}]\n"
    elif plugins == "chunks":
        text += (
            f"plugins: [{{id: header-rewrite, ref: 'file://{REWRITE}', "
            "config: {replace: [{from: w1, to: W1}]}}]\n"
        )
    cfg.write_text(text)
    args = [*_pin(SERVER_CPU), PY, "-m", "celgate", "serve", "--config", str(cfg), "--log-level", "warning"]
    return Proc(args, r"gateway listening on (http://\S+)")


# ------------------------------------------------------------------ load generation


def _lua(body: dict[str, Any]) -> str:
    payload = json.dumps(json.dumps(body))
    return (
        'wrk.method = "POST"\n'
        f"wrk.body = {payload}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        'wrk.headers["Authorization"] = "Bearer bench"\n'
    )


def _ms(value: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", value)
    if not m:
        return float("nan")
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]


def wrk(url: str, script: Path, connections: int, duration: float) -> dict[str, float]:
    threads = 1 if connections == 1 else 2
    out = subprocess.run(
        [
            *_pin(LOAD_CPU),
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    res: dict[str, float] = {}
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", out, re.M)
        res[f"p{pct}_ms"] = _ms(m.group(1)) if m else float("nan")
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["errors"] = float(m.group(1)) if m else 0.0
    return res


_PYLOAD = r"""
import asyncio, json, sys, time, aiohttp
url, body, conns, dur = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
async def main():
    lat, first, errors = [], [], 0
    conn = aiohttp.TCPConnector(limit=conns)
    async with aiohttp.ClientSession(connector=conn) as s:
        end = time.perf_counter() + dur
        async def worker():
            nonlocal errors
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                async with s.post(url, json=body, headers={"authorization": "Bearer bench"}) as r:
                    t1 = None
                    async for _ in r.content.iter_any():
                        if t1 is None:
                            t1 = time.perf_counter()
                    if r.status != 200:
                        errors += 1
                t2 = time.perf_counter()
                lat.append(t2 - t0); first.append((t1 or t2) - t0)
        t = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(conns)))
        el = time.perf_counter() - t
    lat.sort(); first.sort()
    q = lambda xs, p: xs[min(len(xs) - 1, int(p * len(xs)))] * 1000
    print(json.dumps({"p50_ms": q(lat, .5), "p99_ms": q(lat, .99), "first_byte_p50_ms": q(first, .5),
                      "rps": len(lat) / el, "errors": errors}))
asyncio.run(main())
"""


def pyload(url: str, body: dict[str, Any], connections: int, duration: float) -> dict[str, float]:
    out = subprocess.run(
        [*_pin(LOAD_CPU), PY, "-c", _PYLOAD, url, json.dumps(body), str(connections), str(duration)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _median_run(runs: list[dict[str, float]], key: str) -> dict[str, float]:
    """The run whose `key` is the median (whole runs, so p50/p99/rps stay consistent)."""
    return sorted(runs, key=lambda r: r[key])[len(runs) // 2]


# ------------------------------------------------------------------ upstream client comparison


async def compare_clients(base: str, n: int) -> dict[str, dict[str, float]]:
    url = base + "/v1/chat/completions"
    body = json.dumps(CHAT).encode()
    headers = {"content-type": "application/json"}
    results: dict[str, dict[str, float]] = {}

    async def measure(name: str, one: Any) -> None:
        for _ in range(200):  # warm-up: connections and caches
            await one()
        lat = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            await one()
            lat.append((time.perf_counter_ns() - t0) / 1000)
        lat.sort()
        results[name] = {"p50_us": lat[len(lat) // 2], "p99_us": lat[int(len(lat) * 0.99)]}

    import aiohttp

    async with aiohttp.ClientSession(auto_decompress=False) as s:

        async def aio() -> None:
            async with s.post(url, data=body, headers=headers) as r:
                await r.read()

        await measure("aiohttp", aio)

    from celgate.engine import httpclient

    pool = httpclient.Pool()

    async def raw() -> None:
        r = await pool.request("POST", url, list(headers.items()), body, connect_timeout=5, read_timeout=30)
        await r.read()

    await measure("celgate httpclient (httptools)", raw)
    pool.close()

    import httpcore

    async with httpcore.AsyncConnectionPool() as pool:

        async def core() -> None:
            r = await pool.request("POST", url, headers=list(headers.items()), content=body)
            assert r.status == 200

        await measure("httpcore (pooled)", core)

    try:
        import httpx2 as httpx  # the httpx successor installed with openai here
    except ImportError:
        try:
            import httpx  # type: ignore[no-redef]
        except ImportError:
            return results
    async with httpx.AsyncClient() as hc:

        async def hx() -> None:
            r = await hc.post(url, content=body, headers=headers)
            assert r.status_code == 200

        await measure(f"{httpx.__name__} {httpx.__version__}", hx)
    return results


# ------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement (default 5)")
    parser.add_argument("--quick", action="store_true", help="1 s per measurement, fewer client calls")
    parser.add_argument(
        "--repeat", type=int, default=1, help="measure each cell N times, report the median run (default 1)"
    )
    args = parser.parse_args(argv)
    duration = 1.0 if args.quick else args.duration
    use_wrk = shutil.which("wrk") is not None
    tmp = Path(tempfile.mkdtemp(prefix="celgate-bench-"))
    chat_lua, stream_lua = tmp / "chat.lua", tmp / "stream.lua"
    chat_lua.write_text(_lua(CHAT))
    stream_lua.write_text(_lua(STREAM))
    procs: list[Proc] = []
    try:
        standin = start_standin()
        procs.append(standin)
        print(f"stand-in upstream {standin.url}; load generator: {'wrk' if use_wrk else 'aiohttp client'}")
        print("\n== upstream HTTP clients, sequential chat completions against the stand-in (µs)")
        clients = asyncio.run(compare_clients(standin.url, 500 if args.quick else 3000))
        base = clients["aiohttp"]["p50_us"]
        for name, r in clients.items():
            print(
                f"  {name:32s} p50 {r['p50_us']:8.1f}  p99 {r['p99_us']:8.1f}"
                f"  ({r['p50_us'] / base:4.2f}x aiohttp)"
            )

        gw0 = start_gateway(standin.url, "", tmp)
        procs.append(gw0)
        gw1 = start_gateway(standin.url, "passthrough", tmp)
        procs.append(gw1)
        gwc = start_gateway(standin.url, "chunks", tmp)
        procs.append(gwc)
        targets = {"direct": standin.url, "gateway, 0 plugins": gw0.url, "gateway, 1 pass-through": gw1.url}
        workloads = [
            ("chat, 1 conn", CHAT, chat_lua, 1),
            ("chat, 32 conns", CHAT, chat_lua, 32),
            ("stream 20 chunks, 1 conn", STREAM, stream_lua, 1),
            ("stream 20 chunks, 16 conns", STREAM, stream_lua, 16),
        ]
        results: dict[str, dict[str, dict[str, float]]] = {}
        for wname, body, script, conns in workloads:
            results[wname] = {}
            per_target = dict(targets)
            if body is STREAM and conns == 1:
                per_target["gateway, 1 chunk-rewriting"] = gwc.url
            for tname, url in per_target.items():
                full = url + "/v1/chat/completions"
                runs = [
                    wrk(full, script, conns, duration) if use_wrk else pyload(full, body, conns, duration)
                    for _ in range(max(1, args.repeat))
                ]
                r = _median_run(runs, "rps" if conns > 1 else "p50_ms")
                if conns == 1 and body is STREAM:
                    r["first_byte_p50_ms"] = pyload(full, body, 1, min(duration, 2.0))["first_byte_p50_ms"]
                results[wname][tname] = r
        print("\n== gateway vs direct (p50/p99 ms; req/s; added = gateway - direct, same run)")
        summary: dict[str, Any] = {}
        for wname, per in results.items():
            d = per["direct"]
            print(f"  {wname}")
            for tname, r in per.items():
                line = (
                    f"    {tname:26s} p50 {r['p50_ms']:7.3f}  p99 {r['p99_ms']:7.3f}  {r['rps']:9.0f} req/s"
                )
                if "first_byte_p50_ms" in r:
                    line += f"  first byte p50 {r['first_byte_p50_ms']:.3f}"
                if tname != "direct":
                    added = r["p50_ms"] - d["p50_ms"]
                    ratio = r["rps"] / d["rps"] if d["rps"] else 0.0
                    line += f"  added p50 {added:+.3f} ms  throughput {ratio:.2f}x direct"
                    summary[f"{wname} / {tname}"] = {"added_p50_ms": added, "throughput_ratio": ratio}
                if r.get("errors"):
                    line += f"  ERRORS {int(r['errors'])}"
                print(line)
        key = "chat, 1 conn / gateway, 1 pass-through"
        if key in summary:
            added = summary[key]["added_p50_ms"]
            print(
                f"\ntarget: added p50 <= 1 ms with one pass-through plugin: {added:.3f} ms "
                f"-> {'MET' if added <= 1.0 else 'NOT MET'}"
            )
        tput = results["chat, 32 conns"]["gateway, 1 pass-through"]["rps"]
        print(
            f"throughput at 32 connections with one plugin: {tput:.0f} req/s = {tput / 203:.0f}x the LiteLLM "
            "proxy's ~203 req/s measured on this kind of machine (PERFORMANCE.md)"
        )
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(
            json.dumps(
                {
                    "benchmark": "gateway",
                    "unix_time": int(time.time()),
                    "machine": {
                        "python": platform.python_version(),
                        "cpus": os.cpu_count(),
                        "platform": platform.platform(),
                    },
                    "duration_s": duration,
                    "repeat": max(1, args.repeat),
                    "load_generator": "wrk" if use_wrk else "aiohttp",
                    "upstream_clients_us": clients,
                    "results": results,
                    "summary": summary,
                },
                indent=2,
            )
        )
        print(f"\nwrote {RESULTS.relative_to(ROOT)}")
    finally:
        for p in reversed(procs):
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
