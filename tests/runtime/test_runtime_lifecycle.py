"""Crashes, restarts, reloads, grpc:// reconnects and clean stops, with real processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from runtime_helpers import PLUGINS, eventually, pid_gone, pre_auth, spec

from celgate.engine.handle import HookError
from celgate.engine.service_api import HostServiceServer
from celgate.engine.supervisor import PluginSpec, Supervisor


@pytest.mark.parametrize("fast_hooks", ["1", "0"])
async def test_sigkill_mid_request_is_a_crash_then_the_plugin_is_back(
    supervisor: Supervisor, fast_hooks: str
) -> None:
    await supervisor.start([spec("echo", env={"CELGATE_PLUGIN_FAST_HOOKS": fast_hooks})])
    handle = supervisor.get("echo")
    first_pid = handle.pid
    assert first_pid is not None and handle.connection is not None
    first_target = handle.connection.target
    with pytest.raises(HookError) as info:
        await handle.hook(pre_auth("kill"), 5.0)
    assert info.value.kind in ("crash", "unavailable")
    await eventually(lambda: handle.healthy and handle.pid != first_pid)
    assert pid_gone(first_pid)
    assert handle.restarts == 1
    assert not Path(first_target[5:]).parent.exists()  # the killed plugin's socket folder is gone
    assert (await handle.hook(pre_auth("block"), 2.0)).request.reply.status == 403


async def test_a_frozen_plugin_fails_health_checks_and_is_replaced(supervisor: Supervisor) -> None:
    supervisor.health_timeout = 0.2
    await supervisor.start([spec("echo")])
    handle = supervisor.get("echo")
    frozen_pid = handle.pid
    assert frozen_pid is not None
    with pytest.raises(HookError) as info:
        await handle.hook(pre_auth("freeze", x_sleep="60"), 0.2)
    assert info.value.kind == "deadline"
    await eventually(lambda: handle.healthy and handle.pid != frozen_pid, timeout=15)
    assert pid_gone(frozen_pid)
    assert (await handle.hook(pre_auth("block"), 2.0)).request.reply.status == 403


async def test_a_down_plugin_is_unavailable_at_once(supervisor: Supervisor) -> None:
    supervisor.backoff_initial = 1.0  # keep it down long enough to look
    await supervisor.start([spec("echo")])
    handle = supervisor.get("echo")
    assert handle.pid is not None
    os.kill(handle.pid, signal.SIGKILL)
    await eventually(lambda: not handle.healthy)
    with pytest.raises(HookError) as info:
        await handle.hook(pre_auth(), 5.0)
    assert info.value.kind == "unavailable"
    await eventually(lambda: handle.healthy)


async def test_reload_swaps_without_failing_requests(supervisor: Supervisor) -> None:
    await supervisor.start([spec("echo", config={"greeting": "old"})])
    handle = supervisor.get("echo")
    old_pid = handle.pid
    failures: list[BaseException] = []
    answered = [0]
    done = asyncio.Event()

    async def traffic() -> None:
        while not done.is_set():
            try:
                await handle.hook(pre_auth("block"), 2.0)
                answered[0] += 1
            except HookError as exc:
                failures.append(exc)

    workers = [asyncio.create_task(traffic()) for _ in range(4)]
    await eventually(lambda: answered[0] > 20)
    await supervisor.reload("echo", spec("echo", config={"greeting": "new"}))
    before = answered[0]
    await eventually(lambda: answered[0] > before + 20)  # traffic flows on the new instance
    done.set()
    await asyncio.gather(*workers)
    assert failures == []
    assert handle.pid != old_pid
    assert old_pid is not None and pid_gone(old_pid)
    chunks = [c async for c in handle.endpoint(_hello(), 2.0)]
    assert json.loads(chunks[0].data)["hello"] == "new"


async def test_reload_waits_for_a_unary_call_in_flight(supervisor: Supervisor, tmp_path: Path) -> None:
    """A data-collection (or object-hook) call under way on the old instance finishes there:
    the drain covers unary calls, not only hooks, and the old channel is closed after it."""
    from celgate.v1 import plugin_pb2

    await supervisor.start([spec("echo")])
    handle = supervisor.get("echo")
    old_pid = handle.pid
    gate = tmp_path / "release"
    batch = plugin_pb2.DataBatch(records=[plugin_pb2.DataRecord(path=f"/block-until:{gate}")])
    call = asyncio.create_task(handle.collect(batch, 30.0))
    await eventually(lambda: handle.connection is not None and handle.connection.in_flight == 1)
    reload = asyncio.create_task(supervisor.reload("echo", spec("echo")))
    await eventually(lambda: handle.pid != old_pid)  # swapped: new calls go to the new instance
    assert old_pid is not None and not pid_gone(old_pid) and not call.done()  # still draining
    gate.touch()
    ack = await call
    await reload
    assert ack.accepted == 1
    assert pid_gone(old_pid)


def _hello() -> object:
    from celgate.v1 import plugin_pb2

    return plugin_pb2.EndpointRequest(method="GET", path="/hello")


async def test_failed_reload_keeps_the_old_instance(supervisor: Supervisor) -> None:
    await supervisor.start([spec("echo")])
    handle = supervisor.get("echo")
    old_pid = handle.pid
    with pytest.raises(Exception, match="configure was told to fail"):
        await supervisor.reload("echo", spec("echo", config={"fail_configure": True}))
    assert handle.pid == old_pid and handle.healthy
    assert (await handle.hook(pre_auth("block"), 2.0)).request.reply.status == 403


async def test_stop_leaves_no_process_behind(supervisor: Supervisor) -> None:
    await supervisor.start([spec("echo"), spec("echo2")])
    pids = [h.pid for h in supervisor.handles]
    reply = await supervisor.get("echo").hook(pre_auth("child"), 5.0)
    child = json.loads(reply.request.reply.body)["pid"]
    assert not pid_gone(child)
    await supervisor.stop()
    for pid in [*pids, child]:
        assert pid is not None
        await eventually(lambda pid=pid: pid_gone(pid), timeout=5)
    assert not any(h.healthy for h in supervisor.handles)


HOST_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from celgate.engine.supervisor import PluginSpec, Supervisor

    async def main():
        sup = Supervisor()
        await sup.start([PluginSpec(id="echo", ref="file://" + sys.argv[1])])
        print(sup.get("echo").pid, flush=True)
        await asyncio.sleep(60)

    asyncio.run(main())
    """
)


async def test_plugin_exits_when_its_host_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "host.py"
    script.write_text(HOST_SCRIPT)
    host = subprocess.Popen(
        [sys.executable, str(script), str(PLUGINS / "echo")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert host.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(host.stdout.readline), 20)
        plugin_pid = int(line)
        assert not pid_gone(plugin_pid)
        host.kill()  # SIGKILL: no cleanup code runs in the host
        host.wait(10)
        await eventually(lambda: pid_gone(plugin_pid), timeout=10)
    finally:
        host.kill()
        host.wait(10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _network_plugin(port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELGATE_")}
    return subprocess.Popen(
        [sys.executable, str(PLUGINS / "echo" / "plugin.py"), "--listen", f"127.0.0.1:{port}"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


async def _wait_listening(port: int) -> None:
    def up() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    await eventually(up, timeout=15)


async def test_grpc_plugin_reconnects_after_it_restarts(
    supervisor: Supervisor, api: HostServiceServer
) -> None:
    port = _free_port()
    first = _network_plugin(port)
    second: subprocess.Popen[bytes] | None = None
    try:
        await _wait_listening(port)
        await supervisor.start([PluginSpec(id="echo", ref=f"grpc://127.0.0.1:{port}", runtime="studio")])
        handle = supervisor.get("echo")
        assert handle.pid is None  # not ours to manage
        reply = await handle.hook(pre_auth("runtime"), 2.0)
        assert json.loads(reply.request.reply.body)["configured"] == "studio"
        # The Service API reaches a network plugin through the address and secret sent in Configure.
        kv = await handle.hook(pre_auth("kv", x_key="net", x_value="1"), 5.0)
        assert json.loads(kv.request.reply.body)["value"] == "1"
        first.kill()
        first.wait(10)
        await eventually(lambda: not handle.healthy)
        second = _network_plugin(port)
        await eventually(lambda: handle.healthy, timeout=20)
        assert (await handle.hook(pre_auth("block"), 2.0)).request.reply.status == 403
    finally:
        for proc in (first, second):
            if proc is not None:
                proc.kill()
                proc.wait(10)


async def test_network_plugin_runs_without_cookie_and_stops_on_sigterm() -> None:
    port = _free_port()
    proc = _network_plugin(port)
    try:
        await _wait_listening(port)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 10) == 0
        assert proc.stdout is not None and proc.stdout.read() == b""
    finally:
        proc.kill()
        proc.wait(10)


async def test_runtime_comes_from_the_host(supervisor: Supervisor) -> None:
    await supervisor.start([spec("echo", runtime="studio"), spec("echo2", runtime="gateway")])
    studio = await supervisor.get("echo").hook(pre_auth("runtime"), 2.0)
    assert json.loads(studio.request.reply.body) == {"runtime": "studio", "configured": "studio"}
    gateway = await supervisor.get("echo2").hook(pre_auth("runtime"), 2.0)
    assert json.loads(gateway.request.reply.body) == {"runtime": "gateway", "configured": "gateway"}
