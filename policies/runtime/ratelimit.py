"""RateLimit: every matching limit must have room; requests and tokens; reserve, then settle.

Deciding is split in three so that the same code runs over sync counters (tests, memory) and
async ones (the host's counter service): `prepare(inputs)` evaluates the keys and reservations
into counter limits, the caller acquires them (`counters.acquire` / `await ...`), and
`conclude_acquire(prepared, result)` turns the counters' answer into a Decision. `decide()`
does the three with a sync `Counters`.

- A requests limit takes 1 per request.
- A tokens limit takes its `reserve` (at least 1) at request time, so an exhausted budget
  blocks the next request; `settle(reservation, response)` then adjusts by
  `cost - reserved` (cost default: `response.usage.total_tokens`).
- `mode: audit` and `mode: warn` count with `force` (never blocking); warn adds the header.
- Headers: RateLimit-Limit / -Remaining / -Reset of the limit closest to exhaustion, and
  Retry-After on 429.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from celgate.policies.cel import Program
from celgate.policies.runtime.base import PlanError, Procedure
from celgate.policies.runtime.decision import Decision, RuleTrace
from celgate.policies.runtime.inputs import RequestInputs
from celgate.sdk.counters import AcquireResult, CounterLimit, Counters, CounterState

DEFAULT_COST = "response.usage.total_tokens"


@dataclass(frozen=True, slots=True)
class _Limit:
    name: str
    key: Program
    window_s: float
    requests: int | None
    tokens: int | None
    cost: Program | None
    reserve: Program | None


@dataclass(frozen=True, slots=True)
class Reservation:
    """What a request took from token limits, to settle from the response."""

    policy: str
    limits: tuple[CounterLimit, ...]  # cost = amount reserved
    names: tuple[str, ...]


@dataclass(slots=True)
class Prepared:
    """The counter limits one request takes, or the decision when there is nothing to take."""

    ev: Any
    inputs: RequestInputs
    limits: tuple[CounterLimit, ...] = ()
    names: tuple[str, ...] = ()
    decision: Decision | None = None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


class RateLimitProcedure(Procedure):
    kind = "RateLimit"

    def __init__(self, plan: Mapping[str, Any]) -> None:
        super().__init__(plan)
        spec = plan["spec"]
        self.algorithm = spec.get("algorithm", "sliding-window")
        if self.algorithm not in ("sliding-window", "fixed-window", "token-bucket"):
            raise PlanError(f"algorithm: unknown {self.algorithm!r}")
        self.status = int(spec.get("status", 429))
        self.limits: list[_Limit] = []
        for raw in spec.get("limits", ()):
            name = raw["name"]
            where = f"limits.{name}"
            tokens = raw.get("tokens")
            cost_src = raw.get("cost") or (DEFAULT_COST if tokens is not None else None)
            self.limits.append(
                _Limit(
                    name=name,
                    key=self.compile(raw["key"], "key", f"{where}.key"),
                    window_s=float(raw["window_s"]),
                    requests=raw.get("requests"),
                    tokens=tokens,
                    cost=self.compile(cost_src, "cost", f"{where}.cost") if cost_src else None,
                    reserve=self.compile(raw["reserve"], "reserve", f"{where}.reserve")
                    if raw.get("reserve")
                    else None,
                )
            )

        # The hot path: match, every key and every reserve fused into one CEL call returning
        # [] (match false) or the list [key, (reserve,) key, ...]; anything unexpected falls
        # back to evaluating them one by one (exact errors, traces).
        items = []
        for lim in self.limits:
            items.append(f"({lim.key.source})")
            if lim.reserve is not None:
                items.append(f"({lim.reserve.source})")
        fused = f"[{', '.join(items)}]"
        if match := plan.get("match"):
            fused = f"({match}) ? {fused} : []"
        self.fused: Program = self.compile(fused, "key", "limits")
        self.names = tuple(lim.name for lim in self.limits)
        # per limit, for `_limits_from`: (counter key prefix, capacity, window, has a reserve)
        self._fast_limits = tuple(
            (
                f"{self.name}/{lim.name}/",
                float(lim.requests if lim.requests is not None else lim.tokens or 0),
                lim.window_s,
                lim.reserve is not None,
            )
            for lim in self.limits
        )
        self.token_names = tuple(lim.name for lim in self.limits if lim.tokens)
        self.has_tokens = bool(self.token_names)

    def rule_names(self) -> list[str]:
        """The coverage items: every limit; each fires when it blocks (or would, in audit)."""
        return [lim.name for lim in self.limits]

    # -- request phase --------------------------------------------------------------------

    def prepare(self, inputs: RequestInputs, *, trace: bool = False) -> Prepared:
        rid = inputs.request_id
        ev = self.begin(inputs.data, trace, inputs)
        if not trace:
            fast = ev.run(self.fused, "limits")
            if ev.error is None:
                if fast == []:  # match is false (or no limits at all)
                    decision = self.conclude(
                        ev, "allow", not_applicable=True, reason="match is false", request_id=rid
                    )
                    return Prepared(ev, inputs, decision=decision)
                fast_limits = self._limits_from(fast) if isinstance(fast, list) else None
                if fast_limits is not None:
                    return Prepared(ev, inputs, fast_limits, self.names)
            ev.error = None
        matched = self.matches(ev)
        if matched is None:
            return Prepared(ev, inputs, decision=self.conclude(ev, "deny", request_id=rid))
        if not matched:
            return Prepared(
                ev,
                inputs,
                decision=self.conclude(
                    ev, "allow", not_applicable=True, reason="match is false", request_id=rid
                ),
            )
        limits: list[CounterLimit] = []
        for lim in self.limits:
            key = ev.run(lim.key, f"{lim.name}.key", str)
            if key is None:
                return Prepared(ev, inputs, decision=self.conclude(ev, "deny", request_id=rid))
            if lim.requests is not None:
                amount, capacity = 1.0, float(lim.requests)
            else:
                amount, capacity = 1.0, float(lim.tokens or 0)
                if lim.reserve is not None:
                    reserved = _number(ev.run(lim.reserve, f"{lim.name}.reserve"))
                    if reserved is None:
                        if ev.error is None:
                            ev.error, ev.error_rule = "reserve is not a finite number", f"{lim.name}.reserve"
                        return Prepared(ev, inputs, decision=self.conclude(ev, "deny", request_id=rid))
                    amount = max(1.0, reserved)
            limits.append(
                CounterLimit(
                    key=f"{self.name}/{lim.name}/{key}",
                    algorithm=self.algorithm,
                    limit=capacity,
                    window_s=lim.window_s,
                    cost=amount,
                )
            )
        return Prepared(ev, inputs, tuple(limits), tuple(lim.name for lim in self.limits))

    def _limits_from(self, values: list[Any]) -> tuple[CounterLimit, ...] | None:
        """Counter limits from the fused result; None if a value has the wrong type."""
        out = []
        i = 0
        algorithm = self.algorithm
        for prefix, capacity, window_s, reserves in self._fast_limits:
            key = values[i]
            i += 1
            if not isinstance(key, str):
                return None
            amount = 1.0
            if reserves:
                reserved = _number(values[i])
                i += 1
                if reserved is None:
                    return None
                amount = max(1.0, reserved)
            out.append(CounterLimit(prefix + key, algorithm, capacity, window_s, amount))
        return tuple(out)

    @property
    def force(self) -> bool:
        """Audit and warn count without blocking."""
        return self.mode != "enforce"

    def conclude_acquire(self, prepared: Prepared, result: AcquireResult) -> Decision:
        ev, rid = prepared.ev, prepared.inputs.request_id
        headers = _headers(result.states) if self.mode != "audit" else {}  # audit is invisible
        if result.admitted and not ev.tracing:  # the hot path
            reservation = None
            if self.has_tokens:
                held = tuple(lim for lim, raw in zip(prepared.limits, self.limits, strict=True) if raw.tokens)
                reservation = Reservation(self.name, held, self.token_names)
            return self.conclude(
                ev,
                "allow",
                reason="every limit has room",
                headers=headers,
                request_id=rid,
                reservation=reservation,
            )
        rows = list(zip(prepared.names, result.states, prepared.limits, strict=True))
        if result.admitted:
            blocked: list[str] = []
        elif not self.force:  # nothing was taken: the limits without room for their cost
            blocked = [n for n, s, lim in rows if s.remaining + 1e-9 < lim.cost]
        else:  # taken anyway (audit/warn): the limits now exhausted
            blocked = [n for n, s, _ in rows if s.remaining <= 1e-9]
        if ev.tracing:
            for name, state, lim in rows:
                ev.trace.append(
                    RuleTrace(
                        name,
                        name in blocked,
                        value=lim.key.split("/", 2)[2],
                        detail=f"cost {lim.cost:g}, remaining {state.remaining:g} of {state.limit:g}",
                    )
                )
        token_limits = tuple(lim for lim, raw in zip(prepared.limits, self.limits, strict=True) if raw.tokens)
        token_names = tuple(raw.name for raw in self.limits if raw.tokens)
        reservation = (
            Reservation(self.name, token_limits, token_names)
            if token_limits and (result.admitted or self.force)
            else None
        )
        if result.admitted:
            return self.conclude(
                ev,
                "allow",
                reason="every limit has room",
                headers=headers,
                request_id=rid,
                reservation=reservation,
            )
        first = blocked[0] if blocked else (prepared.names[0] if prepared.names else "")
        retry = max(1, math.ceil(result.retry_after_s)) if math.isfinite(result.retry_after_s) else 86400
        deny_headers = {**headers, "retry-after": str(retry)}
        message = f"rate limit {first} exceeded"
        body = {"error": {"type": "rate_limited", "policy": self.name, "limit": first, "message": message}}
        decision = self.conclude(
            ev,
            "deny",
            rule=first,
            reason=message,
            status=self.status,
            message=message,
            headers=deny_headers if not self.force else headers,
            body=body,
            request_id=rid,
            reservation=reservation,
        )
        return decision

    def decide(self, inputs: RequestInputs, counters: Counters, *, trace: bool = False) -> Decision:
        prepared = self.prepare(inputs, trace=trace)
        if prepared.decision is not None:
            return prepared.decision
        result = counters.acquire(prepared.limits, force=self.force)
        return self.conclude_acquire(prepared, result)

    # -- response phase -------------------------------------------------------------------

    def settlement(
        self, reservation: Reservation, inputs: RequestInputs
    ) -> tuple[list[CounterLimit], list[str]]:
        """The deltas to apply (`cost - reserved` per token limit) and any evaluation errors.

        A cost that cannot be evaluated keeps the reservation (nothing is refunded)."""
        ev = self.begin(inputs.data, tracing=False)
        by_name = {lim.name: lim for lim in self.limits}
        deltas: list[CounterLimit] = []
        errors: list[str] = []
        for name, held in zip(reservation.names, reservation.limits, strict=True):
            lim = by_name[name]
            cost = _number(ev.run(lim.cost, f"{name}.cost")) if lim.cost is not None else None
            if cost is None:
                errors.append(f"{name}.cost: {ev.error or 'not a finite number'}")
                ev.error = None
                continue
            delta = max(0.0, cost) - held.cost
            if delta:
                deltas.append(CounterLimit(held.key, held.algorithm, held.limit, held.window_s, delta))
        return deltas, errors

    def settle(self, reservation: Reservation, inputs: RequestInputs, counters: Counters) -> list[str]:
        deltas, errors = self.settlement(reservation, inputs)
        if deltas:
            counters.adjust(deltas)
        return errors


def _headers(states: Sequence[CounterState]) -> dict[str, str]:
    if not states:
        return {}
    if len(states) == 1:
        tightest = states[0]
    else:
        tightest = min(states, key=lambda s: (s.remaining / s.limit if s.limit else 0.0, -s.reset_s))
    return {
        "ratelimit-limit": _COUNTS.get(tightest.limit) or _count(tightest.limit),
        "ratelimit-remaining": str(math.floor(tightest.remaining)),
        "ratelimit-reset": str(math.ceil(tightest.reset_s)),
    }


_COUNTS: dict[float, str] = {}  # memo of `_count` for limits (a policy's few capacities)


def _count(value: float) -> str:
    """A header number: integral values without exponent or decimals (1000000, not 1e+06)."""
    text = str(int(value)) if float(value).is_integer() else f"{value:.3f}".rstrip("0")
    if len(_COUNTS) < 1024:
        _COUNTS[value] = text
    return text
