"""`celgate test PATH...`: run PolicyTest files.

Exit codes: 0 every case passed (and coverage >= --fail-under), 1 failures, lint errors in the
inputs or coverage under the bar, 2 usage or I/O error (no such path, no PolicyTest found).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any
from xml.etree import ElementTree as ET

from celgate.policies.coverage import coverage_data, coverage_lines
from celgate.policies.testing import CaseResult, TestReport, run_paths


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="PolicyTest files or directories")
    parser.add_argument("--format", choices=("text", "json", "junit"), default="text")
    parser.add_argument("--coverage", action="store_true", help="list the rules no case made fire")
    parser.add_argument(
        "--fail-under",
        type=float,
        default=None,
        metavar="N",
        help="exit 1 when rule coverage is below N percent (implies --coverage)",
    )


def run(args: argparse.Namespace) -> int:
    if args.fail_under is not None and not 0 <= args.fail_under <= 100:
        print("celgate test: --fail-under must be between 0 and 100", file=sys.stderr)
        return 2
    report = run_paths(args.paths)
    if report.io_error:
        for d in report.diagnostics:
            if d.code == "CG001":
                print(f"celgate test: {d.message}", file=sys.stderr)
        return 2
    if not report.cases and not report.errors:
        print("celgate test: no PolicyTest documents found in " + " ".join(args.paths), file=sys.stderr)
        return 2
    show_coverage = args.coverage or args.fail_under is not None
    out = {"text": format_text, "json": format_json, "junit": format_junit}[args.format]
    sys.stdout.write(out(report, show_coverage))
    return report.exit_code(args.fail_under)


def _case_id(c: CaseResult) -> str:
    return f"{c.test} / {c.case}"


def format_text(report: TestReport, show_coverage: bool = False) -> str:
    lines = [
        f"{d.span.path}:{d.span.line}:{d.span.column}: {d.code} {d.severity}: {d.message}"
        for d in report.errors
    ]
    for c in report.cases:
        if c.passed:
            lines.append(f"PASS {_case_id(c)}")
        else:
            lines.append(f"FAIL {_case_id(c)} ({c.span.path}:{c.span.line})")
            lines.extend(f"    {f}" for f in c.failures)
    if show_coverage:
        lines.extend(coverage_lines(report))
    passed = len(report.cases) - report.failed
    summary = f"{passed} passed, {report.failed} failed"
    if report.errors:
        summary += f", {len(report.errors)} lint error{'s' if len(report.errors) != 1 else ''}"
    lines.append(summary)
    return "\n".join(lines) + "\n"


def format_json(report: TestReport, show_coverage: bool = False) -> str:
    data: dict[str, Any] = {
        "passed": len(report.cases) - report.failed,
        "failed": report.failed,
        "errors": [
            {
                "path": d.span.path,
                "line": d.span.line,
                "column": d.span.column,
                "code": d.code,
                "message": d.message,
            }
            for d in report.errors
        ],
        "cases": [
            {
                "test": c.test,
                "case": c.case,
                "path": c.span.path,
                "line": c.span.line,
                "passed": c.passed,
                "failures": c.failures,
                "decisions": [s.decision.decision if s.decision else None for s in c.steps],
            }
            for c in report.cases
        ],
    }
    if show_coverage:
        data["coverage"] = coverage_data(report)
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def format_junit(report: TestReport, show_coverage: bool = False) -> str:
    suites = ET.Element("testsuites", name="celgate test")
    by_test: dict[str, list[CaseResult]] = {}
    for c in report.cases:
        by_test.setdefault(c.test, []).append(c)
    if report.errors:
        suite = ET.SubElement(
            suites, "testsuite", name="lint", tests=str(len(report.errors)), failures=str(len(report.errors))
        )
        for d in report.errors:
            case = ET.SubElement(
                suite, "testcase", name=f"{d.code} {d.span.path}:{d.span.line}", classname="lint"
            )
            ET.SubElement(case, "failure", message=d.message).text = d.message
    for test, cases in by_test.items():
        failed = sum(1 for c in cases if not c.passed)
        suite = ET.SubElement(suites, "testsuite", name=test, tests=str(len(cases)), failures=str(failed))
        for c in cases:
            case = ET.SubElement(
                suite, "testcase", name=c.case, classname=test, file=c.span.path, line=str(c.span.line)
            )
            if not c.passed:
                text = "\n".join(c.failures)
                ET.SubElement(case, "failure", message=c.failures[0] if c.failures else "failed").text = text
    if show_coverage:
        props = ET.SubElement(suites, "properties")
        ET.SubElement(props, "property", name="coverage", value=f"{report.coverage_percent:.1f}")
    return ET.tostring(suites, encoding="unicode") + "\n"
