"""Small pure pieces of the gateway: SSE framing, credentials, client IP, usage, routes."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from celgate.engine.endpoints import match_route as _match_route
from celgate.engine.pipeline import credential_of, resolve_client_ip
from celgate.engine.sse import SSEFramer, usage_from_body
from celgate.v1 import plugin_pb2

EVENTS = [b'data: {"a": 1}\n\n', b"event: x\ndata: 2\n\n", b"data: [DONE]\n\n"]


@given(st.lists(st.integers(min_value=0, max_value=60), max_size=8))
def test_sse_framer_yields_whole_events_whatever_the_split(cuts: list[int]) -> None:
    stream = b"".join(EVENTS)
    points = sorted({min(c, len(stream)) for c in cuts})
    pieces = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    framer = SSEFramer()
    out = [e for p in pieces for e in framer.feed(p)]
    assert out == EVENTS and framer.flush() == b""


def test_sse_framer_handles_crlf_and_keeps_a_partial_tail() -> None:
    framer = SSEFramer()
    assert framer.feed(b"data: 1\r\n\r\ndata: 2\n\ndata: 3") == [b"data: 1\r\n\r\n", b"data: 2\n\n"]
    assert framer.flush() == b"data: 3"


def test_credential_prefers_bearer_then_x_api_key() -> None:
    assert credential_of([("x-api-key", "k1"), ("Authorization", "Bearer  t1 ")]) == "t1"
    assert credential_of([("authorization", "Basic abc"), ("X-API-Key", "k2")]) == "k2"
    assert credential_of([("authorization", "Bearer ")]) == ""
    assert credential_of([]) == ""


def test_client_ip_trusts_forwarded_for_only_from_trusted_proxies() -> None:
    trusted = [ipaddress.ip_network("10.0.0.0/8")]
    assert resolve_client_ip("203.0.113.9", "1.2.3.4", trusted) == "203.0.113.9"  # untrusted peer
    assert resolve_client_ip("10.0.0.1", "1.2.3.4", trusted) == "1.2.3.4"
    assert (
        resolve_client_ip("10.0.0.1", "6.6.6.6, 1.2.3.4, 10.0.0.2", trusted) == "1.2.3.4"
    )  # rightmost untrusted
    assert resolve_client_ip("10.0.0.1", "not-an-ip", trusted) == "10.0.0.1"
    assert resolve_client_ip("10.0.0.1", "10.0.0.3, 10.0.0.2", trusted) == "10.0.0.3"
    assert resolve_client_ip("10.0.0.1", "1.2.3.4", []) == "10.0.0.1"


def test_usage_from_json_body_and_from_the_last_sse_event() -> None:
    body = b'{"usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}'
    assert usage_from_body(body) == plugin_pb2.Usage(prompt_tokens=1, completion_tokens=2, total_tokens=3)
    sse = b'data: {"usage": null}\n\ndata: {"choices": [], "usage": {"total_tokens": 9}}\n\ndata: [DONE]\n\n'
    assert usage_from_body(sse) == plugin_pb2.Usage(total_tokens=9)
    assert usage_from_body(b'{"usage": {"total_tokens": "x"}}') == plugin_pb2.Usage()
    assert usage_from_body(b"not json usage") is None
    assert usage_from_body(b"") is None


def test_route_matching_exact_subtree_and_methods() -> None:
    routes = [
        plugin_pb2.EndpointRoute(path="/a", methods=["GET", "POST"]),
        plugin_pb2.EndpointRoute(path="/files/*"),
    ]
    assert _match_route(routes, "/a", "POST")[0] is routes[0]
    assert _match_route(routes, "/a", "DELETE") == (None, {"GET", "POST"})
    assert _match_route(routes, "/files", "GET")[0] is routes[1]
    assert _match_route(routes, "/files/x/y", "HEAD")[0] is routes[1]  # HEAD follows GET
    assert _match_route(routes, "/filesx", "GET") == (None, set())


def test_invalid_plugin_headers_are_dropped_not_fatal() -> None:
    from celgate.engine.asgi import encode_headers as _encode

    got = _encode(
        [("ok", "1"), ("bad name", "x"), ("x-ctl", "a\x01b"), ("x-nl", "a\r\nb"), ("x-uni", "é€"), ("", "v")]
    )
    assert got == [(b"ok", b"1")]
