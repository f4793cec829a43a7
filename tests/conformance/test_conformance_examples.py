"""Every example plugin and every compiled example policy passes the whole suite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conformance_helpers import EXAMPLES, ROOT, explain, run_many, status


def test_every_example_plugin_passes_every_profile() -> None:
    refs = [f"file://{p}" for p in sorted(EXAMPLES.iterdir()) if (p / "manifest.json").is_file()]
    assert len(refs) >= 3
    for ref, report in run_many(refs).items():
        assert report.passed, f"{ref}\n{explain(report)}"
        assert status(report, "lifecycle.restart") == "passed"
        assert report.profiles == ["core", "extended"]


@pytest.mark.parametrize("bundle", [False, True], ids=["one-plugin-per-policy", "bundled"])
def test_every_compiled_example_policy_passes(tmp_path: Path, bundle: bool) -> None:
    out = tmp_path / "plugins"
    argv = [sys.executable, "-m", "celgate", "compile", str(ROOT / "examples" / "policies"), "-o", str(out)]
    if bundle:
        argv += ["--bundle", "example-bundle"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    refs = [f"file://{p}" for p in sorted(out.iterdir()) if (p / "manifest.json").is_file()]
    assert refs, done.stdout
    for ref, report in run_many(refs).items():
        assert report.passed, f"{ref}\n{explain(report)}"
