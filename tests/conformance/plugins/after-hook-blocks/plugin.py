"""Broken on purpose: its after_create hook answers deny, which an after-hook cannot do
(caught by object-hooks.after-cannot-block)."""

from __future__ import annotations

from celgate.sdk import Allow, Context, Deny, ObjectEvent, ObjectHookRegistration, ObjectHooks, Plugin, serve


class AfterHookBlocks(Plugin, ObjectHooks):
    def object_hooks(self) -> list[ObjectHookRegistration]:
        return [ObjectHookRegistration("llm", "before_create"), ObjectHookRegistration("llm", "after_create")]

    def handle_object_hook(self, ctx: Context, event: ObjectEvent) -> Allow | Deny:
        if event.hook == "after_create":
            return Deny("too late, but denying anyway")
        return Allow()


if __name__ == "__main__":
    serve(AfterHookBlocks())
