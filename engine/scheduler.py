"""Scheduled tasks: a 5-field cron parser, one run at a time per schedule, timeouts, history.

Schedules come from plugin manifests (`schedules: [{id, name, cron, timezone, enabled,
timeout_seconds, config}]`). Each due time starts a run unless the previous run of the same
schedule is still going, in which case a `skipped` run is recorded instead. A run that
exceeds its timeout is cancelled and recorded as `timeout`. Every run is stored (history via
the API) and published as `system.schedule.finished`. The host's own periodic jobs (such as
expiring approvals) use the same loop through `add_job`.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from celgate.engine.audit import Events
from celgate.engine.store.base import ScheduleRun, Store
from celgate.v1 import plugin_pb2

log = logging.getLogger("celgate.scheduler")

_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_abbr) if name}
_DAYS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_SEARCH_LIMIT = 200_000  # loop steps; about 8 years of day skips, far beyond any real schedule


class CronError(ValueError):
    """The cron expression is invalid or never fires."""


def _field(text: str, lo: int, hi: int, names: Mapping[str, int], what: str) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{what}: invalid step {step_text!r}")
            step = int(step_text)
        if part == "*":
            start, end = lo, hi
        else:
            bounds = part.split("-", 1)
            nums = [_number(b, names, what) for b in bounds]
            start, end = nums[0], nums[-1]
            if len(bounds) == 1 and step > 1:
                end = hi  # "5/15" means from 5 to the end, every 15
        if not (lo <= start <= hi and lo <= end <= hi):
            raise CronError(f"{what}: {part!r} is outside {lo}-{hi}")
        if start > end:
            raise CronError(f"{what}: range {part!r} is backwards")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def _number(text: str, names: Mapping[str, int], what: str) -> int:
    if text.isdigit():
        return int(text)
    if text.lower() in names:
        return names[text.lower()]
    raise CronError(f"{what}: {text!r} is not a number or a name")


@dataclass(frozen=True)
class Cron:
    """A parsed 5-field cron expression: minute hour day-of-month month day-of-week.

    As in classic cron, when both day fields are restricted a day matches if either does.
    """

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_any: bool
    weekdays_any: bool

    @classmethod
    def parse(cls, text: str) -> Cron:
        source = text.strip()
        expanded = _MACROS.get(source.lower(), source)
        fields = expanded.split()
        if len(fields) != 5:
            raise CronError(
                f"cron {text!r}: expected 5 fields (minute hour day month weekday), got {len(fields)}"
            )
        try:
            weekdays = _field(fields[4], 0, 7, _DAYS, "weekday")
            cron = cls(
                text=source,
                minutes=_field(fields[0], 0, 59, {}, "minute"),
                hours=_field(fields[1], 0, 23, {}, "hour"),
                days=_field(fields[2], 1, 31, {}, "day of month"),
                months=_field(fields[3], 1, 12, _MONTHS, "month"),
                weekdays=frozenset(d % 7 for d in weekdays),
                days_any=fields[2].startswith("*"),
                weekdays_any=fields[4].startswith("*"),
            )
        except CronError as exc:
            raise CronError(f"cron {text!r}: {exc}") from None
        cron.next_after(datetime(2000, 1, 1))  # raises if it can never fire (e.g. 30 February)
        return cron

    def _day_matches(self, t: datetime) -> bool:
        dom = t.day in self.days
        dow = (t.isoweekday() % 7) in self.weekdays
        if self.days_any and self.weekdays_any:
            return True
        if self.days_any:
            return dow
        if self.weekdays_any:
            return dom
        return dom or dow

    def matches(self, t: datetime) -> bool:
        return (
            t.minute in self.minutes
            and t.hour in self.hours
            and t.month in self.months
            and self._day_matches(t)
        )

    def next_after(self, after: datetime) -> datetime:
        """The first matching minute strictly after `after` (wall-clock, same tzinfo)."""
        t = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
        for _ in range(_SEARCH_LIMIT):
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0) + timedelta(days=32)).replace(day=1)
            elif not self._day_matches(t):
                t = t.replace(hour=0, minute=0) + timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0) + timedelta(hours=1)
            elif t.minute not in self.minutes:
                t += timedelta(minutes=1)
            else:
                return t
        raise CronError(f"cron {self.text!r} never fires")


@dataclass(frozen=True)
class Schedule:
    plugin_id: str
    id: str
    cron: Cron
    name: str = ""
    timezone: str = "UTC"
    enabled: bool = True
    timeout: float = 60.0
    config: dict[str, Any] = field(default_factory=dict)

    def next_due(self, now: float) -> float:
        tz = ZoneInfo(self.timezone)
        local = datetime.fromtimestamp(now, tz).replace(tzinfo=None)
        nxt = self.cron.next_after(local)
        return nxt.replace(tzinfo=tz).timestamp()


def schedules_from_manifest(plugin_id: str, manifest: Mapping[str, Any]) -> list[Schedule]:
    """Parse a manifest's `schedules`; raises `CronError` (with the schedule id) on bad input."""
    raw = manifest.get("schedules") or []
    if not isinstance(raw, list):
        raise CronError("manifest 'schedules' must be a list")
    out: list[Schedule] = []
    for item in raw:
        if not isinstance(item, Mapping) or not isinstance(item.get("id"), str) or not item.get("id"):
            raise CronError("each schedule needs a string 'id'")
        sid = item["id"]
        tz = str(item.get("timezone") or "UTC")
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise CronError(f"schedule {sid!r}: unknown timezone {tz!r}") from None
        timeout = item.get("timeout_seconds", 60)
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
            raise CronError(f"schedule {sid!r}: timeout_seconds must be a positive number")
        config = item.get("config") or {}
        if not isinstance(config, dict):
            raise CronError(f"schedule {sid!r}: config must be an object")
        try:
            cron = Cron.parse(str(item.get("cron", "")))
        except CronError as exc:
            raise CronError(f"schedule {sid!r}: {exc}") from None
        out.append(
            Schedule(
                plugin_id,
                sid,
                cron,
                str(item.get("name") or sid),
                tz,
                bool(item.get("enabled", True)),
                float(timeout),
                dict(config),
            )
        )
    return out


class TaskTarget(Protocol):
    """Whatever runs a plugin's scheduled task (a plugin process, or an in-process fake)."""

    async def run_task(
        self, request: plugin_pb2.ScheduledTaskRequest, timeout: float
    ) -> plugin_pb2.ScheduledTaskReply: ...


class PluginTaskTarget:
    """A `TaskTarget` calling `RunScheduledTask` on a supervised plugin (`PluginHandle.unary`)."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    async def run_task(
        self, request: plugin_pb2.ScheduledTaskRequest, timeout: float
    ) -> plugin_pb2.ScheduledTaskReply:
        reply: plugin_pb2.ScheduledTaskReply = await self.handle.unary("RunScheduledTask", request, timeout)
        return reply


def add_plugin_schedules(scheduler: Scheduler, handles: Iterable[Any]) -> list[str]:
    """Register the manifest schedules of every handle with the `scheduled_tasks` capability.

    Returns one error message per plugin whose schedules are invalid (those are skipped, the
    others still run), so the host can log them instead of failing to start.
    """
    errors: list[str] = []
    for handle in handles:
        if "scheduled_tasks" not in handle.capabilities:
            continue
        try:
            schedules = schedules_from_manifest(handle.plugin_id, handle.manifest)
        except CronError as exc:
            errors.append(f"plugin {handle.plugin_id}: {exc}")
            continue
        scheduler.remove_plugin(handle.plugin_id)
        for schedule in schedules:
            scheduler.add(schedule, PluginTaskTarget(handle))
    return errors


class Busy(Exception):
    """The schedule's previous run is still going."""


@dataclass
class _Entry:
    schedule: Schedule
    target: TaskTarget
    next_due: float
    running: asyncio.Task[ScheduleRun] | None = None


@dataclass
class _Job:
    name: str
    every: float
    fn: Callable[[], Awaitable[object]]
    next_due: float
    running: asyncio.Task[None] | None = None


class Scheduler:
    """Runs plugin schedules and host jobs. `start()` runs the loop; tests may call `tick(now)`."""

    def __init__(self, store: Store, events: Events, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.events = events
        self.clock = clock
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._jobs: dict[str, _Job] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    # ------------------------------------------------------------------ registry

    def add(self, schedule: Schedule, target: TaskTarget) -> None:
        key = (schedule.plugin_id, schedule.id)
        old = self._entries.get(key)
        entry = _Entry(schedule, target, schedule.next_due(self.clock()))
        if old is not None:
            entry.running = old.running
        self._entries[key] = entry
        self._wake.set()

    def remove_plugin(self, plugin_id: str) -> None:
        for key in [k for k in self._entries if k[0] == plugin_id]:
            del self._entries[key]

    def add_job(self, name: str, every: float, fn: Callable[[], Awaitable[object]]) -> None:
        self._jobs[name] = _Job(name, every, fn, self.clock() + every)
        self._wake.set()

    def schedules(self) -> list[tuple[Schedule, float, bool]]:
        """(schedule, next due unix time, running now) for every schedule."""
        return [
            (e.schedule, e.next_due, e.running is not None and not e.running.done())
            for _, e in sorted(self._entries.items())
        ]

    def get(self, plugin_id: str, schedule_id: str) -> Schedule | None:
        entry = self._entries.get((plugin_id, schedule_id))
        return entry.schedule if entry else None

    # ------------------------------------------------------------------ running

    async def tick(self, now: float | None = None) -> list[asyncio.Task[ScheduleRun]]:
        """Start every run that is due at `now`; returns the tasks started."""
        now = self.clock() if now is None else now
        started: list[asyncio.Task[ScheduleRun]] = []
        for entry in list(self._entries.values()):
            if not entry.schedule.enabled or entry.next_due > now:
                continue
            due = entry.next_due
            entry.next_due = entry.schedule.next_due(max(now, due))
            if entry.running is not None and not entry.running.done():
                await self._record_skip(entry.schedule, due)
                continue
            entry.running = asyncio.get_running_loop().create_task(
                self._execute(entry.schedule, entry.target, due, "cron")
            )
            started.append(entry.running)
        for job in list(self._jobs.values()):
            if job.next_due > now or (job.running is not None and not job.running.done()):
                continue
            job.next_due = now + job.every
            job.running = asyncio.get_running_loop().create_task(self._run_job(job))
        return started

    async def trigger(self, plugin_id: str, schedule_id: str) -> asyncio.Task[ScheduleRun]:
        """Start a manual run now; raises `KeyError` if unknown, `Busy` if a run is going."""
        entry = self._entries[(plugin_id, schedule_id)]
        if entry.running is not None and not entry.running.done():
            raise Busy(f"schedule {plugin_id}/{schedule_id} is already running")
        entry.running = asyncio.get_running_loop().create_task(
            self._execute(entry.schedule, entry.target, self.clock(), "manual")
        )
        return entry.running

    async def _run_job(self, job: _Job) -> None:
        try:
            await job.fn()
        except Exception:
            log.exception("host job %s failed", job.name)

    async def _record_skip(self, schedule: Schedule, due: float) -> None:
        now = time.time()
        run = ScheduleRun(
            secrets.token_hex(8),
            schedule.plugin_id,
            schedule.id,
            "skipped",
            due,
            now,
            now,
            "the previous run was still going",
        )
        await self.store.start_run(run)
        await self.events.publish("system.schedule.finished", run_json(run))

    async def _execute(self, schedule: Schedule, target: TaskTarget, due: float, trigger: str) -> ScheduleRun:
        run = ScheduleRun(
            secrets.token_hex(8),
            schedule.plugin_id,
            schedule.id,
            "running",
            due,
            time.time(),
            trigger=trigger,
        )
        await self.store.start_run(run)
        await self.events.publish("system.schedule.started", run_json(run))
        request = plugin_pb2.ScheduledTaskRequest(
            schedule_id=schedule.id,
            run_id=run.run_id,
            scheduled_unix_ms=int(due * 1000),
        )
        if schedule.config:
            request.config_json = json.dumps(schedule.config)
        try:
            reply = await asyncio.wait_for(target.run_task(request, schedule.timeout), schedule.timeout)
            run = replace(run, state="ok" if reply.ok else "error", error=reply.error, output=reply.output)
        except TimeoutError:
            run = replace(run, state="timeout", error=f"no answer within {schedule.timeout:g}s")
        except asyncio.CancelledError:
            run = replace(
                run, state="interrupted", error="the host stopped during the run", finished_at=time.time()
            )
            await self.store.finish_run(run)
            raise
        except Exception as exc:
            run = replace(run, state="error", error=f"{exc.__class__.__name__}: {exc}")
        run = replace(run, finished_at=time.time())
        await self.store.finish_run(run)
        await self.events.publish("system.schedule.finished", run_json(run))
        return run

    async def start(self) -> None:
        """Mark runs interrupted by a previous host as such, then run the loop."""
        await self.store.interrupt_running()
        if self._loop_task is None:
            self._loop_task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("scheduler tick failed")
            dues = [e.next_due for e in self._entries.values() if e.schedule.enabled]
            dues += [j.next_due for j in self._jobs.values()]
            delay = min([*dues, self.clock() + 30.0]) - self.clock()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.01, min(delay, 30.0)))

    async def stop(self) -> None:
        tasks: list[asyncio.Task[Any]] = []
        if self._loop_task is not None:
            tasks.append(self._loop_task)
            self._loop_task = None
        tasks += [e.running for e in self._entries.values() if e.running is not None and not e.running.done()]
        tasks += [j.running for j in self._jobs.values() if j.running is not None and not j.running.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def run_json(run: ScheduleRun) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "plugin_id": run.plugin_id,
        "schedule_id": run.schedule_id,
        "state": run.state,
        "trigger": run.trigger,
        "scheduled_at": run.scheduled_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "error": run.error,
        "output": run.output,
    }


def schedule_json(schedule: Schedule, next_due: float, running: bool) -> dict[str, Any]:
    return {
        "plugin_id": schedule.plugin_id,
        "id": schedule.id,
        "name": schedule.name,
        "cron": schedule.cron.text,
        "timezone": schedule.timezone,
        "enabled": schedule.enabled,
        "timeout_seconds": schedule.timeout,
        "next_run_at": next_due,
        "running": running,
    }


__all__ = [
    "Busy",
    "Cron",
    "CronError",
    "PluginTaskTarget",
    "Schedule",
    "Scheduler",
    "TaskTarget",
    "add_plugin_schedules",
    "schedules_from_manifest",
]
