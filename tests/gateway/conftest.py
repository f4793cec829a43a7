"""Fixtures for the gateway tests: in-process servers on free ports, fake plugin handles,
and a `celgate serve` subprocess runner for the end-to-end tests."""

from __future__ import annotations

import dataclasses
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from celgate.engine.config import (
    DataCollectionConfig,
    GatewayConfig,
    HostConfig,
    PluginConfig,
    UpstreamConfig,
)
from celgate.engine.datacollect import DataCollector, Sink
from celgate.engine.gateway import Gateway
from celgate.engine.httpserver import AsgiServer, bind
from celgate.engine.pipeline import DATA_COLLECTION, Pipeline
from celgate.engine.standin import StandinApp
from celgate.engine.upstream import UpstreamClient
from celgate.v1 import plugin_pb2

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable

HookFn = Callable[[plugin_pb2.HookCall], Awaitable[plugin_pb2.HookReply] | plugin_pb2.HookReply]


class FakeHandle:
    """A PluginHandle stand-in for in-process pipeline tests (the real one is tested end to end)."""

    def __init__(
        self,
        plugin_id: str,
        capabilities: set[str],
        hook: HookFn | None = None,
        *,
        response_chunks: bool = False,
        routes: list[plugin_pb2.EndpointRoute] | None = None,
    ) -> None:
        self.plugin_id = plugin_id
        self.capabilities = frozenset(capabilities)
        self.response_chunks = response_chunks
        self.manifest: dict[str, Any] = {"id": plugin_id}
        self.healthy = True
        self.calls: list[plugin_pb2.HookCall] = []
        self.batches: list[plugin_pb2.DataBatch] = []
        self._hook = hook
        self._routes = routes or []

    async def hook(self, call: plugin_pb2.HookCall, timeout: float) -> plugin_pb2.HookReply:
        copy = plugin_pb2.HookCall()
        copy.CopyFrom(call)
        self.calls.append(copy)
        if self._hook is None:
            return proceed_reply(call)
        result = self._hook(call)
        if isinstance(result, Awaitable):
            result = await result
        return result

    async def collect(self, batch: plugin_pb2.DataBatch, timeout: float) -> plugin_pb2.DataAck:
        self.batches.append(batch)
        return plugin_pb2.DataAck(accepted=len(batch.records))

    async def routes(self) -> list[plugin_pb2.EndpointRoute]:
        return self._routes

    def hooks(self, kind: str) -> list[plugin_pb2.HookCall]:
        return [c for c in self.calls if c.WhichOneof("hook") == kind]


def proceed_reply(call: plugin_pb2.HookCall) -> plugin_pb2.HookReply:
    kind = call.WhichOneof("hook")
    if kind in ("pre_auth", "post_auth"):
        return plugin_pb2.HookReply(request=plugin_pb2.RequestVerdict(proceed={}))
    if kind == "auth":
        return plugin_pb2.HookReply(auth=plugin_pb2.AuthVerdict(reject=plugin_pb2.Reply(status=401)))
    if kind == "response_headers":
        return plugin_pb2.HookReply(response_headers=plugin_pb2.ResponseHeadersVerdict())
    if kind == "response_chunk":
        return plugin_pb2.HookReply(response_chunk=plugin_pb2.ResponseChunkVerdict())
    return plugin_pb2.HookReply(response_end=plugin_pb2.ResponseEndVerdict())


class FakeSupervisor:
    def __init__(self, handles: list[FakeHandle]) -> None:
        self.by_id = {h.plugin_id: h for h in handles}

    def get(self, plugin_id: str) -> FakeHandle:
        return self.by_id[plugin_id]


@dataclasses.dataclass
class GatewayUnderTest:
    url: str
    gateway: Gateway
    collector: DataCollector
    handles: dict[str, FakeHandle]


@pytest.fixture
async def standin() -> AsyncIterator[AsgiServer]:
    server = AsgiServer(StandinApp(), bind("127.0.0.1", 0), name="standin")
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def make_gateway(standin: AsgiServer) -> AsyncIterator[Callable[..., Awaitable[GatewayUnderTest]]]:
    """Build and serve a gateway with fake plugins: `await make_gateway([(handle, policy), ...])`."""
    started: list[tuple[AsgiServer, DataCollector, UpstreamClient]] = []

    async def make(
        plugins: list[tuple[FakeHandle, str]] | None = None,
        *,
        upstreams: list[UpstreamConfig] | None = None,
        data_collection: DataCollectionConfig | None = None,
        gateway: GatewayConfig | None = None,
    ) -> GatewayUnderTest:
        plugins = plugins or []
        configs = [
            PluginConfig(id=h.plugin_id, ref="file://unused", failure_policy=policy, deadline_ms=2000)
            for h, policy in plugins
        ]
        cfg = HostConfig(
            upstreams=upstreams
            or [
                UpstreamConfig(id="standin", slug="standin", base_url=standin.url, models=["*"], default=True)
            ],
            plugins=configs,
            data_collection=data_collection or DataCollectionConfig(batch_size=50, interval_ms=20),
            gateway=gateway or GatewayConfig(),
        )
        source = FakeSupervisor([h for h, _ in plugins])
        pipeline = Pipeline(configs, source)
        sinks = [
            Sink(s.id, lambda s=s: source.get(s.id), s.timeouts[DATA_COLLECTION])
            for s in pipeline.data_collection
        ]
        collector = DataCollector(cfg.data_collection, sinks)
        collector.start()
        client = UpstreamClient()
        gw = Gateway(cfg, pipeline, client, collector)
        server = AsgiServer(gw.app(), bind("127.0.0.1", 0), name="gateway")
        await server.start()
        started.append((server, collector, client))
        return GatewayUnderTest(server.url, gw, collector, source.by_id)

    yield make
    for server, collector, client in started:
        await server.stop()
        await collector.stop()
        await client.close()


# ---------------------------------------------------------------------- celgate serve subprocess


class ServeProcess:
    """`celgate serve` in a subprocess; stderr is collected line by line on a thread."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        self.lines: list[str] = []
        self._q: queue.Queue[str | None] = queue.Queue()
        full_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "celgate", "serve", *args],
            cwd=cwd,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()
        self.gateway_url = ""
        self.studio_url = ""

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            self._q.put(line)
        self._q.put(None)

    def wait_ready(self, timeout: float = 30.0) -> ServeProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._q.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                raise AssertionError("celgate serve exited before it was ready:\n" + self.output)
            if "gateway listening on " in line:
                self.gateway_url = line.split("gateway listening on ", 1)[1].strip()
            if "studio listening on " in line:
                self.studio_url = line.split("studio listening on ", 1)[1].strip()
                return self
            if self.gateway_url and "--no-studio" in self.proc.args:  # type: ignore[operator]
                return self
        raise AssertionError("celgate serve did not get ready in time:\n" + self.output)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_exit(self, timeout: float = 20.0) -> int:
        code = self.proc.wait(timeout=timeout)
        self._thread.join(timeout=5)
        return code

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                return self.wait_exit()
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                raise
        return self.wait_exit()


@pytest.fixture
def serve() -> Iterator[Callable[..., ServeProcess]]:
    procs: list[ServeProcess] = []

    def start(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> ServeProcess:
        p = ServeProcess(list(args), cwd, env)
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.proc.poll() is None:
            p.proc.send_signal(signal.SIGTERM)
            try:
                p.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.proc.pid, signal.SIGKILL)
                p.proc.wait()
