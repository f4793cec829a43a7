"""Unit tests: the cron parser, object validation and merge patch, the SQLite store."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from celgate.engine import objects
from celgate.engine.scheduler import Cron, CronError, schedules_from_manifest
from celgate.engine.store.base import Change, Conflict, NotFound, ScheduleRun, VersionMismatch
from celgate.engine.store.sqlite import MIGRATIONS, open_sqlite

# ---------------------------------------------------------------------- cron


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        ("*/15 * * * *", datetime(2026, 1, 1, 10, 7), datetime(2026, 1, 1, 10, 15)),
        ("0 3 * * *", datetime(2026, 1, 1, 3, 0), datetime(2026, 1, 2, 3, 0)),
        ("30 9 * * mon-fri", datetime(2026, 11, 27, 10, 0), datetime(2026, 11, 30, 9, 30)),  # Fri -> Mon
        ("0 0 29 feb *", datetime(2026, 3, 1), datetime(2028, 2, 29)),
        ("0 0 1,15 * 0", datetime(2026, 11, 25), datetime(2026, 11, 29)),  # day OR weekday
        ("5/20 * * * *", datetime(2026, 1, 1, 0, 6), datetime(2026, 1, 1, 0, 25)),
        ("@hourly", datetime(2026, 1, 1, 0, 0, 30), datetime(2026, 1, 1, 1, 0)),
        ("0 12 * jan,jul 7", datetime(2026, 2, 1), datetime(2026, 7, 5, 12, 0)),
    ],
)
def test_cron_next_run(expr: str, after: datetime, expected: datetime) -> None:
    assert Cron.parse(expr).next_after(after) == expected


cron_fields = st.tuples(
    st.sampled_from(["*", "*/7", "0", "5,35", "10-20/5"]),
    st.sampled_from(["*", "3", "*/6", "9-17"]),
    st.sampled_from(["*", "1", "15,31", "28-31"]),
    st.sampled_from(["*", "2", "jan,jun", "*/4"]),
    st.sampled_from(["*", "0", "mon-fri", "6"]),
)


@settings(max_examples=60, deadline=None)
@given(cron_fields, st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)))
def test_cron_next_run_is_the_first_matching_minute(fields: tuple[str, ...], after: datetime) -> None:
    cron = Cron.parse(" ".join(fields))
    nxt = cron.next_after(after)
    assert nxt > after and nxt.second == 0 and cron.matches(nxt)
    # no earlier minute matches (checked minute by minute over the gap, capped for speed)
    t = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    for _ in range(3000):
        if t >= nxt:
            break
        assert not cron.matches(t), t
        t += timedelta(minutes=1)


@pytest.mark.parametrize(
    "expr",
    [
        "* * * *",
        "60 * * * *",
        "* 24 * * *",
        "*/0 * * * *",
        "5-1 * * * *",
        "0 0 30 feb *",
        "x * * * *",
        "* * * * 8",
        "",
    ],
)
def test_bad_cron_is_rejected_with_a_message(expr: str) -> None:
    with pytest.raises(CronError, match="cron"):
        Cron.parse(expr)


def test_manifest_schedules_are_checked() -> None:
    (s,) = schedules_from_manifest("p", {"schedules": [{"id": "a", "cron": "@daily", "timeout_seconds": 2}]})
    assert s.timeout == 2.0 and s.timezone == "UTC" and s.enabled
    with pytest.raises(CronError, match="'b'"):
        schedules_from_manifest("p", {"schedules": [{"id": "b", "cron": "nope"}]})
    with pytest.raises(CronError, match="timezone"):
        schedules_from_manifest("p", {"schedules": [{"id": "c", "cron": "@daily", "timezone": "Mars/Base"}]})
    with pytest.raises(CronError, match="timeout"):
        schedules_from_manifest("p", {"schedules": [{"id": "d", "cron": "@daily", "timeout_seconds": 0}]})


def test_schedule_in_a_timezone_fires_at_local_time() -> None:
    (s,) = schedules_from_manifest(
        "p", {"schedules": [{"id": "a", "cron": "0 9 * * *", "timezone": "Europe/Paris"}]}
    )
    due = s.next_due(datetime(2026, 1, 10, 0, 0).timestamp())
    assert datetime.fromtimestamp(due, UTC).hour == 8  # 09:00 CET is 08:00 UTC in winter


# ---------------------------------------------------------------------- objects


def test_object_validation_names_each_bad_field() -> None:
    with pytest.raises(objects.ObjectError) as err:
        objects.check("user", {"email": "nope", "role": "root", "groups": ["ok", "bad group"], "x": 1})
    assert {e.field for e in err.value.errors} == {"email", "role", "groups", "x"}
    ok = objects.check("llm", {"name": "n", "api_key_set": True})
    assert ok["api_key_set"] is False and ok["active"] is True and ok["models"] == []  # read-only ignored
    assert objects.redact("llm", {"name": "n", "api_key": "s"}) == {"name": "n"}


def test_merge_patch_follows_rfc_7396() -> None:
    target = {"a": "b", "c": {"d": "e", "f": "g"}}
    assert objects.merge_patch(target, {"a": "z", "c": {"f": None}}) == {"a": "z", "c": {"d": "e"}}
    assert objects.merge_patch({"a": [1, 2]}, {"a": [3]}) == {"a": [3]}
    assert objects.merge_patch({"a": 1}, ["x"]) == ["x"]


scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
json_values = (
    scalars
    | st.lists(scalars, max_size=3)
    | st.dictionaries(
        st.text(max_size=3), scalars | st.dictionaries(st.text(max_size=3), scalars), max_size=3
    )
)


@given(
    st.dictionaries(st.text(max_size=3), json_values, max_size=4),
    st.dictionaries(st.text(max_size=3), json_values, max_size=4),
)
def test_merge_patch_is_idempotent(target: dict[str, object], patch: dict[str, object]) -> None:
    once = objects.merge_patch(target, patch)
    assert objects.merge_patch(once, patch) == once
    assert all(once.get(k) is not None for k, v in patch.items() if v is not None)
    assert all(k not in once for k, v in patch.items() if v is None)


# ---------------------------------------------------------------------- store


async def test_store_migrates_and_checks_versions_atomically(tmp_path: Path) -> None:
    path = str(tmp_path / "u.db")
    store = await open_sqlite(path)
    try:
        data = objects.check("tool", {"id": "t", "name": "T"})
        first = await store.commit(Change("create", "tool", "t", data))
        assert first.version == 1
        with pytest.raises(Conflict):
            await store.commit(Change("create", "tool", "t", data))
        second = await store.commit(Change("update", "tool", "t", {**data, "name": "U"}, expected_version=1))
        assert second.version == 2
        with pytest.raises(VersionMismatch) as mismatch:
            await store.commit(Change("update", "tool", "t", {**data, "name": "V"}, expected_version=1))
        assert mismatch.value.current == 2
        with pytest.raises(NotFound):
            await store.commit(Change("delete", "tool", "nope", None))
        got = await store.get_object("tool", "t")
        assert got is not None and got.data["name"] == "U"
        await store.start_run(ScheduleRun("r1", "p", "s", "running", 1.0, 1.0))
    finally:
        await store.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    again = await open_sqlite(path)  # reopening does not migrate twice; a crashed run is marked
    try:
        assert await again.interrupt_running() == 1
        assert (await again.list_runs("p", "s"))[0].state == "interrupted"
    finally:
        await again.close()


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    db.close()
    with pytest.raises(RuntimeError, match="newer"):
        await open_sqlite(str(path))
