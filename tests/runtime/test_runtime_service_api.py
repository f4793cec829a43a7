"""The Service API from real plugin processes: KV, logs, events, counters, identity by secret."""

from __future__ import annotations

import json
import logging

import grpc
import pytest
from runtime_helpers import eventually, pre_auth, spec

from celgate.engine.service_api import HostServiceServer
from celgate.engine.supervisor import Supervisor
from celgate.sdk.protocol import SECRET_METADATA
from celgate.v1 import common_pb2, host_pb2, host_pb2_grpc, plugin_pb2


async def _body(supervisor: Supervisor, plugin_id: str, action: str, **headers: str) -> dict[str, object]:
    reply = await supervisor.get(plugin_id).hook(pre_auth(action, **headers), 5.0)
    assert reply.request.reply.status == 200, reply
    result: dict[str, object] = json.loads(reply.request.reply.body)
    return result


async def test_kv_is_namespaced_per_plugin(supervisor: Supervisor) -> None:
    await supervisor.start([spec("echo"), spec("echo2")])
    assert await _body(supervisor, "echo", "kv", x_key="color", x_value="red") == {
        "value": "red",
        "keys": ["color"],
    }
    assert await _body(supervisor, "echo2", "kv", x_key="color") == {"value": None, "keys": []}
    assert (await _body(supervisor, "echo2", "kv", x_key="color", x_value="blue"))["value"] == "blue"
    assert (await _body(supervisor, "echo", "kv", x_key="color"))["value"] == "red"


async def test_sync_handlers_reach_the_service_api_through_ctx_run(supervisor: Supervisor) -> None:
    await supervisor.start([spec("echo")])
    call = pre_auth("sync-kv")
    reply = await supervisor.get("echo").hook(plugin_pb2.HookCall(post_auth=call.pre_auth), 5.0)
    assert reply.request.reply.body == b"yes"


async def test_counters_are_atomic_and_namespaced(supervisor: Supervisor) -> None:
    await supervisor.start([spec("echo"), spec("echo2")])
    results = [await _body(supervisor, "echo", "counters") for _ in range(3)]
    assert [r["admitted"] for r in results] == [True, True, False]
    assert (await _body(supervisor, "echo2", "counters"))["admitted"] is True


async def test_plugin_logs_reach_the_host_logger_with_its_id(
    supervisor: Supervisor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="celgate.plugin")
    await supervisor.start([spec("echo")])
    await supervisor.get("echo").hook(pre_auth("log"), 5.0)

    def logged() -> bool:
        return any(
            r.name == "celgate.plugin.echo"
            and "hello from the plugin" in r.getMessage()
            and r.levelno == logging.WARNING
            for r in caplog.records
        )

    await eventually(logged)


async def test_plugin_stdout_and_stderr_are_forwarded_line_by_line(
    supervisor: Supervisor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="celgate.plugin")
    await supervisor.start([spec("echo")])
    handle = supervisor.get("echo")
    await handle.hook(pre_auth("print"), 5.0)

    def forwarded() -> bool:
        lines = [r.getMessage() for r in caplog.records if r.name == "celgate.plugin.echo"]
        return "printed line one" in lines and "stderr line two" in lines

    await eventually(forwarded)
    assert handle.healthy  # a print() after the handshake did not corrupt the protocol


async def test_events_flow_between_plugins(supervisor: Supervisor, api: HostServiceServer) -> None:
    await supervisor.start([spec("echo"), spec("echo2")])
    await supervisor.get("echo").hook(pre_auth("publish"), 5.0)

    async def delivered() -> bool:
        events = (await _body(supervisor, "echo2", "events"))["events"]
        return events == [["test.ping", {"from": "echo"}, "echo"]]

    await eventually(delivered)
    api.bus.publish("other.topic", {"x": 1})
    api.bus.publish("test.host", {"y": 2})

    async def host_event() -> bool:
        events = (await _body(supervisor, "echo2", "events"))["events"]
        assert isinstance(events, list)
        return ["test.host", {"y": 2}, "host"] in events and all(e[0].startswith("test.") for e in events)

    await eventually(host_event)


async def test_plugin_subscribes_through_the_service_api(
    supervisor: Supervisor, api: HostServiceServer
) -> None:
    await supervisor.start([spec("echo")])
    await eventually(lambda: api.bus.subscriber_count == 1)  # the host's own DeliverEvent feed
    await supervisor.get("echo").hook(pre_auth("listen"), 5.0)
    await eventually(lambda: api.bus.subscriber_count == 2)
    api.bus.publish("other", {"no": 1})
    api.bus.publish("sub.hello", {"n": 1})

    async def heard() -> bool:
        return (await _body(supervisor, "echo", "heard"))["heard"] == [["sub.hello", {"n": 1}, "host"]]

    await eventually(heard)


async def _stub(api: HostServiceServer) -> tuple[grpc.aio.Channel, host_pb2_grpc.HostServiceStub]:
    channel = grpc.aio.insecure_channel(api.address)
    return channel, host_pb2_grpc.HostServiceStub(channel)  # type: ignore[no-untyped-call]


async def test_forged_or_missing_secret_is_unauthenticated(api: HostServiceServer) -> None:
    real = api.register("victim")
    channel, stub = await _stub(api)
    try:
        await stub.KvSet(host_pb2.KvSetRequest(key="k", value=b"v"), metadata=((SECRET_METADATA, real),))
        for metadata in [((SECRET_METADATA, real[:-1] + "x"),), ((SECRET_METADATA, ""),), ()]:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.KvGet(host_pb2.KvGetRequest(key="k"), metadata=metadata)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        api.revoke(real)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.KvGet(host_pb2.KvGetRequest(key="k"), metadata=((SECRET_METADATA, real),))
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await channel.close()


async def test_identity_comes_from_the_secret_not_the_message(api: HostServiceServer) -> None:
    mine = api.register("mallory")
    channel, stub = await _stub(api)
    try:
        md = ((SECRET_METADATA, mine),)
        await stub.Publish(common_pb2.Event(topic="t.x", origin="victim", payload=b"{}"), metadata=md)
        sub = api.bus.subscribe(["t.*"])
        await stub.Publish(common_pb2.Event(topic="t.y", origin="victim", payload=b"1"), metadata=md)
        event = await sub.get()
        assert (event.topic, event.origin) == ("t.y", "mallory")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Publish(common_pb2.Event(topic="t.z", payload=b"not json"), metadata=md)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        await channel.close()


async def test_scopes_hook_refuses_ungranted_methods() -> None:
    server = HostServiceServer(grants=lambda plugin_id: frozenset({"log.write"}))
    await server.start()
    secret = server.register("limited")
    channel, stub = await _stub(server)
    try:
        md = ((SECRET_METADATA, secret),)
        await stub.Log(host_pb2.LogRecord(level="info", message="ok"), metadata=md)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.KvGet(host_pb2.KvGetRequest(key="k"), metadata=md)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "kv.readwrite" in (info.value.details() or "")
    finally:
        await channel.close()
        await server.stop()


async def test_subscribe_streams_matching_events_and_bad_input_is_refused(api: HostServiceServer) -> None:
    reader, writer = api.register("reader"), api.register("writer")
    channel, stub = await _stub(api)
    try:
        stream = stub.Subscribe(
            host_pb2.SubscribeRequest(topics=["orders.*"]), metadata=((SECRET_METADATA, reader),)
        )
        await eventually(lambda: api.bus.subscriber_count == 1)
        md = ((SECRET_METADATA, writer),)
        await stub.Publish(common_pb2.Event(topic="billing.x", payload=b"1"), metadata=md)
        await stub.Publish(common_pb2.Event(topic="orders.created", payload=b'{"id": 7}'), metadata=md)
        event = await stream.read()
        assert (event.topic, event.origin, json.loads(event.payload)) == (
            "orders.created",
            "writer",
            {"id": 7},
        )
        stream.cancel()
        await eventually(lambda: api.bus.subscriber_count == 0)
        for bad in (host_pb2.KvSetRequest(key="", value=b"v"), host_pb2.KvSetRequest(key="k", ttl_ms=-1)):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.KvSet(bad, metadata=md)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.CounterAcquire(
                host_pb2.CounterAcquireRequest(limits=[host_pb2.CounterLimit(key="k", limit=1)]), metadata=md
            )
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        await channel.close()
