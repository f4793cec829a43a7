"""A studio test plugin using only celgate.sdk: object hooks with every verdict.

llm.before_create: vendor "evil" -> Deny; privacy_score > 50 -> PendingApproval(security);
otherwise Mutate (stamps metadata.reviewed_by). It also asks for user.before_create, which
its manifest does not declare, so the host must never send it. tool.after_create records
the names it saw in a file given by the config (an after-hook is informational).
"""

from __future__ import annotations

from typing import Any

from celgate.sdk import Allow, Deny, Mutate, ObjectHooks, PendingApproval, Plugin, serve
from celgate.sdk.types import ObjectEvent, ObjectHookRegistration


class Guard(Plugin, ObjectHooks):
    def __init__(self) -> None:
        self.log_path = ""

    def configure(self, ctx: Any, config: dict[str, Any]) -> None:
        self.log_path = str(config.get("log", ""))

    def object_hooks(self) -> list[ObjectHookRegistration]:
        return [
            ObjectHookRegistration("llm", "before_create", priority=10),
            ObjectHookRegistration("llm", "before_update", priority=10),
            ObjectHookRegistration("user", "before_create", priority=10),  # not declared: never sent
            ObjectHookRegistration("tool", "after_create"),
        ]

    def handle_object_hook(self, ctx: Any, event: ObjectEvent) -> Allow | Deny | Mutate | PendingApproval:
        obj = event.object or {}
        if event.object_type == "user":
            return Deny("the host sent an undeclared hook")
        if event.hook == "after_create":
            if self.log_path:
                with open(self.log_path, "a") as f:
                    f.write(f"{obj.get('name')}|{'api_key' in obj}\n")
            return Allow()
        if "api_key" in obj:
            return Deny("a secret reached the hook")
        if obj.get("vendor") == "evil":
            return Deny("vendor evil is banned", rule="banned-vendor")
        if obj.get("privacy_score", 0) > 50:
            return PendingApproval(["security"], min_approvals=1, expires_after=3600, message="needs review")
        return Mutate({**obj, "metadata": {**obj.get("metadata", {}), "reviewed_by": "guard"}})


if __name__ == "__main__":
    serve(Guard())
