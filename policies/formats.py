"""Lint output formats: text, json, sarif (2.1.0), junit and github annotations.

One function per format, each turning a `LintResult` into the full output text. This is the
only place where diagnostics become strings.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from celgate import __version__
from celgate.policies.codes import CODES
from celgate.policies.diagnostics import Diagnostic
from celgate.policies.lint import LintResult

FORMATS = ("text", "json", "sarif", "junit", "github")
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://celgate.dev/docs/lint-codes"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def summary(result: LintResult) -> str:
    files = _plural(len(result.files), "file")
    if not result.diagnostics:
        return f"no problems found in {files}"
    parts = [_plural(result.errors, "error"), _plural(result.warnings, "warning")]
    infos = result.count("info")
    if infos:
        parts.append(_plural(infos, "note"))
    return f"{', '.join(parts)} in {files}"


def line(d: Diagnostic) -> str:
    return f"{d.span.path}:{d.span.line}:{d.span.column}: {d.code} {d.severity}: {d.message}"


def format_text(result: LintResult) -> str:
    return "".join(line(d) + "\n" for d in result.diagnostics) + summary(result) + "\n"


def _as_dict(d: Diagnostic) -> dict[str, Any]:
    out: dict[str, Any] = {
        "code": d.code,
        "severity": d.severity,
        "message": d.message,
        "path": d.span.path,
        "line": d.span.line,
        "column": d.span.column,
    }
    if d.end is not None:
        out["endLine"], out["endColumn"] = d.end.line, d.end.column
    if d.policy is not None:
        out["policy"] = d.policy
    if d.rule_name is not None:
        out["rule"] = d.rule_name
    return out


def format_json(result: LintResult) -> str:
    doc = {
        "version": 1,
        "files": result.files,
        "summary": {"errors": result.errors, "warnings": result.warnings, "notes": result.count("info")},
        "diagnostics": [_as_dict(d) for d in result.diagnostics],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


_SARIF_LEVEL = {"error": "error", "warning": "warning", "info": "note"}


def _uri(path: str) -> str:
    p = Path(path)
    return p.as_uri() if p.is_absolute() else p.as_posix()


def format_sarif(result: LintResult) -> str:
    used = sorted({d.code for d in result.diagnostics})
    rules = [
        {
            "id": code,
            "name": CODES[code].title.replace(" ", "-") if code in CODES else code,
            "shortDescription": {"text": CODES[code].title if code in CODES else code},
            "fullDescription": {"text": CODES[code].explanation if code in CODES else code},
            "defaultConfiguration": {
                "level": _SARIF_LEVEL[CODES[code].severity if code in CODES else "error"]
            },
            "helpUri": f"{INFORMATION_URI}#{code.lower()}",
        }
        for code in used
    ]
    index = {code: i for i, code in enumerate(used)}
    results = []
    for d in result.diagnostics:
        region: dict[str, int] = {"startLine": d.span.line, "startColumn": d.span.column}
        if d.end is not None:
            region["endLine"], region["endColumn"] = d.end.line, d.end.column
        results.append(
            {
                "ruleId": d.code,
                "ruleIndex": index[d.code],
                "level": _SARIF_LEVEL[d.severity],
                "message": {"text": d.message},
                "locations": [
                    {"physicalLocation": {"artifactLocation": {"uri": _uri(d.span.path)}, "region": region}}
                ],
            }
        )
    doc = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "celgate",
                        "version": __version__,
                        "informationUri": INFORMATION_URI,
                        "rules": rules,
                    }
                },
                "columnKind": "unicodeCodePoints",
                "results": results,
            }
        ],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def format_junit(result: LintResult) -> str:
    by_file: dict[str, list[Diagnostic]] = {f: [] for f in result.files}
    for d in result.diagnostics:
        by_file.setdefault(d.span.path, []).append(d)
    failed = sum(1 for ds in by_file.values() if any(d.is_error for d in ds))
    counts = f'tests="{len(by_file)}" failures="{failed}" errors="0"'
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<testsuites name="celgate lint" {counts}>',
        f'  <testsuite name="celgate lint" {counts} skipped="0">',
    ]
    for path, ds in by_file.items():
        out.append(f'    <testcase classname="celgate.lint" name={quoteattr(path)}>')
        errors = [d for d in ds if d.is_error]
        if errors:
            first = errors[0]
            message = quoteattr(f"{_plural(len(errors), 'error')}: {first.message}")
            body = escape("\n".join(line(d) for d in ds))
            out.append(f'      <failure message={message} type="{first.code}">{body}</failure>')
        elif ds:
            out.append(f"      <system-out>{escape(chr(10).join(line(d) for d in ds))}</system-out>")
        out.append("    </testcase>")
    out += ["  </testsuite>", "</testsuites>", ""]
    return "\n".join(out)


_GITHUB_COMMAND = {"error": "error", "warning": "warning", "info": "notice"}


def _gh_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_property(text: str) -> str:
    return _gh_data(text).replace(":", "%3A").replace(",", "%2C")


def format_github(result: LintResult) -> str:
    lines = [
        f"::{_GITHUB_COMMAND[d.severity]} file={_gh_property(d.span.path)},line={d.span.line},"
        f"col={d.span.column},title={_gh_property(d.code)}::{_gh_data(d.code + ' ' + d.message)}"
        for d in result.diagnostics
    ]
    return "".join(x + "\n" for x in lines) + summary(result) + "\n"


FORMATTERS: dict[str, Callable[[LintResult], str]] = {
    "text": format_text,
    "json": format_json,
    "sarif": format_sarif,
    "junit": format_junit,
    "github": format_github,
}


def render(result: LintResult, fmt: str) -> str:
    return FORMATTERS[fmt](result)
