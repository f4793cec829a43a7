"""Diagnostics: findings about policy files, as data with positions.

Every stage (loading, schema validation, CEL checks, semantic checks) reports `Diagnostic`
values; only `formats.py` turns them into text, JSON, SARIF, JUnit or GitHub annotations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from celgate.policies.model import Span

Severity = Literal["error", "warning", "info"]
SEVERITY_RANK: dict[str, int] = {"error": 0, "warning": 1, "info": 2}


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One finding: a stable rule code, a severity, a message and where it is."""

    code: str
    severity: Severity
    message: str
    span: Span
    end: Span | None = None
    policy: str | None = None
    rule_name: str | None = None

    def sort_key(self) -> tuple[str, int, int, str, str]:
        return (self.span.path, self.span.line, self.span.column, self.code, self.message)

    @property
    def is_error(self) -> bool:
        return self.severity == "error"


def sort_diagnostics(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """Sorted by file, line, column, code; exact duplicates removed."""
    return sorted(set(diagnostics), key=Diagnostic.sort_key)


def has_errors(diagnostics: list[Diagnostic]) -> bool:
    return any(d.severity == "error" for d in diagnostics)
