"""Plugin management through the studio API on the real host: hot reload under load, config
validated against the plugin's schema, enable/disable, uninstall, bad installs."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from studio2_helpers import PLUGINS, Running, host_yaml, running_host, wait_for

GATEWAY_PLUGINS = Path(__file__).parents[1] / "gateway" / "plugins"
PROBER = f"file://{PLUGINS / 'prober'}"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def fire_during(h: Running, action: object, count_after: int = 50) -> list[int]:
    """Send chat requests from 8 clients continuously, run `action` mid-way, return statuses."""
    url = h.gateway + "/v1/chat/completions"
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    statuses: list[int] = []
    stop = asyncio.Event()

    async def client(session: aiohttp.ClientSession) -> None:
        while not stop.is_set():
            try:
                async with session.post(url, json=body) as r:
                    await r.read()
                    statuses.append(r.status)
            except aiohttp.ClientError:
                statuses.append(-1)  # a dropped connection counts as a failure

    async with asyncio.timeout(60), aiohttp.ClientSession() as session:
        workers = [asyncio.create_task(client(session)) for _ in range(8)]
        while len(statuses) < 50:
            await asyncio.sleep(0.01)
        assert callable(action)
        await action()
        before = len(statuses)
        while len(statuses) < before + count_after:
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.gather(*workers)
    return statuses


async def test_reload_through_the_api_under_load_fails_no_request(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    plugins = f'[{{id: passthrough, ref: "file://{GATEWAY_PLUGINS / "passthrough"}", deadline_ms: 2000}}]'
    async with running_host(monkeypatch, tmp_path, host_yaml(tmp_path / "s.db", plugins)) as h:
        assert (await h.call("POST", "/api/v1/plugins", {"id": "prober", "ref": PROBER})).status == 201
        listed = (await h.call("GET", "/api/v1/plugins")).body["items"]
        assert {p["id"]: p["status"]["source"] for p in listed} == {
            "passthrough": "config",
            "prober": "installed",
        }
        gateway_pid = h.manager.handle("passthrough").pid  # type: ignore[union-attr]
        studio_pid = h.manager.handle("prober").pid  # type: ignore[union-attr]
        answers: list[int] = []

        async def reload_both() -> None:
            for plugin_id in ("passthrough", "prober"):
                r = await h.call("POST", f"/api/v1/plugins/{plugin_id}/reload")
                answers.append(r.status)
                assert r.body["status"]["healthy"] is True

        statuses = await fire_during(h, reload_both)
        assert answers == [200, 200]
        assert statuses and set(statuses) == {200}
        assert h.manager.handle("passthrough").pid not in (None, gateway_pid)  # type: ignore[union-attr]
        assert h.manager.handle("prober").pid not in (None, studio_pid)  # type: ignore[union-attr]
        assert not alive(gateway_pid) and not alive(studio_pid)  # type: ignore[arg-type]
        # the reloaded studio plugin still runs its tasks
        assert (await h.run_task("prober", "probe"))["state"] == "ok"
        assert (await h.call("POST", "/api/v1/plugins/nope/reload")).status == 409


async def test_config_updates_are_validated_against_the_plugins_schema(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    async with running_host(monkeypatch, tmp_path, host_yaml(tmp_path / "s.db")) as h:
        bad_install = await h.call(
            "POST", "/api/v1/plugins", {"id": "prober", "ref": PROBER, "config": {"level": -1}}
        )
        assert bad_install.status == 422 and bad_install.body["error"]["fields"][0]["field"] == "level"
        assert h.manager.handle("prober") is None
        assert (await h.call("GET", "/api/v1/plugins/prober")).status == 404

        ok = await h.call("POST", "/api/v1/plugins", {"id": "prober", "ref": PROBER, "config": {"level": 1}})
        assert ok.status == 201, ok.body
        schema = await h.call("GET", "/api/v1/plugins/prober/config-schema")
        assert schema.body["schema"]["properties"]["level"]["minimum"] == 0
        pid = h.manager.handle("prober").pid  # type: ignore[union-attr]

        no_etag = await h.call("PATCH", "/api/v1/plugins/prober", {"config": {"level": 2}})
        assert no_etag.status == 428
        invalid = await h.call(
            "PATCH",
            "/api/v1/plugins/prober",
            {"config": {"colour": "red"}},
            headers={"If-Match": ok.headers["ETag"]},
        )
        assert invalid.status == 422, invalid.body
        assert "colour" in invalid.body["error"]["fields"][0]["message"]
        assert h.manager.handle("prober").pid == pid  # nothing was reloaded
        assert (await h.call("GET", "/api/v1/plugins/prober")).body["config"] == {"level": 1}

        changed = await h.call(
            "PATCH",
            "/api/v1/plugins/prober",
            {"config": {"level": 3, "greeting": "hi"}},
            headers={"If-Match": ok.headers["ETag"]},
        )
        assert changed.status == 200, changed.body
        assert changed.body["config"] == {"level": 3, "greeting": "hi"}
        assert h.manager.handle("prober").pid != pid  # applied by a reload
        run = await h.run_task("prober", "probe")
        assert json.loads(run["output"])["config"] == {"level": 3, "greeting": "hi"}
        stale = await h.call(
            "PATCH", "/api/v1/plugins/prober", {"config": {}}, headers={"If-Match": ok.headers["ETag"]}
        )
        assert stale.status == 412


async def test_disable_enable_and_uninstall_stop_and_start_the_process(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    async with running_host(monkeypatch, tmp_path, host_yaml(tmp_path / "s.db")) as h:
        assert (await h.call("POST", "/api/v1/plugins", {"id": "prober", "ref": PROBER})).status == 201
        pid = h.manager.handle("prober").pid  # type: ignore[union-attr]
        assert pid is not None
        disabled = await h.call("POST", "/api/v1/plugins/prober/disable")
        assert disabled.status == 200 and disabled.body["enabled"] is False
        assert disabled.body["status"]["running"] is False and not alive(pid)
        schedules = (await h.call("GET", "/api/v1/schedules")).body["items"]
        assert not [s for s in schedules if s.get("plugin_id") == "prober"]

        # a config stored while disabled is checked against the schema when enabling
        stored = await h.call(
            "PATCH",
            "/api/v1/plugins/prober",
            {"config": {"level": -5}},
            headers={"If-Match": disabled.headers["ETag"]},
        )
        assert stored.status == 200, stored.body
        refused = await h.call("POST", "/api/v1/plugins/prober/enable")
        assert refused.status == 422 and refused.body["error"]["fields"][0]["field"] == "level"
        assert h.manager.handle("prober") is None
        fixed = await h.call(
            "PATCH",
            "/api/v1/plugins/prober",
            {"config": {"level": 5}},
            headers={"If-Match": stored.headers["ETag"]},
        )
        assert fixed.status == 200, fixed.body
        enabled = await h.call("POST", "/api/v1/plugins/prober/enable")
        assert enabled.status == 200 and enabled.body["status"]["healthy"] is True
        assert (await h.run_task("prober", "probe"))["state"] == "ok"
        new_pid = h.manager.handle("prober").pid  # type: ignore[union-attr]

        assert (await h.call("DELETE", "/api/v1/plugins/prober")).status == 204
        assert h.manager.handle("prober") is None and not alive(new_pid)  # type: ignore[arg-type]
        assert (await h.call("GET", "/api/v1/plugins/prober")).status == 404


async def test_bad_installs_are_refused_and_leave_nothing_behind(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    plugins = f'[{{id: passthrough, ref: "file://{GATEWAY_PLUGINS / "passthrough"}"}}]'
    async with running_host(monkeypatch, tmp_path, host_yaml(tmp_path / "s.db", plugins)) as h:
        cases = [
            ({"id": "x", "ref": "http://example.com"}, 422),
            ({"id": "Bad Id", "ref": PROBER}, 422),
            ({"id": "x", "ref": f"file://{tmp_path / 'missing'}"}, 422),
            ({"id": "prober", "ref": PROBER, "scopes": ["kv.readwrite"]}, 422),  # grant after install
            ({"id": "passthrough", "ref": PROBER}, 409),  # a configured id
            ({"id": "other", "ref": PROBER}, 422),  # the plugin says its id is "prober"
        ]
        for body, status in cases:
            r = await h.call("POST", "/api/v1/plugins", body)
            assert r.status == status, (body, r.body)
        assert [p["id"] for p in (await h.call("GET", "/api/v1/plugins")).body["items"]] == ["passthrough"]
        conf = await h.call(
            "PATCH", "/api/v1/plugins/passthrough", {"config": {}}, headers={"If-Match": '"1"'}
        )
        assert conf.status == 409
        assert (await h.call("POST", "/api/v1/plugins/passthrough/scopes", {"scopes": []})).status == 409
        unauth = await h.call(
            "POST", "/api/v1/plugins/passthrough/reload", token="cgt_wrong-token-000000000000"
        )
        assert unauth.status == 401


async def test_reloading_a_grpc_plugin_under_load_fails_no_request(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "CELGATE_PLUGIN_LISTEN": f"127.0.0.1:{port}"}
    plugin = subprocess.Popen(
        [sys.executable, str(GATEWAY_PLUGINS / "passthrough" / "plugin.py")],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        async def listening() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        await wait_for(listening, 20)
        plugins = f'[{{id: passthrough, ref: "grpc://127.0.0.1:{port}", deadline_ms: 2000}}]'
        async with running_host(monkeypatch, tmp_path, host_yaml(tmp_path / "s.db", plugins)) as h:
            answers: list[int] = []

            async def reload() -> None:
                r = await h.call("POST", "/api/v1/plugins/passthrough/reload")
                answers.append(r.status)

            statuses = await fire_during(h, reload)
            assert answers == [200]
            assert statuses and set(statuses) == {200}
            assert plugin.poll() is None  # a network plugin is not ours to stop
    finally:
        plugin.kill()
        plugin.wait(10)
