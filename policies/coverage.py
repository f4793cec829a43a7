"""Rule coverage of a PolicyTest run: which rules no case made fire.

A rule *fires* when a case makes it decide something: a RequestValidation rule (or the body
schema) is violated, an ObjectApproval rule's `when` is true, a RateLimit limit blocks (or
would, in audit mode), an IPFilter range matches the client (or the client is in no allow
range: `not-allowed`). Coverage is the share of rules that fired in at least one case.
"""

from __future__ import annotations

from celgate.policies.testing import CoverageItem, TestReport


def uncovered(report: TestReport) -> list[CoverageItem]:
    return [c for c in report.coverage if not c.fired]


def coverage_lines(report: TestReport) -> list[str]:
    """Text lines: the percentage, then each rule that never fired."""
    total = len(report.coverage)
    fired = total - len(uncovered(report))
    lines = [f"coverage: {report.coverage_percent:.1f}% ({fired}/{total} rules fired)"]
    for item in uncovered(report):
        how = "evaluated but never fired" if item.evaluated else "never evaluated"
        lines.append(f"  not covered: {item.kind} {item.policy} rule {item.rule} ({how})")
    return lines


def coverage_data(report: TestReport) -> dict[str, object]:
    return {
        "percent": round(report.coverage_percent, 2),
        "rules": [
            {"policy": c.policy, "kind": c.kind, "rule": c.rule, "fired": c.fired, "evaluated": c.evaluated}
            for c in report.coverage
        ],
    }
