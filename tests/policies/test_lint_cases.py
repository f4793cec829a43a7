"""Golden tests: every bad policy fixture in lint_cases/ is reported exactly as expected.

Each `lint_cases/NAME.yaml` has `lint_cases/NAME.expected`: the `celgate lint` text lines for
that file alone (`path:line:col: CODE severity: message`). Lines of CEL parse/type errors
(CG201, CG202) are compared up to the severity, since their wording is the CEL checker's.
Set CELGATE_UPDATE_GOLDEN=1 to rewrite the .expected files (then review the diff).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from celgate.policies.formats import line
from celgate.policies.lint import lint_paths

CASES = Path(__file__).parent / "lint_cases"
FIXTURES = sorted(p.name for p in CASES.glob("*.yaml"))
CHECKER_WORDED = ("CG201", "CG202")


def _rel_lines(fixture: str) -> list[str]:
    old = os.getcwd()
    os.chdir(CASES)
    try:
        result = lint_paths([fixture])
    finally:
        os.chdir(old)
    return [line(d) for d in result.diagnostics]


def _comparable(text: str) -> str:
    head, _, message = text.partition(" error: ")
    if any(f" {code}" in head for code in CHECKER_WORDED):
        return head + " error: <checker message>" if message else text
    return text


@pytest.mark.parametrize("fixture", FIXTURES)
def test_fixture_reports_exactly_the_expected_diagnostics(fixture: str) -> None:
    got = _rel_lines(fixture)
    expected_file = CASES / fixture.replace(".yaml", ".expected")
    if os.environ.get("CELGATE_UPDATE_GOLDEN"):
        expected_file.write_text("".join(x + "\n" for x in got), encoding="utf-8")
    expected = expected_file.read_text(encoding="utf-8").splitlines()
    assert [_comparable(x) for x in got] == [_comparable(x) for x in expected]
    assert got, "a bad-policy fixture must produce diagnostics"


def test_valid_examples_have_no_diagnostics() -> None:
    result = lint_paths([CASES / "valid"])
    assert [line(d) for d in result.diagnostics] == []
    assert result.exit_code == 0
    assert len(result.documents) == 5
