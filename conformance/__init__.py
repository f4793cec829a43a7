"""celgate.conformance: the capability contract suite, runnable against any plugin reference.

    from celgate.conformance import Options, run

    report = await run("file://examples/plugins/apikey-auth", profiles=["core"], options=Options(examples=50))
    assert report.passed

`registry` holds the checks (stable ids, doc lines, profiles), `session` loads the plugin through
the host's own loader and handle, `inputs` generates hook inputs, `runner` runs checks under
deadlines, `report` formats the result (text, JSON, JUnit, the YAML report) and
`cmd_conformance` is `celgate conformance`. See docs/conformance.md.
"""

from __future__ import annotations

from celgate.conformance.registry import CheckResult, Options, Report, all_checks
from celgate.conformance.runner import run, select

__all__ = ["CheckResult", "Options", "Report", "all_checks", "run", "select"]
