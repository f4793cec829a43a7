"""Proof that the suite catches faults: each deliberately broken plugin in plugins/ fails on
the check meant for it (and only on checks that the same fault explains)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from conformance_helpers import BROKEN, explain, failed, run_many, status

from celgate.conformance.registry import Report

# plugin folder -> (the check that must catch it, other checks the same fault may also fail)
FAULTS: dict[str, tuple[str, set[str]]] = {
    # hang: every check that sends generated inputs meets the DELETE it never answers
    "hang": (
        "hooks.deadline",
        {"hooks.concurrent", "hooks.reply-valid", "hooks.deterministic", "hooks.continue-preserves"},
    ),
    "unicode-crash": ("hooks.robust", set()),
    "mutate-continue": ("hooks.continue-preserves", {"hooks.robust"}),
    "undeclared-capability": ("capabilities.undeclared-unimplemented", set()),
    "invalid-schema": ("config.schema-valid", set()),
    "after-hook-blocks": ("object-hooks.after-cannot-block", set()),
    "stream-order": ("response.chunk-order", set()),
    "ignores-shutdown": ("lifecycle.shutdown", {"lifecycle.stdin-eof"}),
    "bad-reply": ("hooks.reply-valid", {"hooks.robust"}),
    "stale-lock": ("lifecycle.restart", set()),
    "scope-creep": ("service-api.scopes", set()),
    "serial": ("hooks.concurrent", set()),
    # bad-identity: every check that sends a request without a credential sees the empty identity
    "bad-identity": ("auth.verdict-valid", {"hooks.reply-valid", "hooks.robust", "lifecycle.restart"}),
    "no-handshake": ("plugin.handshake", {"lifecycle.cookie"}),  # it does not check the cookie either
}


@pytest.fixture(scope="module")
def reports() -> dict[str, Report]:
    refs = {name: f"file://{BROKEN / name}" for name in FAULTS}
    try:
        by_ref = run_many(list(refs.values()))
    finally:
        # stale-lock leaves its lock behind on purpose (named after its host: this process)
        Path(tempfile.gettempdir(), f"celgate-stale-lock-{os.getpid()}").unlink(missing_ok=True)
    return {name: by_ref[ref] for name, ref in refs.items()}


def test_every_broken_plugin_folder_is_covered() -> None:
    folders = {p.name for p in BROKEN.iterdir() if (p / "manifest.json").is_file()}
    assert folders == set(FAULTS)
    assert len(folders) >= 8


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_broken_plugin_fails_on_the_check_meant_for_it(reports: dict[str, Report], name: str) -> None:
    report = reports[name]
    intended, also = FAULTS[name]
    if intended != "plugin.handshake":
        assert status(report, "plugin.handshake") == "passed", explain(report)  # it loads: the fault is later
    else:
        assert report.load_error and report.implementation["id"] == name
    assert status(report, intended) == "failed", explain(report)
    assert failed(report) <= {intended} | also, explain(report)
    assert not report.passed
