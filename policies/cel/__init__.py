"""The CEL environment of the policy language.

Public: `check(source, ctx) -> CheckResult` (what the linter calls), `estimate_cost`,
`ExprContext`, `CheckResult`, `CelIssue`, `EXPECTED_TYPES`, and for the decision procedures
`compile_program(source, ctx) -> Program` and `CelEvalError`.
"""

from __future__ import annotations

from celgate.policies.cel.env import (
    EXPECTED_TYPES,
    ROLES,
    CelCompileError,
    CelEvalError,
    CelIssue,
    CheckResult,
    ExprContext,
    Program,
    check,
    compile_program,
    declarations,
    env_for,
    estimate_cost,
    runtime_env_for,
)

__all__ = [
    "EXPECTED_TYPES",
    "ROLES",
    "CelCompileError",
    "CelEvalError",
    "CelIssue",
    "CheckResult",
    "ExprContext",
    "Program",
    "check",
    "compile_program",
    "declarations",
    "env_for",
    "estimate_cost",
    "runtime_env_for",
]
