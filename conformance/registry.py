"""The check registry: every check has a stable id, a one-line doc, a profile and the
capabilities it applies to. Results are data; formatting happens in `report.py`.

A check function takes the `Session` and the run `Options` and returns `Outcome`s: it raises
`Failed` (or returns a failed outcome) with a message that names the input and what came back.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from celgate.conformance.session import Session

PROFILES = ("core", "extended")
STATUSES = ("passed", "failed", "skipped")


@dataclass(frozen=True)
class Options:
    examples: int = 25  # hypothesis examples per hook
    huge_bytes: int = 4 * 1024 * 1024
    check_timeout: float = 30.0  # a whole check; a hanging plugin fails it, never the suite
    shutdown_grace_ms: int = 2000


class Failed(Exception):
    """A check found a fault; the message says what was sent and what came back."""


class Skipped(Exception):
    """The check does not apply, or cannot run here; the message says why."""


CheckFn = Callable[["Session", Options], Awaitable[str | None]]


@dataclass(frozen=True)
class Check:
    id: str
    doc: str
    profile: str  # core | extended
    capabilities: frozenset[str]  # applies when the plugin declares any of these (empty: always)
    fn: CheckFn
    needs_load: bool = True  # skipped when the plugin did not load


@dataclass
class CheckResult:
    id: str
    doc: str
    profile: str
    status: str  # passed | failed | skipped
    message: str = ""
    seconds: float = 0.0


@dataclass
class Report:
    ref: str
    implementation: dict[str, str]  # id, name, version from the manifest
    capabilities: list[str]
    profiles: list[str]
    results: list[CheckResult] = field(default_factory=list)
    load_error: str = ""
    settings: dict[str, object] = field(default_factory=dict)  # examples, deadline_ms, runtime, ...

    @property
    def passed(self) -> bool:
        return not any(r.status == "failed" for r in self.results)

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for r in self.results if r.status == s) for s in STATUSES}

    def profile_status(self, profile: str) -> str:
        results = [r for r in self.results if r.profile == profile]
        if any(r.status == "failed" for r in results):
            return "failed"
        if results and all(r.status == "skipped" for r in results):
            return "skipped"
        return "passed" if results else "skipped"


CHECKS: dict[str, Check] = {}


def check(
    id: str, doc: str, profile: str, capabilities: tuple[str, ...] = (), needs_load: bool = True
) -> Callable[[CheckFn], CheckFn]:
    """Register a check under a stable id."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}")

    def register(fn: CheckFn) -> CheckFn:
        if id in CHECKS:
            raise ValueError(f"check id {id!r} registered twice")
        CHECKS[id] = Check(id, doc, profile, frozenset(capabilities), fn, needs_load)
        return fn

    return register


def all_checks() -> list[Check]:
    """Every check, in run order (registration order: lifecycle-ending checks come last)."""
    from celgate.conformance.checks import STAGES as order

    for module in order:  # importing a stage registers its checks
        importlib.import_module(f"celgate.conformance.checks.{module}")

    def stage(c: Check) -> int:
        module = c.fn.__module__.rsplit(".", 1)[-1]
        return order.index(module) if module in order else len(order)

    return sorted(CHECKS.values(), key=stage)
