"""Service API scopes: an installed plugin holds only what an operator granted, per method.

Through the real host: the `prober` plugin is installed over the studio API, runs as its own
process, and its scheduled task calls every HostService method and reports what it got.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import grpc
import pytest
from studio2_helpers import PLUGINS, Running, host_yaml, running_host

from celgate.engine.eventbus import EventBus
from celgate.engine.kv import MemoryKV
from celgate.engine.service_api import ALWAYS_GRANTED, METHOD_SCOPES, HostService
from celgate.sdk.counters import MemoryCounters
from celgate.v1 import host_pb2

ALL_METHODS = {m.name for m in host_pb2.DESCRIPTOR.services_by_name["HostService"].methods}
DECLARED = [
    "kv.readwrite",
    "events.publish",
    "events.subscribe",
    "counters.use",
    "objects.llm.read",
    "objects.app.write",
    "schedules.manage",
    "approvals.read",
    "approvals.write",
]


async def probe(h: Running) -> dict[str, Any]:
    run = await h.run_task("prober", "probe")
    assert run["state"] == "ok", run
    out: dict[str, Any] = json.loads(run["output"])
    return out


def test_every_service_method_is_mapped_to_a_scope() -> None:
    assert set(METHOD_SCOPES) == ALL_METHODS


async def test_an_unmapped_method_is_refused() -> None:
    service = HostService(MemoryKV(), EventBus(), MemoryCounters(), grants=lambda _: None)
    secret = service.register("p")

    class Aborted(Exception):
        pass

    class Ctx:
        code: Any = None

        def invocation_metadata(self) -> list[tuple[str, str]]:
            return [("celgate-plugin-secret", secret)]

        async def abort(self, code: Any, details: str) -> None:
            self.code = code
            raise Aborted(details)

    ctx = Ctx()
    with pytest.raises(Aborted, match="not available"):
        await service._caller(ctx, "SomethingNew")
    assert ctx.code == grpc.StatusCode.PERMISSION_DENIED
    assert await service._caller(ctx, "KvGet") == "p"  # trusted (None): mapped methods pass


async def test_installed_plugin_without_grants_is_refused_every_method_then_allowed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    async with running_host(monkeypatch, tmp_path, host_yaml(tmp_path / "studio.db")) as h:
        installed = await h.call(
            "POST", "/api/v1/plugins", {"id": "prober", "ref": f"file://{PLUGINS / 'prober'}"}
        )
        assert installed.status == 201, installed.body
        assert installed.body["scopes"] == [] and installed.body["status"]["running"] is True

        denied = (await probe(h))["results"]
        assert set(ALL_METHODS) <= set(denied) and "NO_PROBE" not in denied.values()
        for label, got in denied.items():
            if METHOD_SCOPES[label.split("[")[0]] in ALWAYS_GRANTED:
                assert got == "OK", label  # logging is always allowed
            else:
                assert got == "PERMISSION_DENIED", label

        # only declared scopes can be granted; members cannot grant at all
        undeclared = await h.call(
            "POST", "/api/v1/plugins/prober/scopes", {"scopes": ["kv.readwrite", "objects.user.write"]}
        )
        assert undeclared.status == 422 and "objects.user.write" in undeclared.body["error"]["message"]
        unknown = await h.call("POST", "/api/v1/plugins/prober/scopes", {"scopes": ["x.y"]})
        assert unknown.status == 422
        member = await h.call("POST", "/api/v1/users", {"id": "m", "email": "m@x.io", "role": "member"})
        assert member.status == 201, member.body
        token = (await h.call("POST", "/api/v1/users/m/tokens", {"name": "t"})).body["token"]
        refused = await h.call("POST", "/api/v1/plugins/prober/scopes", {"scopes": DECLARED}, token=token)
        assert refused.status == 403

        # one scope at a time: exactly the methods of that scope open up
        granted = await h.call("POST", "/api/v1/plugins/prober/scopes", {"scopes": ["kv.readwrite"]})
        assert granted.status == 200 and granted.body["scopes"] == ["kv.readwrite"]
        partial = (await probe(h))["results"]
        for label, got in partial.items():
            scope = METHOD_SCOPES[label.split("[")[0]]
            assert got == ("OK" if scope in ("kv.readwrite", *ALWAYS_GRANTED) else "PERMISSION_DENIED"), label

        granted = await h.call("POST", "/api/v1/plugins/prober/scopes", {"scopes": DECLARED})
        assert granted.status == 200 and granted.body["scopes"] == sorted(DECLARED)
        allowed = (await probe(h))["results"]
        assert allowed == {
            **{m: "OK" for m in ALL_METHODS},
            "Subscribe": "INVALID_ARGUMENT",  # no topic: past the scope check, refused as invalid
            "ApprovalGet": "NOT_FOUND",  # past the scope check: there is no approval "nope"
            "ApprovalVote": "NOT_FOUND",
            "ObjectGet[app]": "PERMISSION_DENIED",  # objects.llm.read does not read apps
            "ObjectWrite[llm]": "PERMISSION_DENIED",  # objects.app.write does not write llms
        }
        apps = (await h.call("GET", "/api/v1/apps")).body["items"]
        assert [a["name"] for a in apps] == ["made by prober"]
        audit = (await h.call("GET", "/api/v1/audit?object_type=app")).body["items"]
        assert "plugin:prober" in {a["actor"] for a in audit}


async def test_grants_survive_a_restart_of_the_host(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    db = tmp_path / "studio.db"
    async with running_host(monkeypatch, tmp_path, host_yaml(db)) as h:
        ref = f"file://{PLUGINS / 'prober'}"
        assert (await h.call("POST", "/api/v1/plugins", {"id": "prober", "ref": ref})).status == 201
        granted = await h.call("POST", "/api/v1/plugins/prober/scopes", {"scopes": ["events.publish"]})
        assert granted.status == 200
    async with running_host(monkeypatch, tmp_path, host_yaml(db)) as h:
        status = (await h.call("GET", "/api/v1/plugins/prober")).body["status"]
        assert status["running"] is True and "events.publish" in status["scopes"]
        results = (await probe(h))["results"]
        assert results["Publish"] == "OK" and results["KvGet"] == "PERMISSION_DENIED"


async def test_a_configured_plugin_holds_exactly_the_scopes_its_manifest_declares(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    plugins = f'[{{id: prober, runtime: studio, ref: "file://{PLUGINS / "prober"}"}}]'
    async with running_host(monkeypatch, tmp_path, host_yaml(tmp_path / "s.db", plugins)) as h:
        status = (await h.call("GET", "/api/v1/plugins/prober")).body["status"]
        assert status["source"] == "config" and status["scopes"] == sorted({*DECLARED, *ALWAYS_GRANTED})
        results = (await probe(h))["results"]
        assert results["KvSet"] == "OK" and results["ObjectList"] == "OK"
        assert results["ObjectGet[app]"] == "PERMISSION_DENIED"  # not declared, so not held
        # its scopes live in the host config: the API refuses to change them
        refused = await h.call("POST", "/api/v1/plugins/prober/scopes", {"scopes": []})
        assert refused.status == 409


async def test_a_configured_plugin_that_declares_no_scopes_holds_none(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    folder = tmp_path / "quiet-prober"
    shutil.copytree(PLUGINS / "prober", folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["permissions"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    plugins = f'[{{id: prober, runtime: studio, ref: "file://{folder}"}}]'
    async with running_host(monkeypatch, tmp_path, host_yaml(tmp_path / "s.db", plugins)) as h:
        results = (await probe(h))["results"]
        allowed = {method for method, outcome in results.items() if outcome != "PERMISSION_DENIED"}
        assert allowed == {"Log"}, results  # fail closed: only the always-held log.write
