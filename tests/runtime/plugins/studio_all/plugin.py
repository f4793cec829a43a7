"""A test plugin with the studio capabilities: object hooks, agent, UI, portal UI, tasks."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from celgate.sdk import (
    Actor,
    Agent,
    AgentChunk,
    AgentRequest,
    Allow,
    Asset,
    Context,
    Deny,
    ManifestProvider,
    Mutate,
    ObjectEvent,
    ObjectHookRegistration,
    ObjectHooks,
    PendingApproval,
    Plugin,
    PortalUI,
    ScheduledTask,
    ScheduledTasks,
    UIProvider,
    serve,
)


class StudioAll(Plugin, ObjectHooks, Agent, UIProvider, PortalUI, ScheduledTasks, ManifestProvider):
    def provide_manifest(self) -> dict[str, Any]:
        manifest: dict[str, Any] = json.loads((Path(__file__).parent / "manifest.json").read_text())
        manifest["computed"] = True
        return manifest

    def object_hooks(self) -> list[ObjectHookRegistration]:
        return [
            ObjectHookRegistration("llm", "before_create", 10),
            ObjectHookRegistration("app", "before_update"),
        ]

    def handle_object_hook(self, ctx: Context, event: ObjectEvent) -> Any:
        obj = event.object or {}
        if obj.get("vendor") == "blocked":
            return Deny("vendor not allowed", rule="vendors")
        if obj.get("needs_approval"):
            return PendingApproval(["admins"], 2, expires_after=3600)
        if obj.get("lower"):
            return Mutate({**obj, "name": str(obj.get("name", "")).lower()})
        return Allow(message=f"ok by {event.actor.email}")

    async def handle_message(self, ctx: Context, message: AgentRequest) -> AsyncIterator[AgentChunk]:
        yield AgentChunk("thinking", "hmm")
        yield AgentChunk("content", f"echo: {message.message} ({len(message.history)} turns)")
        if message.message == "fail":
            raise RuntimeError("agent broke")
        yield AgentChunk("done", metadata={"runtime": ctx.runtime})

    def ui_assets(self) -> list[Asset]:
        return [Asset("ui/main.js", "text/javascript", b"export default 1;")]

    def ui_call(self, ctx: Context, method: str, payload: Any) -> Any:
        if method == "boom":
            raise ValueError("no such method")
        return {"method": method, "payload": payload}

    def portal_assets(self) -> list[Asset]:
        return [Asset("portal/form.js", "text/javascript", b"export default 2;")]

    def portal_call(self, ctx: Context, method: str, payload: Any, user: Actor) -> Any:
        return {"user": user.email, "groups": user.groups}

    def run_task(self, ctx: Context, task: ScheduledTask) -> str:
        if task.config.get("fail"):
            raise RuntimeError("task failed on purpose")
        return f"ran {task.schedule_id}/{task.run_id}"


if __name__ == "__main__":
    serve(StudioAll())
