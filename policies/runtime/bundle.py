"""A bundle: several policies' procedures run as the host's pipeline runs them.

This is what a compiled plugin instantiates from its embedded plans
(`Bundle.from_plans(PLANS)`) and what `celgate test` / `celgate explain` run, so a bundle
decides the same way everywhere. Phases: IPFilter and `phase: pre_auth` RequestValidation
run in `pre_auth`; other RequestValidation and RateLimit in `post_auth`; RateLimit token
reservations are settled in `response`; ObjectApproval in `object_hooks`. Within a phase,
policies run in pipeline order and stop at the first deny.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from celgate.policies.runtime.approval import ObjectApprovalProcedure
from celgate.policies.runtime.combine import combine_object, combine_request, pipeline_order
from celgate.policies.runtime.decision import Decision
from celgate.policies.runtime.inputs import ObjectInputs, RequestInputs
from celgate.policies.runtime.ipfilter import IPFilterProcedure
from celgate.policies.runtime.lower import AnyProcedure, build
from celgate.policies.runtime.ratelimit import RateLimitProcedure, Reservation
from celgate.policies.runtime.validation import RequestValidationProcedure
from celgate.sdk.counters import AsyncCounters, CounterLimit, Counters

PRE_AUTH = "pre_auth"
POST_AUTH = "post_auth"


def phase_of(proc: AnyProcedure) -> str:
    if isinstance(proc, IPFilterProcedure):
        return PRE_AUTH
    if isinstance(proc, RequestValidationProcedure):
        return PRE_AUTH if proc.phase == PRE_AUTH else POST_AUTH
    if isinstance(proc, RateLimitProcedure):
        return POST_AUTH
    return "object_hooks"


@dataclass(slots=True)
class RequestResult:
    """The combined decision of a phase, every policy's decision, and what to settle later."""

    decision: Decision
    decisions: list[Decision] = field(default_factory=list)
    reservations: list[Reservation] = field(default_factory=list)


class Bundle:
    """The procedures of a policy set, ready to decide."""

    def __init__(self, procedures: Iterable[AnyProcedure]) -> None:
        self.procedures = list(procedures)
        self.request = sorted(
            (p for p in self.procedures if phase_of(p) != "object_hooks"), key=pipeline_order
        )
        self.objects = [p for p in self.procedures if isinstance(p, ObjectApprovalProcedure)]
        self.by_name = {p.name: p for p in self.procedures if isinstance(p, RateLimitProcedure)}
        # `request.client_ip` is resolved with the trusted proxies of the bundle's IPFilters
        self.trusted_proxies: tuple[str, ...] = tuple(
            dict.fromkeys(
                str(n) for p in self.procedures if isinstance(p, IPFilterProcedure) for n in p.trusted
            )
        )

    def inputs(self, raw: Mapping[str, Any]) -> RequestInputs:
        """Request inputs from their plain form, `client_ip` resolved with `trusted_proxies`."""
        return RequestInputs.from_mapping(raw, trusted_proxies=self.trusted_proxies)

    @classmethod
    def from_plans(cls, plans: Sequence[Mapping[str, Any]]) -> Bundle:
        return cls(build(p) for p in plans)

    def phases(self) -> set[str]:
        """The capabilities this bundle needs (pre_auth, post_auth, response, object_hooks)."""
        out = {phase_of(p) for p in self.procedures}
        if any(
            isinstance(p, RateLimitProcedure) and any(lim.tokens for lim in p.limits) for p in self.procedures
        ):
            out.add("response")
        return out

    def _in_phase(self, phase: str | None) -> list[AnyProcedure]:
        return [p for p in self.request if phase is None or phase_of(p) == phase]

    def decide_request(
        self, inputs: RequestInputs, counters: Counters, *, phase: str | None = None, trace: bool = False
    ) -> RequestResult:
        """Run the request policies of `phase` (all phases when None) with sync counters."""
        result = RequestResult(decision=combine_request([]))
        for proc in self._in_phase(phase):
            if isinstance(proc, RateLimitProcedure):
                d = proc.decide(inputs, counters, trace=trace)
            elif isinstance(proc, ObjectApprovalProcedure):  # pragma: no cover - not a request policy
                continue
            else:
                d = proc.decide(inputs, trace=trace)
            if not self._add(result, d):
                break
        result.decision = combine_request(result.decisions)
        return result

    async def decide_request_async(
        self, inputs: RequestInputs, counters: AsyncCounters, *, phase: str | None = None, trace: bool = False
    ) -> RequestResult:
        """As `decide_request`, with async counters (the host's counter service, Redis)."""
        result = RequestResult(decision=combine_request([]))
        for proc in self._in_phase(phase):
            if isinstance(proc, RateLimitProcedure):
                prepared = proc.prepare(inputs, trace=trace)
                if prepared.decision is not None:
                    d = prepared.decision
                else:
                    acquired = await counters.acquire(prepared.limits, force=proc.force)
                    d = proc.conclude_acquire(prepared, acquired)
            elif isinstance(proc, ObjectApprovalProcedure):  # pragma: no cover - not a request policy
                continue
            else:
                d = proc.decide(inputs, trace=trace)
            if not self._add(result, d):
                break
        result.decision = combine_request(result.decisions)
        return result

    @staticmethod
    def _add(result: RequestResult, d: Decision) -> bool:
        result.decisions.append(d)
        if isinstance(d.reservation, Reservation):
            result.reservations.append(d.reservation)
        return d.decision == "allow"

    def settle(
        self, reservations: Sequence[Reservation], inputs: RequestInputs, counters: Counters
    ) -> list[str]:
        """Settle token reservations from the response (`inputs.with_response(...)`); errors as text."""
        errors: list[str] = []
        for r in reservations:
            proc = self.by_name.get(r.policy)
            if proc is not None:
                errors.extend(proc.settle(r, inputs, counters))
        return errors

    def release(self, reservations: Sequence[Reservation], counters: Counters) -> None:
        """Give reservations back in full (the request was denied later, or the upstream failed)."""
        refunds = [
            CounterLimit(lim.key, lim.algorithm, lim.limit, lim.window_s, -lim.cost)
            for r in reservations
            for lim in r.limits
        ]
        if refunds:
            counters.adjust(refunds)

    async def settle_async(
        self, reservations: Sequence[Reservation], inputs: RequestInputs, counters: AsyncCounters
    ) -> list[str]:
        errors: list[str] = []
        for r in reservations:
            proc = self.by_name.get(r.policy)
            if proc is None:
                continue
            deltas, problems = proc.settlement(r, inputs)
            errors.extend(problems)
            if deltas:
                await counters.adjust(deltas)
        return errors

    def decide_object(
        self, raw: Mapping[str, Any], *, now: Any = None, trace: bool = False
    ) -> tuple[Decision, list[Decision]]:
        """Run the ObjectApproval policies on a change `{type, operation, actor, value, previous}`;
        each policy sees the object as patched by the ones before it."""
        obj = ObjectInputs.from_mapping(raw, now=now)
        decisions: list[Decision] = []
        for proc in self.objects:
            d = proc.decide(obj, trace=trace)
            decisions.append(d)
            if d.mutated is not None:
                obj = ObjectInputs.from_mapping({**raw, "value": d.mutated}, now=now)
        return combine_object(decisions, obj.value if decisions else None), decisions
