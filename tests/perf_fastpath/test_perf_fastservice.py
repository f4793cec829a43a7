"""The Service API fast path (engine/fastservice.py, sdk/fastservice.py) through real processes
and real sockets: counters from a plugin process, identity by secret, scopes identical to the
gRPC path, the gRPC fallback, and a host that survives garbage on the socket."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from celgate.engine.service_api import HostServiceServer
from celgate.engine.supervisor import PluginSpec, Supervisor
from celgate.sdk.counters import AcquireResult, CounterLimit
from celgate.sdk.fastservice import CALL_HEAD, HELLO_PREFIX, REPLY_HEAD
from celgate.sdk.host import Counters, HostConnection
from celgate.sdk.protocol import SECRET_METADATA
from celgate.v1 import common_pb2, host_pb2, host_pb2_grpc, plugin_pb2

PLUGIN = Path(__file__).parent / "plugins" / "fastcounter"


@pytest.fixture
async def api() -> AsyncIterator[HostServiceServer]:
    server = HostServiceServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def supervisor(api: HostServiceServer) -> AsyncIterator[Supervisor]:
    sup = Supervisor(api, handshake_timeout=10.0, health_interval=0.2, stop_grace=1.0)
    yield sup
    await sup.stop()


def _call(action: str, **headers: str) -> plugin_pb2.HookCall:
    pairs = [("x-test-action", action)] + [(k.replace("_", "-"), v) for k, v in headers.items()]
    request = plugin_pb2.HttpRequest(
        id="r", method="POST", path="/v1/x", headers=[common_pb2.Header(name=k, value=v) for k, v in pairs]
    )
    return plugin_pb2.HookCall(pre_auth=plugin_pb2.RequestContext(request=request))


async def _ask(sup: Supervisor, action: str, **headers: str) -> dict[str, object]:
    reply = await sup.get("fastcounter").hook(_call(action, **headers), 5.0)
    assert reply.request.reply.status == 200, reply
    body: dict[str, object] = json.loads(reply.request.reply.body)
    return body


def _spec() -> PluginSpec:
    return PluginSpec(id="fastcounter", ref=f"file://{PLUGIN}")


def _fast(api: HostServiceServer) -> object:
    assert api.fast is not None
    return api.fast


# ---------------------------------------------------------------- a plugin process


async def test_a_plugin_process_acquires_counters_over_the_fast_path(
    api: HostServiceServer, supervisor: Supervisor
) -> None:
    assert api.fast is not None and api.fast_address.startswith("unix:")
    await supervisor.start([_spec()])
    assert (await _ask(supervisor, "transport"))["fast"] == api.fast_address
    before = api.fast.calls
    results = [await _ask(supervisor, "acquire", x_key="a") for _ in range(4)]
    assert [r["admitted"] for r in results] == [True, True, True, False]
    assert [r["remaining"] for r in results[:3]] == [2, 1, 0]
    assert api.fast.calls == before + 4  # every acquire travelled on the fast socket
    assert api.fast.connections == 1  # one connection, authenticated once
    assert (await _ask(supervisor, "kv")) == {"value": "v"}
    # the host namespaces the keys by the plugin the secret belongs to, as on gRPC
    namespaced = CounterLimit("fastcounter/a", "fixed-window", 3, 60.0)
    state = api.service.counters.acquire([namespaced], dry_run=True)
    assert isinstance(state, AcquireResult) and state.admitted is False


async def test_without_the_fast_socket_the_plugin_falls_back_to_grpc(
    api: HostServiceServer, supervisor: Supervisor
) -> None:
    os.unlink(api.fast_address[len("unix:") :])  # announced, but nobody listens there any more
    await supervisor.start([_spec()])
    results = [await _ask(supervisor, "acquire", x_key="b") for _ in range(4)]
    assert [r["admitted"] for r in results] == [True, True, True, False]
    assert api.fast is not None and api.fast.calls == 0 and api.fast.connections == 0


# ---------------------------------------------------------------- identity and scopes


async def test_a_forged_secret_is_refused(api: HostServiceServer) -> None:
    api.register("victim")
    conn = HostConnection(api.address, "forged-secret", "victim", fast_address=api.fast_address)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await Counters(conn).acquire([CounterLimit("k", "fixed-window", 1, 60.0)])
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    await conn.close()
    # on the socket itself: an UNAUTHENTICATED reply, then the host hangs up
    reader, writer = await asyncio.open_unix_connection(api.fast_address[5:])
    hello = HELLO_PREFIX + b"forged-secret"
    writer.write(len(hello).to_bytes(4, "big") + hello)
    size = int.from_bytes(await reader.readexactly(4), "big")
    payload = await reader.readexactly(size)
    _, code = REPLY_HEAD.unpack_from(payload)
    assert code == grpc.StatusCode.UNAUTHENTICATED.value[0]
    assert await asyncio.wait_for(reader.read(), 5.0) == b""  # closed
    writer.close()
    assert _fast(api).connections == 0  # type: ignore[attr-defined]


async def test_a_revoked_secret_is_refused_on_an_open_connection(api: HostServiceServer) -> None:
    secret = api.register("p1")
    conn = HostConnection(api.address, secret, "p1", fast_address=api.fast_address)
    counters = Counters(conn)
    assert (await counters.acquire([CounterLimit("k", "fixed-window", 5, 60.0)])).admitted
    api.revoke(secret)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await counters.acquire([CounterLimit("k", "fixed-window", 5, 60.0)])
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    await conn.close()


@pytest.mark.parametrize(
    ("method", "request_"),
    [
        (
            "CounterAcquire",
            host_pb2.CounterAcquireRequest(limits=[host_pb2.CounterLimit(key="k", window_ms=1)]),
        ),
        ("CounterAdjust", host_pb2.CounterAdjustRequest()),
        ("KvGet", host_pb2.KvGetRequest(key="k")),
        ("ObjectGet", host_pb2.ObjectGetRequest(object_type="nonsense")),
        ("ObjectGet", host_pb2.ObjectGetRequest(object_type="llm")),
    ],
)
async def test_refusals_are_identical_to_grpc(
    api: HostServiceServer, method: str, request_: host_pb2.CounterAcquireRequest
) -> None:
    api.service.grants = lambda plugin_id: frozenset({"log.write"})  # holds no counters/kv scope
    secret = api.register("p2")
    fast = HostConnection(api.address, secret, "p2", fast_address=api.fast_address)
    with pytest.raises(grpc.aio.AioRpcError) as on_fast:
        await fast.unary(method, request_, common_pb2.Empty)
    assert _fast(api).calls == 1  # type: ignore[attr-defined]
    async with grpc.aio.insecure_channel(api.address) as channel:
        stub = host_pb2_grpc.HostServiceStub(channel)  # type: ignore[no-untyped-call]
        with pytest.raises(grpc.aio.AioRpcError) as on_grpc:
            await getattr(stub, method)(request_, metadata=((SECRET_METADATA, secret),))
    assert on_fast.value.code() == on_grpc.value.code()
    assert on_fast.value.details() == on_grpc.value.details()
    assert on_fast.value.code() in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT)
    await fast.close()


async def test_argument_errors_are_identical_to_grpc(api: HostServiceServer) -> None:
    secret = api.register("p3")
    fast = HostConnection(api.address, secret, "p3", fast_address=api.fast_address)
    grpc_only = HostConnection(api.address, secret, "p3", fast_address="")
    bad = host_pb2.CounterAcquireRequest(limits=[host_pb2.CounterLimit(key="", window_ms=0)])
    errors = []
    for conn in (fast, grpc_only):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await conn.unary("CounterAcquire", bad, host_pb2.CounterAcquireReply)
        errors.append((info.value.code(), info.value.details()))
        await conn.close()
    assert errors[0] == errors[1] and errors[0][0] == grpc.StatusCode.INVALID_ARGUMENT
    assert _fast(api).calls == 1  # type: ignore[attr-defined]


# ---------------------------------------------------------------- concurrency


async def test_concurrent_acquires_are_multiplexed_and_atomic(api: HostServiceServer) -> None:
    secret = api.register("p4")
    conn = HostConnection(api.address, secret, "p4", fast_address=api.fast_address)
    counters = Counters(conn)
    limit = CounterLimit("burst", "fixed-window", 20, 60.0)
    results = await asyncio.gather(*(counters.acquire([limit]) for _ in range(50)))
    assert sum(r.admitted for r in results) == 20
    assert _fast(api).connections == 1 and _fast(api).calls == 50  # type: ignore[attr-defined]
    await conn.close()


# ---------------------------------------------------------------- garbage


def _frame(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def _garbage_connection(path: str, data: bytes) -> bytes:
    """Send `data` on a fresh connection and read until the host closes it or goes quiet."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2.0)
        sock.connect(path)
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        received = b""
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            received += chunk
        return received


async def test_the_host_survives_garbage_on_the_socket(api: HostServiceServer) -> None:
    path = api.fast_address[5:]
    secret = api.register("p5")
    hello = _frame(HELLO_PREFIX + secret.encode())
    garbage = [
        b"\x00",
        b"\xff\xff\xff\xff" + b"x" * 100,  # an oversized frame
        os.urandom(4096),
        _frame(b"not a hello"),
        hello + _frame(b"\x01"),  # shorter than a call head
        hello + _frame(CALL_HEAD.pack(1, 200) + b"Kv"),  # method name longer than the frame
        hello + _frame(CALL_HEAD.pack(2, 5) + b"Nope!" + b"x"),  # unknown method
        hello + _frame(CALL_HEAD.pack(3, 6) + b"KvGet\xff" + b"x"),  # unknown method (bad utf-8)
        hello + _frame(CALL_HEAD.pack(4, 5) + b"KvGet" + b"\xff\xff\xff"),  # undecodable request
        hello + _frame(CALL_HEAD.pack(5, 9) + b"Subscribe"),  # streaming: not on the fast path
    ]
    loop = asyncio.get_running_loop()
    answers = [await loop.run_in_executor(None, _garbage_connection, path, data) for data in garbage]
    # refusals come back as replies with a gRPC status, never as a crash
    codes = {}
    for answer in answers[6:]:
        assert answer[:5] == _frame(b"\x00")  # the hello was accepted
        payload = answer[9:]
        call_id, code = struct.unpack(">IB", payload[:5])
        codes[call_id] = code
    assert codes[2] == codes[3] == codes[5] == grpc.StatusCode.UNIMPLEMENTED.value[0]
    assert codes[4] == grpc.StatusCode.INTERNAL.value[0]
    # and the host still serves, on both paths
    conn = HostConnection(api.address, secret, "p5", fast_address=api.fast_address)
    assert (await Counters(conn).acquire([CounterLimit("k", "fixed-window", 1, 60.0)])).admitted
    grpc_only = HostConnection(api.address, secret, "p5", fast_address="")
    assert not (await Counters(grpc_only).acquire([CounterLimit("k", "fixed-window", 1, 60.0)])).admitted
    await conn.close()
    await grpc_only.close()


async def test_a_call_lost_mid_flight_is_not_retried_on_grpc(tmp_path: Path) -> None:
    """A stand-in host that accepts the hello, then hangs up on the first call: the call may have
    been applied, so the client reports UNAVAILABLE instead of sending it again over gRPC."""
    seen: list[bytes] = []

    async def host(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        size = int.from_bytes(await reader.readexactly(4), "big")
        seen.append(await reader.readexactly(size))
        writer.write(_frame(b"\x00"))
        size = int.from_bytes(await reader.readexactly(4), "big")
        seen.append(await reader.readexactly(size))
        writer.close()

    path = str(tmp_path / "fast.sock")
    server = await asyncio.start_unix_server(host, path)
    grpc_path = tmp_path / "grpc.sock"  # nothing listens: a retry over gRPC would fail differently
    conn = HostConnection(f"unix:{grpc_path}", "s3cret", "p6", fast_address=f"unix:{path}")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await Counters(conn).acquire([CounterLimit("k", "fixed-window", 1, 60.0)])
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "fast Service API socket closed" in (info.value.details() or "")
    assert seen[0] == HELLO_PREFIX + b"s3cret"
    _, name_len = CALL_HEAD.unpack_from(seen[1])
    assert seen[1][CALL_HEAD.size : CALL_HEAD.size + name_len] == b"CounterAcquire"
    await conn.close()
    server.close()
    await server.wait_closed()
