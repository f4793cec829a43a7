"""Checks on the request pipeline hooks: pre_auth, auth, post_auth and response."""

from __future__ import annotations

import asyncio
import json
import re

from celgate.conformance import inputs
from celgate.conformance.checks.common import (
    call_or_fail,
    describe_ctx,
    hook_calls,
    summary,
    verdict_key,
    verdict_problems,
)
from celgate.conformance.registry import Failed, Options, Skipped, check
from celgate.conformance.session import Session
from celgate.engine.handle import HookError
from celgate.engine.pipeline import Exchange
from celgate.v1 import common_pb2, plugin_pb2

HOOKS = ("pre_auth", "auth", "post_auth", "response")
CONCURRENT_CALLS = 32
ROBUST_TIMEOUT = 5.0  # "hangs" means no answer at all within this, whatever the plugin's deadline


def _generated(session: Session, options: Options) -> list[plugin_pb2.RequestContext]:
    return inputs.examples(inputs.request_contexts(), options.examples)


@check(
    "hooks.deadline",
    "Every request hook answers Hypothesis-generated valid inputs within its deadline.",
    "core",
    capabilities=HOOKS,
)
async def deadline(session: Session, options: Options) -> str | None:
    count = 0
    for ctx in _generated(session, options):
        for name, call in hook_calls(session, ctx):
            await call_or_fail(session, name, call, describe_ctx(ctx))
            count += 1
    return f"{count} calls within {session.deadline_ms} ms each"


@check(
    "hooks.concurrent",
    "Request hooks handle calls concurrently: 32 calls in flight at once are all answered "
    "within the deadline.",
    "core",
    capabilities=HOOKS,
)
async def concurrent(session: Session, options: Options) -> str | None:
    contexts = inputs.examples(inputs.request_contexts(), CONCURRENT_CALLS)
    calls = [(name, call, ctx) for ctx in contexts for name, call in hook_calls(session, ctx)]
    calls = calls[:CONCURRENT_CALLS]
    results = await asyncio.gather(*(session.hook(call) for _, call, _ in calls), return_exceptions=True)
    for (name, _, ctx), result in zip(calls, results, strict=True):
        if isinstance(result, HookError):
            raise Failed(
                f"{name} on {describe_ctx(ctx)}, one of {len(calls)} calls in flight at once: "
                f"{result.kind}: {result.message}"
            )
        if isinstance(result, BaseException):
            raise result
    return f"{len(calls)} calls at once"


@check(
    "hooks.reply-valid",
    "Verdicts are well formed: replies carry a final HTTP status, valid headers and a body that "
    "matches its content type; auth answers a well-formed identity or a 4xx/5xx rejection.",
    "core",
    capabilities=HOOKS,
)
async def reply_valid(session: Session, options: Options) -> str | None:
    kinds: set[str] = set()
    for ctx in _generated(session, options):
        for name, call in hook_calls(session, ctx):
            reply = await call_or_fail(session, name, call, describe_ctx(ctx))
            problems = verdict_problems(name, reply)
            if problems:
                raise Failed(f"on {describe_ctx(ctx)}: " + "; ".join(problems))
            verdict = {"request": reply.request, "auth": reply.auth}.get(reply.WhichOneof("reply") or "")
            kinds.add(f"{name}:{verdict.WhichOneof('verdict')}" if verdict is not None else name)
    return "seen " + ", ".join(sorted(kinds))


@check(
    "hooks.deterministic",
    "The same input, sent twice in a row, gets the same verdict (429 answers are stateful by "
    "definition and not compared; one other state change is tolerated when the next two agree).",
    "extended",
    capabilities=HOOKS,
)
async def deterministic(session: Session, options: Options) -> str | None:
    for ctx in _generated(session, options):
        for name, call in hook_calls(session, ctx):
            what = describe_ctx(ctx)
            first = await call_or_fail(session, name, _copy(call), what)
            second = await call_or_fail(session, name, _copy(call), what)
            if verdict_key(first) == verdict_key(second) or _limited(first) or _limited(second):
                continue
            third = await call_or_fail(session, name, _copy(call), what)
            fourth = await call_or_fail(session, name, _copy(call), what)
            if verdict_key(third) != verdict_key(fourth):
                raise Failed(
                    f"{name} on {what}: answered {summary(first)}, then {summary(second)}, "
                    f"then {summary(third)}, then {summary(fourth)}"
                )
    return None


def _limited(reply: plugin_pb2.HookReply) -> bool:
    """A 429 answer: "too many requests" depends on what came before, by definition."""
    kind = reply.WhichOneof("reply")
    if kind == "request" and reply.request.WhichOneof("verdict") == "reply":
        return reply.request.reply.status == 429
    if kind == "auth" and reply.auth.WhichOneof("verdict") == "reject":
        return reply.auth.reject.status == 429
    return False


def _copy(call: plugin_pb2.HookCall) -> plugin_pb2.HookCall:
    out = plugin_pb2.HookCall()
    out.CopyFrom(call)
    return out


@check(
    "hooks.robust",
    "Malformed, huge and unicode inputs get a valid verdict: no crash, no hang, no handler error.",
    "core",
    capabilities=HOOKS,
)
async def robust(session: Session, options: Options) -> str | None:
    count = 0
    for label, ctx in inputs.hostile_contexts(options.huge_bytes):
        for name, call in hook_calls(session, ctx):
            try:
                reply = await session.hook(call, ROBUST_TIMEOUT)
            except HookError as exc:
                what = {"deadline": "hung", "crash": "crashed", "unavailable": "was down"}.get(
                    exc.kind, exc.kind
                )
                raise Failed(f"{name} on {label}: {what}: {exc.message}") from None
            problems = verdict_problems(name, reply)
            if problems:
                raise Failed(f"{name} on {label}: " + "; ".join(problems))
            count += 1
        if not await session.alive():
            raise Failed(f"the plugin is no longer healthy after {label}")
    return f"{count} hostile calls answered"


CREDENTIALS = [
    "",
    " ",
    "sk-conformance-0000000000000000",
    "Bearer sk-doubled",
    "\u202e\U0001f600\x00key",
    "k" * 65536,
    "a.b.c",  # JWT-shaped
    "%00%ff",
]


@check(
    "auth.verdict-valid",
    "auth answers every credential (missing, odd, unicode, 64 KiB, JWT-shaped) with a well-formed "
    "identity (authenticated, with an app or user id) or a 4xx/5xx rejection.",
    "core",
    capabilities=("auth",),
)
async def auth_verdict(session: Session, options: Options) -> str | None:
    contexts = _generated(session, options)[:3]
    outcomes: set[str] = set()
    for ctx in contexts:
        for credential in CREDENTIALS:
            call = plugin_pb2.HookCall(auth=plugin_pb2.AuthRequest(context=ctx, credential=credential))
            what = f"credential {credential[:24]!r}{'...' if len(credential) > 24 else ''}"
            reply = await call_or_fail(session, "auth", call, what, ROBUST_TIMEOUT)
            problems = verdict_problems("auth", reply)
            if problems:
                raise Failed(f"{what}: " + "; ".join(problems))
            which = reply.auth.WhichOneof("verdict") or ""
            outcomes.add(which if which == "identity" else f"reject {reply.auth.reject.status}")
    return "answered " + ", ".join(sorted(outcomes))


# ---------------------------------------------------------------- continue preserves


def _exchange(ctx: plugin_pb2.RequestContext) -> Exchange:
    req = ctx.request
    return Exchange(
        request_id=req.id,
        method=req.method,
        path=req.path,
        query_string=req.query_string,
        headers=[(h.name, h.value) for h in req.headers],
        body=req.body,
        remote_addr=req.remote_addr,
        client_ip=req.client_ip,
        host=req.host,
        scheme=req.scheme,
    )


def _norm_headers(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    out = []
    for name, value in headers:
        for part in value.split(","):
            out.append((name.lower(), part.strip()))
    return sorted(out)


def _norm_body(body: bytes) -> object:
    try:
        return ("json", json.dumps(json.loads(body), sort_keys=True))
    except ValueError:
        return ("text", body.decode("utf-8", "replace").strip())


def _state(ex: Exchange) -> tuple[object, ...]:
    return (ex.method, ex.path, ex.query_string, ex.headers, ex.body)


def _meaning(ex: Exchange) -> tuple[object, ...]:
    return (ex.method, ex.path, ex.query_string, _norm_headers(ex.headers), _norm_body(ex.body))


_MARKER = re.compile(rb"chunk-(\d{4})")


@check(
    "hooks.continue-preserves",
    "A verdict that changes nothing leaves the request (and response) byte for byte as it was: "
    "no re-encoded bodies, re-cased, re-ordered or joined headers.",
    "extended",
    capabilities=HOOKS,
)
async def continue_preserves(session: Session, options: Options) -> str | None:
    contexts = _generated(session, options)
    contexts.append(
        plugin_pb2.RequestContext(
            request=plugin_pb2.HttpRequest(
                id="req-bytes",
                method="POST",
                path="/v1/chat/completions",
                headers=[
                    common_pb2.Header(name="X-Mixed-Case", value="A"),
                    common_pb2.Header(name="accept", value="text/plain"),
                    common_pb2.Header(name="accept", value="application/json"),
                    common_pb2.Header(name="content-type", value="application/json"),
                ],
                body=b'{ "model" : "gpt-4o",\n  "messages": [{"role":"user","content":"hi \\u00e9"}] }\xff',
            ),
            runtime="gateway",
        )
    )
    for ctx in contexts:
        for name, call in hook_calls(session, ctx):
            reply = await call_or_fail(session, name, call, describe_ctx(ctx))
            kind = reply.WhichOneof("reply")
            if kind == "request" and reply.request.WhichOneof("verdict") == "changes":
                before = _exchange(getattr(call, name))
                after = _exchange(getattr(call, name))
                after.apply(reply.request.changes)
                if _state(after) != _state(before) and _meaning(after) == _meaning(before):
                    raise Failed(
                        f"{name} on {describe_ctx(ctx)}: its changes alter the request's bytes without "
                        "changing its meaning (a continue that mutates)"
                    )
            elif kind == "response_chunk" and reply.response_chunk.modified:
                original = call.response_chunk.data
                data = reply.response_chunk.data
                if data != original and _norm_body(data) == _norm_body(original):
                    raise Failed(
                        f"response_chunk on {original[:60]!r}: marked modified but only re-encoded "
                        f"({data[:60]!r})"
                    )
            elif kind == "response_headers" and reply.response_headers.modified:
                head = call.response_headers
                got = [(h.name, h.value) for h in reply.response_headers.headers]
                want = [(h.name, h.value) for h in head.headers]
                status = reply.response_headers.status
                if got != want and _norm_headers(got) == _norm_headers(want) and status == head.status:
                    raise Failed(
                        "response_headers: marked modified but only re-cased or re-ordered the headers"
                    )
    return None


# ---------------------------------------------------------------- response streams


def _stream(session: Session, n: int) -> tuple[plugin_pb2.RequestContext, list[bytes]]:
    ctx = plugin_pb2.RequestContext(
        request=plugin_pb2.HttpRequest(id="req-stream", method="POST", path="/v1/chat/completions"),
        identity=common_pb2.Identity(authenticated=True, app_id="conformance-app"),
        runtime="gateway",
    )
    chunks = []
    for i in range(n):
        doc = {
            "id": f"chunk-{i:04d}",
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {"content": f"word{i} "}}],
        }
        chunks.append(b"data: " + json.dumps(doc).encode() + b"\n\n")
    chunks.append(b"data: [DONE]\n\n")
    return ctx, chunks


@check(
    "response.chunk-order",
    "Response hooks keep chunk order: what comes out (chunks, then the end's append) holds the "
    "stream's chunks in the order they went in.",
    "core",
    capabilities=("response",),
)
async def chunk_order(session: Session, options: Options) -> str | None:
    reply = session.observed.manifest_reply
    if reply is None or not reply.response_chunks:
        raise Skipped("the plugin does not ask for body chunks (response_chunks=false)")
    ctx, chunks = _stream(session, 12)
    head = plugin_pb2.ResponseHeaders(
        context=ctx,
        status=200,
        streaming=True,
        headers=[common_pb2.Header(name="content-type", value="text/event-stream")],
    )
    await call_or_fail(
        session, "response_headers", plugin_pb2.HookCall(response_headers=head), "a stream's headers"
    )
    out = b""
    for i, data in enumerate(chunks):
        call = plugin_pb2.HookCall(
            response_chunk=plugin_pb2.ResponseChunk(context=ctx, index=i, data=data, streaming=True)
        )
        answer = await call_or_fail(session, "response_chunk", call, f"chunk {i}")
        out += answer.response_chunk.data if answer.response_chunk.modified else data
    end = plugin_pb2.ResponseEnd(context=ctx, status=200, chunks=len(chunks), streaming=True)
    answer = await call_or_fail(
        session, "response_end", plugin_pb2.HookCall(response_end=end), "the stream's end"
    )
    out += answer.response_end.append
    order = [int(m.group(1)) for m in _MARKER.finditer(out)]
    if order != sorted(order) or len(set(order)) != len(order):
        raise Failed(f"chunks came out in the order {order} (sent 0..{len(chunks) - 2})")
    if not order:
        raise Failed("none of the stream's chunks came out (chunk ids were dropped)")
    return f"{len(order)} of {len(chunks) - 1} chunks out, in order"


@check(
    "response.end-of-stream",
    "Response hooks see the end of every stream, finished or aborted, and answer it in time.",
    "core",
    capabilities=("response",),
)
async def end_of_stream(session: Session, options: Options) -> str | None:
    ctx, chunks = _stream(session, 3)
    for streaming in (True, False):
        for aborted in (False, True):
            end = plugin_pb2.ResponseEnd(
                context=ctx,
                status=200,
                chunks=len(chunks),
                streaming=streaming,
                aborted=aborted,
                usage=plugin_pb2.Usage(prompt_tokens=1, completion_tokens=2, total_tokens=3),
            )
            what = f"the end of a {'streamed' if streaming else 'whole'} response (aborted={aborted})"
            answer = await call_or_fail(session, "response_end", plugin_pb2.HookCall(response_end=end), what)
            if answer.WhichOneof("reply") != "response_end":
                raise Failed(f"{what}: answered {answer.WhichOneof('reply')}")
    return None
