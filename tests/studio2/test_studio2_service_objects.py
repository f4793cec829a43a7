"""The studio methods of the Service API over a real gRPC socket and a real SQLite file:
objects through hooks and approvals, a plugin voting as `plugin:<id>`, malformed requests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from celgate.engine.objecthooks import Actor, HookRegistration, StaticTargets
from celgate.engine.service_api import HostServiceServer
from celgate.engine.studio_state import StudioState, open_studio
from celgate.sdk.host import Approvals, HostConnection, Objects, Schedules
from celgate.sdk.protocol import SECRET_METADATA
from celgate.v1 import common_pb2, host_pb2, host_pb2_grpc, plugin_pb2


@dataclass
class Reviewer:
    """An in-process hook target: llms with vendor "acme" wait for the group plugin:bot."""

    plugin_id: str = "review"
    registrations: list[HookRegistration] = field(
        default_factory=lambda: [HookRegistration("llm", "before_create", 100)]
    )
    failure_policy: str = "fail-closed"
    timeout: float = 2.0

    async def call(self, request: plugin_pb2.ObjectHookRequest, timeout: float) -> plugin_pb2.ObjectVerdict:
        if json.loads(request.object_json).get("vendor") == "acme":
            return plugin_pb2.ObjectVerdict(
                pending_approval=plugin_pb2.Approvers(groups=["plugin:bot"], min_approvals=1),
                message="bot review",
            )
        return plugin_pb2.ObjectVerdict(allow=common_pb2.Empty())


@dataclass
class Wired:
    state: StudioState
    server: HostServiceServer
    stub: Any
    md: tuple[tuple[str, str], ...]

    async def code(self, method: str, request: Any) -> str:
        try:
            await getattr(self.stub, method)(request, metadata=self.md, timeout=10)
        except grpc.aio.AioRpcError as exc:
            return str(exc.code().name)
        return "OK"


@pytest.fixture
async def wired(tmp_path: Path) -> AsyncIterator[Wired]:
    state = await open_studio(
        str(tmp_path / "s.db"), plugins=StaticTargets([Reviewer()]), admin_token="cgt_" + "a" * 32
    )
    server = HostServiceServer(grants=lambda _: None)
    await server.start()
    server.service.studio = state
    channel = grpc.aio.insecure_channel(server.address)
    try:
        md = ((SECRET_METADATA, server.register("bot")),)
        yield Wired(state, server, host_pb2_grpc.HostServiceStub(channel), md)  # type: ignore[no-untyped-call]
    finally:
        await channel.close()
        await server.stop()
        await state.close()


def write(
    op: str, otype: str, oid: str = "", obj: Any = None, version: int = 0
) -> host_pb2.ObjectWriteRequest:
    return host_pb2.ObjectWriteRequest(
        operation=op,
        object_type=otype,
        object_id=oid,
        object_json=json.dumps(obj) if obj is not None else "",
        expected_version=version,
    )


async def test_plugin_writes_go_through_hooks_and_a_plugin_can_vote_when_routed_to_it(wired: Wired) -> None:
    s = wired.stub
    made = await s.ObjectWrite(
        write("create", "llm", obj={"id": "ok", "name": "n", "vendor": "openai"}), metadata=wired.md
    )
    assert (
        made.status == "applied" and made.version == 1 and json.loads(made.object_json)["vendor"] == "openai"
    )
    got = await s.ObjectGet(host_pb2.ObjectGetRequest(object_type="llm", object_id="ok"), metadata=wired.md)
    assert got.found and got.version == 1
    updated = await s.ObjectWrite(
        write("update", "llm", "ok", {"name": "renamed", "vendor": "openai"}), metadata=wired.md
    )
    assert updated.status == "applied" and updated.version == 2

    parked = await s.ObjectWrite(
        write("create", "llm", obj={"id": "a1", "name": "n", "vendor": "acme"}), metadata=wired.md
    )
    assert parked.status == "pending" and parked.approval_id
    listed = await s.ApprovalList(host_pb2.ApprovalListRequest(), metadata=wired.md)
    assert [json.loads(a)["id"] for a in listed.approvals_json] == [parked.approval_id]
    assert json.loads(listed.approvals_json[0])["requested_by"] == "plugin:bot"

    # the requester cannot approve its own change, even when the approval is routed to it
    own = await wired.code(
        "ApprovalVote", host_pb2.ApprovalVoteRequest(approval_id=parked.approval_id, decision="approve")
    )
    assert own == "PERMISSION_DENIED"
    other = ((SECRET_METADATA, wired.server.register("other")),)
    admin_made = await wired.state.changes.create(
        "llm", {"id": "a2", "name": "n", "vendor": "acme"}, Actor("admin")
    )
    assert admin_made.status == "pending" and admin_made.approval is not None
    with pytest.raises(grpc.aio.AioRpcError) as refused:  # plugin:other is not in the group plugin:bot
        await s.ApprovalVote(
            host_pb2.ApprovalVoteRequest(approval_id=admin_made.approval.id, decision="approve"),
            metadata=other,
        )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    bad = await wired.code(
        "ApprovalVote", host_pb2.ApprovalVoteRequest(approval_id=admin_made.approval.id, decision="maybe")
    )
    assert bad == "INVALID_ARGUMENT"
    voted = await s.ApprovalVote(
        host_pb2.ApprovalVoteRequest(approval_id=admin_made.approval.id, decision="approve", comment="lgtm"),
        metadata=wired.md,
    )
    assert json.loads(voted.approval_json)["state"] == "approved"
    assert (await wired.state.store.get_object("llm", "a2")) is not None


async def test_malformed_studio_requests_get_clear_errors(wired: Wired) -> None:
    await wired.stub.ObjectWrite(
        write("create", "llm", obj={"id": "x", "name": "n", "vendor": "openai"}), metadata=wired.md
    )
    cases: list[tuple[str, Any, str]] = [
        ("ObjectGet", host_pb2.ObjectGetRequest(object_type="nope", object_id="x"), "INVALID_ARGUMENT"),
        ("ObjectList", host_pb2.ObjectListRequest(object_type=""), "INVALID_ARGUMENT"),
        ("ObjectWrite", write("frob", "llm", "x"), "INVALID_ARGUMENT"),
        (
            "ObjectWrite",
            host_pb2.ObjectWriteRequest(operation="create", object_type="llm", object_json="[1]"),
            "INVALID_ARGUMENT",
        ),
        (
            "ObjectWrite",
            host_pb2.ObjectWriteRequest(operation="create", object_type="llm", object_json="{bad"),
            "INVALID_ARGUMENT",
        ),
        ("ObjectWrite", write("create", "llm", obj={"name": 5}), "INVALID_ARGUMENT"),
        ("ObjectWrite", write("create", "llm", obj={"id": "x", "name": "n"}), "ALREADY_EXISTS"),
        ("ObjectWrite", write("update", "llm", "missing", {"name": "n"}), "NOT_FOUND"),
        ("ObjectWrite", write("update", "llm", "x", {"name": "n"}, version=7), "FAILED_PRECONDITION"),
        ("ObjectWrite", write("delete", "llm", "x", version=7), "FAILED_PRECONDITION"),
        ("ApprovalGet", host_pb2.ApprovalGetRequest(approval_id="nope"), "NOT_FOUND"),
        ("ApprovalList", host_pb2.ApprovalListRequest(state="sideways"), "INVALID_ARGUMENT"),
        ("ScheduleTrigger", host_pb2.ScheduleTriggerRequest(schedule_id="none"), "NOT_FOUND"),
    ]
    for method, request, expected in cases:
        assert await wired.code(method, request) == expected, (method, request)
    assert await wired.code("ScheduleList", common_pb2.Empty()) == "OK"  # the host is still fine
    wired.server.service.studio = None
    assert await wired.code("ObjectList", host_pb2.ObjectListRequest(object_type="llm")) == "UNAVAILABLE"


async def test_the_sdk_clients_read_and_write_objects_and_approvals(wired: Wired) -> None:
    conn = HostConnection(wired.server.address, wired.server.register("bot"), "bot")
    try:
        objects, approvals, schedules = Objects(conn), Approvals(conn), Schedules(conn)
        made = await objects.create("app", {"id": "a", "name": "App"})
        assert made.status == "applied" and made.object is not None and made.object.version == 1
        changed = await objects.update("app", "a", {"name": "App 2"}, expected_version=1)
        assert changed.object is not None and changed.object.data["name"] == "App 2"
        page, after = await objects.list("app", limit=10)
        assert [o.id for o in page] == ["a"] and after == ""
        assert await objects.get("app", "missing") is None
        parked = await objects.create("llm", {"id": "p", "name": "n", "vendor": "acme"})
        assert parked.status == "pending" and parked.approval_id
        assert (await approvals.get(parked.approval_id))["state"] == "pending"
        assert [a["id"] for a in await approvals.list()] == [parked.approval_id]
        assert await schedules.list() == []
        deleted = await objects.delete("app", "a")
        assert deleted.status == "applied" and await objects.get("app", "a") is None
    finally:
        await conn.close()
