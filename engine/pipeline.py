"""The request pipeline: plugin hooks in configured order, on protobuf messages directly.

pre_auth -> auth -> post_auth run before the upstream call; the response hooks run on the
upstream's headers, on each body chunk (only for plugins that asked for chunks) and at the end.
A `reply` verdict ends the chain; `changes` apply to the exchange and later plugins see them;
decisions are collected for the data record; `response_headers` of verdicts are added to the
eventual response. On a plugin failure the plugin's policy applies: fail-closed raises
`PluginFailure` (the gateway answers 503 without plugin internals), fail-open records the
plugin as "skipped" (never "passed") and goes on.

The HTTP side (reading, sending, upstream I/O) is in gateway.py; this module decides.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from celgate.engine.config import PluginConfig, UpstreamConfig
from celgate.engine.handle import HookError
from celgate.v1 import common_pb2, plugin_pb2

log = logging.getLogger("celgate.gateway")

PRE_AUTH, AUTH, POST_AUTH, RESPONSE, DATA_COLLECTION, CUSTOM_ENDPOINTS = (
    "pre_auth",
    "auth",
    "post_auth",
    "response",
    "data_collection",
    "custom_endpoints",
)


class HandleLike(Protocol):
    """What the pipeline needs of engine.handle.PluginHandle."""

    plugin_id: str
    capabilities: frozenset[str]

    async def hook(self, call: plugin_pb2.HookCall, timeout: float) -> plugin_pb2.HookReply: ...


class HandleSource(Protocol):
    """What the pipeline needs of engine.supervisor.Supervisor."""

    def get(self, plugin_id: str) -> Any: ...


class PluginFailure(Exception):
    """A fail-closed plugin failed: the request ends with 503."""

    def __init__(self, plugin_id: str, phase: str, kind: str) -> None:
        super().__init__(f"plugin {plugin_id!r} failed in {phase} ({kind})")
        self.plugin_id = plugin_id
        self.phase = phase
        self.kind = kind


@dataclass(frozen=True)
class Slot:
    """One configured plugin as the pipeline sees it."""

    id: str
    fail_open: bool
    timeouts: dict[str, float]  # phase -> seconds

    @classmethod
    def from_config(cls, p: PluginConfig) -> Slot:
        phases = (PRE_AUTH, AUTH, POST_AUTH, RESPONSE, DATA_COLLECTION, CUSTOM_ENDPOINTS)
        return cls(
            p.id,
            p.failure_policy == "fail-open",
            {ph: p.deadlines.get(ph, p.deadline_ms) / 1000 for ph in phases},
        )


def wants_chunks(handle: Any) -> bool:
    """Whether a response plugin asked to be called per body chunk (ManifestReply.response_chunks)."""
    flag = getattr(handle, "response_chunks", None)
    if flag is not None:
        return bool(flag)
    manifest = getattr(handle, "manifest", None) or {}
    return bool(manifest.get("response_chunks", False)) or "response_chunks" in handle.capabilities


@dataclass
class Exchange:
    """One request moving through the gateway: what plugins see and change."""

    request_id: str
    method: str
    path: str
    query_string: str
    headers: list[tuple[str, str]]
    body: bytes
    remote_addr: str
    client_ip: str
    host: str
    scheme: str
    started_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    started_ns: int = field(default_factory=time.perf_counter_ns)
    identity: common_pb2.Identity | None = None
    upstream: UpstreamConfig | None = None
    model: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    decisions: list[plugin_pb2.Decision] = field(default_factory=list)
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    body_changed: bool = False
    _ctx: plugin_pb2.RequestContext | None = None
    _chunk_ctx: plugin_pb2.RequestContext | None = None

    def header(self, name: str) -> str:
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return ""

    def llm_ref(self) -> plugin_pb2.LLMRef:
        up = self.upstream
        if up is None:
            return plugin_pb2.LLMRef(model=self.model)
        return plugin_pb2.LLMRef(id=up.id, slug=up.slug, vendor=up.vendor, model=self.model)

    def context(self) -> plugin_pb2.RequestContext:
        """The RequestContext for hooks, rebuilt only after something changed."""
        if self._ctx is None:
            req = plugin_pb2.HttpRequest(
                id=self.request_id,
                method=self.method,
                path=self.path,
                query_string=self.query_string,
                headers=[common_pb2.Header(name=k, value=v) for k, v in self.headers],
                body=self.body,
                remote_addr=self.remote_addr,
                client_ip=self.client_ip,
                host=self.host,
                scheme=self.scheme,
            )
            self._ctx = plugin_pb2.RequestContext(
                request=req,
                identity=self.identity,
                llm=self.llm_ref(),
                runtime="gateway",
                metadata=self.metadata,
                received_unix_ms=self.started_ms,
            )
        return self._ctx

    def chunk_context(self) -> plugin_pb2.RequestContext:
        """The context for per-chunk hooks: the same, without the request body, which the
        plugin saw in the request phases and the headers and end hooks (a stream has many chunks)."""
        if self._chunk_ctx is None:
            ctx = plugin_pb2.RequestContext()
            ctx.CopyFrom(self.context())
            ctx.request.body = b""
            self._chunk_ctx = ctx
        return self._chunk_ctx

    def invalidate(self) -> None:
        self._ctx = None
        self._chunk_ctx = None

    def apply(self, changes: plugin_pb2.RequestChanges) -> None:
        """Apply a plugin's RequestChanges (headers are multi-valued)."""
        if changes.remove_headers or changes.set_headers:
            drop = {h.lower() for h in changes.remove_headers} | {h.name.lower() for h in changes.set_headers}
            self.headers = [(k, v) for k, v in self.headers if k.lower() not in drop]
            self.headers.extend((h.name, h.value) for h in changes.set_headers)
        self.headers.extend((h.name, h.value) for h in changes.add_headers)
        if changes.replace_body:
            self.body = changes.body
            self.body_changed = True
        if changes.path:
            path, _, query = changes.path.partition("?")
            self.path = path if path.startswith("/") else "/" + path
            if query:
                self.query_string = query
        self.metadata.update(changes.metadata)
        self.invalidate()


@dataclass
class Outcome:
    """How the request phases ended: `reply` set means answer it now."""

    reply: plugin_pb2.Reply | None = None


def error_json(status: int, message: str, type_: str, code: str) -> plugin_pb2.Reply:
    """A gateway error as a Reply in the OpenAI error shape."""
    body = json.dumps({"error": {"message": message, "type": type_, "param": None, "code": code}}).encode()
    return plugin_pb2.Reply(
        status=status, headers=[common_pb2.Header(name="content-type", value="application/json")], body=body
    )


def _openai_auth_error(reject: plugin_pb2.Reply) -> plugin_pb2.Reply:
    """A plugin's rejection in the OpenAI error shape (clients such as `openai` parse it).

    A body that already has `{"error": {...}}` is kept; `{"error": "text"}` (the SDK's
    `Rejected`) or an empty body becomes `{"error": {"message": ..., "type": ...}}`."""
    message = "authentication failed"
    try:
        doc = json.loads(reject.body) if reject.body else None
    except ValueError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
        return reject
    if isinstance(doc, dict) and isinstance(doc.get("error"), str):
        message = doc["error"]
    out = error_json(reject.status, message, "authentication_error", "invalid_api_key")
    out.headers.extend(h for h in reject.headers if h.name.lower() != "content-type")
    return out


def credential_of(headers: Sequence[tuple[str, str]]) -> str:
    """The client's credential: `Authorization: Bearer X`, else `x-api-key`."""
    api_key = ""
    for k, v in headers:
        lk = k.lower()
        if lk == "authorization":
            scheme, _, token = v.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        elif lk == "x-api-key" and not api_key:
            api_key = v.strip()
    return api_key


def resolve_client_ip(
    remote: str, forwarded_for: str, trusted: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> str:
    """The client's address: walk X-Forwarded-For from the right while the hop is a trusted proxy."""
    if not trusted or not forwarded_for:
        return remote

    def is_trusted(addr: str) -> bool:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        return any(ip in net for net in trusted)

    if not is_trusted(remote):
        return remote
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop):
            try:
                ipaddress.ip_address(hop)
            except ValueError:
                return remote  # garbage in the header: trust nothing from it
            return hop
    return hops[0] if hops else remote


class Pipeline:
    """Per-phase plugin lists and the code that runs them for one exchange."""

    def __init__(self, plugins: Iterable[PluginConfig], handles: HandleSource) -> None:
        self.slots = [Slot.from_config(p) for p in plugins]
        self._handles = handles
        self.pre_auth: list[Slot] = []
        self.auth: list[Slot] = []
        self.post_auth: list[Slot] = []
        self.response: list[Slot] = []
        self.response_chunks: list[Slot] = []
        self.data_collection: list[Slot] = []
        self.custom_endpoints: dict[str, Slot] = {}
        self.refresh()

    def refresh(self) -> None:
        """Recompute the per-phase lists from the plugins' capabilities (after load or reload)."""
        lists: dict[str, list[Slot]] = {
            PRE_AUTH: [],
            AUTH: [],
            POST_AUTH: [],
            RESPONSE: [],
            DATA_COLLECTION: [],
        }
        chunks: list[Slot] = []
        endpoints: dict[str, Slot] = {}
        for slot in self.slots:
            handle = self._handles.get(slot.id)
            caps = handle.capabilities
            for phase, members in lists.items():
                if phase in caps:
                    members.append(slot)
            if RESPONSE in caps and wants_chunks(handle):
                chunks.append(slot)
            if CUSTOM_ENDPOINTS in caps:
                endpoints[slot.id] = slot
        self.pre_auth, self.auth, self.post_auth = lists[PRE_AUTH], lists[AUTH], lists[POST_AUTH]
        self.response, self.data_collection = lists[RESPONSE], lists[DATA_COLLECTION]
        self.response_chunks = chunks
        self.custom_endpoints = endpoints

    @property
    def has_request_hooks(self) -> bool:
        return bool(self.pre_auth or self.auth or self.post_auth)

    def handle(self, slot: Slot) -> Any:
        return self._handles.get(slot.id)

    # ------------------------------------------------------------------ calling one hook

    async def call(self, slot: Slot, phase: str, ex: Exchange, call: plugin_pb2.HookCall, expect: str) -> Any:
        """Call one hook; returns the reply's `expect` field, or None when a fail-open plugin failed."""
        timeout = slot.timeouts[phase]
        try:
            reply = await self._handles.get(slot.id).hook(call, timeout)
        except HookError as exc:
            self._failed(slot, phase, ex, exc.kind)
            return None
        if reply.WhichOneof("reply") != expect:
            self._failed(slot, phase, ex, "invalid")
            return None
        return getattr(reply, expect)

    def _failed(self, slot: Slot, phase: str, ex: Exchange, kind: str) -> None:
        if not slot.fail_open:
            log.warning(
                "request %s: plugin %s failed in %s (%s): fail-closed", ex.request_id, slot.id, phase, kind
            )
            raise PluginFailure(slot.id, phase, kind)
        log.warning(
            "request %s: plugin %s failed in %s (%s): fail-open, skipped", ex.request_id, slot.id, phase, kind
        )
        ex.decisions.append(
            plugin_pb2.Decision(policy=slot.id, rule=phase, decision="skipped", mode="fail-open", reason=kind)
        )

    # ------------------------------------------------------------------ request phases

    async def _request_phase(self, phase: str, slots: list[Slot], ex: Exchange) -> plugin_pb2.Reply | None:
        for slot in slots:
            if phase == PRE_AUTH:
                call = plugin_pb2.HookCall(pre_auth=ex.context())
            else:
                call = plugin_pb2.HookCall(post_auth=ex.context())
            verdict = await self.call(slot, phase, ex, call, "request")
            if verdict is None:
                continue
            ex.decisions.extend(verdict.decisions)
            ex.response_headers.extend((h.name, h.value) for h in verdict.response_headers)
            which = verdict.WhichOneof("verdict")
            if which == "reply":
                reply: plugin_pb2.Reply = verdict.reply
                if not reply.status:
                    reply.status = 403
                return reply
            if which == "changes":
                ex.apply(verdict.changes)
        return None

    async def auth_phase(self, ex: Exchange) -> plugin_pb2.Reply | None:
        """The first auth plugin that returns an identity wins; none -> 401 (or the first rejection)."""
        credential = credential_of(ex.headers)
        first_reject: plugin_pb2.Reply | None = None
        for slot in self.auth:
            call = plugin_pb2.HookCall(
                auth=plugin_pb2.AuthRequest(context=ex.context(), credential=credential)
            )
            verdict = await self.call(slot, AUTH, ex, call, "auth")
            if verdict is None:
                continue
            ex.decisions.extend(verdict.decisions)
            which = verdict.WhichOneof("verdict")
            if which == "identity":
                ex.identity = common_pb2.Identity()
                ex.identity.CopyFrom(verdict.identity)
                ex.identity.authenticated = True
                ex.invalidate()
                return None
            if which == "reject" and first_reject is None and verdict.reject.status:
                first_reject = verdict.reject
        if first_reject is not None:
            return _openai_auth_error(first_reject)
        message = "invalid API key" if credential else "missing API key (Authorization: Bearer or x-api-key)"
        return error_json(401, message, "authentication_error", "invalid_api_key")

    async def run_request(self, ex: Exchange) -> plugin_pb2.Reply | None:
        """pre_auth -> auth -> post_auth; a Reply ends the request. Raises PluginFailure (fail-closed)."""
        if self.pre_auth:
            reply = await self._request_phase(PRE_AUTH, self.pre_auth, ex)
            if reply is not None:
                return reply
        if self.auth:
            reply = await self.auth_phase(ex)
            if reply is not None:
                return reply
        if self.post_auth:
            return await self._request_phase(POST_AUTH, self.post_auth, ex)
        return None

    # ------------------------------------------------------------------ response phases

    async def on_headers(
        self, ex: Exchange, status: int, headers: list[tuple[str, str]], streaming: bool
    ) -> tuple[int, list[tuple[str, str]]]:
        for slot in self.response:
            call = plugin_pb2.HookCall(
                response_headers=plugin_pb2.ResponseHeaders(
                    context=ex.context(),
                    status=status,
                    streaming=streaming,
                    headers=[common_pb2.Header(name=k, value=v) for k, v in headers],
                )
            )
            verdict = await self.call(slot, RESPONSE, ex, call, "response_headers")
            if verdict is not None and verdict.modified:
                if verdict.status:
                    status = verdict.status
                headers = [(h.name, h.value) for h in verdict.headers]
        return status, headers

    async def on_chunk(self, ex: Exchange, index: int, data: bytes, streaming: bool) -> bytes:
        for slot in self.response_chunks:
            call = plugin_pb2.HookCall(
                response_chunk=plugin_pb2.ResponseChunk(
                    context=ex.chunk_context(), index=index, data=data, streaming=streaming
                )
            )
            verdict = await self.call(slot, RESPONSE, ex, call, "response_chunk")
            if verdict is not None and verdict.modified:
                data = verdict.data
        return data

    async def on_end(
        self,
        ex: Exchange,
        status: int,
        chunks: int,
        usage: plugin_pb2.Usage | None,
        streaming: bool,
        aborted: bool,
    ) -> bytes:
        appended = b""
        for slot in self.response:
            call = plugin_pb2.HookCall(
                response_end=plugin_pb2.ResponseEnd(
                    context=ex.context(),
                    status=status,
                    chunks=chunks,
                    usage=usage,
                    streaming=streaming,
                    aborted=aborted,
                )
            )
            verdict = await self.call(slot, RESPONSE, ex, call, "response_end")
            if verdict is not None:
                ex.decisions.extend(verdict.decisions)
                appended += verdict.append
        return appended
