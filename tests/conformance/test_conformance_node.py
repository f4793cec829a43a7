"""The language-neutral proof: a pre_auth plugin in Node.js (grpc-js), written from
docs/protocol.md alone, is run by the host and passes the core profile (and the rest)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from conformance_helpers import NODE_PLUGIN, explain, run_many, status

from celgate.engine.handle import PluginSpec
from celgate.engine.service_api import HostServiceServer
from celgate.engine.supervisor import Supervisor
from celgate.v1 import common_pb2, plugin_pb2


@pytest.fixture(scope="module")
def node_plugin() -> str:
    if shutil.which("node") is None or shutil.which("npm") is None:
        if os.environ.get("CI"):
            pytest.fail("node and npm are required in CI for the Node.js conformance test")
        pytest.skip("node/npm are not installed (the Node.js plugin cannot run here)")
    if not (NODE_PLUGIN / "node_modules" / "@grpc" / "grpc-js").is_dir():
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=NODE_PLUGIN,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    return f"file://{NODE_PLUGIN}"


def test_node_plugin_passes_core(node_plugin: str) -> None:
    report = run_many([node_plugin], profiles=["core"])[node_plugin]
    assert report.passed, explain(report)
    assert report.implementation["id"] == "node-header-guard"
    for check_id in (
        "plugin.handshake",
        "hooks.deadline",
        "hooks.robust",
        "lifecycle.shutdown",
        "lifecycle.restart",
    ):
        assert status(report, check_id) == "passed", explain(report)


def test_node_plugin_passes_extended(node_plugin: str) -> None:
    report = run_many([node_plugin], profiles=["extended"])[node_plugin]
    assert report.passed, explain(report)


async def test_host_runs_the_node_plugin(node_plugin: str) -> None:
    api = HostServiceServer()
    await api.start()
    sup = Supervisor(api, stop_grace=1.0)
    try:
        await sup.start([PluginSpec(id="node-header-guard", ref=node_plugin)])
        handle = sup.get("node-header-guard")
        request = plugin_pb2.HttpRequest(id="r1", method="POST", path="/v1/chat/completions")
        ok = await handle.hook(plugin_pb2.HookCall(pre_auth=plugin_pb2.RequestContext(request=request)), 2.0)
        assert ok.request.WhichOneof("verdict") == "proceed"
        request.headers.append(common_pb2.Header(name="X-Celgate-Block", value="1"))
        blocked = await handle.hook(
            plugin_pb2.HookCall(pre_auth=plugin_pb2.RequestContext(request=request)), 2.0
        )
        assert blocked.request.reply.status == 403
    finally:
        await sup.stop()
        await api.stop()
