"""Helpers for the conformance tests: run the suite against several plugins at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from celgate.conformance.registry import Options, Report
from celgate.conformance.runner import run

ROOT = Path(__file__).resolve().parents[2]
BROKEN = Path(__file__).parent / "plugins"
EXAMPLES = ROOT / "examples" / "plugins"
NODE_PLUGIN = ROOT / "examples" / "node-plugin"

# Small but real: every check runs, each hook sees a handful of generated inputs.
FAST = Options(examples=8)


# Many plugins run at once on a 2-core CI machine: a deadline with room for that load (the
# broken plugins' faults are far beyond it: hangs, 250 ms per call served one at a time).
DEADLINE_MS = 2500


def run_many(refs: list[str], **kwargs: object) -> dict[str, Report]:
    """Run the suite against every ref concurrently (one event loop, one process per plugin)."""
    kwargs.setdefault("deadline_ms", DEADLINE_MS)

    async def main() -> list[Report]:
        return await asyncio.gather(*(run(ref, options=FAST, **kwargs) for ref in refs))  # type: ignore[arg-type]

    return dict(zip(refs, asyncio.run(main()), strict=True))


def failed(report: Report) -> set[str]:
    return {r.id for r in report.results if r.status == "failed"}


def status(report: Report, check_id: str) -> str:
    return next(r.status for r in report.results if r.id == check_id)


def explain(report: Report) -> str:
    return "\n".join(f"{r.status:8} {r.id}: {r.message}" for r in report.results)
