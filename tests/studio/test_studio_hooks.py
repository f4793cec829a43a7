"""Object hooks through the REST API, with in-process hook targets (real server, real SQLite)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from studio_helpers import FakeTarget, Verdict, allow, regs, studio_server

from celgate.engine.objecthooks import PluginHookTarget, StaticTargets, declared_hooks
from celgate.v1 import plugin_pb2

LLM = {"id": "m1", "name": "M", "vendor": "acme", "api_endpoint": "https://acme.example/v1"}


def deny(reason: str):  # type: ignore[no-untyped-def]
    return lambda req: Verdict(deny=reason, rule="no-acme")


async def test_deny_reason_reaches_the_caller_and_nothing_is_stored(tmp_path: Path) -> None:
    t = FakeTarget("guard", deny("acme is not approved"), regs("llm", "before_create"))
    async with studio_server(tmp_path / "s.db", StaticTargets([t])) as s:
        r = await s.call("POST", "/api/v1/llms", LLM)
        assert r.status == 403
        assert r.body["error"] == {
            "type": "denied",
            "message": "acme is not approved",
            "plugin": "guard",
            "rule": "no-acme",
        }
        assert (await s.call("GET", "/api/v1/llms/m1")).status == 404
        audit = await s.call("GET", "/api/v1/audit?object_type=llm&object_id=m1")
        assert audit.body["items"][0]["action"] == "llm.create.denied"
        assert audit.body["items"][0]["detail"]["reason"] == "acme is not approved"
        # other object types and hooks are not sent to the plugin
        assert (await s.call("POST", "/api/v1/tools", {"name": "t"})).status == 201
        assert [req.hook for req in t.seen] == ["before_create"]


async def test_modify_is_seen_by_later_hooks_and_the_store(tmp_path: Path) -> None:
    def stamp(req: plugin_pb2.ObjectHookRequest) -> plugin_pb2.ObjectVerdict:
        obj = json.loads(req.object_json)
        obj["metadata"] = {**obj["metadata"], "reviewed_by": "celgate"}
        obj["api_key_set"] = False  # host-owned: ignored
        obj["api_key"] = "sk-injected"  # a hook cannot set a secret
        return Verdict(modify=json.dumps(obj))

    first = FakeTarget("stamp", stamp, regs("llm", "before_create", priority=10))
    second = FakeTarget("check", allow, regs("llm", "before_create", priority=20))
    async with studio_server(tmp_path / "s.db", StaticTargets([second, first])) as s:
        r = await s.call("POST", "/api/v1/llms", {**LLM, "api_key": "sk-real"})
        assert r.status == 201, r.body
        assert r.body["metadata"] == {"reviewed_by": "celgate"} and r.body["api_key_set"] is True
        seen_by_second = json.loads(second.seen[0].object_json)
        assert seen_by_second["metadata"] == {"reviewed_by": "celgate"}
        assert await s.state.store.get_secret("llm", "m1") == "sk-real"
        stored = await s.call("GET", "/api/v1/llms/m1")
        assert stored.body["metadata"] == {"reviewed_by": "celgate"}


async def test_hooks_never_see_secrets(tmp_path: Path) -> None:
    t = FakeTarget(
        "spy", allow, regs("llm", "before_create", "before_update", "after_create", "after_update")
    )
    async with studio_server(tmp_path / "s.db", StaticTargets([t])) as s:
        await s.call("POST", "/api/v1/llms", {**LLM, "api_key": "sk-hidden"})
        await s.call("PATCH", "/api/v1/llms/m1", {"api_key": "sk-hidden-2"}, headers={"If-Match": '"1"'})
        await s.state.hooks.drain()
        assert len(t.seen) == 4
        for req in t.seen:
            assert "sk-hidden" not in req.SerializeToString().decode("latin-1")
            assert json.loads(req.object_json)["api_key_set"] is True
        assert t.seen[0].actor.id == "admin" and t.seen[1].previous_json == ""


async def test_timeouts_fail_closed_by_default_and_fail_open_records_skipped(tmp_path: Path) -> None:
    async def hang(req: plugin_pb2.ObjectHookRequest) -> plugin_pb2.ObjectVerdict:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    slow = FakeTarget("slow", hang, regs("tool", "before_create"), timeout=0.2)
    async with studio_server(tmp_path / "s.db", StaticTargets([slow])) as s:
        r = await s.call("POST", "/api/v1/tools", {"id": "t", "name": "t"})
        assert r.status == 403 and "did not answer" in r.body["error"]["message"]
        assert (await s.call("GET", "/api/v1/tools/t")).status == 404

        slow.failure_policy = "fail-open"
        r = await s.call("POST", "/api/v1/tools", {"id": "t", "name": "t"})
        assert r.status == 201
        audit = await s.call("GET", "/api/v1/audit?object_type=tool&object_id=t")
        hooks = audit.body["items"][0]["detail"]["hooks"]
        assert hooks[0]["result"] == "skipped" and hooks[0]["plugin"] == "slow"


async def test_a_broken_or_empty_verdict_fails_closed(tmp_path: Path) -> None:
    def boom(req: plugin_pb2.ObjectHookRequest) -> plugin_pb2.ObjectVerdict:
        raise RuntimeError("plugin crashed")

    bad_modify = FakeTarget(
        "bad", lambda r: Verdict(modify='{"privacy_score": "high"}'), regs("tool", "before_update")
    )
    targets = StaticTargets(
        [
            FakeTarget("boom", boom, regs("tool", "before_delete")),
            FakeTarget("empty", lambda r: Verdict(), regs("app", "before_create")),
            bad_modify,
        ]
    )
    async with studio_server(tmp_path / "s.db", targets) as s:
        assert (await s.call("POST", "/api/v1/tools", {"id": "t", "name": "t"})).status == 201
        r = await s.call("DELETE", "/api/v1/tools/t")
        assert r.status == 403 and "plugin crashed" in r.body["error"]["message"]
        r = await s.call("POST", "/api/v1/apps", {"name": "a"})
        assert r.status == 403 and "empty" in r.body["error"]["message"]
        r = await s.call("PATCH", "/api/v1/tools/t", {"name": "u"}, headers={"If-Match": '"1"'})
        assert r.status == 403 and "invalid object" in r.body["error"]["message"]
        assert (await s.call("GET", "/api/v1/tools/t")).body["name"] == "t"


async def test_after_hooks_are_informational(tmp_path: Path) -> None:
    done = asyncio.Event()

    def after(req: plugin_pb2.ObjectHookRequest) -> plugin_pb2.ObjectVerdict:
        done.set()
        return Verdict(deny="too late to deny")

    t = FakeTarget("after", after, regs("tool", "after_create", "after_delete"))
    async with studio_server(tmp_path / "s.db", StaticTargets([t])) as s:
        assert (await s.call("POST", "/api/v1/tools", {"id": "t", "name": "t"})).status == 201
        await asyncio.wait_for(done.wait(), 5)
        assert (await s.call("GET", "/api/v1/tools/t")).status == 200
        assert (await s.call("DELETE", "/api/v1/tools/t")).status == 204
        await s.state.hooks.drain()
        assert [r.hook for r in t.seen] == ["after_create", "after_delete"]
        assert t.seen[1].object_json == "" and json.loads(t.seen[1].previous_json)["id"] == "t"


def test_manifest_declarations_filter_hooks() -> None:
    m = {
        "permissions": {
            "object_hooks": ["llm.before_create", "tool.*", "*.after_delete", "nope.before_create"]
        }
    }
    got = declared_hooks(m)
    assert ("llm", "before_create") in got and ("llm", "before_update") not in got
    assert {("tool", h) for h in ("before_create", "after_update")} <= got
    assert ("user", "after_delete") in got
    assert all(t != "nope" for t, _ in got)
    assert declared_hooks({}) == set()
    assert declared_hooks({"object_hooks": [{"object_type": "app", "hook": "before_delete"}]}) == {
        ("app", "before_delete")
    }


async def test_a_plugin_that_cannot_list_its_hooks_still_guards_what_it_declares(tmp_path: Path) -> None:
    class Down:
        plugin_id = "down"
        manifest = {"permissions": {"object_hooks": ["tool.before_create"]}}

        async def unary(self, method: str, request: object, timeout: float) -> object:
            raise ConnectionError("the plugin is down")

    target = await PluginHookTarget.load("down", Down(), Down.manifest)
    assert [(r.object_type, r.hook) for r in target.registrations] == [("tool", "before_create")]
    async with studio_server(tmp_path / "s.db", StaticTargets([target])) as s:
        r = await s.call("POST", "/api/v1/tools", {"name": "t"})
        assert r.status == 403 and "plugin down failed" in r.body["error"]["message"]
        assert (await s.call("POST", "/api/v1/apps", {"name": "a"})).status == 201
