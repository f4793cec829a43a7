"""Formatting a `Report`: text for people, JSON and JUnit XML for machines, and the YAML
conformance report (implementation, profiles, per-check results, skips with reasons)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

import yaml

from celgate import __version__
from celgate.conformance.registry import PROFILES, Report

REPORT_KIND = "ConformanceReport"
REPORT_API_VERSION = "celgate.dev/v1"


def as_dict(report: Report) -> dict[str, Any]:
    """The report as plain data: the JSON output and the YAML report share it."""
    return {
        "apiVersion": REPORT_API_VERSION,
        "kind": REPORT_KIND,
        "celgateVersion": __version__,
        "implementation": {"ref": report.ref, **report.implementation},
        "capabilities": report.capabilities,
        "result": "passed" if report.passed else "failed",
        "summary": report.counts(),
        "profiles": [
            {
                "name": profile,
                "result": report.profile_status(profile),
                "summary": {
                    s: sum(1 for r in report.results if r.profile == profile and r.status == s)
                    for s in ("passed", "failed", "skipped")
                },
            }
            for profile in PROFILES
            if profile in report.profiles
        ],
        "settings": report.settings,
        "loadError": report.load_error,
        "checks": [
            {
                "id": r.id,
                "profile": r.profile,
                "result": r.status,
                **({"reason": r.message} if r.status == "skipped" else {"message": r.message}),
                "seconds": r.seconds,
                "doc": r.doc,
            }
            for r in report.results
        ],
    }


def to_json(report: Report) -> str:
    return json.dumps(as_dict(report), indent=2, ensure_ascii=False) + "\n"


def to_yaml(report: Report) -> str:
    return yaml.safe_dump(as_dict(report), sort_keys=False, allow_unicode=True, width=100)


_MARK = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}


def to_text(report: Report) -> str:
    impl = report.implementation
    lines = [
        f"celgate conformance: {report.ref}",
        f"  plugin {impl.get('id') or '?'} {impl.get('version', '')}".rstrip()
        + (f"  capabilities: {', '.join(report.capabilities)}" if report.capabilities else ""),
    ]
    width = max((len(r.id) for r in report.results), default=10)
    for r in report.results:
        detail = ("  " + r.message.replace("\n", "\n" + " " * (width + 10))) if r.message else ""
        lines.append(f"  {_MARK[r.status]}  {r.id:<{width}}{detail}".rstrip())
    counts = report.counts()
    profiles = ", ".join(f"{p} {report.profile_status(p)}" for p in report.profiles)
    lines.append(
        f"{'PASSED' if report.passed else 'FAILED'}: {counts['passed']} passed, {counts['failed']} failed, "
        f"{counts['skipped']} skipped ({profiles})"
    )
    return "\n".join(lines) + "\n"


def _clean(text: str) -> str:
    """XML 1.0 cannot carry most control characters: escape them."""
    return "".join(ch if ch in "\t\n\r" or ord(ch) >= 0x20 else f"\\x{ord(ch):02x}" for ch in text)


def to_junit(report: Report) -> str:
    counts = report.counts()
    suites = ET.Element(
        "testsuites",
        name="celgate conformance",
        tests=str(len(report.results)),
        failures=str(counts["failed"]),
        skipped=str(counts["skipped"]),
        errors="0",
    )
    for profile in report.profiles:
        results = [r for r in report.results if r.profile == profile]
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=f"{profile}",
            tests=str(len(results)),
            failures=str(sum(r.status == "failed" for r in results)),
            skipped=str(sum(r.status == "skipped" for r in results)),
            errors="0",
            time=f"{sum(r.seconds for r in results):.3f}",
        )
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="ref", value=_clean(report.ref))
        for key, value in report.implementation.items():
            ET.SubElement(props, "property", name=f"implementation.{key}", value=_clean(value))
        for r in results:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"celgate.conformance.{profile}",
                name=r.id,
                time=f"{r.seconds:.3f}",
            )
            if r.status == "failed":
                fail = ET.SubElement(
                    case, "failure", message=_clean(r.message[:500]), type="ConformanceFailure"
                )
                fail.text = _clean(f"{r.doc}\n{r.message}")
            elif r.status == "skipped":
                ET.SubElement(case, "skipped", message=_clean(r.message[:500]))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


FORMATS = {"text": to_text, "json": to_json, "junit": to_junit}
