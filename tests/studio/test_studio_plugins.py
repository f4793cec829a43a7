"""Object hooks and scheduled tasks through real plugin processes (celgate.sdk + the supervisor)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from studio_helpers import studio_server

from celgate.engine.objecthooks import PluginHookTargets
from celgate.engine.supervisor import PluginSpec, Supervisor

PLUGINS = Path(__file__).parent / "plugins"

FIXED_NOW = datetime(2026, 1, 5, 10, 10, 30, tzinfo=UTC).timestamp()


@pytest.fixture
async def supervisor(tmp_path: Path) -> AsyncIterator[Supervisor]:
    sup = Supervisor()
    await sup.start(
        [
            PluginSpec(
                id="guard",
                ref=f"file://{PLUGINS / 'guard'}",
                runtime="studio",
                config={"log": str(tmp_path / "after.log")},
                deadlines={"object_hooks": 5000},
            ),
            PluginSpec(id="tasks", ref=f"file://{PLUGINS / 'tasks'}", runtime="studio"),
        ]
    )
    try:
        yield sup
    finally:
        await sup.stop()


async def test_real_plugin_denies_modifies_and_parks_changes(tmp_path: Path, supervisor: Supervisor) -> None:
    targets = PluginHookTargets()
    await targets.refresh(supervisor.handles)
    (guard,) = targets.hook_targets()  # "tasks" has no object_hooks capability
    # the undeclared user.before_create registration was dropped
    assert {(r.object_type, r.hook) for r in guard.registrations} == {
        ("llm", "before_create"),
        ("llm", "before_update"),
        ("tool", "after_create"),
    }
    async with studio_server(tmp_path / "s.db", targets) as s:  # type: ignore[arg-type]
        denied = await s.call("POST", "/api/v1/llms", {"name": "e", "vendor": "evil", "api_key": "sk-1"})
        assert denied.status == 403
        assert denied.body["error"]["message"] == "vendor evil is banned"
        assert denied.body["error"]["plugin"] == "guard" and denied.body["error"]["rule"] == "banned-vendor"

        ok = await s.call(
            "POST", "/api/v1/llms", {"id": "good", "name": "g", "vendor": "openai", "api_key": "sk-2"}
        )
        assert ok.status == 201, ok.body  # not "a secret reached the hook"
        assert ok.body["metadata"] == {"reviewed_by": "guard"} and ok.body["api_key_set"] is True

        assert (await s.call("POST", "/api/v1/users", {"id": "u1", "email": "u1@x.io"})).status == 201

        parked = await s.call(
            "PATCH", "/api/v1/llms/good", {"privacy_score": 90}, headers={"If-Match": '"1"'}
        )
        assert parked.status == 202 and parked.body["approval"]["groups"] == ["security"]
        assert parked.body["approval"]["message"] == "needs review"

        assert (await s.call("POST", "/api/v1/tools", {"name": "web"})).status == 201
        log = tmp_path / "after.log"
        deadline = time.monotonic() + 10
        while not (log.exists() and log.read_text()):
            assert time.monotonic() < deadline, "the after-hook never ran"
            await asyncio.sleep(0.02)
        assert log.read_text() == "web|False\n"


async def test_scheduled_tasks_run_one_at_a_time_with_timeouts_and_history(
    tmp_path: Path, supervisor: Supervisor
) -> None:
    async with studio_server(tmp_path / "s.db") as s:
        # A fixed wall clock (Monday 10:10:30 UTC) so that only "stuck" (*/5) is due at the ticks
        # below: on the real clock, minutes :55-:59 would make "@hourly" due at the same tick.
        s.state.scheduler.clock = lambda: FIXED_NOW
        assert await s.state.refresh_plugins(supervisor.handles) == []
        listed = await s.call("GET", "/api/v1/schedules")
        assert [x["id"] for x in listed.body["items"]] == ["broken", "nightly", "stuck"]

        r = await s.call("POST", "/api/v1/plugins/tasks/schedules/nightly/run")
        assert r.status == 202
        finished = await s.next_event("system.schedule.finished")
        assert finished["state"] == "ok" and finished["output"].startswith("ran nightly")

        r = await s.call("POST", "/api/v1/plugins/tasks/schedules/broken/run")
        failed = await s.next_event("system.schedule.finished")
        assert failed["state"] == "error" and "failed on purpose" in failed["error"]

        # cron-driven: a due tick starts a run; the next due time while it still runs is skipped
        entry_due = next(due for sch, due, _ in s.state.scheduler.schedules() if sch.id == "stuck")
        started = await s.state.scheduler.tick(entry_due)
        assert len(started) == 1
        busy = await s.call("POST", "/api/v1/plugins/tasks/schedules/stuck/run")
        assert busy.status == 409
        next_due = next(due for sch, due, _ in s.state.scheduler.schedules() if sch.id == "stuck")
        assert next_due > entry_due
        assert await s.state.scheduler.tick(next_due) == []
        skipped = await s.next_event("system.schedule.finished")
        assert skipped["state"] == "skipped"
        timed_out = await s.next_event("system.schedule.finished")
        assert timed_out["state"] == "timeout" and timed_out["schedule_id"] == "stuck"

        history = await s.call("GET", "/api/v1/plugins/tasks/schedules/stuck/runs")
        assert sorted(h["state"] for h in history.body["items"]) == ["skipped", "timeout"]
        nightly = await s.call("GET", "/api/v1/plugins/tasks/schedules/nightly/runs")
        assert [(h["state"], h["trigger"]) for h in nightly.body["items"]] == [("ok", "manual")]
        assert (await s.call("GET", "/api/v1/plugins/tasks/schedules/nope/runs")).status == 404
