"""Inputs for the checks: Hypothesis strategies for valid hook calls, and fixed hostile inputs
(malformed, huge, unicode). Generation is derandomized, so a run is repeatable.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from celgate.v1 import common_pb2, plugin_pb2

T = TypeVar("T")

_TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20).filter(
    lambda s: not s.startswith("-")
)
_VALUE = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40).map(str.strip)
_HEADERS = st.lists(st.tuples(_TOKEN, _VALUE), max_size=8)
_PATH = st.lists(_TOKEN, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts))
_MODELS = st.sampled_from(["gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet", "standin", "llama-3"])


@st.composite
def _chat_body(draw: st.DrawFn) -> bytes:
    messages = draw(
        st.lists(
            st.fixed_dictionaries(
                {"role": st.sampled_from(["system", "user", "assistant"]), "content": st.text(max_size=60)}
            ),
            min_size=1,
            max_size=4,
        )
    )
    doc: dict[str, Any] = {"model": draw(_MODELS), "messages": messages}
    if draw(st.booleans()):
        doc["stream"] = True
    if draw(st.booleans()):
        doc["max_tokens"] = draw(st.integers(1, 4096))
    return json.dumps(doc).encode()


@st.composite
def request_contexts(draw: st.DrawFn) -> plugin_pb2.RequestContext:
    body = draw(st.one_of(_chat_body(), st.just(b""), st.binary(max_size=64)))
    headers = draw(_HEADERS)
    if draw(st.booleans()):
        headers.append(("content-type", "application/json"))
    if draw(st.booleans()):
        headers.append(("authorization", "Bearer " + draw(_TOKEN)))
    octet = draw(st.integers(1, 254))
    request = plugin_pb2.HttpRequest(
        id=f"req-{draw(st.integers(0, 10**9))}",
        method=draw(st.sampled_from(["POST", "GET", "PUT", "DELETE"])),
        path=draw(st.one_of(st.just("/v1/chat/completions"), st.just("/v1/embeddings"), _PATH)),
        query_string=draw(st.one_of(st.just(""), st.just("a=1&b=2"))),
        headers=[common_pb2.Header(name=k, value=v) for k, v in headers],
        body=body,
        remote_addr=f"10.0.0.{octet}:5{octet}",
        client_ip=f"10.0.0.{octet}",
        host="gateway.example",
        scheme="https",
    )
    identity = common_pb2.Identity()
    if draw(st.booleans()):
        identity = common_pb2.Identity(
            authenticated=True,
            app_id=draw(_TOKEN),
            user_id=draw(_TOKEN),
            groups=draw(st.lists(_TOKEN, max_size=3)),
        )
    return plugin_pb2.RequestContext(
        request=request,
        identity=identity,
        llm=plugin_pb2.LLMRef(id="standin", slug="standin", vendor="openai", model=draw(_MODELS)),
        runtime="gateway",
        received_unix_ms=1_700_000_000_000,
    )


@st.composite
def data_records(draw: st.DrawFn) -> plugin_pb2.DataRecord:
    ctx = draw(request_contexts())
    return plugin_pb2.DataRecord(
        request_id=ctx.request.id,
        started_unix_ms=1_700_000_000_000,
        duration_ms=draw(st.integers(0, 60_000)),
        method=ctx.request.method,
        path=ctx.request.path,
        status=draw(st.sampled_from([200, 400, 401, 429, 500, 503])),
        identity=ctx.identity,
        llm=ctx.llm,
        usage=plugin_pb2.Usage(prompt_tokens=3, completion_tokens=5, total_tokens=8),
        streaming=draw(st.booleans()),
        request_body=ctx.request.body,
        response_body=draw(st.binary(max_size=64)),
        client_ip=ctx.request.client_ip,
    )


_JSON_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000), st.text(max_size=20))
_JSON_OBJECT = st.dictionaries(_TOKEN, _JSON_SCALAR, max_size=6)


@st.composite
def object_objects(draw: st.DrawFn, object_type: str) -> dict[str, Any]:
    doc: dict[str, Any] = draw(_JSON_OBJECT)
    doc.update({"id": draw(_TOKEN), "name": draw(st.text(max_size=30))})
    if object_type == "llm":
        doc.update({"vendor": draw(st.sampled_from(["openai", "anthropic", "acme"])), "model": draw(_MODELS)})
    return doc


def examples(strategy: st.SearchStrategy[T], n: int) -> list[T]:
    """Up to `n` distinct examples of `strategy`, the same ones on every run."""
    out: list[T] = []

    @settings(
        max_examples=max(1, n),
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(value: T) -> None:
        out.append(value)

    collect()
    return out[:n]


# ---------------------------------------------------------------- hostile inputs

UNICODE_SAMPLES = [
    "\u202etxt.exe",  # right-to-left override
    "e\u0301\u0301\u0301",  # stacked combining marks
    "\U0001f600\U0001f9d1\u200d\U0001f4bb",  # emoji with a zero-width joiner
    "\ufeffbom",
    "\x00nul\x00",
    "\u0000\u0001\u001f\u007f",
    "\U0010ffff\ue000",
    "Ωmega ñandú 中文 العربية",
]


def hostile_contexts(huge_bytes: int) -> list[tuple[str, plugin_pb2.RequestContext]]:
    """(label, context) pairs: malformed, huge and unicode requests."""
    out: list[tuple[str, plugin_pb2.RequestContext]] = []

    def ctx(label: str, **fields: Any) -> None:
        req = plugin_pb2.HttpRequest(
            id="req-hostile",
            method="POST",
            path="/v1/chat/completions",
            host="gateway.example",
            scheme="https",
        )
        for key, value in fields.items():
            if key == "headers":
                req.headers.extend(common_pb2.Header(name=k, value=v) for k, v in value)
            else:
                setattr(req, key, value)
        out.append((label, plugin_pb2.RequestContext(request=req, runtime="gateway")))

    ctx("an empty request", method="", path="", host="", scheme="")
    ctx(
        "a truncated JSON body",
        body=b'{"model": "gpt-4o", "messages": [',
        headers=[("content-type", "application/json")],
    )
    ctx(
        "a JSON body of the wrong shape",
        body=b'{"model": 5, "messages": "x"}',
        headers=[("content-type", "application/json")],
    )
    ctx("a JSON array body", body=b"[1, 2, 3]", headers=[("content-type", "application/json")])
    ctx(
        "a body that is not UTF-8",
        body=b"\xff\xfe\xfa\x00\xc3\x28",
        headers=[("content-type", "application/json")],
    )
    ctx("a path with traversal and NULs", path="/../../etc/passwd\x00", query_string="%ZZ=%00&&=")
    ctx(
        "headers with empty and odd names",
        headers=[("", ""), ("X-UPPER", "v"), ("x-upper", "w"), (":authority", "a")],
    )
    ctx("a bare 'Bearer' authorization", headers=[("authorization", "Bearer"), ("authorization", "")])
    for i, text in enumerate(UNICODE_SAMPLES):
        body = json.dumps({"model": text, "messages": [{"role": "user", "content": text}]}).encode()
        ctx(
            f"unicode input #{i} ({text.encode('unicode_escape').decode()[:24]})",
            path="/v1/" + text,
            headers=[("x-unicode", text), (text[:8] or "x", text), ("authorization", "Bearer " + text)],
            body=body,
            host=text,
        )
    big = b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "' + b"a" * huge_bytes + b'"}]}'
    ctx(f"a {huge_bytes // (1024 * 1024)} MiB body", body=big, headers=[("content-type", "application/json")])
    ctx("2000 headers", headers=[(f"x-h{i}", "v" * 16) for i in range(2000)])
    ctx("a 64 KiB header value", headers=[("x-long", "v" * 65536)])
    return out
