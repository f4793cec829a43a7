"""The command line: formats (text, JSON, JUnit), the YAML report, selection, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml
from conformance_helpers import BROKEN, EXAMPLES, ROOT

GOOD = f"file://{EXAMPLES / 'header-rewrite'}"


def celgate(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "celgate", "conformance", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def test_junit_and_yaml_report_are_well_formed(tmp_path: Path) -> None:
    report_path = tmp_path / "report.yaml"
    done = celgate(GOOD, "--format", "junit", "--report", str(report_path), "--examples", "5")
    assert done.returncode == 0, done.stdout + done.stderr
    root = ET.fromstring(done.stdout)
    assert root.tag == "testsuites"
    cases = root.findall("./testsuite/testcase")
    assert int(root.get("tests", "0")) == len(cases) > 20
    assert {s.get("name") for s in root.findall("testsuite")} == {"core", "extended"}
    assert int(root.get("failures", "-1")) == 0
    skipped = [c for c in cases if c.find("skipped") is not None]
    assert int(root.get("skipped", "-1")) == len(skipped) > 0
    assert all(s.find("skipped").get("message") for s in skipped)  # type: ignore[union-attr]

    report = yaml.safe_load(report_path.read_text())
    assert report["kind"] == "ConformanceReport"
    assert report["implementation"]["id"] == "header-rewrite"
    assert report["implementation"]["version"] == "0.1.0"
    assert report["result"] == "passed"
    assert [p["name"] for p in report["profiles"]] == ["core", "extended"]
    by_id = {c["id"]: c for c in report["checks"]}
    assert by_id["response.chunk-order"]["result"] == "passed"
    assert by_id["data-collection.ack"]["result"] == "skipped"
    assert "data_collection" in by_id["data-collection.ack"]["reason"]
    assert len(by_id) == len(cases)


def test_json_output_and_exit_code_one_for_a_broken_plugin() -> None:
    done = celgate(
        f"file://{BROKEN / 'stream-order'}", "--format", "json", "--profile", "core", "--examples", "3"
    )
    assert done.returncode == 1, done.stderr
    data = json.loads(done.stdout)
    assert data["result"] == "failed"
    assert [p["name"] for p in data["profiles"]] == ["core"]
    assert all(c["profile"] == "core" for c in data["checks"])
    failed = [c["id"] for c in data["checks"] if c["result"] == "failed"]
    assert failed == ["response.chunk-order"]


def test_check_selects_single_checks_and_text_names_them() -> None:
    done = celgate(
        f"file://{BROKEN / 'invalid-schema'}", "--check", "config.schema-valid", "--check", "plugin.health"
    )
    assert done.returncode == 1
    lines = [line for line in done.stdout.splitlines() if line.startswith("  ") and "plugin " not in line]
    assert [line.split()[:2] for line in lines] == [
        ["PASS", "plugin.health"],
        ["FAIL", "config.schema-valid"],
    ]
    assert "integr" in done.stdout


def test_junit_escapes_control_characters_from_plugin_messages() -> None:
    from celgate.conformance.registry import CheckResult, Report
    from celgate.conformance.report import to_junit

    report = Report("file://x", {"id": "x\x00", "name": "", "version": ""}, [], ["core"])
    report.results.append(CheckResult("hooks.robust", "doc", "core", "failed", "bad \x01\x1b[31m byte"))
    root = ET.fromstring(to_junit(report))
    failure = root.find("./testsuite/testcase/failure")
    assert failure is not None and "\\x01" in (failure.get("message") or "")


def test_usage_errors_exit_two_without_a_traceback(tmp_path: Path) -> None:
    for args in (
        (),
        ("file:///does/not/exist",),
        (GOOD, "--check", "no.such-check"),
        ("oci://registry.example/x@sha256:00",),
        (GOOD, "--config", str(tmp_path / "missing.yaml")),
    ):
        done = celgate(*args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        assert done.stderr.strip()
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    done = celgate(GOOD, "--config", str(bad))
    assert done.returncode == 2 and "mapping" in done.stderr


def test_list_names_every_check_with_its_profile() -> None:
    done = celgate("--list")
    assert done.returncode == 0
    assert "hooks.robust" in done.stdout and "lifecycle.restart" in done.stdout
    assert "core" in done.stdout and "extended" in done.stdout
