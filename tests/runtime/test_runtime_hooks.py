"""Request hooks through real plugin processes: verdicts, errors, deadlines, bad replies."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from runtime_helpers import pre_auth, spec

from celgate.engine.handle import HookError
from celgate.engine.supervisor import Supervisor
from celgate.v1 import common_pb2, plugin_pb2

TRANSPORT_ENV = {"socket": {}, "stream": {"CELGATE_PLUGIN_FAST_HOOKS": "0"}}


@pytest.mark.parametrize("transport", ["socket", "stream"])
async def test_both_hook_transports_carry_calls_concurrently(supervisor: Supervisor, transport: str) -> None:
    await supervisor.start([spec("echo", env=TRANSPORT_ENV[transport])])
    handle = supervisor.get("echo")
    assert handle.connection is not None and handle.connection.transport == transport
    slow = asyncio.create_task(handle.hook(pre_auth("sleep", x_sleep="1.5"), 5.0))
    shared = pre_auth("block")  # one message object handed to many concurrent calls
    replies = await asyncio.gather(*(handle.hook(shared, 2.0) for _ in range(20)))
    assert all(r.request.reply.status == 403 for r in replies)
    assert len({r.call_id for r in replies}) == 20
    assert not slow.done()
    assert (await slow).request.HasField("proceed")
    with pytest.raises(HookError) as info:
        await handle.hook(pre_auth("sleep", x_sleep="5"), 0.1)
    assert info.value.kind == "deadline"


async def test_pre_auth_reply_now(supervisor: Supervisor) -> None:
    await supervisor.start([spec("echo")])
    reply = await supervisor.get("echo").hook(pre_auth("block"), 2.0)
    assert reply.request.reply.status == 403
    assert json.loads(reply.request.reply.body)["error"] == "blocked"
    assert reply.call_id > 0


async def test_pre_auth_continue_with_changes(supervisor: Supervisor) -> None:
    await supervisor.start([spec("echo")])
    reply = await supervisor.get("echo").hook(pre_auth("modify"), 2.0)
    changes = reply.request.changes
    assert [(h.name, h.value) for h in changes.set_headers] == [("x-seen", "echo")]
    assert dict(changes.metadata) == {"seen": "1"}


async def test_auth_accepts_and_rejects(supervisor: Supervisor) -> None:
    await supervisor.start([spec("echo")])
    handle = supervisor.get("echo")
    ok = await handle.hook(plugin_pb2.HookCall(auth=plugin_pb2.AuthRequest(credential="good")), 2.0)
    assert ok.auth.identity.authenticated and ok.auth.identity.app_id == "app1"
    bad = await handle.hook(plugin_pb2.HookCall(auth=plugin_pb2.AuthRequest(credential="bad")), 2.0)
    assert bad.auth.reject.status == 401


async def test_handler_exception_becomes_an_error_and_the_plugin_lives_on(supervisor: Supervisor) -> None:
    await supervisor.start([spec("echo")])
    handle = supervisor.get("echo")
    with pytest.raises(HookError) as info:
        await handle.hook(pre_auth("raise"), 2.0)
    assert info.value.kind == "error"
    assert "the handler failed on purpose" in str(info.value)
    assert (await handle.hook(pre_auth(), 2.0)).request.HasField("proceed")
    assert handle.healthy


async def test_hung_plugin_hits_its_deadline_and_others_still_answer(supervisor: Supervisor) -> None:
    await supervisor.start([spec("echo")])
    handle = supervisor.get("echo")
    hung = asyncio.create_task(handle.hook(pre_auth("sleep", x_sleep="30"), 0.3))
    quick = [await handle.hook(pre_auth("block"), 2.0) for _ in range(5)]
    assert all(r.request.reply.status == 403 for r in quick)
    with pytest.raises(HookError) as info:
        await hung
    assert info.value.kind == "deadline"
    assert handle.healthy


async def test_sync_and_async_handlers_run_concurrently(supervisor: Supervisor) -> None:
    await supervisor.start([spec("echo")])
    handle = supervisor.get("echo")
    post = plugin_pb2.HookCall(post_auth=pre_auth("sync-sleep", x_sleep="2").pre_auth)
    post.post_auth.identity.app_id = "app9"
    slow = asyncio.create_task(handle.hook(post, 5.0))
    # The sync handler sleeps in a worker thread: async calls keep flowing meanwhile.
    for _ in range(3):
        assert (await handle.hook(pre_auth("block"), 2.0)).request.reply.status == 403
    assert not slow.done()
    reply = await slow
    assert [(h.name, h.value) for h in reply.request.changes.add_headers] == [("x-post", "app9")]


async def test_response_hooks_in_order(supervisor: Supervisor) -> None:
    await supervisor.start([spec("echo")])
    handle = supervisor.get("echo")
    assert handle.response_chunks
    head = await handle.hook(
        plugin_pb2.HookCall(
            response_headers=plugin_pb2.ResponseHeaders(
                status=200, headers=[common_pb2.Header(name="content-type", value="text/event-stream")]
            )
        ),
        2.0,
    )
    assert head.response_headers.modified
    assert ("x-echo", "1") in [(h.name, h.value) for h in head.response_headers.headers]
    out = []
    for index in range(20):
        chunk = plugin_pb2.ResponseChunk(index=index, data=f"data: {index}\n\n".encode(), streaming=True)
        reply = await handle.hook(plugin_pb2.HookCall(response_chunk=chunk), 2.0)
        out.append(reply.response_chunk.data)
    assert out == [f"DATA: {i}\n\n#{i}".encode() for i in range(20)]
    concurrent = await asyncio.gather(
        *(
            handle.hook(plugin_pb2.HookCall(response_chunk=plugin_pb2.ResponseChunk(index=i, data=b"x")), 2.0)
            for i in range(50)
        )
    )
    assert [r.response_chunk.data for r in concurrent] == [f"X#{i}".encode() for i in range(50)]
    end = await handle.hook(plugin_pb2.HookCall(response_end=plugin_pb2.ResponseEnd(chunks=20)), 2.0)
    assert end.response_end.append == b"[end 20]"


@pytest.mark.parametrize("transport", ["socket", "stream"])
@pytest.mark.parametrize(
    ("action", "kind", "message"),
    [
        ("wrong-kind", "invalid", "answered auth to a pre_auth call"),
        ("empty", "invalid", "answered nothing"),
        ("bad-status", "invalid", "status 42"),
        ("malformed", "invalid", ""),
        ("oversized", "invalid", "RESOURCE_EXHAUSTED|exceeds the 16777216-byte limit"),
    ],
)
async def test_bad_replies_are_invalid_and_the_host_carries_on(
    supervisor: Supervisor, transport: str, action: str, kind: str, message: str
) -> None:
    await supervisor.start([spec("broken", env=TRANSPORT_ENV[transport])])
    handle = supervisor.get("broken")
    assert handle.connection is not None and handle.connection.transport == transport
    with pytest.raises(HookError) as info:
        await handle.hook(pre_auth(action), 5.0)
    assert info.value.kind == kind
    assert re.search(message, str(info.value))
    # The plugin is still up and the next call works (on a reopened stream if need be).
    reply = await handle.hook(pre_auth("ok"), 5.0)
    assert reply.request.HasField("proceed")


async def test_a_hook_the_plugin_does_not_implement_is_an_error(supervisor: Supervisor) -> None:
    await supervisor.start([spec("broken")])
    with pytest.raises(HookError) as info:
        await supervisor.get("broken").hook(plugin_pb2.HookCall(auth=plugin_pb2.AuthRequest()), 2.0)
    assert info.value.kind == "error"
    assert "does not implement auth" in str(info.value)


async def test_endpoints_and_data_collection(supervisor: Supervisor) -> None:
    await supervisor.start([spec("echo", config={"greeting": "hi"})])
    handle = supervisor.get("echo")
    routes = await handle.routes()
    assert [(r.path, r.stream) for r in routes] == [("/hello", False), ("/stream", True)]
    ack = await handle.collect(
        plugin_pb2.DataBatch(records=[plugin_pb2.DataRecord(request_id="r1")] * 3), 2.0
    )
    assert ack.accepted == 3
    chunks = [c async for c in handle.endpoint(plugin_pb2.EndpointRequest(method="GET", path="/hello"), 2.0)]
    assert chunks[0].status == 200
    assert json.loads(chunks[0].data) == {"hello": "hi", "collected": 3}
    stream = [c async for c in handle.endpoint(plugin_pb2.EndpointRequest(method="GET", path="/stream"), 2.0)]
    assert stream[0].status == 200 and b"".join(c.data for c in stream) == b"part0;part1;part2;"
    schema = await handle.unary("GetConfigSchema", common_pb2.Empty(), 2.0)
    assert isinstance(schema, plugin_pb2.ConfigSchemaReply)
    assert json.loads(schema.schema_json)["type"] == "object"
