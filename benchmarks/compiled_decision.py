"""Benchmark: the decision cost inside a generated plugin beside cel-python's interpreter.

The same rules as benchmarks/decision.py (a 10-rule RequestValidation with a match, an IPFilter
with trusted proxies, a RateLimit with memory counters) are written as policy YAML, compiled
with `celgate compile --bundle`, and the generated module is imported. One decision is what
the plugin's decision procedures on CEL inputs built per call from an SDK RequestContext (the
judged figure, like the baseline's per-call activation); also reported: the whole hook calls,
`on_pre_auth(ctx)` then `on_post_auth(ctx)` (context conversion, decision-log entries). The baseline is
cel-python's interpreter evaluating the same CEL with an activation built per call
(`decision.celpy_baseline`), measured in the same run.
Target (PERFORMANCE.md): >= 30x faster than the interpreter.

    .venv/bin/python benchmarks/compiled_decision.py [--quick]

Prints p50/p99 in µs and the ratio; writes benchmarks/results/compiled_decision.json.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import decision as base  # noqa: E402 - the same rules and baseline as benchmarks/decision.py

from celgate.codegen.compile import compile_paths  # noqa: E402
from celgate.codegen.policy_plugin import request_mapping  # noqa: E402
from celgate.policies.runtime import RateLimitProcedure, RequestInputs  # noqa: E402
from celgate.sdk import LLM, Headers, Identity, Request, RequestContext, Respond  # noqa: E402
from celgate.sdk.counters import AsyncMemoryCounters, MemoryCounters  # noqa: E402

RESULTS = HERE / "results" / "compiled_decision.json"


def policy_documents() -> list[dict[str, Any]]:
    spec_ip = base.IPFILTER_PLAN["spec"]
    return [
        {
            "apiVersion": "celgate.dev/v1",
            "kind": "IPFilter",
            "metadata": {"name": "corp-ip"},
            "spec": {
                "trustedProxies": spec_ip["trusted_proxies"],
                "allow": spec_ip["allow"],
                "deny": spec_ip["deny"],
            },
        },
        {
            "apiVersion": "celgate.dev/v1",
            "kind": "RequestValidation",
            "metadata": {"name": "chat"},
            "spec": {
                "match": base.MATCH,
                "rules": [
                    {"name": f"r{i}", "expression": e, "message": f"rule {i}"}
                    for i, e in enumerate(base.RULES)
                ],
            },
        },
        {
            "apiVersion": "celgate.dev/v1",
            "kind": "RateLimit",
            "metadata": {"name": "app-limits"},
            "spec": {
                "match": base.RL_PLAN["match"],
                "limits": [{"name": "app", "key": base.KEY, "requests": 1_000_000_000, "window": "1m"}],
            },
        },
    ]


def context() -> RequestContext:
    raw = base.REQUEST
    req = raw["request"]
    return RequestContext(
        request=Request(
            method=req["method"],
            path=req["path"],
            headers=Headers(list(req["headers"].items())),
            body=json.dumps(req["body"]).encode(),
            id=req["id"],
            remote_addr=req["remote_addr"],
        ),
        identity=Identity(**raw["identity"]),
        llm=LLM(**raw["llm"]),
    )


def compile_plugin(tmp: Path) -> Any:
    src = tmp / "policies"
    src.mkdir()
    (src / "bench.yaml").write_text(yaml.safe_dump_all(policy_documents(), sort_keys=False))
    result = compile_paths([src], tmp / "out", bundle="bench")
    if result.exit_code:
        raise SystemExit(f"compile failed: {result.error or [d.message for d in result.lint.diagnostics]}")
    spec = importlib.util.spec_from_file_location("bench_plugin", tmp / "out" / "bench" / "plugin.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def measure_async(
    plugin: Any, ctx: RequestContext, seconds: float, hooks: bool = True
) -> dict[str, float]:
    """Per-decision µs (p50/p99 of batch means, batches of 20).

    hooks=True: the plugin's pre_auth + post_auth hooks on the SDK context (what a hook call
    costs inside the plugin process). hooks=False: the plugin's decision procedures on inputs
    built once per call from that context (like the baseline's per-call activation)."""

    async def via_hooks() -> bool:
        pre = await plugin.on_pre_auth(ctx)
        if isinstance(pre, Respond):
            return False
        post = await plugin.on_post_auth(ctx)
        return not isinstance(post, Respond)

    async def via_procedures() -> bool:
        inputs = RequestInputs.from_mapping(request_mapping(ctx))
        for proc in plugin.pre + plugin.post:
            if isinstance(proc, RateLimitProcedure):
                d = await plugin._rate_limit(proc, inputs, ctx)
            else:
                d = proc.decide(inputs)
            if d.decision != "allow":
                return False
        return True

    once = via_hooks if hooks else via_procedures

    for _ in range(200):
        assert await once()
    samples: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter_ns()
        for _ in range(20):
            await once()
        samples.append((time.perf_counter_ns() - t0) / 20 / 1000)
    samples.sort()
    return {
        "p50_us": round(statistics.median(samples), 2),
        "p99_us": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 2),
        "calls": len(samples) * 20,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke check, not a measurement)")
    parser.add_argument("--seconds", type=float, default=None)
    args = parser.parse_args(argv)
    seconds = args.seconds or (0.3 if args.quick else 2.0)
    with tempfile.TemporaryDirectory(prefix="celgate-bench-") as tmp:
        module = compile_plugin(Path(tmp))
    plugin = module.CompiledPolicies(counters=AsyncMemoryCounters(MemoryCounters()))
    ctx = context()
    decision = asyncio.run(measure_async(plugin, ctx, seconds, hooks=False))
    compiled = asyncio.run(measure_async(plugin, ctx, seconds))
    baseline = base.measure(base.celpy_baseline(seconds), seconds)
    ratio = baseline["p50_us"] / decision["p50_us"]
    ratio_hooks = baseline["p50_us"] / compiled["p50_us"]
    summary = {
        "target": ">= 30x faster than cel-python's interpreter on the same rules",
        "compiled_decision_p50_us": decision["p50_us"],
        "compiled_hooks_p50_us": compiled["p50_us"],
        "celpy_interpreter_p50_us": baseline["p50_us"],
        "ratio_vs_celpy": round(ratio, 1),
        "ratio_vs_celpy_whole_hooks": round(ratio_hooks, 1),
        "meets_ratio": ratio >= 30.0,
    }
    rows = (
        ("compiled plugin: decision, inputs per call", decision),
        ("compiled plugin: pre_auth + post_auth hooks", compiled),
        ("cel-python interpreter, same rules", baseline),
    )
    for label, r in rows:
        print(f"{label:44s} p50 {r['p50_us']:9.2f} µs   p99 {r['p99_us']:9.2f} µs")
    print(f"decision vs cel-python interpreter: {ratio:.1f}x faster (target >= 30x)")
    print(f"whole hooks (context conversion, two calls, log entries) vs interpreter: {ratio_hooks:.1f}x")
    out = {
        "benchmark": "compiled_decision",
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "quick": args.quick,
        "results": {"compiled_decision": decision, "compiled_hooks": compiled, "celpy_interpreter": baseline},
        "summary": summary,
        "unix_time": int(time.time()),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
