"""Mapping between the wire messages (celgate.v1) and the SDK's plain data types.

Plugin authors never see protobuf; this module is the one place that does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from celgate.sdk.context import RequestContext, Services
from celgate.sdk.types import (
    LLM,
    Actor,
    Allow,
    Authenticated,
    AuthResult,
    Continue,
    DataRecord,
    Decision,
    Deny,
    EndpointRequest,
    Headers,
    Identity,
    Modify,
    Mutate,
    ObjectVerdict,
    PendingApproval,
    Rejected,
    Request,
    RequestResult,
    Respond,
    ResponseChunk,
    ResponseEnd,
    ResponseHead,
    Usage,
)
from celgate.v1 import common_pb2, plugin_pb2


def headers_from(pbs: Iterable[common_pb2.Header]) -> Headers:
    return Headers.from_wire(pbs)


def headers_to(items: Iterable[tuple[str, str]]) -> list[common_pb2.Header]:
    return [common_pb2.Header(name=k, value=v) for k, v in items]


def identity_from(pb: common_pb2.Identity) -> Identity:
    return Identity(
        authenticated=pb.authenticated,
        app_id=pb.app_id,
        user_id=pb.user_id,
        groups=list(pb.groups),
        claims=dict(pb.claims),
    )


def identity_to(identity: Identity) -> common_pb2.Identity:
    return common_pb2.Identity(
        authenticated=identity.authenticated,
        app_id=identity.app_id,
        user_id=identity.user_id,
        groups=identity.groups,
        claims=identity.claims,
    )


def llm_from(pb: plugin_pb2.LLMRef) -> LLM:
    return LLM(id=pb.id, slug=pb.slug, vendor=pb.vendor, model=pb.model)


def actor_from(pb: plugin_pb2.Actor) -> Actor:
    return Actor(id=pb.id, email=pb.email, groups=list(pb.groups))


def usage_from(pb: plugin_pb2.Usage) -> Usage:
    return Usage(
        prompt_tokens=pb.prompt_tokens, completion_tokens=pb.completion_tokens, total_tokens=pb.total_tokens
    )


def request_context_from(
    pb: plugin_pb2.RequestContext, plugin_id: str, services: Services, runtime: str = ""
) -> RequestContext:
    """`runtime` is the one the host gave in Configure; the request's own field wins when set.

    This runs once per hook call: unset sub-messages and empty maps are skipped on purpose.
    """
    r = pb.request
    request = Request(
        r.method,
        r.path,
        r.query_string,
        Headers.from_wire(r.headers),
        r.body,
        r.id,
        r.remote_addr,
        r.client_ip,
        r.host,
        r.scheme,
    )
    return RequestContext(
        plugin_id,
        pb.runtime or runtime,
        services,
        request,
        identity_from(pb.identity) if pb.HasField("identity") else Identity(),
        llm_from(pb.llm) if pb.HasField("llm") else LLM(),
        dict(pb.metadata) if len(pb.metadata) else {},
        pb.received_unix_ms,
    )


def decisions_to(decisions: Iterable[Decision]) -> list[plugin_pb2.Decision]:
    return [
        plugin_pb2.Decision(policy=d.policy, rule=d.rule, decision=d.decision, mode=d.mode, reason=d.reason)
        for d in decisions
    ]


def decisions_from(pbs: Iterable[plugin_pb2.Decision]) -> list[Decision]:
    return [
        Decision(policy=d.policy, rule=d.rule, decision=d.decision, mode=d.mode, reason=d.reason) for d in pbs
    ]


_PROCEED = common_pb2.Empty()


def request_verdict_into(verdict: plugin_pb2.RequestVerdict, result: RequestResult | None) -> None:
    """Fill `verdict` in place (the hot path: no intermediate message for a plain Continue)."""
    if result is None or (type(result) is Continue and not result.decisions and not result.response_headers):
        verdict.proceed.SetInParent()
        return
    verdict.CopyFrom(request_verdict_to(result))


def request_verdict_to(result: RequestResult | None) -> plugin_pb2.RequestVerdict:
    if result is None:
        return plugin_pb2.RequestVerdict(proceed=_PROCEED)
    if isinstance(result, Continue):
        verdict = plugin_pb2.RequestVerdict(proceed=_PROCEED)
    elif isinstance(result, Modify):
        changes = plugin_pb2.RequestChanges(
            set_headers=headers_to(result.set_headers.items()),
            add_headers=headers_to(result.add_headers),
            remove_headers=result.remove_headers,
            replace_body=result.body is not None,
            body=result.body or b"",
            path=result.path or "",
            metadata=result.metadata,
        )
        verdict = plugin_pb2.RequestVerdict(changes=changes)
    elif isinstance(result, Respond):
        reply = plugin_pb2.Reply(status=result.status, headers=headers_to(result.headers), body=result.body)
        verdict = plugin_pb2.RequestVerdict(reply=reply)
    else:
        raise TypeError(
            f"a request hook must return Continue, Modify, Respond or None, not {type(result).__name__}"
        )
    if result.decisions:
        verdict.decisions.extend(decisions_to(result.decisions))
    if result.response_headers:
        verdict.response_headers.extend(headers_to(result.response_headers))
    return verdict


def auth_verdict_to(result: AuthResult) -> plugin_pb2.AuthVerdict:
    if isinstance(result, Authenticated):
        identity = identity_to(result.identity)
        identity.authenticated = True
        return plugin_pb2.AuthVerdict(identity=identity, decisions=decisions_to(result.decisions))
    if isinstance(result, Rejected):
        body = json.dumps({"error": result.message}).encode()
        headers = [("content-type", "application/json"), *result.headers]
        reply = plugin_pb2.Reply(status=result.status, headers=headers_to(headers), body=body)
        return plugin_pb2.AuthVerdict(reject=reply, decisions=decisions_to(result.decisions))
    raise TypeError(f"authenticate() must return Authenticated or Rejected, not {type(result).__name__}")


def response_head_from(pb: plugin_pb2.ResponseHeaders) -> ResponseHead:
    return ResponseHead(status=pb.status, headers=headers_from(pb.headers), streaming=pb.streaming)


def response_head_to(head: ResponseHead | None) -> plugin_pb2.ResponseHeadersVerdict:
    if head is None:
        return plugin_pb2.ResponseHeadersVerdict()
    if not isinstance(head, ResponseHead):
        raise TypeError(f"on_response_headers() must return ResponseHead or None, not {type(head).__name__}")
    return plugin_pb2.ResponseHeadersVerdict(
        modified=True, status=head.status, headers=headers_to(head.headers.items())
    )


def response_chunk_from(pb: plugin_pb2.ResponseChunk) -> ResponseChunk:
    return ResponseChunk(index=pb.index, data=pb.data, streaming=pb.streaming)


def response_end_from(pb: plugin_pb2.ResponseEnd) -> ResponseEnd:
    return ResponseEnd(
        status=pb.status,
        chunks=pb.chunks,
        usage=usage_from(pb.usage),
        streaming=pb.streaming,
        aborted=pb.aborted,
    )


def data_record_from(pb: plugin_pb2.DataRecord) -> DataRecord:
    return DataRecord(
        request_id=pb.request_id,
        started_unix_ms=pb.started_unix_ms,
        duration_ms=pb.duration_ms,
        method=pb.method,
        path=pb.path,
        status=pb.status,
        identity=identity_from(pb.identity),
        llm=llm_from(pb.llm),
        usage=usage_from(pb.usage),
        streaming=pb.streaming,
        request_body=pb.request_body,
        response_body=pb.response_body,
        decisions=decisions_from(pb.decisions),
        client_ip=pb.client_ip,
    )


def endpoint_request_from(pb: plugin_pb2.EndpointRequest) -> EndpointRequest:
    return EndpointRequest(
        method=pb.method,
        path=pb.path,
        query_string=pb.query_string,
        headers=headers_from(pb.headers),
        body=pb.body,
        remote_addr=pb.remote_addr,
        identity=identity_from(pb.identity),
        request_id=pb.request_id,
    )


def json_or_none(text: str) -> dict[str, Any] | None:
    if not text:
        return None
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("expected a JSON object")
    return value


def object_verdict_to(result: ObjectVerdict) -> plugin_pb2.ObjectVerdict:
    if isinstance(result, Allow):
        return plugin_pb2.ObjectVerdict(
            allow=_PROCEED, message=result.message, decisions=decisions_to(result.decisions)
        )
    if isinstance(result, Deny):
        return plugin_pb2.ObjectVerdict(
            deny=result.reason, rule=result.rule, decisions=decisions_to(result.decisions)
        )
    if isinstance(result, Mutate):
        return plugin_pb2.ObjectVerdict(
            modify=json.dumps(result.obj), message=result.message, decisions=decisions_to(result.decisions)
        )
    if isinstance(result, PendingApproval):
        approvers = plugin_pb2.Approvers(
            groups=result.groups,
            min_approvals=result.min_approvals,
            expires_after_ms=int(result.expires_after * 1000),
        )
        return plugin_pb2.ObjectVerdict(
            pending_approval=approvers, message=result.message, decisions=decisions_to(result.decisions)
        )
    raise TypeError(
        "handle_object_hook() must return Allow, Deny, Mutate or PendingApproval, "
        f"not {type(result).__name__}"
    )
