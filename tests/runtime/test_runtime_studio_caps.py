"""Studio capabilities through a real plugin process: object hooks, agent, UI, portal, tasks."""

from __future__ import annotations

import json

import pytest
from runtime_helpers import spec

from celgate.engine.handle import HookError
from celgate.engine.supervisor import Supervisor
from celgate.v1 import common_pb2, plugin_pb2


@pytest.fixture
async def studio(supervisor: Supervisor) -> Supervisor:
    await supervisor.start([spec("studio_all", plugin_id="studio-all", runtime="studio")])
    return supervisor


async def _verdict(sup: Supervisor, obj: dict[str, object]) -> plugin_pb2.ObjectVerdict:
    request = plugin_pb2.ObjectHookRequest(
        hook="before_create",
        object_type="llm",
        operation="create",
        object_json=json.dumps(obj),
        actor=plugin_pb2.Actor(id="u1", email="a@example.com"),
    )
    verdict = await sup.get("studio-all").unary("HandleObjectHook", request, 2.0)
    assert isinstance(verdict, plugin_pb2.ObjectVerdict)
    return verdict


async def test_object_hook_verdicts(studio: Supervisor) -> None:
    handle = studio.get("studio-all")
    assert handle.manifest["computed"] is True
    hooks = await handle.unary("ListObjectHooks", common_pb2.Empty(), 2.0)
    assert isinstance(hooks, plugin_pb2.ObjectHookList)
    assert [(h.object_type, h.hook, h.priority) for h in hooks.hooks] == [
        ("llm", "before_create", 10),
        ("app", "before_update", 100),
    ]
    assert (await _verdict(studio, {"name": "x"})).message == "ok by a@example.com"
    deny = await _verdict(studio, {"vendor": "blocked"})
    assert (deny.deny, deny.rule) == ("vendor not allowed", "vendors")
    assert json.loads((await _verdict(studio, {"name": "LOUD", "lower": True})).modify)["name"] == "loud"
    pending = (await _verdict(studio, {"needs_approval": True})).pending_approval
    assert (list(pending.groups), pending.min_approvals, pending.expires_after_ms) == (
        ["admins"],
        2,
        3_600_000,
    )


async def test_agent_streams_typed_chunks_and_reports_errors(studio: Supervisor) -> None:
    handle = studio.get("studio-all")
    message = plugin_pb2.AgentMessage(
        session_id="s", message="hi", history=[plugin_pb2.AgentTurn(role="user", content="before")]
    )
    chunks = [c async for c in handle.stream("HandleAgentMessage", message, 2.0)]
    assert [(c.type, c.content) for c in chunks] == [  # type: ignore[attr-defined]
        ("thinking", "hmm"),
        ("content", "echo: hi (1 turns)"),
        ("done", ""),
    ]
    assert json.loads(chunks[-1].metadata_json) == {"runtime": "studio"}  # type: ignore[attr-defined]
    failed = [
        c async for c in handle.stream("HandleAgentMessage", plugin_pb2.AgentMessage(message="fail"), 2.0)
    ]
    assert failed[-1].type == "error" and "agent broke" in failed[-1].content  # type: ignore[attr-defined]


async def test_ui_and_portal_assets_and_calls(studio: Supervisor) -> None:
    handle = studio.get("studio-all")
    listing = await handle.unary("ListAssets", plugin_pb2.AssetListRequest(prefix="ui/"), 2.0)
    assert [a.path for a in listing.assets] == ["ui/main.js"]  # type: ignore[attr-defined]
    asset = await handle.unary("GetAsset", plugin_pb2.AssetRequest(path="portal/form.js", portal=True), 2.0)
    assert asset.found and asset.data == b"export default 2;"  # type: ignore[attr-defined]
    missing = await handle.unary("GetAsset", plugin_pb2.AssetRequest(path="nope"), 2.0)
    assert not missing.found  # type: ignore[attr-defined]
    reply = await handle.unary("UiCall", plugin_pb2.UiCallRequest(method="m", payload=b'{"a": 1}'), 2.0)
    assert json.loads(reply.payload) == {"method": "m", "payload": {"a": 1}}  # type: ignore[attr-defined]
    error = await handle.unary("UiCall", plugin_pb2.UiCallRequest(method="boom"), 2.0)
    assert "no such method" in error.error  # type: ignore[attr-defined]
    portal = await handle.unary(
        "UiCall",
        plugin_pb2.UiCallRequest(method="p", portal=True, user=plugin_pb2.Actor(email="p@x", groups=["g"])),
        2.0,
    )
    assert json.loads(portal.payload) == {"user": "p@x", "groups": ["g"]}  # type: ignore[attr-defined]


async def test_scheduled_tasks(studio: Supervisor) -> None:
    handle = studio.get("studio-all")
    ok = await handle.unary(
        "RunScheduledTask", plugin_pb2.ScheduledTaskRequest(schedule_id="s", run_id="1"), 2.0
    )
    assert ok.ok and ok.output == "ran s/1"  # type: ignore[attr-defined]
    bad = await handle.unary(
        "RunScheduledTask",
        plugin_pb2.ScheduledTaskRequest(schedule_id="s", config_json='{"fail": true}'),
        2.0,
    )
    assert not bad.ok and "task failed on purpose" in bad.error  # type: ignore[attr-defined]


async def test_unimplemented_capabilities_are_refused(studio: Supervisor) -> None:
    handle = studio.get("studio-all")
    with pytest.raises(HookError) as info:
        await handle.hook(plugin_pb2.HookCall(pre_auth=plugin_pb2.RequestContext()), 2.0)
    assert info.value.kind == "error" and "does not implement pre_auth" in str(info.value)
    with pytest.raises(HookError) as info:
        await handle.unary("DeliverEvent", common_pb2.Event(topic="x"), 2.0)
    assert info.value.kind == "error" and "UNIMPLEMENTED" in str(info.value)
