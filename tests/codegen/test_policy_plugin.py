"""The compiled plugin's runtime (codegen/policy_plugin.py): phases, inputs, counters, settlement,
object verdicts - through the SDK interfaces a host calls."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from codegen_helpers import import_plugin

from celgate.codegen.compile import compile_paths
from celgate.engine.counters_redis import RedisCounters
from celgate.sdk import (
    Actor,
    Continue,
    Deny,
    Headers,
    Identity,
    Mutate,
    ObjectEvent,
    PendingApproval,
    Request,
    RequestContext,
    Respond,
    ResponseEnd,
    ResponseHead,
    Usage,
)
from celgate.sdk.counters import AsyncMemoryCounters, CounterLimit, MemoryCounters

HEAD = "apiVersion: celgate.dev/v1\n"


def build(tmp: Path, text: str, counters: Any = None) -> Any:
    src = tmp / "src"
    src.mkdir(exist_ok=True)
    (src / "p.yaml").write_text(text)
    result = compile_paths([src], tmp / "out", bundle="p")
    assert result.exit_code == 0, (result.error, [d.message for d in result.lint.diagnostics])
    module = import_plugin(tmp / "out" / "p")
    return module.CompiledPolicies(counters=counters or AsyncMemoryCounters(MemoryCounters()))


def ctx(
    rid: str = "r1", app: str = "", headers: dict[str, str] | None = None, body: Any = None
) -> RequestContext:
    return RequestContext(
        request=Request(
            method="POST",
            path="/v1/chat/completions",
            headers=Headers(list((headers or {"content-type": "application/json"}).items())),
            body=json.dumps(body if body is not None else {"model": "m"}).encode(),
            id=rid,
            remote_addr="192.168.1.5:4000",
        ),
        identity=Identity(authenticated=bool(app), app_id=app),
    )


TWO_PHASES = (
    HEAD
    + """kind: IPFilter
metadata: {name: ips}
spec: {allow: [192.168.0.0/16]}
---
"""
    + HEAD
    + """kind: RequestValidation
metadata: {name: who}
spec:
  rules:
    - {name: app, expression: 'identity.app_id == "good"', message: bad app}
    - {name: hdr, expression: '!("x-evil" in request.headers)', message: evil header}
"""
)


async def test_post_auth_sees_the_identity_and_a_request_changed_since_pre_auth(tmp_path: Path) -> None:
    plugin = build(tmp_path, TWO_PHASES)
    assert isinstance(await plugin.on_pre_auth(ctx("a")), Continue)
    assert isinstance(await plugin.on_post_auth(ctx("a", app="good")), Continue)
    assert isinstance(await plugin.on_pre_auth(ctx("b")), Continue)
    denied = await plugin.on_post_auth(ctx("b", app="other"))
    assert isinstance(denied, Respond) and denied.status == 400
    # Another plugin added a header between the phases: post_auth must see it.
    assert isinstance(await plugin.on_pre_auth(ctx("c")), Continue)
    changed = await plugin.on_post_auth(ctx("c", app="good", headers={"x-evil": "1"}))
    assert isinstance(changed, Respond)
    violations = json.loads(changed.body)["error"]["violations"]
    assert [v["rule"] for v in violations] == ["hdr"]


async def test_decisions_are_logged_on_continue(tmp_path: Path) -> None:
    plugin = build(tmp_path, TWO_PHASES)
    result = await plugin.on_pre_auth(ctx("a"))
    assert [(d.policy, d.decision) for d in result.decisions] == [("ips", "allow")]


LIMIT = (
    HEAD
    + """kind: RateLimit
metadata: {{name: lim}}
spec:
  failurePolicy: {failure}
  limits: [{{name: l, key: 'identity.app_id', requests: 5, window: 1m}}]
"""
)


@pytest.mark.parametrize("failure", ["fail-closed", "fail-open"])
async def test_unreachable_counter_store_is_decided_by_failure_policy_and_says_so(
    tmp_path: Path, failure: str
) -> None:
    down = RedisCounters("redis://127.0.0.1:1/0", timeout_s=0.2)
    plugin = build(tmp_path, LIMIT.format(failure=failure), down)
    result = await plugin.on_post_auth(ctx(app="a"))
    if failure == "fail-closed":
        assert isinstance(result, Respond) and result.status == 503
        assert json.loads(result.body)["error"]["type"] == "policy_error"
    else:
        assert isinstance(result, Continue)
    (entry,) = result.decisions
    assert entry.decision == ("deny" if failure == "fail-closed" else "skipped")
    assert "counter store unavailable" in entry.reason and "127.0.0.1:1" in entry.reason
    await down.close()


TOKENS = (
    HEAD
    + """kind: RateLimit
metadata: {name: a-tokens}
spec:
  limits:
    - {name: t, key: '"k"', tokens: 1000, window: 1h, reserve: 'request.body.max_tokens'}
---
"""
    + HEAD
    + """kind: RateLimit
metadata: {name: b-requests}
spec:
  limits: [{name: r, key: '"k"', requests: 1, window: 1h}]
"""
)


def remaining(store: MemoryCounters, key: str, limit: float, algorithm: str = "sliding-window") -> float:
    res = store.acquire([CounterLimit(key, algorithm, limit, 3600.0, 0)], dry_run=True)  # type: ignore[arg-type]
    return res.states[0].remaining


async def test_reservation_is_refunded_when_a_later_policy_denies(tmp_path: Path) -> None:
    store = MemoryCounters()
    plugin = build(tmp_path, TOKENS, AsyncMemoryCounters(store))
    assert isinstance(await plugin.on_post_auth(ctx("r1", "a", body={"max_tokens": 100})), Continue)
    assert remaining(store, "a-tokens/t/k", 1000) == 900
    denied = await plugin.on_post_auth(ctx("r2", "a", body={"max_tokens": 100}))
    assert isinstance(denied, Respond) and denied.status == 429
    assert remaining(store, "a-tokens/t/k", 1000) == 900  # r2's reservation was given back


@pytest.mark.parametrize("streaming", [False, True])
async def test_tokens_are_settled_at_response_end(tmp_path: Path, streaming: bool) -> None:
    store = MemoryCounters()
    plugin = build(tmp_path, TOKENS, AsyncMemoryCounters(store))
    c = ctx("r1", "a", body={"max_tokens": 100})
    assert isinstance(await plugin.on_post_auth(c), Continue)
    await plugin.on_response_headers(c, ResponseHead(status=200, streaming=streaming))
    assert remaining(store, "a-tokens/t/k", 1000) == 900  # still the reservation until the end
    end = ResponseEnd(
        status=200, usage=Usage(total_tokens=340), streaming=streaming, chunks=20 if streaming else 1
    )
    await plugin.on_response_end(c, end)
    assert remaining(store, "a-tokens/t/k", 1000) == 660
    await plugin.on_response_end(c, end)  # a second end for the same request settles nothing
    assert remaining(store, "a-tokens/t/k", 1000) == 660


APPROVAL = (
    HEAD
    + """kind: ObjectApproval
metadata: {name: vendors}
spec:
  objects: [llm, tool]
  operations: [create, update]
  rules:
    - {name: tls, when: 'object.name == "plain"', action: deny, message: use https}
    - name: review
      when: 'object.name == "new"'
      action: require_approval
      approvers: {groups: [security, legal]}
      minApprovals: 2
      expiresAfter: 72h
      message: needs review
    - {name: stamp, when: 'true', action: mutate, patch: {metadata: {by: celgate}}}
"""
)


def event(name: str, operation: str = "create") -> ObjectEvent:
    return ObjectEvent(
        hook=f"before_{operation}",
        object_type="llm",
        operation=operation,
        object={"name": name, "metadata": {"a": "b"}},
        previous=None,
        actor=Actor(id="u1", groups=["dev"]),
    )


def test_object_hooks_register_exactly_the_covered_types_and_operations(tmp_path: Path) -> None:
    plugin = build(tmp_path, APPROVAL)
    pairs = [(r.object_type, r.hook) for r in plugin.object_hooks()]
    assert pairs == [
        ("llm", "before_create"),
        ("llm", "before_update"),
        ("tool", "before_create"),
        ("tool", "before_update"),
    ]


def test_object_verdicts_deny_pending_and_mutate(tmp_path: Path) -> None:
    plugin = build(tmp_path, APPROVAL)
    denied = plugin.handle_object_hook(RequestContext(), event("plain"))
    assert isinstance(denied, Deny) and denied.reason == "use https" and denied.rule == "tls"
    pending = plugin.handle_object_hook(RequestContext(), event("new"))
    assert isinstance(pending, PendingApproval)
    assert pending.groups == ["security", "legal"] and pending.min_approvals == 2
    assert pending.expires_after == 72 * 3600 and pending.message == "needs review"
    mutated = plugin.handle_object_hook(RequestContext(), event("ok"))
    assert isinstance(mutated, Mutate)
    assert mutated.obj["metadata"] == {"a": "b", "by": "celgate"}
    assert [d.policy for d in mutated.decisions] == ["vendors"]
