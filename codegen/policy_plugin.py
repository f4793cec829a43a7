"""The shared runtime of compiled policy plugins: SDK hooks -> the policy decision procedures.

A generated plugin module holds its policies as plans (plain data, see
`celgate.policies.runtime.lower`) and subclasses `PolicyBundle` together with the SDK capability
interfaces its kinds need. Everything else lives here, once, so that a compiled plugin runs
exactly the procedures `celgate test` runs (`celgate.policies.runtime.build(plan)`), in the same
order and combined the same way (`combine.py`):

- pre_auth: IPFilter and `phase: pre_auth` RequestValidation, in plan order, first deny wins;
- post_auth: RequestValidation, then RateLimit against the host's counter service
  (`ctx.counters`, memory or Redis), all-or-nothing per policy;
- response: token reservations are settled at response end (streams included) from the usage;
- object_hooks: ObjectApproval verdicts (deny > pending approval > mutate > allow).

A counter store that cannot be reached is an evaluation error of the RateLimit policy: its
failurePolicy decides (fail-closed: 503; fail-open: allowed and recorded as skipped), and the
decision's reason says the counter store was unavailable.
"""

from __future__ import annotations

import json
import urllib.parse
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from celgate.policies.cel.messages import plain
from celgate.policies.runtime import (
    AnyProcedure,
    Decision,
    InputError,
    ObjectApprovalProcedure,
    RateLimitProcedure,
    RequestInputs,
    Reservation,
)
from celgate.policies.runtime.bundle import POST_AUTH, PRE_AUTH, Bundle, phase_of
from celgate.policies.runtime.combine import combine_request, merge_headers
from celgate.sdk import (
    Allow,
    Context,
    Continue,
    Deny,
    Mutate,
    ObjectEvent,
    ObjectHookRegistration,
    PendingApproval,
    Plugin,
    RequestContext,
    Respond,
    ResponseEnd,
    ResponseHead,
)
from celgate.sdk import Decision as LogEntry
from celgate.sdk.counters import AsyncCounters

COUNTER_ERROR_RULE = "counters"
MAX_PENDING_SETTLEMENTS = 65_536  # requests admitted but not yet settled (oldest dropped first)
MAX_REMEMBERED_REQUESTS = 4_096  # pre_auth inputs kept for post_auth (requests in flight)
OBJECT_TYPES = ("llm", "app", "tool", "datasource", "user")
HOOK_OF_OPERATION = {"create": "before_create", "update": "before_update", "delete": "before_delete"}
CONFIG_SCHEMA: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": {}}
DEFAULT_APPROVAL_EXPIRY_S = 86400.0  # the SDK's default when a rule sets no expiresAfter
_OUTCOME_ENTRY = {"skipped": "skipped", "warned": "warn", "audited": "audit"}


@dataclass(slots=True)
class _Pending:
    """Reservations one admitted request holds until its response ends."""

    inputs: RequestInputs
    held: list[tuple[RateLimitProcedure, Reservation]]
    head: dict[str, Any] | None = None


def plan_phase(plan: dict[str, Any]) -> str:
    """The hook a request plan runs in (object plans: object_hooks)."""
    kind = plan.get("kind")
    if kind == "IPFilter" or (kind == "RequestValidation" and plan.get("phase") == "pre_auth"):
        return "pre_auth"
    if kind == "ObjectApproval":
        return "object_hooks"
    return "post_auth"


def settles_tokens(plan: dict[str, Any]) -> bool:
    """Whether a plan has token limits, settled from the response (requests limits are not)."""
    return plan.get("kind") == "RateLimit" and any(
        lim.get("tokens") is not None for lim in plan.get("spec", {}).get("limits", ())
    )


def capabilities_for(plans: Sequence[dict[str, Any]]) -> list[str]:
    """The SDK capabilities a set of plans needs, in the SDK's canonical order.

    RateLimit takes `response` only when one of its limits counts tokens: the host calls a
    response plugin twice per request (headers, end), and a requests-only limit has nothing
    to settle, so it would pay two hook hops for nothing."""
    needed: set[str] = set()
    for plan in plans:
        needed.add(plan_phase(plan))
        if settles_tokens(plan):
            needed.add("response")
    needed.add("config_provider")
    order = ("pre_auth", "post_auth", "response", "object_hooks", "config_provider")
    return [c for c in order if c in needed]


def object_hook_pairs(plans: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """The (object type, before-hook) pairs ObjectApproval plans cover, sorted."""
    pairs: set[tuple[str, str]] = set()
    for plan in plans:
        if plan.get("kind") != "ObjectApproval":
            continue
        spec = plan["spec"]
        types = spec.get("objects") or OBJECT_TYPES
        operations = spec.get("operations") or tuple(HOOK_OF_OPERATION)
        pairs.update((t, HOOK_OF_OPERATION[op]) for t in types for op in operations)
    return sorted(pairs)


def log_entries(decision: Decision) -> list[LogEntry]:
    """The decision-log records of a Decision, as the SDK's plain `Decision` entries."""
    return [
        LogEntry(
            policy=r.policy,
            rule=r.rule,
            decision=_OUTCOME_ENTRY.get(r.outcome, r.decision),
            mode=r.mode,
            reason=r.reason,
        )
        for r in decision.log
    ]


def request_mapping(ctx: RequestContext, *, with_request: bool = True) -> dict[str, Any]:
    """The CEL inputs of a hook context, in the plain form `RequestInputs.from_mapping` takes
    (the form PolicyTest cases use, so a compiled plugin sees what `celgate test` sees)."""
    ident = ctx.identity
    out: dict[str, Any] = {
        "identity": {
            "authenticated": ident.authenticated,
            "app_id": ident.app_id,
            "user_id": ident.user_id,
            "groups": list(ident.groups),
            "claims": dict(ident.claims),
        },
        "llm": {"id": ctx.llm.id, "slug": ctx.llm.slug, "vendor": ctx.llm.vendor, "model": ctx.llm.model},
    }
    if not with_request:
        return out
    req = ctx.request
    body: Any = None
    if req.body:
        try:
            body = json.loads(req.body)
        except ValueError:
            body = None  # not JSON: `request.body` is null
    request: dict[str, Any] = {
        "id": req.id,
        "method": req.method,
        "path": req.path,
        "query": urllib.parse.parse_qs(req.query_string, keep_blank_values=True) if req.query_string else {},
        "headers": req.headers.items(),
        "body": body,
        "size": len(req.body),
        "remote_addr": req.remote_addr,
        "host": req.host,
    }
    if not req.remote_addr and req.client_ip:
        request["client_ip"] = req.client_ip  # no peer address: the host's resolution is all we have
    out["request"] = request
    return out


def _error_reply(message: str) -> Respond:
    return Respond.json(400, {"error": {"type": "invalid_request", "message": message}})


def _respond(decision: Decision) -> Respond:
    body = decision.body or {"error": {"type": "policy_violation", "policy": decision.policy}}
    headers = sorted(decision.headers.items())
    return Respond.json(decision.status, body, headers, log_entries(decision))


class PolicyBundle(Plugin):
    """A plugin that enforces compiled policy plans; generated modules set `plans`.

    `counters` overrides the host's counter service (tests, in-process embedding); by default
    every RateLimit decision goes to `ctx.counters`, the host's store.
    """

    plans: ClassVar[tuple[dict[str, Any], ...]] = ()
    inline_sync = True  # every hook is async or cheap

    def __init__(self, counters: AsyncCounters | None = None) -> None:
        self.counters = counters
        # The runtime's Bundle: the same pipeline order, `client_ip` resolution and object
        # combination that `celgate test` runs.
        self.bundle = Bundle.from_plans(self.plans)
        self.procedures: list[AnyProcedure] = self.bundle.procedures
        self.pre: list[AnyProcedure] = [p for p in self.bundle.request if phase_of(p) == PRE_AUTH]
        self.post: list[AnyProcedure] = [p for p in self.bundle.request if phase_of(p) == POST_AUTH]
        self.pending: OrderedDict[str, _Pending] = OrderedDict()
        # request id -> (request fingerprint, headers, inputs) between pre_auth and post_auth
        self.seen: OrderedDict[str, tuple[Any, Any, RequestInputs]] = OrderedDict()

    # -- config -------------------------------------------------------------------------

    def config_schema(self) -> dict[str, Any]:
        """Compiled policies take no config: what they enforce is in their sources."""
        return dict(CONFIG_SCHEMA)

    # -- request hooks ------------------------------------------------------------------

    async def on_pre_auth(self, ctx: RequestContext) -> Continue | Respond:
        if not self.pre:
            return Continue()
        return await self._run(ctx, self.pre, remember=bool(self.post))

    async def on_post_auth(self, ctx: RequestContext) -> Continue | Respond:
        if not self.post:
            return Continue()
        return await self._run(ctx, self.post, remember=False)

    def _inputs(self, ctx: RequestContext, remember: bool) -> RequestInputs:
        """The CEL inputs of this hook. The request part built in pre_auth is reused in
        post_auth when the request is unchanged (only identity and llm are new then)."""
        req = ctx.request
        fingerprint = (
            req.method,
            req.path,
            req.query_string,
            req.body,
            req.remote_addr,
            req.client_ip,
            req.host,
        )
        seen = self.seen.pop(req.id, None) if req.id else None
        if seen is not None and seen[0] == fingerprint and seen[1] == req.headers.items():
            earlier = seen[2]
            mapping = request_mapping(ctx, with_request=False)
            data = dict(earlier.data)
            try:
                data["identity"] = plain("Identity", mapping["identity"])
                data["llm"] = plain("Llm", mapping["llm"])
            except ValueError as exc:
                raise InputError(str(exc)) from exc
            return RequestInputs(
                data,
                earlier.body,
                earlier.client_ip_given,
                earlier.remote_addr,
                earlier.forwarded_for,
                earlier.request_id,
            )
        inputs = self.bundle.inputs(request_mapping(ctx))
        if remember and req.id:
            self.seen[req.id] = (fingerprint, req.headers.items(), inputs)
            while len(self.seen) > MAX_REMEMBERED_REQUESTS:
                self.seen.popitem(last=False)
        return inputs

    async def _run(
        self, ctx: RequestContext, procedures: Sequence[AnyProcedure], *, remember: bool
    ) -> Continue | Respond:
        try:
            inputs = self._inputs(ctx, remember)
        except InputError as exc:
            return _error_reply(f"request cannot be evaluated: {exc}")
        decisions: list[Decision] = []
        held: list[tuple[RateLimitProcedure, Reservation]] = []
        for proc in procedures:
            if isinstance(proc, RateLimitProcedure):
                d = await self._rate_limit(proc, inputs, ctx)
                if d.reservation is not None:
                    held.append((proc, d.reservation))
            elif isinstance(proc, ObjectApprovalProcedure):  # pragma: no cover - never in request lists
                continue
            else:
                d = proc.decide(inputs)
            decisions.append(d)
            if d.decision != "allow":
                break
        if decisions and decisions[-1].decision != "allow":
            self.seen.pop(ctx.request.id, None)
            await self._release(ctx, held)
            return _respond(combine_request(decisions))
        if held:
            self._hold(inputs.request_id or ctx.request.id, _Pending(inputs, held))
        headers: dict[str, str] = {}  # as combine_request merges them, without copying a Decision
        for d in decisions:
            if d.headers:
                merge_headers(headers, d.headers)
        entries = [e for d in decisions for e in log_entries(d)]
        return Continue(decisions=entries, response_headers=sorted(headers.items()))

    async def _rate_limit(self, proc: RateLimitProcedure, inputs: RequestInputs, ctx: Context) -> Decision:
        prepared = proc.prepare(inputs)
        if prepared.decision is not None:
            return prepared.decision
        try:
            result = await self._counters(ctx).acquire(prepared.limits, force=proc.force)
        except Exception as exc:  # the store is down or refused: the policy's failurePolicy decides
            ev = prepared.ev
            ev.error = f"counter store unavailable: {_describe(exc)}"
            ev.error_rule = COUNTER_ERROR_RULE
            return proc.conclude(ev, "deny", request_id=inputs.request_id)
        return proc.conclude_acquire(prepared, result)

    def _counters(self, ctx: Context) -> AsyncCounters:
        return self.counters if self.counters is not None else ctx.counters

    def _hold(self, request_id: str, pending: _Pending) -> None:
        if not request_id:
            return  # without an id the response cannot be matched: the reservation stands
        self.pending[request_id] = pending
        while len(self.pending) > MAX_PENDING_SETTLEMENTS:
            self.pending.popitem(last=False)

    async def _release(self, ctx: Context, held: list[tuple[RateLimitProcedure, Reservation]]) -> None:
        """A later policy denied: give back what earlier RateLimit policies reserved."""
        refunds = [
            type(lim)(lim.key, lim.algorithm, lim.limit, lim.window_s, -lim.cost)
            for _, reservation in held
            for lim in reservation.limits
        ]
        if refunds:
            try:
                await self._counters(ctx).adjust(refunds)
            except Exception as exc:
                ctx.log.warning("could not refund a token reservation", error=_describe(exc))

    # -- response hooks -----------------------------------------------------------------

    async def on_response_headers(self, ctx: RequestContext, head: ResponseHead) -> None:
        pending = self.pending.get(ctx.request.id)
        if pending is not None:
            pending.head = {"status": head.status, "headers": head.headers.items()}
        return None

    async def on_response_end(self, ctx: RequestContext, end: ResponseEnd) -> None:
        pending = self.pending.pop(ctx.request.id, None)
        if pending is None:
            return None
        usage = end.usage
        response = {
            **(pending.head or {}),
            "status": end.status,
            "usage": {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens,
            },
        }
        try:
            inputs = pending.inputs.with_response(response)
        except InputError as exc:
            ctx.log.warning("response cannot be evaluated for settlement", error=str(exc))
            return None
        for proc, reservation in pending.held:
            deltas, errors = proc.settlement(reservation, inputs)
            for error in errors:
                ctx.log.warning("token cost not evaluated, reservation kept", policy=proc.name, error=error)
            if deltas:
                try:
                    await self._counters(ctx).adjust(deltas)
                except Exception as exc:
                    ctx.log.warning("could not settle tokens", policy=proc.name, error=_describe(exc))
        return None

    # -- object hooks -------------------------------------------------------------------

    def object_hooks(self) -> list[ObjectHookRegistration]:
        return [ObjectHookRegistration(object_type=t, hook=h) for t, h in object_hook_pairs(self.plans)]

    def handle_object_hook(self, ctx: Context, event: ObjectEvent) -> Allow | Deny | Mutate | PendingApproval:
        raw = {
            "type": event.object_type,
            "operation": event.operation,
            "actor": {"id": event.actor.id, "email": event.actor.email, "groups": list(event.actor.groups)},
            "value": event.object if event.object is not None else (event.previous or {}),
            "previous": event.previous,
        }
        try:
            combined, decisions = self.bundle.decide_object(raw)
        except InputError as exc:
            return Deny(reason=f"object cannot be evaluated: {exc}", rule="input")
        entries = [e for d in decisions for e in log_entries(d)]
        if combined.decision == "deny":
            record = combined.log[0] if combined.log else None
            return Deny(
                reason=combined.message or (record.reason if record else "denied"),
                rule=record.rule if record else "",
                decisions=entries,
            )
        if combined.decision == "pending_approval" and combined.approvers is not None:
            approvers = combined.approvers
            expires = approvers.expires_after_s
            return PendingApproval(
                groups=list(approvers.groups),
                min_approvals=approvers.min_approvals,
                expires_after=expires if expires is not None else DEFAULT_APPROVAL_EXPIRY_S,
                message=combined.message,
                decisions=entries,
            )
        if combined.mutated is not None:
            return Mutate(obj=combined.mutated, message=combined.message, decisions=entries)
        return Allow(decisions=entries)


def _describe(exc: BaseException) -> str:
    details = getattr(exc, "details", None)
    if callable(details):  # grpc errors carry the server's message here
        try:
            text = details()
            if text:
                return f"{type(exc).__name__}: {text}"
        except Exception:
            pass
    return f"{type(exc).__name__}: {exc}"
