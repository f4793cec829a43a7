"""Runs the selected checks against one plugin reference and returns a `Report`.

Each check runs under its own deadline, so a plugin that hangs fails that check and the suite
goes on; a plugin that died during a check is loaded again before the next one, so every
fault is charged to the check that provoked it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

from celgate.conformance.registry import (
    PROFILES,
    Check,
    CheckResult,
    Failed,
    Options,
    Report,
    Skipped,
    all_checks,
)
from celgate.conformance.session import CONFORMANCE_ID, Session

Progress = Callable[[str, CheckResult | None], None]


def select(profiles: Iterable[str] = (), ids: Iterable[str] = ()) -> list[Check]:
    """The checks of `profiles` (all when empty), narrowed to `ids` when given."""
    checks = all_checks()
    profiles, ids = list(profiles), list(ids)
    unknown = sorted(set(profiles) - set(PROFILES))
    if unknown:
        raise ValueError(f"unknown profile(s) {unknown}; known: {list(PROFILES)}")
    known = {c.id for c in checks}
    missing = sorted(set(ids) - known)
    if missing:
        raise ValueError(f"unknown check id(s) {missing}; see `celgate conformance --list`")
    if profiles:
        checks = [c for c in checks if c.profile in profiles]
    if ids:
        checks = [c for c in checks if c.id in ids]
    return checks


async def run(
    ref: str,
    *,
    profiles: Iterable[str] = (),
    ids: Iterable[str] = (),
    options: Options | None = None,
    config: dict[str, Any] | None = None,
    runtime: str = "gateway",
    deadline_ms: int = 1000,
    base_dir: str = "",
    progress: Progress | None = None,
) -> Report:
    options = options or Options()
    checks = select(profiles, ids)
    session = Session(ref, config=config, runtime=runtime, deadline_ms=deadline_ms, base_dir=base_dir)
    try:
        await session.open()
        # exactly what the host grants a plugin from its config file: the declared scopes, or
        # nothing when the manifest declares none (fail closed)
        session.granted = session.declared_scopes or frozenset()
        report = Report(
            ref=ref,
            implementation=_implementation(session),
            capabilities=sorted(session.declared | session.capabilities),
            profiles=sorted({c.profile for c in checks}, key=PROFILES.index),
            load_error=session.observed.load_error,
            settings={
                "runtime": runtime,
                "deadline_ms": deadline_ms,
                "examples": options.examples,
                "config": session.config or {},
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
        )
        for chk in checks:
            if progress is not None:
                progress(chk.id, None)
            fresh = bool(report.results) and report.results[-1].status == "failed"
            result = await _run_one(session, chk, options, fresh)
            report.results.append(result)
            if progress is not None:
                progress(chk.id, result)
        return report
    finally:
        await session.close()


def _implementation(session: Session) -> dict[str, str]:
    """id, name and version from the manifest; the folder's id when GetManifest was not reached."""
    manifest = session.observed.manifest or {}
    out = {k: str(manifest.get(k, "")) for k in ("id", "name", "version")}
    if not out["id"] and session.plugin_id != CONFORMANCE_ID:
        out["id"] = session.plugin_id
    return out


async def _run_one(session: Session, chk: Check, options: Options, fresh: bool = False) -> CheckResult:
    """One check. `fresh`: the previous check failed, so load the plugin again first (work it
    left queued, or state it broke, must not count against this check)."""
    result = CheckResult(chk.id, chk.doc, chk.profile, "skipped")
    started = time.monotonic()
    caps = session.declared | session.capabilities
    try:
        if chk.capabilities and not chk.capabilities & caps:
            raise Skipped(f"the plugin declares none of {sorted(chk.capabilities)}")
        if chk.needs_load:
            if not session.ready and session.observed.load_error:
                first = session.observed.load_error.splitlines()[0]
                raise Skipped(f"the plugin did not load: {first[:160]}")
            if fresh or not await session.alive():
                await session.reopen()
                if not session.ready:
                    raise Failed(f"the plugin did not load again: {session.observed.load_error}")
        message = await asyncio.wait_for(chk.fn(session, options), options.check_timeout)
        result.status, result.message = "passed", message or ""
    except Skipped as exc:
        result.status, result.message = "skipped", str(exc)
    except Failed as exc:
        result.status, result.message = "failed", str(exc)
    except TimeoutError:
        result.status = "failed"
        result.message = f"the check did not finish within {options.check_timeout:g}s (the plugin hangs)"
    except Exception as exc:  # a plugin answering something unexpected must not end the run
        result.status, result.message = "failed", f"{type(exc).__name__}: {exc}"
    result.seconds = round(time.monotonic() - started, 3)
    return result
