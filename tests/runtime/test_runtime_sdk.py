"""The SDK without processes: headers, results on the wire, capability derivation."""

from __future__ import annotations

from typing import Any

import pytest

from celgate.sdk import (
    Allow,
    Auth,
    Authenticated,
    Context,
    Continue,
    Deny,
    Headers,
    Identity,
    Modify,
    Mutate,
    PendingApproval,
    Plugin,
    PreAuth,
    RequestContext,
    Respond,
    Response,
    capabilities_of,
    convert,
)
from celgate.sdk.serve import PluginError, check_capabilities


def test_headers_are_multi_valued_and_case_insensitive() -> None:
    h = Headers([("Set-Cookie", "a=1"), ("set-cookie", "b=2"), ("Content-Type", "text/plain")])
    assert h.get("SET-COOKIE") == "a=1"
    assert h.get_all("set-cookie") == ["a=1", "b=2"]
    assert "content-type" in h and "x-missing" not in h
    h.set("set-cookie", "c=3")
    assert h.get_all("Set-Cookie") == ["c=3"]
    h.add("X-A", "1")
    h.remove("content-type")
    assert list(h) == ["set-cookie", "X-A"]
    assert Headers({"a": "1"}) == Headers([("A", "1")])


def test_request_results_on_the_wire() -> None:
    assert convert.request_verdict_to(None).HasField("proceed")
    assert (
        convert.request_verdict_to(Continue(response_headers=[("x-w", "1")])).response_headers[0].name
        == "x-w"
    )
    changes = convert.request_verdict_to(Modify(set_headers={"a": "1"}, body=b"new", path="/p")).changes
    assert changes.replace_body and changes.body == b"new" and changes.path == "/p"
    assert not convert.request_verdict_to(Modify()).changes.replace_body
    reply = convert.request_verdict_to(
        Respond.json(429, {"error": "slow down"}, headers=[("retry-after", "3")])
    ).reply
    assert reply.status == 429 and reply.body == b'{"error":"slow down"}'
    assert [(h.name, h.value) for h in reply.headers] == [
        ("content-type", "application/json"),
        ("retry-after", "3"),
    ]
    with pytest.raises(TypeError, match="must return Continue, Modify, Respond or None"):
        convert.request_verdict_to("yes")  # type: ignore[arg-type]


def test_auth_and_object_results_on_the_wire() -> None:
    ok = convert.auth_verdict_to(Authenticated(Identity(app_id="a")))
    assert ok.identity.authenticated and ok.identity.app_id == "a"
    assert convert.object_verdict_to(Allow()).HasField("allow")
    assert convert.object_verdict_to(Deny("no https")).deny == "no https"
    assert convert.object_verdict_to(Mutate({"name": "x"})).modify == '{"name": "x"}'
    pending = convert.object_verdict_to(PendingApproval(["admins"], 2, expires_after=60)).pending_approval
    assert (list(pending.groups), pending.min_approvals, pending.expires_after_ms) == (["admins"], 2, 60_000)


class _Both(Plugin, PreAuth, Auth, Response):
    response_chunks = True

    def on_pre_auth(self, ctx: RequestContext) -> Any:
        return None

    async def authenticate(self, ctx: RequestContext, credential: str) -> Any:
        return None


def test_capabilities_are_derived_from_the_class() -> None:
    assert capabilities_of(_Both()) == ["pre_auth", "auth", "response"]
    assert capabilities_of(Plugin()) == []


def test_manifest_must_agree_with_the_class() -> None:
    assert check_capabilities(_Both(), {"id": "x", "capabilities": ["response", "auth", "pre_auth"]})
    with pytest.raises(PluginError, match=r"implemented but not declared: \['response'\]"):
        check_capabilities(_Both(), {"id": "x", "capabilities": ["auth", "pre_auth"]})
    with pytest.raises(PluginError, match=r"unknown capabilities \['teleport'\]"):
        check_capabilities(_Both(), {"id": "x", "capabilities": ["auth", "pre_auth", "response", "teleport"]})
    with pytest.raises(PluginError, match="must be a list"):
        check_capabilities(_Both(), {"id": "x"})


def test_abstract_handlers_must_be_implemented() -> None:
    class Half(Plugin, PreAuth):
        pass

    with pytest.raises(TypeError):
        Half()  # type: ignore[abstract]


def test_context_run_refuses_inside_the_event_loop() -> None:
    import asyncio

    async def inside() -> None:
        ctx = Context(services=Context().services)
        ctx.services.bind(asyncio.get_running_loop())
        try:
            with pytest.raises(RuntimeError, match="use `await`"):
                ctx.run(asyncio.sleep(0))
        finally:
            ctx.services.loop = None

    asyncio.run(inside())
