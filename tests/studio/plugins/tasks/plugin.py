"""A studio test plugin using only celgate.sdk: scheduled tasks that succeed, hang or fail."""

from __future__ import annotations

import asyncio
from typing import Any

from celgate.sdk import Plugin, ScheduledTasks, serve
from celgate.sdk.types import ScheduledTask


class Tasks(Plugin, ScheduledTasks):
    async def run_task(self, ctx: Any, task: ScheduledTask) -> str | None:
        mode = task.config.get("mode")
        if mode == "hang":
            await asyncio.Event().wait()
        if mode == "fail":
            raise RuntimeError("the task failed on purpose")
        return f"ran {task.schedule_id} {task.run_id}"


if __name__ == "__main__":
    serve(Tasks())
