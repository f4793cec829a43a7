"""Helpers shared by the plugin runtime tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from celgate.engine.supervisor import PluginSpec
from celgate.v1 import common_pb2, plugin_pb2

PLUGINS = Path(__file__).parent / "plugins"


def spec(name: str, plugin_id: str | None = None, **kwargs: object) -> PluginSpec:
    return PluginSpec(id=plugin_id or name.replace("_", "-"), ref=f"file://{PLUGINS / name}", **kwargs)  # type: ignore[arg-type]


def pre_auth(action: str = "", **headers: str) -> plugin_pb2.HookCall:
    pairs = [("x-test-action", action)] if action else []
    pairs += [(k.replace("_", "-"), v) for k, v in headers.items()]
    request = plugin_pb2.HttpRequest(
        id="req-1",
        method="POST",
        path="/v1/chat",
        headers=[common_pb2.Header(name=k, value=v) for k, v in pairs],
    )
    return plugin_pb2.HookCall(pre_auth=plugin_pb2.RequestContext(request=request))


async def eventually(predicate: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0) -> None:
    """Wait for a condition with a bounded deadline (never a bare sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within the deadline")
        await asyncio.sleep(0.02)


def pid_gone(pid: int) -> bool:
    """True when `pid` no longer runs (a zombie left for init to reap counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return "\nState:\tZ" in status
