"""Decision procedures, one per policy kind: the code `celgate test`, `celgate explain` and
compiled plugins all run.

`lower(policy) -> plan` (plain data), `build(plan) -> procedure`; then
`procedure.decide(inputs, ...) -> Decision` with `RequestInputs` / `ObjectInputs`; a
compiled plugin runs `Bundle.from_plans(plans)` (per phase, sync or async counters).
"""

from __future__ import annotations

from celgate.policies.runtime.approval import ObjectApprovalProcedure, merge_patch
from celgate.policies.runtime.base import PlanError, Procedure
from celgate.policies.runtime.bundle import Bundle, RequestResult, phase_of
from celgate.policies.runtime.decision import (
    WARNING_HEADER,
    ApproverSpec,
    Decision,
    LogRecord,
    RuleTrace,
    Violation,
)
from celgate.policies.runtime.inputs import InputError, ObjectInputs, RequestInputs, resolve_client_ip
from celgate.policies.runtime.ipfilter import IPFilterProcedure
from celgate.policies.runtime.lower import AnyProcedure, build, lower, procedure_for
from celgate.policies.runtime.ratelimit import RateLimitProcedure, Reservation
from celgate.policies.runtime.validation import RequestValidationProcedure

__all__ = [
    "WARNING_HEADER",
    "AnyProcedure",
    "ApproverSpec",
    "Bundle",
    "Decision",
    "IPFilterProcedure",
    "InputError",
    "LogRecord",
    "ObjectApprovalProcedure",
    "ObjectInputs",
    "PlanError",
    "Procedure",
    "RateLimitProcedure",
    "RequestInputs",
    "RequestResult",
    "RequestValidationProcedure",
    "Reservation",
    "RuleTrace",
    "Violation",
    "build",
    "lower",
    "merge_patch",
    "phase_of",
    "procedure_for",
    "resolve_client_ip",
]
