"""The example policies lint clean and their PolicyTests pass, through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from celgate.policies.testing import run_paths

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"


def test_every_example_has_a_policy_test() -> None:
    folders = [p for p in EXAMPLES.iterdir() if p.is_dir()]
    assert len(folders) >= 4
    for folder in folders:
        assert list(folder.glob("*.test.yaml")), folder


def test_example_policy_tests_pass_with_full_coverage() -> None:
    report = run_paths([EXAMPLES])
    assert not report.errors, report.errors
    assert [c.case for c in report.cases if not c.passed] == []
    assert len(report.cases) >= 20
    assert report.coverage_percent == 100.0
    kinds = {c.kind for c in report.coverage}
    assert kinds == {"IPFilter", "RequestValidation", "RateLimit", "ObjectApproval"}


def test_examples_through_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "celgate", "test", str(EXAMPLES), "--format", "json", "--fail-under", "100"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["failed"] == 0


def test_examples_lint_clean() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "celgate", "lint", str(EXAMPLES)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
