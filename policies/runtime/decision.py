"""What a decision procedure returns: the `Decision` and its parts (all plain data)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Verdict = Literal["allow", "deny", "pending_approval"]

# How the policy's outcome was reached, for the decision log and explain.
Outcome = Literal[
    "not_applicable",  # match false, or object/operation not covered
    "passed",  # evaluated, nothing to object to
    "enforced",  # denied / parked for approval in enforce mode
    "warned",  # would have denied; allowed with a warning (mode warn)
    "audited",  # would have denied; allowed and recorded (mode audit)
    "skipped",  # evaluation error under fail-open
    "error",  # evaluation error under fail-closed
]

WARNING_HEADER = "celgate-warning"


@dataclass(frozen=True, slots=True)
class RuleTrace:
    """One rule (or match, variable, limit) as evaluated: for explain and coverage."""

    rule: str
    matched: bool | None  # None: not evaluated or error
    value: Any = None
    error: str | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Violation:
    rule: str
    message: str
    status: int


@dataclass(slots=True)  # not frozen: built on every decision, and frozen init costs ~2x
class LogRecord:
    """One decision-log entry (the contract: policy, rule, decision, mode, reason, request id)."""

    policy: str
    kind: str
    rule: str
    decision: Verdict  # the effective decision
    verdict: Verdict  # what the policy itself concluded, before mode
    mode: str
    outcome: Outcome
    reason: str
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class ApproverSpec:
    groups: tuple[str, ...]
    min_approvals: int = 1
    expires_after_s: float | None = None


@dataclass(slots=True)  # not frozen: built on every decision, and frozen init costs ~2x
class Decision:
    """The result of one policy on one input."""

    policy: str
    kind: str
    decision: Verdict
    outcome: Outcome
    mode: str = "enforce"
    failure_policy: str = "fail-closed"
    status: int = 200
    message: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None  # the JSON reply body when denying
    violations: tuple[Violation, ...] = ()
    trace: tuple[RuleTrace, ...] = ()
    mutated: dict[str, Any] | None = None
    approvers: ApproverSpec | None = None
    log: tuple[LogRecord, ...] = ()
    reservation: Any = None  # RateLimit: what to settle from the response (ratelimit.Reservation)

    @property
    def allowed(self) -> bool:
        return self.decision == "allow"
