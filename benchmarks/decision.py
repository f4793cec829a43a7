"""Benchmark: the cost of one policy decision per kind, and of the combined request check
(10-rule RequestValidation + IPFilter + RateLimit with memory counters), beside cel-python's
interpreter evaluating the same rules in the same run.

Prints p50/p99 in µs and the ratio the target is judged on (PERFORMANCE.md: p50 <= 20 µs and
>= 30x faster than cel-python's interpreter), and writes benchmarks/results/decision.json.
Run: .venv/bin/python benchmarks/decision.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from celgate.policies.runtime import (
    IPFilterProcedure,
    ObjectApprovalProcedure,
    ObjectInputs,
    RateLimitProcedure,
    RequestInputs,
    RequestValidationProcedure,
    build,
)
from celgate.sdk.counters import MemoryCounters

RESULTS = Path(__file__).resolve().parent / "results" / "decision.json"

MATCH = 'request.path.startsWith("/v1/chat/")'
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
    'identity.app_id != ""',
]
KEY = "identity.app_id"

IPFILTER_PLAN: dict[str, Any] = {
    "kind": "IPFilter",
    "name": "corp-ip",
    "spec": {
        "trusted_proxies": ["10.0.0.0/8"],
        "allow": ["192.168.0.0/16", "172.16.0.0/12", "2001:db8::/32"],
        "deny": ["192.168.13.0/24"],
    },
}
RV_PLAN: dict[str, Any] = {
    "kind": "RequestValidation",
    "name": "chat",
    "match": MATCH,
    "spec": {
        "rules": [{"name": f"r{i}", "expression": e, "message": f"rule {i}"} for i, e in enumerate(RULES)]
    },
}
RL_PLAN: dict[str, Any] = {
    "kind": "RateLimit",
    "name": "app-limits",
    "match": 'request.path.startsWith("/v1/")',
    "spec": {"limits": [{"name": "app", "key": KEY, "requests": 10**12, "window_s": 60.0}]},
}
OA_PLAN: dict[str, Any] = {
    "kind": "ObjectApproval",
    "name": "vendor",
    "objects": ["llm"],
    "spec": {
        "objects": ["llm"],
        "operations": ["create", "update"],
        "rules": [
            {"name": "https", "when": 'object.api_endpoint.startsWith("http://")', "action": "deny"},
            {"name": "privacy", "when": "object.active && object.privacy_score < 30", "action": "deny"},
            {
                "name": "review",
                "when": 'operation == "create" && !(object.vendor in ["openai", "anthropic"])',
                "action": "require_approval",
                "approvers": ["security"],
            },
            {
                "name": "stamp",
                "when": "true",
                "action": "mutate",
                "patch": {"metadata": {"reviewed_by": "celgate"}},
            },
        ],
    },
}

REQUEST: dict[str, Any] = {
    "request": {
        "id": "req-1",
        "method": "POST",
        "path": "/v1/chat/completions",
        "remote_addr": "10.0.0.5",
        "headers": {
            "content-type": "application/json",
            "x-forwarded-for": "192.168.1.20",
            "authorization": "Bearer x",
            "user-agent": "bench",
        },
        "size": 180,
        "body": {
            "model": "gpt-4o",
            "max_tokens": 512,
            "temperature": 0.7,
            "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}],
        },
    },
    "identity": {"authenticated": True, "app_id": "app-1", "user_id": "u-1", "groups": ["dev"]},
    "llm": {"id": "l1", "slug": "gpt", "vendor": "openai", "model": "gpt-4o"},
}
OBJECT = {
    "type": "llm",
    "operation": "create",
    "actor": {"id": "u1", "groups": ["dev"]},
    "value": {"vendor": "acme", "api_endpoint": "https://api.acme.test", "privacy_score": 80, "active": True},
}


def measure(fn: Callable[[], Any], seconds: float) -> dict[str, float]:
    """Per-call µs over batches (p50/p99 of batch means; batches of 20 calls)."""
    for _ in range(200):
        fn()
    samples: list[float] = []
    deadline = time.perf_counter() + seconds
    batch = 20
    while time.perf_counter() < deadline:
        t0 = time.perf_counter_ns()
        for _ in range(batch):
            fn()
        samples.append((time.perf_counter_ns() - t0) / batch / 1000)
    samples.sort()
    return {
        "p50_us": round(statistics.median(samples), 2),
        "p99_us": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 2),
        "calls": len(samples) * batch,
    }


def celpy_baseline(seconds: float) -> Callable[[], Any]:
    """The combined request check in cel-python's interpreter: the same CEL (match, 10 rules,
    the rate-limit match and key; the IP ranges via Python like ours), activation built per call."""
    import ipaddress

    import celpy

    logging.getLogger("celpy").setLevel(logging.CRITICAL)
    env = celpy.Environment()
    sources = [MATCH, *RULES, RL_PLAN["match"], KEY]
    programs = [env.program(env.compile(s)) for s in sources]
    allow = [ipaddress.ip_network(n) for n in IPFILTER_PLAN["spec"]["allow"]]
    deny = [ipaddress.ip_network(n) for n in IPFILTER_PLAN["spec"]["deny"]]
    raw = REQUEST
    counters = MemoryCounters()
    from celgate.sdk.counters import CounterLimit

    def run() -> Any:
        req = dict(raw["request"])
        req.update(query={}, size=0, client_ip="192.168.1.20", host="")
        activation = {
            "request": celpy.json_to_cel(req),
            "identity": celpy.json_to_cel(raw["identity"]),
            "llm": celpy.json_to_cel(raw["llm"]),
        }
        addr = ipaddress.ip_address(req["client_ip"])
        if any(addr in n for n in deny if n.version == addr.version) or not any(
            addr in n for n in allow if n.version == addr.version
        ):
            return False
        results = [p.evaluate(activation) for p in programs]
        counters.acquire([CounterLimit(f"app/{results[-1]}", "sliding-window", 1e12, 60.0)])
        return all(bool(r) for r in results[:-1])

    assert run() is True
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke check, not a measurement)")
    parser.add_argument("--seconds", type=float, default=None)
    args = parser.parse_args(argv)
    seconds = args.seconds or (0.3 if args.quick else 2.0)

    ipf = build(IPFILTER_PLAN)
    rv = build(RV_PLAN)
    rl = build(RL_PLAN)
    oa = build(OA_PLAN)
    assert isinstance(ipf, IPFilterProcedure) and isinstance(rv, RequestValidationProcedure)
    assert isinstance(rl, RateLimitProcedure) and isinstance(oa, ObjectApprovalProcedure)
    counters = MemoryCounters()
    inputs = RequestInputs.from_mapping(REQUEST)
    obj = ObjectInputs.from_mapping(OBJECT)

    assert ipf.decide(inputs).decision == "allow"
    assert rv.decide(inputs).decision == "allow", rv.decide(inputs, trace=True)
    assert rl.decide(inputs, counters).decision == "allow"
    assert oa.decide(obj).decision == "pending_approval"

    def combined_prebuilt() -> bool:
        return (
            ipf.decide(inputs).allowed and rv.decide(inputs).allowed and rl.decide(inputs, counters).allowed
        )

    def combined_with_inputs() -> bool:
        fresh = RequestInputs.from_mapping(REQUEST)
        return ipf.decide(fresh).allowed and rv.decide(fresh).allowed and rl.decide(fresh, counters).allowed

    results: dict[str, Any] = {
        "ipfilter": measure(lambda: ipf.decide(inputs), seconds),
        "request_validation_10_rules": measure(lambda: rv.decide(inputs), seconds),
        "request_validation_10_rules_traced": measure(lambda: rv.decide(inputs, trace=True), seconds),
        "rate_limit": measure(lambda: rl.decide(inputs, counters), seconds),
        "object_approval_4_rules": measure(lambda: oa.decide(obj), seconds),
        "building_request_inputs": measure(lambda: RequestInputs.from_mapping(REQUEST), seconds),
        "combined": measure(combined_prebuilt, seconds),
        "combined_including_inputs": measure(combined_with_inputs, seconds),
    }
    baseline = celpy_baseline(seconds)
    results["celpy_interpreter_combined"] = measure(baseline, seconds)
    ratio = results["celpy_interpreter_combined"]["p50_us"] / results["combined"]["p50_us"]
    ratio_inputs = (
        results["celpy_interpreter_combined"]["p50_us"] / results["combined_including_inputs"]["p50_us"]
    )
    summary = {
        "target": "combined p50 <= 20 us and >= 30x faster than cel-python's interpreter",
        "combined_p50_us": results["combined"]["p50_us"],
        "ratio_vs_celpy": round(ratio, 1),
        "ratio_vs_celpy_including_inputs": round(ratio_inputs, 1),
        "meets_p50": results["combined"]["p50_us"] <= 20.0,
        "meets_ratio": ratio >= 30.0,
    }
    for name, r in results.items():
        print(f"{name:40s} p50 {r['p50_us']:9.2f} µs   p99 {r['p99_us']:9.2f} µs")
    print(
        f"combined vs cel-python interpreter: {ratio:.1f}x faster "
        f"({ratio_inputs:.1f}x including building the inputs)"
    )
    out = {
        "benchmark": "decision",
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "quick": args.quick,
        "results": results,
        "summary": summary,
        "unix_time": int(time.time()),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
