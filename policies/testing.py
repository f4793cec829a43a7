"""The PolicyTest runner: what `celgate test` runs, as a library returning data.

For each PolicyTest document, the policies it names are looked up next to the test file or
below it (its directory, recursively), lowered and built into the same decision procedures
compiled plugins run. Each case starts with fresh in-memory counters on a simulated clock:
a sequence step's `at` sets the clock (and `now`, from 2026-01-01T00:00:00Z); a step with a
`response` is settled after its decision. Request cases run the request kinds in pipeline
order (IPFilter and pre_auth RequestValidation, then post_auth RequestValidation, then
RateLimit) and stop at the first deny; object cases run the ObjectApproval policies, deny >
pending_approval > allow, patches chained in policy order.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celgate.policies.diagnostics import Diagnostic
from celgate.policies.lint import lint_loaded
from celgate.policies.load import iter_policy_files, load_paths
from celgate.policies.model import Policy, PolicyTestDoc, Span, TestCase, TestStep
from celgate.policies.runtime import (
    AnyProcedure,
    Decision,
    InputError,
    PlanError,
    procedure_for,
)
from celgate.policies.runtime.bundle import Bundle
from celgate.policies.runtime.decision import ApproverSpec, RuleTrace, Violation
from celgate.sdk.counters import MemoryCounters

EPOCH = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
REQUEST_KEYS = ("request", "identity", "llm", "response")


@dataclass(slots=True)
class StepResult:
    index: int
    at: float
    failures: list[str]
    decision: Decision | None


@dataclass(slots=True)
class CaseResult:
    test: str
    case: str
    span: Span
    steps: list[StepResult] = field(default_factory=list)
    error: str | None = None  # the case could not run (bad input, policy not found)

    @property
    def passed(self) -> bool:
        return self.error is None and all(not s.failures for s in self.steps)

    @property
    def failures(self) -> list[str]:
        out = [self.error] if self.error else []
        for s in self.steps:
            prefix = f"step {s.index + 1} (at {s.at:g}s): " if len(self.steps) > 1 else ""
            out.extend(prefix + f for f in s.failures)
        return out


@dataclass(slots=True)
class CoverageItem:
    policy: str
    kind: str
    rule: str
    fired: int = 0  # cases in which the rule fired (denied, matched, blocked)
    evaluated: int = 0  # cases in which it was evaluated at all


@dataclass(slots=True)
class TestReport:
    cases: list[CaseResult] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)  # lint errors in the inputs
    coverage: list[CoverageItem] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    io_error: bool = False

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    @property
    def failed(self) -> int:
        return sum(1 for c in self.cases if not c.passed)

    @property
    def coverage_percent(self) -> float:
        if not self.coverage:
            return 100.0
        return 100.0 * sum(1 for c in self.coverage if c.fired) / len(self.coverage)

    def exit_code(self, fail_under: float | None = None) -> int:
        if self.io_error:
            return 2
        if self.errors or self.failed:
            return 1
        if fail_under is not None and self.coverage_percent < fail_under:
            return 1
        return 0


# -- running -----------------------------------------------------------------------------


def run_paths(paths: Sequence[str | Path]) -> TestReport:
    """Run every PolicyTest document found in `paths` (files or directories)."""
    report = TestReport()
    loaded = load_paths(paths)
    report.files = list(loaded.files)
    report.io_error = any(not exists for _, exists in iter_policy_files(paths))
    report.diagnostics.extend(d for d in loaded.diagnostics if d.severity == "error")
    tests = [d for d in loaded.documents if isinstance(d, PolicyTestDoc)]
    sets: dict[str, PolicySet] = {}
    for test in tests:
        directory = str(Path(test.span.path).parent)
        if directory not in sets:
            sets[directory] = PolicySet.from_directory(directory)
            report.diagnostics.extend(
                d
                for d in sets[directory].diagnostics
                if d.severity == "error" and d not in report.diagnostics
            )
        report.cases.extend(run_test(test, sets[directory], report))
    return report


@dataclass(slots=True)
class PolicySet:
    """The policies next to (and below) a test file, by name, built once."""

    policies: dict[str, list[Policy]]
    diagnostics: list[Diagnostic]
    built: dict[tuple[str, str], AnyProcedure | PlanError] = field(default_factory=dict)

    @classmethod
    def from_directory(cls, directory: str) -> PolicySet:
        loaded = load_paths([directory])
        lint = lint_loaded(loaded)
        by_name: dict[str, list[Policy]] = {}
        for doc in loaded.documents:
            if isinstance(doc, Policy):
                by_name.setdefault(doc.metadata.name, []).append(doc)
        return cls(by_name, lint.diagnostics)

    @classmethod
    def of(cls, policies: Sequence[Policy]) -> PolicySet:
        by_name: dict[str, list[Policy]] = {}
        for p in policies:
            by_name.setdefault(p.metadata.name, []).append(p)
        return cls(by_name, [])

    def procedures(self, names: Sequence[str]) -> tuple[list[AnyProcedure], list[str]]:
        out: list[AnyProcedure] = []
        errors: list[str] = []
        for name in names:
            found = self.policies.get(name)
            if not found:
                errors.append(f"policy {name!r} not found next to the test file or below it")
                continue
            for policy in found:
                key = (policy.kind, name)
                if key not in self.built:
                    try:
                        self.built[key] = procedure_for(policy)
                    except PlanError as exc:
                        self.built[key] = exc
                built = self.built[key]
                if isinstance(built, PlanError):
                    errors.append(f"policy {name!r} cannot be built: {built}")
                else:
                    out.append(built)
        return out, errors


def run_test(
    test: PolicyTestDoc, policy_set: PolicySet, report: TestReport | None = None
) -> list[CaseResult]:
    procedures, errors = policy_set.procedures(test.policies)
    coverage = _coverage_items(procedures, report)
    results = []
    for case in test.cases:
        result = CaseResult(test.metadata.name, case.name, case.span)
        if errors:
            result.error = "; ".join(errors)
        else:
            run_case(case, Bundle(procedures), result, coverage)
        results.append(result)
    return results


def _coverage_items(
    procedures: Sequence[AnyProcedure], report: TestReport | None
) -> dict[tuple[str, str, str], CoverageItem]:
    items: dict[tuple[str, str, str], CoverageItem] = {}
    existing = {(c.policy, c.kind, c.rule): c for c in report.coverage} if report is not None else {}
    for proc in procedures:
        for rule in proc.rule_names():
            key = (proc.name, proc.kind, rule)
            if key not in existing:
                existing[key] = CoverageItem(proc.name, proc.kind, rule)
                if report is not None:
                    report.coverage.append(existing[key])
            items[key] = existing[key]
    return items


def run_case(
    case: TestCase,
    bundle: Bundle,
    result: CaseResult,
    coverage: dict[tuple[str, str, str], CoverageItem] | None = None,
) -> None:
    clock = [0.0]
    counters = MemoryCounters(clock=lambda: clock[0])
    fired: set[tuple[str, str, str]] = set()
    evaluated: set[tuple[str, str, str]] = set()
    for index, step in enumerate(case.steps):
        if step.at is not None:
            clock[0] = step.at.seconds
        try:
            decision, traces = run_step(step, bundle, counters, clock[0])
        except InputError as exc:
            result.steps.append(StepResult(index, clock[0], [f"invalid input: {exc}"], None))
            continue
        for proc_name, kind, trace in traces:
            key = (proc_name, kind, trace.rule)
            evaluated.add(key)
            if trace.matched:
                fired.add(key)
        result.steps.append(StepResult(index, clock[0], check_expect(step.expect, decision), decision))
    if coverage is not None:
        for key in evaluated:
            if key in coverage:
                coverage[key].evaluated += 1
        for key in fired:
            if key in coverage:
                coverage[key].fired += 1


def run_step(
    step: TestStep, bundle: Bundle, counters: MemoryCounters, at: float
) -> tuple[Decision, list[tuple[str, str, RuleTrace]]]:
    """The combined decision of the bundle on one step's input, with every trace."""
    now = EPOCH + datetime.timedelta(seconds=at)
    if "object" in step.inputs:
        raw = step.inputs["object"]
        if not isinstance(raw, Mapping):
            raise InputError("object must be a mapping")
        combined, decisions = bundle.decide_object(raw, now=now, trace=True)
    else:
        raw_inputs = {k: step.inputs[k] for k in REQUEST_KEYS if k in step.inputs}
        inputs = bundle.inputs({**raw_inputs, "now": now})
        result = bundle.decide_request(inputs, counters, trace=True)
        combined, decisions = result.decision, result.decisions
        if result.reservations:
            if not combined.allowed:
                bundle.release(result.reservations, counters)  # the upstream is never called
            elif "response" in raw_inputs:
                bundle.settle(result.reservations, inputs, counters)
    traces = [(d.policy, d.kind, t) for d in decisions for t in d.trace]
    return combined, traces


# -- expectations --------------------------------------------------------------------------


def check_expect(expect: Mapping[str, Any], d: Decision) -> list[str]:
    """Every way `d` differs from `expect` (empty: it passes)."""
    failures: list[str] = []
    want = expect.get("decision")
    if want is not None and want != d.decision:
        why = f" ({d.log[0].reason})" if d.log and d.log[0].reason else ""
        failures.append(f"decision: expected {want}, got {d.decision}{why}")
    if "status" in expect and int(expect["status"]) != d.status:
        failures.append(f"status: expected {expect['status']}, got {d.status}")
    if "message" in expect:
        texts = [d.message, *(v.message for v in d.violations)]
        if not any(str(expect["message"]) in t for t in texts):
            failures.append(f"message: expected to contain {expect['message']!r}, got {d.message!r}")
    for name, value in (expect.get("headers") or {}).items():
        got = {k.lower(): v for k, v in d.headers.items()}.get(str(name).lower())
        if got != str(value):
            failures.append(f"header {name}: expected {value!r}, got {got!r}")
    if "violations" in expect:
        failures.extend(_check_violations(expect["violations"], d.violations))
    if "mutated" in expect:
        problem = _subset_problem(expect["mutated"], d.mutated, "mutated")
        if problem:
            failures.append(problem)
    if "approvers" in expect:
        failures.extend(_check_approvers(expect["approvers"], d.approvers))
    return failures


def _check_violations(want: Any, got: Sequence[Violation]) -> list[str]:
    if not isinstance(want, list):
        return ["violations: expected a list"]
    names = [v.rule for v in got]
    want_names = [w if isinstance(w, str) else (w or {}).get("rule") for w in want]
    if want_names != names:
        return [f"violations: expected rules {want_names}, got {names}"]
    failures = []
    for w, v in zip(want, got, strict=True):
        if isinstance(w, Mapping) and "message" in w and str(w["message"]) not in v.message:
            failures.append(
                f"violation {v.rule}: expected message containing {w['message']!r}, got {v.message!r}"
            )
    return failures


def _check_approvers(want: Any, got: ApproverSpec | None) -> list[str]:
    if not isinstance(want, Mapping):
        return ["approvers: expected a mapping"]
    if got is None:
        return [f"approvers: expected {dict(want)}, got none"]
    want_groups = sorted(want.get("groups") or [])
    if want_groups != sorted(got.groups):
        return [f"approvers.groups: expected {want_groups}, got {sorted(got.groups)}"]
    return []


def _subset_problem(want: Any, got: Any, where: str) -> str | None:
    """`want` must be contained in `got`: every key given, recursively; lists and scalars equal."""
    if isinstance(want, Mapping):
        if not isinstance(got, Mapping):
            return f"{where}: expected a mapping, got {got!r}"
        for key, value in want.items():
            if key not in got:
                return f"{where}.{key}: missing"
            problem = _subset_problem(value, got[key], f"{where}.{key}")
            if problem:
                return problem
        return None
    if want != got:
        return f"{where}: expected {want!r}, got {got!r}"
    return None
