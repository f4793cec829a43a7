"""`celgate serve --policies DIR` end to end: compiled policies in real gateway processes.

The rate-limit test runs two gateways sharing the Redis on 127.0.0.1:6379 and sends 1,000
concurrent requests on a limit of 100: exactly 100 are admitted. Skipped with a reason when no
Redis answers there, except in CI (`CI` set), where that fails.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import redis
from codegen_helpers import CHAT, EXAMPLES, HOST_CONFIG, REDIS_URL, Serve, require_redis

from celgate.engine.policy_bundle import compile_policy_dir

RATE_POLICY = """\
apiVersion: celgate.dev/v1
kind: RateLimit
metadata: {{name: shared-limit}}
spec:
  failurePolicy: {failure}
  limits:
    - name: all-requests
      key: '"{key}"'
      requests: 100
      window: 1m
"""


@pytest.fixture
def gateways() -> Iterator[list[Serve]]:
    started: list[Serve] = []
    yield started
    for g in started:
        g.stop()


def write_setup(
    tmp: Path, backend: str, redis_url: str, failure: str = "fail-closed"
) -> tuple[Path, Path, str]:
    key = f"e2e-{uuid.uuid4().hex}"
    policies = tmp / "policies"
    policies.mkdir()
    (policies / "limit.yaml").write_text(RATE_POLICY.format(key=key, failure=failure))
    config = tmp / "celgate.yaml"
    config.write_text(HOST_CONFIG.format(backend=backend, redis_url=redis_url))
    return config, policies, key


async def post_many(urls: list[str], n: int) -> list[tuple[int, dict[str, str], bytes]]:
    connector = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(i: int) -> tuple[int, dict[str, str], bytes]:
            url = urls[i % len(urls)] + "/v1/chat/completions"
            async with session.post(url, json=CHAT, timeout=aiohttp.ClientTimeout(total=60)) as r:
                return r.status, {k.lower(): v for k, v in r.headers.items()}, await r.read()

        return await asyncio.gather(*(one(i) for i in range(n)))


async def test_two_gateways_sharing_redis_admit_exactly_the_limit(
    tmp_path: Path, gateways: list[Serve]
) -> None:
    require_redis()
    config, policies, key = write_setup(tmp_path, "redis", REDIS_URL)
    for i in range(2):
        gw = Serve(
            "--config",
            str(config),
            "--no-studio",
            "--policies",
            str(policies),
            "--policies-out",
            str(tmp_path / f"out{i}"),
            "--policies-deadline-ms",
            "20000",  # a loaded CI machine may queue 1,000 requests for long: no deadline 503s
        )
        gateways.append(gw)
    for gw in gateways:
        gw.wait_ready()
    try:
        results = await post_many([g.url for g in gateways], 1000)
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        stale = list(client.scan_iter(match=f"*{key}*"))
        if stale:
            client.delete(*stale)
    statuses = [s for s, _, _ in results]
    assert statuses.count(200) == 100, {s: statuses.count(s) for s in set(statuses)}
    assert statuses.count(429) == 900
    limited = next((h, b) for s, h, b in results if s == 429)
    assert limited[0]["ratelimit-limit"] == "100" and limited[0]["ratelimit-remaining"] == "0"
    assert int(limited[0]["retry-after"]) >= 1
    assert json.loads(limited[1])["error"]["type"] == "rate_limited"
    admitted = next(h for s, h, _ in results if s == 200)
    assert admitted["ratelimit-limit"] == "100"


@pytest.mark.parametrize(("failure", "status"), [("fail-closed", 503), ("fail-open", 200)])
async def test_unreachable_counter_store_is_decided_by_the_failure_policy(
    tmp_path: Path, gateways: list[Serve], failure: str, status: int
) -> None:
    config, policies, _ = write_setup(tmp_path, "redis", "redis://127.0.0.1:1/0", failure)
    gw = Serve("--config", str(config), "--no-studio", "--policies", str(policies))
    gateways.append(gw)
    gw.wait_ready()
    ((got, _, body),) = await post_many([gw.url], 1)
    assert got == status, body
    if status == 503:
        assert json.loads(body)["error"]["type"] == "policy_error"


async def test_serve_policies_runs_the_example_folder(tmp_path: Path, gateways: list[Serve]) -> None:
    config, _, _ = write_setup(tmp_path, "memory", "")
    gw = Serve("--config", str(config), "--no-studio", "--policies", str(EXAMPLES))
    gateways.append(gw)
    gw.wait_ready()
    # From 127.0.0.1 the corp-ip allowlist refuses (unless it allows loopback; then the chat
    # validation refuses the unapproved model "standin"): either way a compiled policy answered.
    ((status, _, body),) = await post_many([gw.url], 1)
    assert status == 403, body
    assert json.loads(body)["error"]["policy"] in {"corp-ip-allowlist", "chat-request-validation"}


def test_a_policy_folder_compiles_into_a_gateway_and_a_studio_plugin(tmp_path: Path) -> None:
    compiled = compile_policy_dir(EXAMPLES, tmp_path, "ex")
    assert [(c.id, c.runtime) for c in compiled] == [("ex", "gateway"), ("ex-objects", "studio")]
    assert all(
        (c.folder / "manifest.json").is_file() and (c.folder / "plugin.py").is_file() for c in compiled
    )
    config = compiled[0].plugin_config()
    assert config.ref == f"file://{(tmp_path / 'ex').resolve()}" and config.failure_policy == "fail-closed"
    assert "ObjectApproval llm-vendor-approval" in compiled[1].policies


def test_serve_policies_with_lint_errors_exits_2_and_names_them(tmp_path: Path) -> None:
    config, policies, _ = write_setup(tmp_path, "memory", "")
    (policies / "bad.yaml").write_text(
        "apiVersion: celgate.dev/v1\nkind: IPFilter\nmetadata: {name: x}\nspec: {allow: [nope]}\n"
    )
    gw = Serve("--config", str(config), "--no-studio", "--policies", str(policies))
    assert gw.wait_exit() == 2
    err = gw.output
    assert "bad.yaml:4" in err and "Traceback" not in err


TOKEN_POLICY = """\
apiVersion: celgate.dev/v1
kind: RateLimit
metadata: {name: budget}
spec:
  limits:
    - {name: tokens, key: '"all"', tokens: 1000, window: 1h, reserve: '400'}
"""


async def test_a_stream_is_settled_at_its_end_through_the_gateway(
    tmp_path: Path, gateways: list[Serve]
) -> None:
    config, policies, _ = write_setup(tmp_path, "memory", "")
    (policies / "limit.yaml").write_text(TOKEN_POLICY)
    gw = Serve("--config", str(config), "--no-studio", "--policies", str(policies))
    gateways.append(gw)
    gw.wait_ready()
    stream = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    async with aiohttp.ClientSession() as session:
        url = gw.url + "/v1/chat/completions"
        async with session.post(url, json=stream) as r:
            assert r.status == 200
            assert r.headers["ratelimit-remaining"] == "600"  # 400 reserved up front
            text = (await r.read()).decode()
        events = [json.loads(x[5:]) for x in text.splitlines() if x.startswith("data:") and "{" in x]
        used = next(e["usage"]["total_tokens"] for e in reversed(events) if e.get("usage"))
        # The settlement runs in the response-end hook, which the gateway awaits before it ends
        # the body (the hook may append bytes), and which awaits the counter adjustment: once
        # the stream is read, the next request sees the usage, not the reservation.
        async with session.post(url, json=CHAT) as r2:
            assert r2.status == 200
            assert r2.headers["ratelimit-remaining"] == str(1000 - used - 400), used
