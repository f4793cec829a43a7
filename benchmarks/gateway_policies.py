"""Gateway overhead with compiled policies: an IPFilter, a 10-rule RequestValidation and a
RateLimit bundled in one plugin (`celgate serve --policies DIR`), against calling the stand-in
upstream directly and against the gateway with no plugins, measured side by side in one run.

Processes and load generation are those of benchmarks/gateway.py (stand-in and gateway on
CPU 0, wrk or an aiohttp client on CPU 1). Workloads: a non-streaming chat completion at 1
connection (latency) and at 32 connections (throughput); memory counters.
Target (PERFORMANCE.md): added p50 <= 1 ms over calling the upstream directly.

    .venv/bin/python benchmarks/gateway_policies.py [--duration 5] [--repeat 3] [--quick]

Prints the table and writes benchmarks/results/gateway_policies.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import gateway as gw  # noqa: E402 - processes and load generation shared with benchmarks/gateway.py

RESULTS = HERE / "results" / "gateway_policies.json"

RULES = [
    'request.method == "POST"',
    "request.size < 1000000",
    '"content-type" in request.headers',
    'request.headers["content-type"].startsWith("application/json")',
    'request.body.model in ["gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet"]',
    "!has(request.body.max_tokens) || request.body.max_tokens <= 4096",
    "!has(request.body.temperature) || request.body.temperature <= 2.0",
    "request.body.messages.size() <= 50",
    '!has(request.body.tools) || "agents" in identity.groups',
    'request.path.startsWith("/v1/")',
]


def policy_documents() -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "celgate.dev/v1",
            "kind": "IPFilter",
            "metadata": {"name": "local-only"},
            "spec": {"allow": ["127.0.0.0/8", "::1/128"], "deny": ["10.66.0.0/16"]},
        },
        {
            "apiVersion": "celgate.dev/v1",
            "kind": "RequestValidation",
            "metadata": {"name": "chat-shape"},
            "spec": {
                "match": 'request.path.startsWith("/v1/chat/")',
                "rules": [
                    {"name": f"r{i}", "expression": e, "message": f"rule {i}"} for i, e in enumerate(RULES)
                ],
            },
        },
        {
            "apiVersion": "celgate.dev/v1",
            "kind": "RateLimit",
            "metadata": {"name": "per-app"},
            "spec": {
                "limits": [
                    {"name": "app", "key": "identity.app_id", "requests": 1_000_000_000, "window": "1m"}
                ]
            },
        },
    ]


def start_policy_gateway(upstream: str, policies: Path, tmp: Path) -> gw.Proc:
    cfg = tmp / "gateway-policies.yaml"
    cfg.write_text(
        f"gateway: {{listen: '127.0.0.1:0'}}\nstudio: {{enabled: false}}\n"
        f"upstreams: [{{id: standin, base_url: '{upstream}', models: ['*']}}]\n"
    )
    args = [
        *gw._pin(gw.SERVER_CPU),
        gw.PY,
        "-m",
        "celgate",
        "serve",
        "--config",
        str(cfg),
        "--log-level",
        "warning",
        "--policies",
        str(policies),
        "--policies-out",
        str(tmp / "compiled"),
    ]
    return gw.Proc(args, r"gateway listening on (http://\S+)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement (default 5)")
    parser.add_argument("--quick", action="store_true", help="1 s per measurement")
    parser.add_argument(
        "--repeat", type=int, default=1, help="measure each cell N times, report the median run"
    )
    args = parser.parse_args(argv)
    duration = 1.0 if args.quick else args.duration
    use_wrk = shutil.which("wrk") is not None
    tmp = Path(tempfile.mkdtemp(prefix="celgate-bench-"))
    (tmp / "chat.lua").write_text(gw._lua(gw.CHAT))
    policies = tmp / "policies"
    policies.mkdir()
    (policies / "bench.yaml").write_text(yaml.safe_dump_all(policy_documents(), sort_keys=False))
    procs: list[gw.Proc] = []
    try:
        standin = gw.start_standin()
        procs.append(standin)
        none = gw.start_gateway(standin.url, "", tmp)
        procs.append(none)
        bundled = start_policy_gateway(standin.url, policies, tmp)
        procs.append(bundled)
        targets = {"direct": standin.url, "gateway, 0 plugins": none.url, "gateway, 3 policies": bundled.url}
        results: dict[str, dict[str, dict[str, float]]] = {}
        for wname, conns in (("chat, 1 conn", 1), ("chat, 32 conns", 32)):
            results[wname] = {}
            for tname, url in targets.items():
                full = url + "/v1/chat/completions"
                runs = [
                    gw.wrk(full, tmp / "chat.lua", conns, duration)
                    if use_wrk
                    else gw.pyload(full, gw.CHAT, conns, duration)
                    for _ in range(max(1, args.repeat))
                ]
                results[wname][tname] = gw._median_run(runs, "rps" if conns > 1 else "p50_ms")
        print(f"load generator: {'wrk' if use_wrk else 'aiohttp client'}; {duration:g} s per cell")
        summary: dict[str, Any] = {}
        for wname, per in results.items():
            d = per["direct"]
            print(f"  {wname}")
            for tname, r in per.items():
                line = f"    {tname:22s} p50 {r['p50_ms']:7.3f} ms  p99 {r['p99_ms']:7.3f} ms"
                line += f"  {r['rps']:9.0f} req/s"
                if tname != "direct":
                    added = r["p50_ms"] - d["p50_ms"]
                    ratio = r["rps"] / d["rps"] if d["rps"] else 0.0
                    line += f"  added p50 {added:+.3f} ms  throughput {ratio:.2f}x direct"
                    summary[f"{wname} / {tname}"] = {
                        "added_p50_ms": round(added, 3),
                        "throughput_ratio": ratio,
                    }
                if r.get("errors"):
                    line += f"  ERRORS {int(r['errors'])}"
                print(line)
        added = summary["chat, 1 conn / gateway, 3 policies"]["added_p50_ms"]
        over_host = added - summary["chat, 1 conn / gateway, 0 plugins"]["added_p50_ms"]
        verdict = "MET" if added <= 1.0 else "NOT MET"
        print(f"\ntarget: added p50 <= 1 ms with three policies bundled: {added:.3f} ms -> {verdict}")
        print(f"(of which the policy plugin, over the bare gateway: {over_host:.3f} ms)")
        summary["target"] = {
            "added_p50_ms": added,
            "policy_plugin_over_bare_gateway_ms": over_host,
            "met": added <= 1,
        }
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(
            json.dumps(
                {
                    "benchmark": "gateway_policies",
                    "unix_time": int(time.time()),
                    "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
                    "duration_s": duration,
                    "repeat": max(1, args.repeat),
                    "load_generator": "wrk" if use_wrk else "aiohttp",
                    "results": results,
                    "summary": summary,
                },
                indent=2,
            )
            + "\n"
        )
        print(f"wrote {RESULTS}")
    finally:
        for p in reversed(procs):
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
