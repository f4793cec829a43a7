"""Approvals end to end: parked changes, votes, application, conflicts, expiry, restarts."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from studio_helpers import FakeTarget, Studio, Verdict, regs, studio_server

from celgate.engine.objecthooks import StaticTargets
from celgate.engine.store.base import Change
from celgate.v1 import common_pb2, plugin_pb2


def review_risky(min_approvals: int = 1, expires_ms: int = 3_600_000):  # type: ignore[no-untyped-def]
    """Pending approval by `security` when privacy_score > 50; allow otherwise."""

    def handler(req: plugin_pb2.ObjectHookRequest) -> plugin_pb2.ObjectVerdict:
        obj = json.loads(req.object_json)
        if obj.get("privacy_score", 0) > 50:
            return Verdict(
                pending_approval=plugin_pb2.Approvers(
                    groups=["security"], min_approvals=min_approvals, expires_after_ms=expires_ms
                ),
                message="risky object needs a security review",
                rule="risky",
            )
        return Verdict(allow=common_pb2.Empty())

    return handler


def targets(**kw: int) -> StaticTargets:
    return StaticTargets(
        [
            FakeTarget(
                "review", review_risky(**kw), regs("llm", "before_create", "before_update", "before_delete")
            )
        ]
    )


async def _people(s: Studio) -> dict[str, str]:
    return {
        "ann": await s.user("ann", "admin", ["security"]),  # the requester in these tests
        "sam": await s.user("sam", "approver", ["security"]),
        "sue": await s.user("sue", "approver", ["security", "legal"]),
        "leo": await s.user("leo", "approver", ["legal"]),
        "meg": await s.user("meg", "member", ["security"]),
    }


RISKY = {"id": "r1", "name": "Risky", "vendor": "acme", "privacy_score": 90, "api_key": "sk-risky"}


async def test_pending_change_is_applied_after_min_distinct_approvals(tmp_path: Path) -> None:
    async with studio_server(tmp_path / "s.db", targets(min_approvals=2)) as s:
        p = await _people(s)
        r = await s.call("POST", "/api/v1/llms", RISKY, token=p["ann"])
        assert r.status == 202, r.body
        approval = r.body["approval"]
        assert r.headers["Location"] == f"/api/v1/approvals/{approval['id']}"
        assert approval["state"] == "pending" and approval["groups"] == ["security"]
        assert approval["min_approvals"] == 2 and approval["requested_by"] == "ann"
        assert "sk-risky" not in json.dumps(r.body)
        assert (await s.call("GET", "/api/v1/llms/r1")).status == 404
        requested = await s.next_event("system.approval.requested")
        assert requested["id"] == approval["id"]
        listed = await s.call("GET", "/api/v1/approvals", token=p["sam"])
        assert [a["id"] for a in listed.body["items"]] == [approval["id"]]

        votable = {name: await s.call("GET", "/api/v1/approvals?votable=1", token=p[name]) for name in p}
        assert {n for n, r in votable.items() if r.body["items"]} == {"sam", "sue"}
        url = f"/api/v1/approvals/{approval['id']}/approve"
        own = await s.call("POST", url, {}, token=p["ann"])
        assert own.status == 403 and "requester" in own.body["error"]["message"]
        assert (await s.call("POST", url, {}, token=p["leo"])).status == 403  # wrong group
        assert (await s.call("POST", url, {}, token=p["meg"])).status == 403  # member role
        first = await s.call("POST", url, {"comment": "ok"}, token=p["sam"])
        assert first.status == 200 and first.body["state"] == "pending" and len(first.body["votes"]) == 1
        again = await s.call("POST", url, {}, token=p["sam"])
        assert again.status == 409  # one vote per person: distinct approvers
        second = await s.call("POST", url, {}, token=p["sue"])
        assert second.status == 200 and second.body["state"] == "approved", second.body

        got = await s.call("GET", "/api/v1/llms/r1")
        assert got.status == 200 and got.body["api_key_set"] is True and got.body["owner"] == "ann"
        assert await s.state.store.get_secret("llm", "r1") == "sk-risky"
        created = await s.next_event("system.llm.created")
        assert created["approval_id"] == approval["id"] and created["actor"] == "ann"
        assert (await s.call("POST", url, {}, token=p["leo"])).status == 409  # no longer pending

        audit = await s.call("GET", "/api/v1/audit?object_type=llm&object_id=r1")
        actions = [a["action"] for a in reversed(audit.body["items"])]
        assert actions == [
            "approval.requested",
            "approval.voted",
            "approval.voted",
            "approval.approved",
            "llm.create",
        ]
        row = sqlite3.connect(tmp_path / "s.db").execute("SELECT secret FROM approvals").fetchone()
        assert row == (None,)  # the parked secret is dropped once applied


async def test_one_rejection_rejects_and_nothing_is_written(tmp_path: Path) -> None:
    async with studio_server(tmp_path / "s.db", targets()) as s:
        p = await _people(s)
        r = await s.call("POST", "/api/v1/llms", RISKY, token=p["ann"])
        aid = r.body["approval"]["id"]
        rej = await s.call("POST", f"/api/v1/approvals/{aid}/reject", {"comment": "no"}, token=p["sue"])
        assert rej.status == 200 and rej.body["state"] == "rejected" and rej.body["reason"] == "no"
        assert (await s.next_event("system.approval.rejected"))["id"] == aid
        assert (await s.call("GET", "/api/v1/llms/r1")).status == 404
        assert (await s.call("POST", f"/api/v1/approvals/{aid}/approve", {}, token=p["sam"])).status == 409
        assert (await s.call("GET", "/api/v1/approvals?state=rejected")).body["items"][0]["id"] == aid


async def test_approval_fails_with_409_when_the_object_changed_meanwhile(tmp_path: Path) -> None:
    async with studio_server(tmp_path / "s.db", targets()) as s:
        p = await _people(s)
        assert (
            await s.call("POST", "/api/v1/llms", {"id": "m", "name": "M", "privacy_score": 10})
        ).status == 201
        parked = await s.call(
            "PATCH", "/api/v1/llms/m", {"privacy_score": 80}, headers={"If-Match": '"1"'}, token=p["ann"]
        )
        assert parked.status == 202 and parked.body["approval"]["base_version"] == 1
        # an allowed change lands in between
        assert (
            await s.call("PATCH", "/api/v1/llms/m", {"name": "M2"}, headers={"If-Match": '"1"'})
        ).status == 200
        aid = parked.body["approval"]["id"]
        r = await s.call("POST", f"/api/v1/approvals/{aid}/approve", {}, token=p["sam"])
        assert r.status == 409 and "changed" in r.body["error"]["message"]
        assert (await s.call("GET", f"/api/v1/approvals/{aid}")).body["state"] == "failed"
        assert (await s.next_event("system.approval.failed"))["id"] == aid
        obj = await s.call("GET", "/api/v1/llms/m")
        assert obj.body["privacy_score"] == 10 and obj.body["name"] == "M2" and obj.headers["ETag"] == '"2"'


async def test_pending_delete_applies_only_when_unchanged(tmp_path: Path) -> None:
    async with studio_server(tmp_path / "s.db", targets()) as s:
        p = await _people(s)
        # written straight to the store, as if approved earlier
        await s.state.store.commit(
            Change("create", "llm", "big", {"id": "big", "name": "Big", "privacy_score": 99})
        )
        parked = await s.call("DELETE", "/api/v1/llms/big", token=p["ann"])
        assert parked.status == 202 and parked.body["approval"]["operation"] == "delete"
        aid = parked.body["approval"]["id"]
        ok = await s.call("POST", f"/api/v1/approvals/{aid}/approve", {}, token=p["sam"])
        assert ok.status == 200 and ok.body["state"] == "approved"
        assert (await s.call("GET", "/api/v1/llms/big")).status == 404
        assert (await s.next_event("system.llm.deleted"))["id"] == "big"


async def test_pending_approval_survives_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    async with studio_server(db, targets()) as s:
        p = await _people(s)
        r = await s.call("POST", "/api/v1/llms", RISKY, token=p["ann"])
        aid = r.body["approval"]["id"]
    async with studio_server(db, targets()) as s:  # a new process would see the same file
        listed = await s.call("GET", "/api/v1/approvals", token=p["sam"])
        assert [a["id"] for a in listed.body["items"]] == [aid]
        ok = await s.call("POST", f"/api/v1/approvals/{aid}/approve", {}, token=p["sam"])
        assert ok.status == 200 and ok.body["state"] == "approved"
        assert await s.state.store.get_secret("llm", "r1") == "sk-risky"


async def test_expired_approvals_are_expired_and_cannot_be_approved(tmp_path: Path) -> None:
    async with studio_server(tmp_path / "s.db", targets()) as s:
        p = await _people(s)
        r = await s.call("POST", "/api/v1/llms", RISKY, token=p["ann"])
        aid = r.body["approval"]["id"]
        assert await s.state.approvals.expire_due(now=time.time() + 10) == 0
        assert await s.state.approvals.expire_due(now=time.time() + 7200) == 1
        assert (await s.call("GET", f"/api/v1/approvals/{aid}")).body["state"] == "expired"
        assert (await s.call("POST", f"/api/v1/approvals/{aid}/approve", {}, token=p["sam"])).status == 409
        assert (await s.call("GET", "/api/v1/llms/r1")).status == 404


async def test_the_scheduler_expires_approvals(tmp_path: Path) -> None:
    async with studio_server(tmp_path / "s.db", targets(expires_ms=50), approval_sweep_every=0.05) as s:
        p = await _people(s)
        r = await s.call("POST", "/api/v1/llms", RISKY, token=p["ann"])
        aid = r.body["approval"]["id"]
        expired = await s.next_event("system.approval.expired", timeout=10)
        assert expired["id"] == aid and expired["state"] == "expired"
        audit = await s.call("GET", "/api/v1/audit?object_type=llm&object_id=r1")
        assert audit.body["items"][0]["action"] == "approval.expired"
        assert audit.body["items"][0]["actor"] == "scheduler"


async def test_a_parked_create_fails_when_the_id_was_taken_meanwhile(tmp_path: Path) -> None:
    async with studio_server(tmp_path / "s.db", targets()) as s:
        p = await _people(s)
        parked = await s.call("POST", "/api/v1/llms", RISKY, token=p["ann"])
        assert parked.status == 202
        # the same id, created directly (a harmless score needs no approval)
        assert (
            await s.call("POST", "/api/v1/llms", {"id": "r1", "name": "Safe", "privacy_score": 1})
        ).status == 201
        aid = parked.body["approval"]["id"]
        r = await s.call("POST", f"/api/v1/approvals/{aid}/approve", {}, token=p["sam"])
        assert r.status == 409 and "created by someone else" in r.body["error"]["message"]
        assert (await s.call("GET", f"/api/v1/approvals/{aid}")).body["state"] == "failed"
        got = await s.call("GET", "/api/v1/llms/r1")
        assert got.body["name"] == "Safe" and got.body["api_key_set"] is False
