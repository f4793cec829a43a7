"""The gateway pipeline in process, with fake plugin handles: hook semantics, routing, errors.

The same behaviours run through real plugin processes in test_gateway_e2e.py; here each rule
of the pipeline is pinned down precisely and quickly.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from celgate.engine.config import DataCollectionConfig, GatewayConfig, UpstreamConfig
from celgate.engine.handle import HookError
from celgate.engine.httpserver import AsgiServer
from celgate.v1 import common_pb2, plugin_pb2

from .conftest import FakeHandle, GatewayUnderTest, proceed_reply

MakeGateway = Callable[..., Awaitable[GatewayUnderTest]]
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello big world"}]}
H = common_pb2.Header


async def post(
    url: str, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as s, s.post(url, json=body, headers=headers or {}) as r:
        return r.status, {k.lower(): v for k, v in r.headers.items()}, await r.read()


async def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def request_reply(**verdict: Any) -> plugin_pb2.HookReply:
    return plugin_pb2.HookReply(request=plugin_pb2.RequestVerdict(**verdict))


async def test_zero_plugins_proxies_plain_and_streaming_byte_for_byte(
    make_gateway: MakeGateway, standin: AsgiServer
) -> None:
    gw = await make_gateway()
    status, headers, body = await post(gw.url + "/v1/chat/completions", CHAT)
    direct = await post(standin.url + "/v1/chat/completions", CHAT)
    assert status == 200
    assert json.loads(body)["choices"][0]["message"]["content"] == "echo: hello big world"
    assert len(headers["x-request-id"]) == 32
    stream = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    s1, h1, via = await post(gw.url + "/v1/chat/completions", stream)
    _s2, _, raw = await post(standin.url + "/v1/chat/completions", stream)
    assert s1 == 200 and h1["content-type"].startswith("text/event-stream")
    # Same events except the completion id, which counts requests at the stand-in.
    assert re.sub(rb"chatcmpl-standin-\d+", b"X", via) == re.sub(rb"chatcmpl-standin-\d+", b"X", raw)
    assert direct[0] == 200


async def test_request_id_is_passed_through_and_returned(make_gateway: MakeGateway) -> None:
    seen = FakeHandle("p", {"post_auth"})
    gw = await make_gateway([(seen, "fail-closed")])
    status, headers, _ = await post(gw.url + "/v1/chat/completions", CHAT, {"x-request-id": "req-123"})
    assert status == 200 and headers["x-request-id"] == "req-123"
    assert seen.hooks("post_auth")[0].post_auth.request.id == "req-123"


async def test_models_and_embeddings_and_completions_are_proxied(make_gateway: MakeGateway) -> None:
    gw = await make_gateway()
    async with aiohttp.ClientSession() as s, s.get(gw.url + "/v1/models") as r:
        assert r.status == 200 and (await r.json())["object"] == "list"
    status, _, body = await post(gw.url + "/v1/embeddings", {"model": "e", "input": ["a", "b"]})
    assert status == 200 and len(json.loads(body)["data"]) == 2
    status, _, body = await post(gw.url + "/v1/completions", {"model": "m", "prompt": "say hi"})
    assert status == 200 and json.loads(body)["choices"][0]["text"] == "echo: say hi"


async def test_reply_verdict_ends_the_chain(make_gateway: MakeGateway) -> None:
    blocker = FakeHandle(
        "blocker",
        {"pre_auth"},
        lambda c: request_reply(
            reply=plugin_pb2.Reply(status=429, headers=[H(name="retry-after", value="7")], body=b'{"e":1}'),
            response_headers=[H(name="x-limit", value="10")],
            decisions=[plugin_pb2.Decision(policy="rl", rule="r1", decision="deny")],
        ),
    )
    later = FakeHandle("later", {"pre_auth", "post_auth"})
    gw = await make_gateway([(blocker, "fail-closed"), (later, "fail-closed")])
    status, headers, body = await post(gw.url + "/v1/chat/completions", CHAT)
    assert (status, body) == (429, b'{"e":1}')
    assert headers["retry-after"] == "7" and headers["x-limit"] == "10" and "x-request-id" in headers
    assert later.calls == []


async def test_changes_apply_and_later_plugins_see_them(
    make_gateway: MakeGateway, standin: AsgiServer
) -> None:
    new_body = json.dumps({**CHAT, "model": "other-model"}).encode()
    changer = FakeHandle(
        "changer",
        {"pre_auth"},
        lambda c: request_reply(
            changes=plugin_pb2.RequestChanges(
                set_headers=[H(name="x-team", value="a"), H(name="x-team", value="b")],
                add_headers=[H(name="x-extra", value="1")],
                remove_headers=["x-drop"],
                replace_body=True,
                body=new_body,
                metadata={"tier": "gold"},
            ),
            response_headers=[H(name="x-warn", value="changed")],
        ),
    )
    observer = FakeHandle("observer", {"post_auth"})
    gw = await make_gateway([(changer, "fail-closed"), (observer, "fail-closed")])
    status, headers, body = await post(
        gw.url + "/v1/chat/completions", CHAT, {"x-team": "z", "x-drop": "gone"}
    )
    assert status == 200 and headers["x-warn"] == "changed"
    assert json.loads(body)["model"] == "other-model"  # the upstream got the new body
    ctx = observer.hooks("post_auth")[0].post_auth
    got = [(h.name.lower(), h.value) for h in ctx.request.headers]
    assert ("x-team", "a") in got and ("x-team", "b") in got and ("x-team", "z") not in got
    assert ("x-extra", "1") in got and not any(k == "x-drop" for k, _ in got)
    assert ctx.metadata["tier"] == "gold"
    assert ctx.request.body == new_body


async def test_auth_without_any_identity_is_401_and_first_identity_wins(make_gateway: MakeGateway) -> None:
    def ok(call: plugin_pb2.HookCall) -> plugin_pb2.HookReply:
        if call.auth.credential == "good":
            return plugin_pb2.HookReply(
                auth=plugin_pb2.AuthVerdict(identity=common_pb2.Identity(app_id="app1"))
            )
        return plugin_pb2.HookReply(auth=plugin_pb2.AuthVerdict(reject=plugin_pb2.Reply(status=401)))

    first = FakeHandle("first", {"auth"}, ok)
    second = FakeHandle("second", {"auth"})
    observer = FakeHandle("observer", {"post_auth"})
    gw = await make_gateway([(first, "fail-closed"), (second, "fail-closed"), (observer, "fail-closed")])
    status, _, body = await post(gw.url + "/v1/chat/completions", CHAT)
    assert status == 401 and json.loads(body)["error"]["code"] == "invalid_api_key"
    status, _, _ = await post(gw.url + "/v1/chat/completions", CHAT, {"authorization": "Bearer bad"})
    assert status == 401
    assert len(second.calls) == 2  # asked after the first plugin declined
    status, _, _ = await post(gw.url + "/v1/chat/completions", CHAT, {"x-api-key": "good"})
    assert status == 200
    assert len(second.calls) == 2  # not asked: the first identity wins
    identity = observer.hooks("post_auth")[0].post_auth.identity
    assert identity.authenticated and identity.app_id == "app1"


async def _fail(call: plugin_pb2.HookCall) -> plugin_pb2.HookReply:
    raise HookError("crash", "secret-plugin-name", "boom at /internal/path")


async def test_fail_closed_plugin_error_is_a_clean_503(make_gateway: MakeGateway) -> None:
    broken = FakeHandle("secret-plugin-name", {"pre_auth"}, _fail)
    gw = await make_gateway([(broken, "fail-closed")])
    status, headers, body = await post(gw.url + "/v1/chat/completions", CHAT)
    assert status == 503 and headers["content-type"] == "application/json"
    err = json.loads(body)["error"]
    assert err["code"] == "plugin_unavailable"
    assert b"secret-plugin-name" not in body and b"boom" not in body and b"internal" not in body


async def test_fail_open_plugin_error_is_skipped_and_recorded_as_skipped(make_gateway: MakeGateway) -> None:
    broken = FakeHandle("flaky", {"pre_auth"}, _fail)
    sink = FakeHandle("sink", {"data_collection"})
    gw = await make_gateway([(broken, "fail-open"), (sink, "fail-closed")])
    status, _, _ = await post(gw.url + "/v1/chat/completions", CHAT)
    assert status == 200
    await wait_for(lambda: bool(sink.batches))
    decisions = list(sink.batches[0].records[0].decisions)
    assert [(d.policy, d.decision) for d in decisions] == [("flaky", "skipped")]
    assert all(d.decision != "passed" for d in decisions)


async def test_deadline_on_fail_closed_plugin_is_503(make_gateway: MakeGateway) -> None:
    async def slow(call: plugin_pb2.HookCall) -> plugin_pb2.HookReply:
        raise HookError("deadline", "slow")

    gw = await make_gateway([(FakeHandle("slow", {"post_auth"}, slow), "fail-closed")])
    status, _, _ = await post(gw.url + "/v1/chat/completions", CHAT)
    assert status == 503


async def test_stream_chunk_hooks_see_every_event_in_order_and_changes_apply(
    make_gateway: MakeGateway,
) -> None:
    def upper(call: plugin_pb2.HookCall) -> plugin_pb2.HookReply:
        if call.WhichOneof("hook") == "response_chunk":
            return plugin_pb2.HookReply(
                response_chunk=plugin_pb2.ResponseChunkVerdict(
                    modified=True, data=call.response_chunk.data.replace(b"world", b"WORLD")
                )
            )
        if call.WhichOneof("hook") == "response_end":
            return plugin_pb2.HookReply(response_end=plugin_pb2.ResponseEndVerdict(append=b": done\n\n"))
        return proceed_reply(call)

    rewriter = FakeHandle("rewriter", {"response"}, upper, response_chunks=True)
    headers_only = FakeHandle("headers-only", {"response"})
    gw = await make_gateway([(rewriter, "fail-closed"), (headers_only, "fail-closed")])
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    status, _, raw = await post(gw.url + "/v1/chat/completions", body)
    assert status == 200
    events = [e for e in raw.split(b"\n\n") if e]
    assert events[-1] == b": done" and events[-2] == b"data: [DONE]"
    contents = [
        json.loads(e[6:])["choices"][0]["delta"].get("content", "")
        for e in events[:-2]
        if json.loads(e[6:])["choices"]
    ]
    assert "".join(contents) == "echo: hello big WORLD"
    chunk_calls = rewriter.hooks("response_chunk")
    assert [c.response_chunk.index for c in chunk_calls] == list(range(len(chunk_calls)))
    assert all(c.response_chunk.data.endswith(b"\n\n") for c in chunk_calls)  # whole SSE events
    assert headers_only.hooks("response_chunk") == []  # never asked for chunks
    end = rewriter.hooks("response_end")[0].response_end
    assert end.streaming and end.usage.total_tokens == 7 and end.chunks == len(chunk_calls)


async def test_response_headers_hook_changes_status_and_headers(make_gateway: MakeGateway) -> None:
    def head(call: plugin_pb2.HookCall) -> plugin_pb2.HookReply:
        if call.WhichOneof("hook") == "response_headers":
            hs = [h for h in call.response_headers.headers if h.name.lower() != "content-type"]
            hs += [H(name="content-type", value="application/json"), H(name="x-rewritten", value="yes")]
            return plugin_pb2.HookReply(
                response_headers=plugin_pb2.ResponseHeadersVerdict(modified=True, status=201, headers=hs)
            )
        return proceed_reply(call)

    gw = await make_gateway([(FakeHandle("h", {"response"}, head), "fail-closed")])
    status, headers, body = await post(gw.url + "/v1/chat/completions", CHAT)
    assert (
        status == 201 and headers["x-rewritten"] == "yes" and json.loads(body)["object"] == "chat.completion"
    )


async def test_data_collection_records_off_the_request_path(make_gateway: MakeGateway) -> None:
    sink = FakeHandle("sink", {"data_collection"})
    gw = await make_gateway([(sink, "fail-closed")])
    for _ in range(3):
        assert (await post(gw.url + "/v1/chat/completions", CHAT))[0] == 200
    await wait_for(lambda: sum(len(b.records) for b in sink.batches) == 3)
    rec = sink.batches[-1].records[-1]
    assert rec.status == 200 and rec.path == "/v1/chat/completions" and rec.llm.id == "standin"
    assert rec.usage.total_tokens == 7 and b"echo: hello big world" in rec.response_body
    assert rec.client_ip == "127.0.0.1"


async def test_full_collector_queue_drops_and_counts_without_blocking(make_gateway: MakeGateway) -> None:
    gate = asyncio.Event()

    class SlowSink(FakeHandle):
        async def collect(self, batch: plugin_pb2.DataBatch, timeout: float) -> plugin_pb2.DataAck:
            await gate.wait()
            return await super().collect(batch, timeout)

    sink = SlowSink("sink", {"data_collection"})
    gw = await make_gateway(
        [(sink, "fail-closed")], data_collection=DataCollectionConfig(batch_size=1, queue_size=2)
    )
    for _ in range(6):
        assert (await post(gw.url + "/v1/chat/completions", CHAT))[0] == 200
    assert gw.collector.stats.dropped >= 3
    gate.set()


async def test_model_chooses_the_upstream(make_gateway: MakeGateway, standin: AsgiServer) -> None:
    ups = [
        UpstreamConfig(id="main", base_url=standin.url, models=["*"], default=True),
        UpstreamConfig(id="dead", base_url="http://127.0.0.1:9", models=["dead-*"]),
    ]
    gw = await make_gateway(upstreams=ups)
    assert (await post(gw.url + "/v1/chat/completions", CHAT))[0] == 200
    status, _, body = await post(gw.url + "/v1/chat/completions", {**CHAT, "model": "dead-1"})
    assert status == 502 and json.loads(body)["error"]["code"] == "upstream_unreachable"


async def test_upstream_5xx_and_timeout_map_to_502_and_504(
    make_gateway: MakeGateway, standin: AsgiServer
) -> None:
    gw = await make_gateway(
        upstreams=[UpstreamConfig(id="s", base_url=standin.url, default=True, timeout_s=0.2)]
    )
    status, _, body = await post(gw.url + "/v1/chat/completions", CHAT, {"x-standin-status": "500"})
    assert status == 502 and json.loads(body)["error"]["type"] == "upstream_error"
    status, _, body = await post(gw.url + "/v1/chat/completions", CHAT, {"x-standin-delay-ms": "700"})
    assert status == 504 and json.loads(body)["error"]["code"] == "upstream_timeout"
    status, _, body = await post(gw.url + "/v1/chat/completions", {"model": "m"})
    assert status == 400 and json.loads(body)["error"]["param"] == "messages"  # 4xx passes through


async def test_oversized_body_is_413(make_gateway: MakeGateway) -> None:
    gw = await make_gateway(gateway=GatewayConfig(max_body_bytes=100))
    status, _, body = await post(gw.url + "/v1/chat/completions", {**CHAT, "pad": "x" * 200})
    assert status == 413 and json.loads(body)["error"]["code"] == "request_too_large"


async def test_client_credential_is_not_forwarded_when_the_gateway_authenticates(
    make_gateway: MakeGateway,
) -> None:
    def ok(call: plugin_pb2.HookCall) -> plugin_pb2.HookReply:
        return plugin_pb2.HookReply(auth=plugin_pb2.AuthVerdict(identity=common_pb2.Identity(app_id="a")))

    gw = await make_gateway([(FakeHandle("auth", {"auth"}, ok), "fail-closed")])
    headers = gw.gateway._upstream_headers  # checked on the exact list sent upstream
    from celgate.engine.pipeline import Exchange

    ex = Exchange(
        "r",
        "POST",
        "/v1/x",
        "",
        [("Authorization", "Bearer k"), ("x-api-key", "k"), ("a", "b"), ("X-Request-Id", "client-id")],
        b"",
        "",
        "",
        "",
        "http",
    )
    ex.upstream = gw.gateway.default_upstream
    assert headers(ex) == [("a", "b"), ("x-request-id", "r")]  # one id: the gateway's


@pytest.mark.parametrize(
    ("path", "method", "status"),
    [("/stats", "GET", 200), ("/stats", "POST", 405), ("/nope", "GET", 404), ("/files/a/b", "GET", 200)],
)
async def test_custom_endpoint_routes_match_only_registered_paths_and_methods(
    make_gateway: MakeGateway, path: str, method: str, status: int
) -> None:
    routes = [
        plugin_pb2.EndpointRoute(path="/stats", methods=["GET"]),
        plugin_pb2.EndpointRoute(path="/files/*", methods=["GET"]),
    ]

    class Endpoints(FakeHandle):
        async def endpoint(self, req: plugin_pb2.EndpointRequest, timeout: float):  # type: ignore[no-untyped-def]
            yield plugin_pb2.EndpointChunk(status=200, headers=[H(name="content-type", value="text/plain")])
            yield plugin_pb2.EndpointChunk(data=req.path.encode())

    gw = await make_gateway([(Endpoints("ep", {"custom_endpoints"}, routes=routes), "fail-closed")])
    async with aiohttp.ClientSession() as s, s.request(method, gw.url + "/plugins/ep" + path) as r:
        assert r.status == status
        if status == 200:
            assert (await r.read()) == path.encode()
        if status == 405:
            assert r.headers["allow"] == "GET"
    async with aiohttp.ClientSession() as s, s.get(gw.url + "/plugins/unknown/stats") as r:
        assert r.status == 404


async def test_collector_stop_delivers_what_is_queued() -> None:
    from celgate.engine.datacollect import DataCollector, Sink

    sink = FakeHandle("sink", {"data_collection"})
    collector = DataCollector(
        DataCollectionConfig(batch_size=2, interval_ms=60_000), [Sink("sink", lambda: sink, 5)]
    )
    collector.start()
    for i in range(5):
        assert collector.submit(plugin_pb2.DataRecord(request_id=f"r{i}"))
    await collector.stop()
    assert [r.request_id for b in sink.batches for r in b.records] == [f"r{i}" for i in range(5)]
    assert collector.stats.delivered == 5 and collector.stats.dropped == 0


async def test_upstream_dying_mid_stream_ends_the_stream_with_an_error_event(
    make_gateway: MakeGateway,
) -> None:
    sink = FakeHandle("sink", {"data_collection"})
    gw = await make_gateway([(sink, "fail-closed")])
    body = {**CHAT, "stream": True}
    status, _, raw = await post(gw.url + "/v1/chat/completions", body, {"x-standin-fail-after-chunks": "2"})
    assert status == 200
    events = [e for e in raw.split(b"\n\n") if e]
    assert len(events) == 3 and b"[DONE]" not in raw
    assert json.loads(events[-1][6:])["error"]["type"] == "upstream_error"
    await wait_for(lambda: bool(sink.batches))
    assert sink.batches[0].records[0].streaming


async def test_client_leaving_mid_stream_aborts_the_upstream_and_says_so(make_gateway: MakeGateway) -> None:
    observer = FakeHandle("observer", {"response"})
    gw = await make_gateway([(observer, "fail-closed")])
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "a b c d e f g h i j"}]}
    async with aiohttp.ClientSession() as s:
        resp = await s.post(
            gw.url + "/v1/chat/completions", json=body, headers={"x-standin-chunk-delay-ms": "100"}
        )
        assert resp.status == 200
        await resp.content.readuntil(b"\n\n")  # the first event arrived
        resp.close()  # the client goes away
    await wait_for(lambda: bool(observer.hooks("response_end")))
    end = observer.hooks("response_end")[0].response_end
    assert end.aborted and end.streaming and end.chunks < 13
