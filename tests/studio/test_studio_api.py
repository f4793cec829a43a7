"""The studio REST API through a real uvicorn server and a real SQLite file."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from studio_helpers import ADMIN_TOKEN, studio_server

from celgate.engine.studio_state import open_studio

LLM = {
    "id": "gpt",
    "name": "GPT",
    "vendor": "openai",
    "api_endpoint": "https://api.openai.com/v1",
    "default_model": "gpt-4o",
    "models": ["gpt-4o"],
    "privacy_score": 50,
}


async def test_requests_without_a_valid_token_are_rejected(tmp_path: Path) -> None:
    async with studio_server(tmp_path / "s.db") as s:
        assert (await s.call("GET", "/api/v1/llms", token="cgt_nope-nope-nope-nope")).status == 401
        async with s.session.get(s.server.url + "/api/v1/llms") as resp:
            assert resp.status == 401
            assert (await resp.json())["error"]["type"] == "unauthenticated"
        me = await s.call("GET", "/api/v1/me")
        assert me.status == 200 and me.body["role"] == "admin"


async def test_bootstrap_prints_a_generated_admin_token_once(tmp_path: Path, capsys: object) -> None:
    db = str(tmp_path / "boot.db")
    state = await open_studio(db, start_scheduler=False)
    token = state.bootstrap_token
    await state.close()
    assert token and token.startswith("cgt_")
    assert token in capsys.readouterr().err  # type: ignore[attr-defined]
    again = await open_studio(db, start_scheduler=False)
    try:
        assert again.bootstrap_token is None  # not on the second start
        assert token not in capsys.readouterr().err  # type: ignore[attr-defined]
        user = await again.authenticate(token)
        assert user is not None and user.data["role"] == "admin"
    finally:
        await again.close()
    raw = sqlite3.connect(db).execute("SELECT hash FROM tokens").fetchall()
    assert raw and all(token not in h for (h,) in raw)  # stored hashed


async def test_crud_with_etags_and_if_match(tmp_path: Path) -> None:
    async with studio_server(tmp_path / "s.db") as s:
        created = await s.call("POST", "/api/v1/llms", {**LLM, "api_key": "sk-secret"})
        assert created.status == 201, created.body
        assert created.headers["ETag"] == '"1"'
        assert created.headers["Location"] == "/api/v1/llms/gpt"
        assert "api_key" not in created.body and created.body["api_key_set"] is True
        assert created.body["owner"] == "admin"

        got = await s.call("GET", "/api/v1/llms/gpt")
        assert got.status == 200 and got.body == created.body and got.headers["ETag"] == '"1"'

        no_match = await s.call("PATCH", "/api/v1/llms/gpt", {"privacy_score": 70})
        assert no_match.status == 428

        ok = await s.call(
            "PATCH",
            "/api/v1/llms/gpt",
            {"privacy_score": 70, "metadata": {"team": "ml"}},
            headers={"If-Match": '"1"'},
        )
        assert ok.status == 200, ok.body
        assert (
            ok.headers["ETag"] == '"2"' and ok.body["privacy_score"] == 70 and ok.body["api_key_set"] is True
        )

        # a second writer still holding version 1 cannot overwrite silently
        stale = await s.call("PATCH", "/api/v1/llms/gpt", {"privacy_score": 10}, headers={"If-Match": '"1"'})
        assert stale.status == 412 and stale.body["error"]["current_etag"] == '"2"'
        assert (await s.call("GET", "/api/v1/llms/gpt")).body["privacy_score"] == 70

        # PUT replaces the whole object; clearing the key with null
        put = await s.call(
            "PUT", "/api/v1/llms/gpt", {"name": "GPT 2", "api_key": None}, headers={"If-Match": '"2"'}
        )
        assert put.status == 200 and put.body["vendor"] == "" and put.body["api_key_set"] is False

        listed = await s.call("GET", "/api/v1/llms")
        assert [o["id"] for o in listed.body["items"]] == ["gpt"]

        stale_delete = await s.call("DELETE", "/api/v1/llms/gpt", headers={"If-Match": '"2"'})
        assert stale_delete.status == 412
        deleted = await s.call("DELETE", "/api/v1/llms/gpt", headers={"If-Match": '"3"'})
        assert deleted.status == 204
        assert (await s.call("GET", "/api/v1/llms/gpt")).status == 404


async def test_concurrent_edits_with_the_same_etag_cannot_both_win(tmp_path: Path) -> None:
    async with studio_server(tmp_path / "s.db") as s:
        assert (await s.call("POST", "/api/v1/apps", {"id": "a", "name": "a"})).status == 201
        replies = await asyncio.gather(
            *(
                s.call("PATCH", "/api/v1/apps/a", {"description": f"writer {i}"}, headers={"If-Match": '"1"'})
                for i in range(8)
            )
        )
        statuses = sorted(r.status for r in replies)
        assert statuses == [200] + [412] * 7
        winner = next(r for r in replies if r.status == 200)
        final = await s.call("GET", "/api/v1/apps/a")
        assert final.body["description"] == winner.body["description"] and final.headers["ETag"] == '"2"'


async def test_invalid_input_gets_clear_errors(tmp_path: Path) -> None:
    async with studio_server(tmp_path / "s.db") as s:
        bad_json = await s.call("POST", "/api/v1/llms", raw=b"{not json")
        assert bad_json.status == 400 and bad_json.body["error"]["type"] == "bad_request"
        unknown = await s.call("POST", "/api/v1/llms", {"name": "x", "colour": "red", "privacy_score": 500})
        assert unknown.status == 422
        fields = {f["field"] for f in unknown.body["error"]["fields"]}
        assert fields == {"colour", "privacy_score"}
        assert (await s.call("POST", "/api/v1/llms", ["a"])).status == 400
        deep = await s.call("POST", "/api/v1/llms", raw=b"[" * 100_000 + b"]" * 100_000)
        assert deep.status in (400, 413)
        inf = await s.call("POST", "/api/v1/apps", raw=b'{"name": "a", "monthly_budget": 1e999}')
        assert inf.status == 422
        assert (
            await s.call("POST", "/api/v1/apps", raw=b'{"name": "a", "monthly_budget": NaN}')
        ).status == 422
        huge = await s.call("POST", "/api/v1/llms", {"name": "x" * (2 << 20)})
        assert huge.status == 413
        assert (await s.call("GET", "/api/v1/llms?limit=abc")).status == 400
        assert (await s.call("GET", "/api/v1/approvals?state=weird")).status == 400
        assert (
            await s.call("PATCH", "/api/v1/llms/nope", {"a": 1}, headers={"If-Match": '"x"'})
        ).status == 412
        assert (await s.call("POST", "/api/v1/widgets", {"name": "x"})).status == 404
        assert (await s.call("POST", "/api/v1/tools", {"id": "t", "name": "T"})).status == 201
        dup = await s.call("POST", "/api/v1/tools", {"id": "t", "name": "T"})
        assert dup.status == 409
        id_change = await s.call("PATCH", "/api/v1/tools/t", {"id": "u"}, headers={"If-Match": '"1"'})
        assert id_change.status == 422


async def test_roles_limit_what_members_and_approvers_can_do(tmp_path: Path) -> None:
    async with studio_server(tmp_path / "s.db") as s:
        member = await s.user("mia", "member")
        approver = await s.user("abe", "approver", ["security"])
        assert (await s.call("POST", "/api/v1/llms", LLM)).status == 201
        # members read llms, create apps, never touch llms, users or plugins
        assert (await s.call("GET", "/api/v1/llms/gpt", token=member)).status == 200
        assert (await s.call("POST", "/api/v1/llms", {**LLM, "id": "x"}, token=member)).status == 403
        app = await s.call(
            "POST", "/api/v1/apps", {"name": "chat", "llms": ["gpt"], "monthly_budget": 10}, token=member
        )
        assert app.status == 201 and app.body["owner"] == "mia" and app.body["monthly_budget"] == 10.0
        assert (await s.call("GET", "/api/v1/users", token=member)).status == 403
        assert (await s.call("GET", "/api/v1/users/abe", token=member)).status == 404
        assert (await s.call("GET", "/api/v1/users/mia", token=member)).status == 200
        assert (await s.call("POST", "/api/v1/users", {"email": "z@x.io"}, token=approver)).status == 403
        assert (
            await s.call("POST", "/api/v1/plugins", {"id": "p", "ref": "file:///p"}, token=member)
        ).status == 403
        assert (await s.call("GET", "/api/v1/audit", token=approver)).status == 403
        # tokens: one's own, not another user's
        assert (await s.call("GET", "/api/v1/users/abe/tokens", token=member)).status == 403
        mine = await s.call("POST", "/api/v1/users/mia/tokens", {"name": "ci"}, token=member)
        assert mine.status == 201
        listed = await s.call("GET", "/api/v1/users/mia/tokens", token=member)
        assert {t["name"] for t in listed.body["items"]} == {"test", "ci"}
        assert all("token" not in t for t in listed.body["items"])
        gone = await s.call("DELETE", f"/api/v1/users/mia/tokens/{mine.body['id']}", token=member)
        assert gone.status == 204
        assert (await s.call("GET", "/api/v1/me", token=mine.body["token"])).status == 401
        # deactivating a user locks their tokens out
        r = await s.call("PATCH", "/api/v1/users/mia", {"active": False}, headers={"If-Match": '"1"'})
        assert r.status == 200
        assert (await s.call("GET", "/api/v1/me", token=member)).status == 401
        groups = await s.call("GET", "/api/v1/groups")
        assert {"name": "security", "members": ["abe"]} in groups.body["items"]


async def test_every_change_is_audited_and_published(tmp_path: Path) -> None:
    async with studio_server(tmp_path / "s.db") as s:
        await s.call("POST", "/api/v1/tools", {"id": "t1", "name": "search"})
        created = await s.next_event("system.tool.created")
        assert created["id"] == "t1" and created["object"]["name"] == "search" and created["actor"] == "admin"
        await s.call("PATCH", "/api/v1/tools/t1", {"name": "web search"}, headers={"If-Match": '"1"'})
        updated = await s.next_event("system.tool.updated")
        assert updated["previous"]["name"] == "search" and updated["object"]["name"] == "web search"
        await s.call("DELETE", "/api/v1/tools/t1")
        deleted = await s.next_event("system.tool.deleted")
        assert deleted["object"] is None and deleted["version"] == 2

        await s.call("POST", "/api/v1/llms", {**LLM, "api_key": "sk-top-secret"})
        event = await s.next_event("system.llm.created")
        assert "sk-top-secret" not in str(event) and event["object"]["api_key_set"] is True

        audit = await s.call("GET", "/api/v1/audit?object_type=tool&object_id=t1")
        actions = [a["action"] for a in audit.body["items"]]
        assert actions == ["tool.delete", "tool.update", "tool.create"]
        assert all(a["actor"] == "admin" for a in audit.body["items"])
        rows = sqlite3.connect(tmp_path / "s.db").execute("SELECT detail FROM audit").fetchall()
        assert all("sk-top-secret" not in d for (d,) in rows)
        secret = (
            sqlite3.connect(tmp_path / "s.db").execute("SELECT data FROM objects WHERE id='gpt'").fetchone()
        )
        assert "sk-top-secret" not in secret[0]  # the key lives only in its own column
        assert await s.state.store.get_secret("llm", "gpt") == "sk-top-secret"


async def test_plugin_install_records(tmp_path: Path) -> None:
    async with studio_server(tmp_path / "s.db") as s:
        r = await s.call(
            "POST",
            "/api/v1/plugins",
            {"id": "ipf", "ref": "file:///opt/ipf", "config": {"a": 1}, "scopes": ["kv.readwrite"]},
        )
        assert r.status == 201 and r.headers["ETag"] == '"1"'
        assert (await s.call("POST", "/api/v1/plugins", {"id": "ipf", "ref": "file:///x"})).status == 409
        bad = await s.call("POST", "/api/v1/plugins", {"id": "x", "ref": "http://evil"})
        assert bad.status == 422
        assert (await s.call("PATCH", "/api/v1/plugins/ipf", {"enabled": False})).status == 428
        upd = await s.call("PATCH", "/api/v1/plugins/ipf", {"enabled": False}, headers={"If-Match": '"1"'})
        assert upd.status == 200 and upd.body["enabled"] is False and upd.body["config"] == {"a": 1}
        assert (
            await s.call("PATCH", "/api/v1/plugins/ipf", {"enabled": True}, headers={"If-Match": '"1"'})
        ).status == 412
        assert [p["id"] for p in (await s.call("GET", "/api/v1/plugins")).body["items"]] == ["ipf"]
        s.state.plugin_status = lambda pid: {"healthy": pid == "ipf"}
        assert (await s.call("GET", "/api/v1/plugins/ipf")).body["status"] == {"healthy": True}
        assert (await s.call("DELETE", "/api/v1/plugins/ipf")).status == 204
        assert (await s.call("GET", "/api/v1/plugins/ipf")).status == 404
        assert (await s.next_event("system.plugin.created"))["id"] == "ipf"


async def test_objects_survive_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    async with studio_server(db) as s:
        assert (
            await s.call("POST", "/api/v1/datasources", {"id": "kb", "name": "KB", "kind": "pg"})
        ).status == 201
    async with studio_server(db) as s:
        got = await s.call("GET", "/api/v1/datasources/kb", token=ADMIN_TOKEN)
        assert got.status == 200 and got.body["kind"] == "pg" and got.headers["ETag"] == '"1"'
