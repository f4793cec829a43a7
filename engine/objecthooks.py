"""Object hooks: before/after create, update and delete, dispatched to plugins by priority.

Before-hooks run in priority order (lower first; ties by plugin id), each under a deadline.
Verdicts: allow; deny (stops the chain, the reason reaches the caller); modify (the modified
object is what later hooks and the store see); pending approval (the change is parked; later
hooks still run, so a later deny wins). A hook that errs, times out or answers nonsense is
handled by its plugin's failure policy: `fail-closed` (the default) rejects the change,
`fail-open` skips the hook and records "skipped". After-hooks are informational: they run in
the background once the change is committed and their verdicts are ignored.

Hooks never see secrets: objects are redacted before dispatch. A plugin receives only the
hooks that both its `ListObjectHooks` answer and its manifest declare.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from celgate.engine import objects
from celgate.v1 import common_pb2, plugin_pb2

log = logging.getLogger("celgate.studio.hooks")

HOOK_NAMES: tuple[str, ...] = tuple(f"{p}_{op}" for p in ("before", "after") for op in objects.OPERATIONS)
DEFAULT_TIMEOUT = 5.0


@dataclass(frozen=True)
class HookRegistration:
    object_type: str
    hook: str
    priority: int = 100


class HookTarget(Protocol):
    """One plugin as the dispatcher sees it (a real plugin process, or an in-process fake)."""

    @property
    def plugin_id(self) -> str: ...

    @property
    def registrations(self) -> Sequence[HookRegistration]: ...

    @property
    def failure_policy(self) -> str: ...  # fail-closed | fail-open

    @property
    def timeout(self) -> float: ...

    async def call(
        self, request: plugin_pb2.ObjectHookRequest, timeout: float
    ) -> plugin_pb2.ObjectVerdict: ...


class HookTargets(Protocol):
    """The current set of hook targets; asked on every dispatch so reloads take effect."""

    def hook_targets(self) -> Sequence[HookTarget]: ...


class StaticTargets:
    """A fixed, editable list of targets (tests, and hosts that manage the list themselves)."""

    def __init__(self, targets: Iterable[HookTarget] = ()) -> None:
        self.targets: list[HookTarget] = list(targets)

    def hook_targets(self) -> Sequence[HookTarget]:
        return list(self.targets)


@dataclass(frozen=True)
class Actor:
    id: str
    email: str = ""
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class HookStep:
    """What one hook did; kept on the outcome and in the audit trail."""

    plugin_id: str
    hook: str
    result: str  # allow | deny | modify | pending_approval | error | skipped | ignored
    reason: str = ""
    rule: str = ""


@dataclass
class BeforeOutcome:
    """The combined verdict of all before-hooks of one change."""

    decision: str  # allow | deny | pending_approval
    object: dict[str, Any] | None
    reason: str = ""
    plugin: str = ""
    rule: str = ""
    message: str = ""
    groups: tuple[str, ...] = ()
    min_approvals: int = 1
    expires_after: float = 0.0
    steps: list[HookStep] = field(default_factory=list)


def declared_hooks(manifest: dict[str, Any]) -> set[tuple[str, str]]:
    """The (object_type, hook) pairs a manifest declares.

    Accepted forms: `permissions.object_hooks: ["llm.before_create", "tool.*", "*.after_delete"]`
    or `object_hooks: [{"object_type": "llm", "hook": "before_create"}]`. Nothing declared
    means no hooks (fail closed).
    """
    out: set[tuple[str, str]] = set()
    perms = manifest.get("permissions") if isinstance(manifest.get("permissions"), dict) else {}
    raw: list[Any] = []
    for source in ((perms or {}).get("object_hooks"), manifest.get("object_hooks")):
        if isinstance(source, list):
            raw.extend(source)
    for item in raw:
        if isinstance(item, str) and "." in item:
            otype, hook = item.split(".", 1)
        elif isinstance(item, dict):
            otype, hook = str(item.get("object_type", "")), str(item.get("hook", ""))
        else:
            continue
        types = objects.OBJECT_TYPES if otype == "*" else (otype,)
        hooks = HOOK_NAMES if hook == "*" else (hook,)
        out.update((t, h) for t in types for h in hooks if t in objects.OBJECT_TYPES and h in HOOK_NAMES)
    return out


class HookDispatcher:
    """Runs object hooks for the studio."""

    def __init__(self, targets: HookTargets | None = None) -> None:
        self.targets = targets
        self._background: set[asyncio.Task[None]] = set()

    def _chain(self, object_type: str, hook: str) -> list[tuple[int, str, HookTarget]]:
        chain: list[tuple[int, str, HookTarget]] = []
        if self.targets is None:
            return chain
        for target in self.targets.hook_targets():
            for reg in target.registrations:
                if reg.object_type == object_type and reg.hook == hook:
                    chain.append((reg.priority, target.plugin_id, target))
                    break
        chain.sort(key=lambda item: (item[0], item[1]))
        return chain

    @staticmethod
    def _request(
        hook: str,
        object_type: str,
        operation: str,
        obj: dict[str, Any] | None,
        previous: dict[str, Any] | None,
        actor: Actor,
        request_id: str,
    ) -> plugin_pb2.ObjectHookRequest:
        return plugin_pb2.ObjectHookRequest(
            hook=hook,
            object_type=object_type,
            operation=operation,
            object_json=json.dumps(objects.redact(object_type, obj)) if obj is not None else "",
            previous_json=json.dumps(objects.redact(object_type, previous)) if previous is not None else "",
            actor=plugin_pb2.Actor(id=actor.id, email=actor.email, groups=list(actor.groups)),
            request_id=request_id,
        )

    async def before(
        self,
        operation: str,
        object_type: str,
        obj: dict[str, Any] | None,
        previous: dict[str, Any] | None,
        actor: Actor,
        request_id: str = "",
    ) -> BeforeOutcome:
        """Run the before-hooks of one change; `obj` is the proposed object (None on delete)."""
        hook = f"before_{operation}"
        current = obj
        outcome = BeforeOutcome("allow", current)
        for _, plugin_id, target in self._chain(object_type, hook):
            shown = current if operation != "delete" else previous
            request = self._request(hook, object_type, operation, shown, previous, actor, request_id)
            try:
                verdict = await asyncio.wait_for(target.call(request, target.timeout), target.timeout)
                kind = verdict.WhichOneof("verdict")
                if kind is None:
                    raise ValueError("the verdict is empty")
                if kind == "modify" and operation != "delete":
                    assert current is not None
                    current = objects.apply_hook_object(object_type, current, json.loads(verdict.modify))
            except Exception as exc:  # timeouts, transport errors, bad verdicts: the failure policy decides
                reason = _failure_text(plugin_id, exc)
                if target.failure_policy == "fail-open":
                    log.warning("%s (fail-open: skipped)", reason)
                    outcome.steps.append(HookStep(plugin_id, hook, "skipped", reason))
                    continue
                log.warning("%s (fail-closed: change rejected)", reason)
                outcome.steps.append(HookStep(plugin_id, hook, "error", reason))
                return _deny(outcome, current, reason, plugin_id, "")
            if kind == "deny":
                reason = verdict.deny or verdict.message or f"denied by plugin {plugin_id}"
                outcome.steps.append(HookStep(plugin_id, hook, "deny", reason, verdict.rule))
                return _deny(outcome, current, reason, plugin_id, verdict.rule)
            if kind == "modify":
                result = "modify" if operation != "delete" else "ignored"
                outcome.steps.append(HookStep(plugin_id, hook, result, verdict.message, verdict.rule))
            elif kind == "pending_approval":
                pa = verdict.pending_approval
                groups = tuple(g for g in pa.groups if g)
                if not groups:  # nobody could ever approve: treat as a malformed verdict
                    reason = f"plugin {plugin_id} asked for approval without naming any approver group"
                    outcome.steps.append(HookStep(plugin_id, hook, "error", reason))
                    return _deny(outcome, current, reason, plugin_id, verdict.rule)
                outcome.steps.append(
                    HookStep(plugin_id, hook, "pending_approval", verdict.message, verdict.rule)
                )
                expires = pa.expires_after_ms / 1000.0 if pa.expires_after_ms > 0 else 0.0
                if outcome.decision != "pending_approval":
                    outcome.decision = "pending_approval"
                    outcome.plugin, outcome.rule, outcome.message = plugin_id, verdict.rule, verdict.message
                    outcome.groups, outcome.min_approvals = groups, max(1, pa.min_approvals)
                    outcome.expires_after = expires
                else:  # several plugins ask: any named group may approve, the strictest count and expiry win
                    outcome.groups = tuple(dict.fromkeys((*outcome.groups, *groups)))
                    outcome.min_approvals = max(outcome.min_approvals, pa.min_approvals)
                    if expires and (not outcome.expires_after or expires < outcome.expires_after):
                        outcome.expires_after = expires
            else:
                outcome.steps.append(HookStep(plugin_id, hook, "allow", verdict.message, verdict.rule))
        outcome.object = current
        return outcome

    def after(
        self,
        operation: str,
        object_type: str,
        obj: dict[str, Any] | None,
        previous: dict[str, Any] | None,
        actor: Actor,
        request_id: str = "",
    ) -> None:
        """Start the after-hooks of a committed change in the background."""
        hook = f"after_{operation}"
        chain = self._chain(object_type, hook)
        if not chain:
            return
        shown = None if operation == "delete" else obj
        request = self._request(hook, object_type, operation, shown, previous, actor, request_id)

        async def run() -> None:
            for _, plugin_id, target in chain:
                try:
                    await asyncio.wait_for(target.call(request, target.timeout), target.timeout)
                except Exception as exc:
                    log.warning("%s (after-hook: informational only)", _failure_text(plugin_id, exc))

        task = asyncio.get_running_loop().create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait for after-hooks still running (shutdown, tests)."""
        if self._background:
            await asyncio.wait(list(self._background), timeout=timeout)


def _deny(
    outcome: BeforeOutcome, obj: dict[str, Any] | None, reason: str, plugin: str, rule: str
) -> BeforeOutcome:
    outcome.decision, outcome.object, outcome.reason, outcome.plugin, outcome.rule = (
        "deny",
        obj,
        reason,
        plugin,
        rule,
    )
    return outcome


def _failure_text(plugin_id: str, exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return f"plugin {plugin_id} did not answer the object hook in time"
    if isinstance(exc, objects.ObjectError):
        return f"plugin {plugin_id} returned an invalid object: {exc}"
    return f"plugin {plugin_id} failed the object hook: {exc.__class__.__name__}: {exc}"


class PluginHookTarget:
    """A `HookTarget` backed by a supervised plugin process (`engine.handle.PluginHandle`).

    `handle` needs `.unary(method, request, timeout)` and `.manifest` (a dict). Build it with
    `await PluginHookTarget.load(plugin_id, handle)`, which asks the plugin for its hooks and
    keeps only those the manifest declares.
    """

    def __init__(
        self,
        plugin_id: str,
        handle: Any,
        registrations: Sequence[HookRegistration],
        *,
        failure_policy: str = "fail-closed",
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._plugin_id = plugin_id
        self.handle = handle
        self._registrations = tuple(registrations)
        self._failure_policy = failure_policy
        self._timeout = timeout

    @property
    def plugin_id(self) -> str:
        return self._plugin_id

    @property
    def registrations(self) -> Sequence[HookRegistration]:
        return self._registrations

    @property
    def failure_policy(self) -> str:
        return self._failure_policy

    @property
    def timeout(self) -> float:
        return self._timeout

    @classmethod
    async def load(
        cls,
        plugin_id: str,
        handle: Any,
        manifest: dict[str, Any],
        *,
        failure_policy: str = "fail-closed",
        timeout: float = DEFAULT_TIMEOUT,
    ) -> PluginHookTarget:
        allowed = declared_hooks(manifest)
        try:
            reply = await handle.unary("ListObjectHooks", common_pb2.Empty(), timeout)
        except Exception as exc:
            # Unknown registrations must not mean "no guard": take every declared hook, so each
            # call goes to the plugin and its failure policy decides while it is broken.
            log.warning("plugin %s: cannot list its object hooks (%s); using its manifest's", plugin_id, exc)
            regs = [HookRegistration(t, h) for t, h in sorted(allowed)]
            return cls(plugin_id, handle, regs, failure_policy=failure_policy, timeout=timeout)
        regs = []
        for r in reply.hooks:
            if (r.object_type, r.hook) in allowed:
                regs.append(HookRegistration(r.object_type, r.hook, r.priority))
            else:
                log.warning(
                    "plugin %s asks for %s.%s, which its manifest does not declare: ignored",
                    plugin_id,
                    r.object_type,
                    r.hook,
                )
        return cls(plugin_id, handle, regs, failure_policy=failure_policy, timeout=timeout)

    async def call(self, request: plugin_pb2.ObjectHookRequest, timeout: float) -> plugin_pb2.ObjectVerdict:
        reply: plugin_pb2.ObjectVerdict = await self.handle.unary("HandleObjectHook", request, timeout)
        return reply


class PluginHookTargets:
    """`HookTargets` over supervised plugin handles (`engine.handle.PluginHandle`).

    Call `await refresh(handles)` once the plugins are loaded and again after a reload: it asks
    each plugin with the `object_hooks` capability for its hooks (keeping only those its
    manifest declares). The plugin's failure policy and its `object_hooks` deadline apply.
    """

    def __init__(self) -> None:
        self._targets: list[HookTarget] = []

    async def refresh(self, handles: Iterable[Any]) -> None:
        targets: list[HookTarget] = []
        for handle in handles:
            if "object_hooks" not in handle.capabilities:
                continue
            spec = handle.spec
            targets.append(
                await PluginHookTarget.load(
                    handle.plugin_id,
                    handle,
                    handle.manifest,
                    failure_policy=spec.failure_policy,
                    timeout=spec.timeout("object_hooks")
                    if "object_hooks" in spec.deadlines
                    else DEFAULT_TIMEOUT,
                )
            )
        self._targets = targets

    def hook_targets(self) -> Sequence[HookTarget]:
        return list(self._targets)
