"""Helpers the checks share: hook calls per capability, verdict validation, comparisons."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from celgate.conformance.registry import Failed
from celgate.conformance.session import Session
from celgate.engine.handle import HookError
from celgate.v1 import common_pb2, plugin_pb2

REQUEST_HOOKS = ("pre_auth", "auth", "post_auth", "response")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def active(session: Session) -> frozenset[str]:
    """Capabilities to check: declared in the manifest or reported as implemented."""
    return session.declared | session.capabilities


def credential_of(ctx: plugin_pb2.RequestContext) -> str:
    for h in ctx.request.headers:
        if h.name.lower() == "authorization":
            value = h.value
            return value[7:].strip() if value.lower().startswith("bearer ") else value
    return ""


def authenticated(ctx: plugin_pb2.RequestContext) -> plugin_pb2.RequestContext:
    out = plugin_pb2.RequestContext()
    out.CopyFrom(ctx)
    if not out.identity.authenticated:
        out.identity.CopyFrom(
            common_pb2.Identity(authenticated=True, app_id="conformance-app", user_id="conformance-user")
        )
    return out


def hook_calls(session: Session, ctx: plugin_pb2.RequestContext) -> list[tuple[str, plugin_pb2.HookCall]]:
    """One call per request hook the plugin declares, built from one request context."""
    caps = active(session)
    calls: list[tuple[str, plugin_pb2.HookCall]] = []
    if "pre_auth" in caps:
        calls.append(("pre_auth", plugin_pb2.HookCall(pre_auth=ctx)))
    if "auth" in caps:
        auth = plugin_pb2.AuthRequest(context=ctx, credential=credential_of(ctx))
        calls.append(("auth", plugin_pb2.HookCall(auth=auth)))
    if "post_auth" in caps:
        calls.append(("post_auth", plugin_pb2.HookCall(post_auth=authenticated(ctx))))
    if "response" in caps:
        actx = authenticated(ctx)
        head = plugin_pb2.ResponseHeaders(
            context=actx,
            status=200,
            headers=[common_pb2.Header(name="content-type", value="application/json")],
        )
        calls.append(("response_headers", plugin_pb2.HookCall(response_headers=head)))
        if session.observed.manifest_reply is not None and session.observed.manifest_reply.response_chunks:
            chunk = plugin_pb2.ResponseChunk(context=actx, index=0, data=ctx.request.body, streaming=False)
            calls.append(("response_chunk", plugin_pb2.HookCall(response_chunk=chunk)))
        end = plugin_pb2.ResponseEnd(context=actx, status=200, chunks=1, streaming=False)
        calls.append(("response_end", plugin_pb2.HookCall(response_end=end)))
    return calls


def describe_ctx(ctx: plugin_pb2.RequestContext) -> str:
    req = ctx.request
    headers = ", ".join(f"{h.name}: {h.value[:20]}" for h in req.headers[:4])
    more = f" (+{len(req.headers) - 4})" if len(req.headers) > 4 else ""
    return f"{req.method} {req.path[:60]!r} headers [{headers}{more}] body {req.body[:60]!r}"


async def call_or_fail(
    session: Session, name: str, call: plugin_pb2.HookCall, what: str, timeout: float | None = None
) -> plugin_pb2.HookReply:
    try:
        return await session.hook(call, timeout)
    except HookError as exc:
        raise Failed(f"{name} on {what}: {exc.kind}: {exc.message}") from None


def header_problems(headers: Iterable[common_pb2.Header], where: str) -> list[str]:
    problems = []
    for h in headers:
        if not _TOKEN.match(h.name):
            problems.append(f"{where}: header name {h.name!r} is not an HTTP token")
        if any(c in h.value for c in "\r\n\x00"):
            problems.append(f"{where}: header {h.name!r} has a CR, LF or NUL in its value")
    return problems


def reply_problems(reply: plugin_pb2.Reply, where: str, lowest: int = 200) -> list[str]:
    """A Reply the host sends to a client: a final HTTP status, valid headers, a body that
    matches a JSON content type."""
    problems = []
    if not lowest <= reply.status <= 599:
        problems.append(f"{where}: status {reply.status} is not a final HTTP status ({lowest}-599)")
    problems += header_problems(reply.headers, where)
    ctype = next((h.value for h in reply.headers if h.name.lower() == "content-type"), "")
    if "json" in ctype.lower() and reply.body:
        try:
            json.loads(reply.body)
        except ValueError:
            problems.append(f"{where}: content-type {ctype} but the body is not JSON: {reply.body[:80]!r}")
    return problems


def verdict_problems(name: str, reply: plugin_pb2.HookReply) -> list[str]:
    """What is wrong with a hook reply beyond what the host's handle already refuses."""
    kind = reply.WhichOneof("reply")
    if kind == "request":
        verdict = reply.request
        problems = header_problems(verdict.response_headers, f"{name} response_headers")
        which = verdict.WhichOneof("verdict")
        if which == "reply":
            problems += reply_problems(verdict.reply, f"{name} reply")
        elif which == "changes":
            ch = verdict.changes
            problems += header_problems(list(ch.set_headers) + list(ch.add_headers), f"{name} changes")
            if ch.path and (not ch.path.startswith("/") or any(c in ch.path for c in "\r\n\x00 ")):
                problems.append(f"{name} changes: path {ch.path!r} is not an absolute request path")
        return problems
    if kind == "auth":
        verdict_auth = reply.auth
        if verdict_auth.WhichOneof("verdict") == "identity":
            ident = verdict_auth.identity
            if not ident.authenticated:
                return [f"{name}: an identity verdict with authenticated=false (reject instead)"]
            if not (ident.app_id or ident.user_id):
                return [f"{name}: an identity with neither app_id nor user_id"]
            return []
        return reply_problems(verdict_auth.reject, f"{name} reject", lowest=400)
    if kind == "response_headers" and reply.response_headers.modified:
        return header_problems(reply.response_headers.headers, f"{name} headers")
    return []


def verdict_key(reply: plugin_pb2.HookReply) -> tuple[object, ...]:
    """What must be the same when the same input is sent twice (counts in warning headers
    and decision reasons, such as a rate limit's remaining budget, may change)."""
    kind = reply.WhichOneof("reply")
    if kind == "request":
        which = reply.request.WhichOneof("verdict")
        if which == "reply":
            return (kind, which, reply.request.reply.status)
        if which == "changes":
            return (kind, which, reply.request.changes.SerializeToString(deterministic=True))
        return (kind, which)
    if kind == "auth":
        which = reply.auth.WhichOneof("verdict")
        if which == "identity":
            return (kind, which, reply.auth.identity.SerializeToString(deterministic=True))
        return (kind, which, reply.auth.reject.status)
    if kind == "response_headers":
        rh = reply.response_headers
        return (kind, rh.modified, rh.status, tuple((h.name, h.value) for h in rh.headers))
    if kind == "response_chunk":
        return (kind, reply.response_chunk.modified, reply.response_chunk.data)
    if kind == "response_end":
        return (kind, reply.response_end.append)
    return (kind,)


def summary(reply: plugin_pb2.HookReply) -> str:
    key = verdict_key(reply)
    return " ".join(repr(k)[:80] for k in key)
