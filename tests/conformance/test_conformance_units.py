"""Units of the suite: the config it derives from a schema, input generation, the registry,
and that the scope check can fail (never passes vacuously)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from conformance_helpers import EXAMPLES, FAST, explain, status

from celgate.conformance import config as cfg
from celgate.conformance import inputs, runner
from celgate.conformance.registry import PROFILES, all_checks
from celgate.engine import service_api


def test_check_ids_are_unique_stable_and_documented() -> None:
    checks = all_checks()
    ids = [c.id for c in checks]
    assert len(ids) == len(set(ids))
    assert all(c.doc and c.doc.endswith(".") and c.profile in PROFILES for c in checks)
    assert ids[0] == "plugin.handshake"
    assert ids[-4:] == ["lifecycle.shutdown", "lifecycle.restart", "lifecycle.stdin-eof", "lifecycle.cookie"]


def test_selection_by_profile_and_id() -> None:
    core = runner.select(["core"])
    assert core and all(c.profile == "core" for c in core)
    assert [c.id for c in runner.select([], ["hooks.robust"])] == ["hooks.robust"]
    with pytest.raises(ValueError, match="unknown profile"):
        runner.select(["gold"])


def test_config_uses_defaults_and_scratch_placeholders() -> None:
    schema: dict[str, Any] = {
        "type": "object",
        "required": ["path", "mode"],
        "properties": {
            "path": {"type": "string", "minLength": 1},
            "mode": {"enum": ["fast", "safe"]},
            "limit": {"type": "integer", "default": 10},
            "optional": {"type": "string"},
        },
    }
    config = cfg.defaults_of(schema, "/tmp/scratch")
    assert config == {"path": "/tmp/scratch/path", "mode": "fast", "limit": 10}
    assert cfg.config_problems(schema, config) == []


def test_default_that_violates_its_own_schema_is_reported() -> None:
    schema = {"type": "object", "properties": {"limit": {"type": "integer", "minimum": 1, "default": 0}}}
    problems = cfg.default_problems(schema)
    assert len(problems) == 1 and "/properties/limit" in problems[0]
    assert cfg.schema_problems({"type": "object", "properties": {"x": {"type": "integr"}}})
    assert cfg.schema_problems(schema) == []


def test_generated_inputs_are_repeatable_and_valid_messages() -> None:
    first = inputs.examples(inputs.request_contexts(), 10)
    second = inputs.examples(inputs.request_contexts(), 10)
    assert first == second and len(first) == 10
    assert all(ctx.request.method for ctx in first)
    hostile = inputs.hostile_contexts(1024)
    assert any("unicode" in label for label, _ in hostile)
    for _, ctx in hostile:
        ctx.SerializeToString()  # every hostile input is still a valid wire message


def test_scope_check_fails_when_the_host_does_not_enforce(monkeypatch: pytest.MonkeyPatch) -> None:
    # A host whose grants hook is ignored: every call succeeds, so the check must fail.
    original = service_api.HostService._caller

    async def lax(self: service_api.HostService, context: Any, method: str, *args: Any) -> str:
        self.grants = None
        return await original(self, context, method, *args)

    monkeypatch.setattr(service_api.HostService, "_caller", lax)
    report = asyncio.run(
        runner.run(f"file://{EXAMPLES / 'apikey-auth'}", ids=["service-api.scopes"], options=FAST)
    )
    assert status(report, "service-api.scopes") == "failed", explain(report)
    assert "does not enforce" in report.results[0].message


def test_docs_list_every_check_with_its_doc_line() -> None:
    from conformance_helpers import ROOT

    text = (ROOT / "docs" / "conformance.md").read_text()
    for c in all_checks():
        assert f"| `{c.id}` | {c.profile} |" in text, c.id
        assert c.doc in text, c.id
