"""`celgate test` and `celgate explain`: the runner as a library and the CLI as a real process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from celgate.policies.testing import run_paths

POLICY = """\
apiVersion: celgate.dev/v1
kind: RequestValidation
metadata: {name: small-bodies}
spec:
  rules:
    - name: small
      expression: 'request.size < 100'
      message: body too large
      status: 413
    - name: post-only
      expression: 'request.method == "POST"'
      message: only POST
---
apiVersion: celgate.dev/v1
kind: RateLimit
metadata: {name: per-app}
spec:
  limits:
    - name: app
      key: 'identity.app_id'
      requests: 1
      window: 10s
"""

TESTS = """\
apiVersion: celgate.dev/v1
kind: PolicyTest
metadata: {name: t}
spec:
  policies: [small-bodies, per-app]
  cases:
    - name: small passes
      request: {size: 10}
      expect: {decision: allow, headers: {RateLimit-Remaining: "0"}}
    - name: large fails
      request: {size: 1000}
      expect: {decision: deny, status: 413, message: too large, violations: [small]}
    - name: second call in the window is limited
      sequence:
        - {at: 0s, identity: {app_id: a}, expect: {decision: allow}}
        - {at: 5s, identity: {app_id: a}, expect: {decision: deny, status: 429}}
        - {at: 10s, identity: {app_id: a}, expect: {decision: allow}}
"""


def write(tmp: Path, policy: str = POLICY, tests: str = TESTS) -> Path:
    (tmp / "policies.yaml").write_text(policy)
    sub = tmp / "tests"
    sub.mkdir(exist_ok=True)
    # policies are found next to the test file or below it: put the test next to them
    (tmp / "policies.test.yaml").write_text(tests)
    return tmp


def celgate(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "celgate", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def test_passing_suite(tmp_path: Path) -> None:
    report = run_paths([write(tmp_path)])
    assert [c.failures for c in report.cases] == [[], [], []]
    assert report.exit_code() == 0


def test_failures_name_what_differs(tmp_path: Path) -> None:
    tests = TESTS.replace("status: 413", "status: 400").replace(
        "{at: 5s, identity: {app_id: a}, expect: {decision: deny",
        "{at: 5s, identity: {app_id: b}, expect: {decision: deny",
    )
    report = run_paths([write(tmp_path, tests=tests)])
    failures = {c.case: c.failures for c in report.cases}
    assert failures["large fails"] == ["status: expected 400, got 413"]
    assert failures["second call in the window is limited"][0].startswith(
        "step 2 (at 5s): decision: expected deny"
    )
    assert report.exit_code() == 1


def test_missing_policy_is_a_case_error(tmp_path: Path) -> None:
    report = run_paths([write(tmp_path, tests=TESTS.replace("per-app]", "per-ap]"))])
    assert all("'per-ap' not found" in (c.error or "") for c in report.cases)


def test_policies_in_other_folders_are_not_found(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "p.yaml").write_text(POLICY)
    (tmp_path / "b" / "t.yaml").write_text(TESTS)
    report = run_paths([tmp_path / "b"])
    assert report.failed == 3


def test_coverage_lists_rules_no_case_fired(tmp_path: Path) -> None:
    tests = TESTS.replace("request: {size: 1000}", "request: {size: 1000, method: POST}")
    report = run_paths([write(tmp_path, tests=tests)])
    fired = {c.rule: c.fired for c in report.coverage}
    assert fired == {"small": 1, "post-only": 0, "app": 1}
    assert report.coverage_percent == pytest.approx(200 / 3)
    assert report.exit_code(fail_under=70) == 1
    assert report.exit_code(fail_under=60) == 0


def test_cli_text_json_junit_and_exit_codes(tmp_path: Path) -> None:
    write(tmp_path)
    text = celgate("test", str(tmp_path), "--coverage")
    assert text.returncode == 0, text.stderr
    assert (
        "3 passed, 0 failed" in text.stdout
        and "not covered: RequestValidation small-bodies rule post-only" in text.stdout
    )
    js = celgate("test", str(tmp_path), "--format", "json", "--coverage")
    data = json.loads(js.stdout)
    assert data["passed"] == 3 and data["coverage"]["percent"] == pytest.approx(66.67)
    junit = celgate("test", str(tmp_path), "--format", "junit", "--fail-under", "90")
    assert junit.returncode == 1
    root = ET.fromstring(junit.stdout)
    assert root.find("testsuite").get("tests") == "3"  # type: ignore[union-attr]


def test_cli_failure_exit_code(tmp_path: Path) -> None:
    write(tmp_path, tests=TESTS.replace("status: 413", "status: 400"))
    result = celgate("test", str(tmp_path))
    assert result.returncode == 1
    assert "FAIL t / large fails" in result.stdout and "status: expected 400, got 413" in result.stdout


def test_cli_usage_errors(tmp_path: Path) -> None:
    assert celgate("test", str(tmp_path / "missing")).returncode == 2
    (tmp_path / "p.yaml").write_text(POLICY)
    no_tests = celgate("test", str(tmp_path))
    assert no_tests.returncode == 2 and "no PolicyTest" in no_tests.stderr
    assert celgate("test", str(tmp_path), "--fail-under", "101").returncode == 2


def test_lint_errors_are_reported_not_tracebacks(tmp_path: Path) -> None:
    write(tmp_path, policy=POLICY.replace("request.size < 100", "request.sise < 100"))
    result = celgate("test", str(tmp_path))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert "sise" in result.stdout


def test_malformed_yaml_is_reported(tmp_path: Path) -> None:
    write(tmp_path, tests="kind: PolicyTest\nspec: [unclosed\n")
    result = celgate("test", str(tmp_path))
    assert result.returncode in (1, 2)
    assert "Traceback" not in result.stderr + result.stdout


def test_bad_case_input_is_a_failure_not_a_crash(tmp_path: Path) -> None:
    bad_case = """\
    - name: object with a wrongly typed field
      object: {type: llm, operation: create, value: {privacy_score: high}}
      expect: {decision: allow}
"""
    write(tmp_path, tests=TESTS + bad_case)
    report = run_paths([tmp_path])
    case = report.cases[-1]
    assert not case.passed
    assert case.failures == ["invalid input: privacy_score must be an integer, not 'high'"]


def test_explain_shows_each_rule(tmp_path: Path) -> None:
    write(tmp_path)
    (tmp_path / "in.json").write_text(json.dumps({"request": {"size": 500, "method": "GET"}}))
    result = celgate("explain", str(tmp_path / "policies.yaml"), "--input", str(tmp_path / "in.json"))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "small: fired (value false)" in out and "post-only: fired (value false)" in out
    assert "decision: deny 413: body too large" in out
    js = celgate(
        "explain", str(tmp_path / "policies.yaml"), "--input", str(tmp_path / "in.json"), "--format", "json"
    )
    data = json.loads(js.stdout)
    assert data["decision"]["decision"] == "deny"
    assert [r["status"] for r in data["policies"][0]["rules"]] == ["fired", "fired"]


def test_explain_shows_errors_and_bad_input(tmp_path: Path) -> None:
    policy = textwrap.dedent("""\
        apiVersion: celgate.dev/v1
        kind: RequestValidation
        metadata: {name: v}
        spec:
          rules:
            - {name: r, expression: 'request.body.x > 1'}
        """)
    (tmp_path / "p.yaml").write_text(policy)
    (tmp_path / "in.json").write_text(json.dumps({"request": {"body": {}}}))
    result = celgate("explain", str(tmp_path / "p.yaml"), "--input", str(tmp_path / "in.json"))
    assert result.returncode == 0
    assert "r: ERROR" in result.stdout and "deny 503" in result.stdout
    (tmp_path / "bad.json").write_text(json.dumps({"request": {"nope": 1}}))
    bad = celgate("explain", str(tmp_path / "p.yaml"), "--input", str(tmp_path / "bad.json"))
    assert bad.returncode == 2 and "unknown field" in bad.stderr
    missing = celgate("explain", str(tmp_path / "p.yaml"), "--input", str(tmp_path / "missing.json"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
