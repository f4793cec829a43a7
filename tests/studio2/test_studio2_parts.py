"""Issue 6 item 5: one plugin, two processes (studio part and gateway part, each given its
runtime by the host), one identity on the Service API; they exchange events both ways."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from studio2_helpers import PLUGINS, Running, host_yaml, running_host, wait_for


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def kv(h: Running, key: str) -> dict[str, Any] | None:
    assert h.host.service_api is not None
    raw = await h.host.service_api.service.kv.get("twoparts", key)
    return json.loads(raw) if raw else None


async def test_studio_and_gateway_parts_of_one_plugin_exchange_events(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    async with running_host(monkeypatch, tmp_path, host_yaml(tmp_path / "s.db")) as h:
        ref = f"file://{PLUGINS / 'twoparts'}"
        assert (await h.call("POST", "/api/v1/plugins", {"id": "twoparts", "ref": ref})).status == 201
        granted = await h.call(
            "POST", "/api/v1/plugins/twoparts/scopes", {"scopes": ["events.publish", "kv.readwrite"]}
        )
        assert granted.status == 200, granted.body
        status = granted.body["status"]
        studio_pid, gateway_pid = status["pid"], status["parts"]["gateway"]["pid"]
        assert status["runtime"] == "studio" and status["parts"]["gateway"]["healthy"] is True
        assert studio_pid != gateway_pid

        run = await h.run_task("twoparts", "ping")
        assert run["state"] == "ok", run
        by_gateway = await wait_for(lambda: kv(h, "seen-by-gateway"))
        by_studio = await wait_for(lambda: kv(h, "seen-by-studio"))
        # the gateway process got the studio process's event, and the other way round; both
        # write into one KV namespace and publish with one origin: one plugin identity
        assert by_gateway["topic"] == "twoparts.from-studio" and by_gateway["origin"] == "twoparts"
        assert by_gateway["payload"]["runtime"] == "studio"
        assert by_studio["topic"] == "twoparts.from-gateway" and by_studio["origin"] == "twoparts"
        assert by_studio["payload"] == {"echo": by_gateway["payload"], "runtime": "gateway"}

        # reload replaces both processes; disable stops both
        reloaded = (await h.call("POST", "/api/v1/plugins/twoparts/reload")).body["status"]
        assert reloaded["pid"] != studio_pid and reloaded["parts"]["gateway"]["pid"] != gateway_pid
        assert not alive(studio_pid) and not alive(gateway_pid)
        disabled = await h.call("POST", "/api/v1/plugins/twoparts/disable")
        assert disabled.status == 200 and "parts" not in disabled.body["status"]
        assert not alive(reloaded["pid"]) and not alive(reloaded["parts"]["gateway"]["pid"])
