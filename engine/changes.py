"""The change pipeline for studio objects: validate -> before-hooks -> store or park -> events.

Every create, update and delete of an llm, app, tool, datasource or user goes through
`ChangeService`, whoever asks (the REST API today, the Service API later):

- the input is validated and its secrets split off;
- the version is checked early (a stale If-Match fails before any plugin is bothered) and
  again, atomically, when the store writes;
- before-hooks decide: deny (audited, nothing written), pending approval (the change is parked
  durably as an approval), or allow (possibly with a modified object);
- the store commits the change with its audit row; then `system.<type>.<created|updated|deleted>`
  is published and the after-hooks start.
"""

from __future__ import annotations

import secrets as pysecrets
import time
from dataclasses import dataclass, field
from typing import Any

from celgate.engine import objects
from celgate.engine.audit import Events, entry
from celgate.engine.objecthooks import Actor, HookDispatcher, HookStep
from celgate.engine.objects import ObjectError, Secrets
from celgate.engine.store.base import (
    ApprovalRecord,
    ApprovalTransition,
    Change,
    Conflict,
    NotFound,
    Store,
    StoredObject,
    VersionMismatch,
)

PAST = {"create": "created", "update": "updated", "delete": "deleted"}
DEFAULT_APPROVAL_EXPIRY = 72 * 3600.0


@dataclass
class ChangeResult:
    """What happened to a requested change."""

    status: str  # applied | denied | pending
    object: StoredObject | None = None
    approval: ApprovalRecord | None = None
    reason: str = ""
    plugin: str = ""
    rule: str = ""
    steps: list[HookStep] = field(default_factory=list)


def _steps_json(steps: list[HookStep]) -> list[dict[str, str]]:
    return [
        {"plugin": s.plugin_id, "hook": s.hook, "result": s.result, "reason": s.reason, "rule": s.rule}
        for s in steps
    ]


class ChangeService:
    """Applies object changes through hooks, the store, approvals and events."""

    def __init__(
        self,
        store: Store,
        hooks: HookDispatcher,
        events: Events,
        *,
        default_approval_expiry: float = DEFAULT_APPROVAL_EXPIRY,
    ) -> None:
        self.store = store
        self.hooks = hooks
        self.events = events
        self.default_approval_expiry = default_approval_expiry

    # ------------------------------------------------------------------ requests

    async def create(
        self, object_type: str, data: dict[str, Any], actor: Actor, request_id: str = ""
    ) -> ChangeResult:
        public, secrets = objects.split_secrets(object_type, data)
        obj = objects.normalise(object_type, objects.check(object_type, public))
        if not obj["id"]:
            obj["id"] = objects.new_id()
        if await self.store.get_object(object_type, obj["id"]) is not None:
            raise Conflict(f"{object_type} {obj['id']!r} already exists")
        if object_type == "llm":
            obj["api_key_set"] = secrets.api_key is not None
        return await self._decide("create", object_type, obj["id"], obj, None, 0, secrets, actor, request_id)

    async def update(
        self,
        object_type: str,
        object_id: str,
        data: dict[str, Any],
        expected_version: int,
        actor: Actor,
        request_id: str = "",
    ) -> ChangeResult:
        """Replace the object with `data` (callers apply a merge patch first for PATCH)."""
        current = await self._current(object_type, object_id, expected_version)
        public, secrets = objects.split_secrets(object_type, data)
        if public.get("id", object_id) != object_id:
            raise ObjectError([objects.FieldError("id", "cannot be changed")])
        public["id"] = object_id
        obj = objects.normalise(object_type, objects.check(object_type, public))
        if object_type == "llm":
            has_key = bool(current.data.get("api_key_set"))
            obj["api_key_set"] = (has_key or secrets.api_key is not None) and not secrets.clear_api_key
        return await self._decide(
            "update", object_type, object_id, obj, current.data, current.version, secrets, actor, request_id
        )

    async def delete(
        self,
        object_type: str,
        object_id: str,
        expected_version: int | None,
        actor: Actor,
        request_id: str = "",
    ) -> ChangeResult:
        current = await self._current(object_type, object_id, expected_version)
        return await self._decide(
            "delete",
            object_type,
            object_id,
            None,
            current.data,
            current.version,
            Secrets(),
            actor,
            request_id,
        )

    async def _current(self, object_type: str, object_id: str, expected_version: int | None) -> StoredObject:
        current = await self.store.get_object(object_type, object_id)
        if current is None:
            raise NotFound(f"{object_type} {object_id!r} not found")
        if expected_version is not None and current.version != expected_version:
            raise VersionMismatch(current.version)
        return current

    async def _decide(
        self,
        op: str,
        object_type: str,
        object_id: str,
        obj: dict[str, Any] | None,
        previous: dict[str, Any] | None,
        base_version: int,
        secrets: Secrets,
        actor: Actor,
        request_id: str,
    ) -> ChangeResult:
        outcome = await self.hooks.before(op, object_type, obj, previous, actor, request_id)
        steps = _steps_json(outcome.steps)
        if outcome.decision == "deny":
            await self.store.add_audit(
                [
                    entry(
                        actor.id,
                        f"{object_type}.{op}.denied",
                        object_type,
                        object_id,
                        reason=outcome.reason,
                        plugin=outcome.plugin,
                        rule=outcome.rule,
                        hooks=steps,
                    )
                ]
            )
            await self.events.publish(
                f"system.{object_type}.denied",
                {
                    "type": object_type,
                    "id": object_id,
                    "operation": op,
                    "actor": actor.id,
                    "reason": outcome.reason,
                    "plugin": outcome.plugin,
                },
            )
            return ChangeResult(
                "denied", reason=outcome.reason, plugin=outcome.plugin, rule=outcome.rule, steps=outcome.steps
            )
        obj = outcome.object if op != "delete" else None
        if outcome.decision == "pending_approval":
            now = time.time()
            expiry = outcome.expires_after or self.default_approval_expiry
            record = ApprovalRecord(
                id=pysecrets.token_hex(8),
                object_type=object_type,
                object_id=object_id,
                operation=op,
                requested_by=actor.id,
                object=objects.redact(object_type, obj) if obj is not None else None,
                previous=previous,
                base_version=base_version,
                groups=outcome.groups,
                min_approvals=outcome.min_approvals,
                expires_at=now + expiry,
                state="pending",
                created_at=now,
                message=outcome.message,
                rule=outcome.rule,
                plugin=outcome.plugin,
            )
            await self.store.create_approval(
                record,
                secrets,
                entry(
                    actor.id,
                    "approval.requested",
                    object_type,
                    object_id,
                    approval_id=record.id,
                    operation=op,
                    groups=list(record.groups),
                    min_approvals=record.min_approvals,
                    expires_at=record.expires_at,
                    plugin=record.plugin,
                    rule=record.rule,
                    hooks=steps,
                ),
            )
            await self.events.publish("system.approval.requested", approval_event(record))
            return ChangeResult(
                "pending",
                approval=record,
                plugin=outcome.plugin,
                rule=outcome.rule,
                reason=outcome.message,
                steps=outcome.steps,
            )
        stored = await self.store.commit(
            Change(
                op,
                object_type,
                object_id,
                obj,
                secrets,
                expected_version=base_version if op != "create" else None,
                audit=(entry(actor.id, f"{object_type}.{op}", object_type, object_id, hooks=steps),),
            )
        )
        await self._committed(op, stored, previous, actor, request_id)
        return ChangeResult("applied", object=stored, steps=outcome.steps)

    async def _committed(
        self,
        op: str,
        stored: StoredObject,
        previous: dict[str, Any] | None,
        actor: Actor,
        request_id: str,
        approval_id: str = "",
    ) -> None:
        payload: dict[str, Any] = {
            "type": stored.type,
            "id": stored.id,
            "version": stored.version,
            "object": None if op == "delete" else stored.data,
            "previous": previous,
            "actor": actor.id,
        }
        if approval_id:
            payload["approval_id"] = approval_id
        await self.events.publish(f"system.{stored.type}.{PAST[op]}", payload)
        self.hooks.after(
            op, stored.type, stored.data if op != "delete" else None, previous, actor, request_id
        )

    # ------------------------------------------------------------------ approvals

    async def apply_approved(self, record: ApprovalRecord, approver: Actor) -> StoredObject:
        """Apply a parked change whose approvals are complete, only if the object is unchanged.

        Raises `Conflict` (after marking the approval `failed`) when the object changed since
        the request (or, for a create, now exists).
        """
        secrets = await self.store.get_approval_secrets(record.id)
        transition = ApprovalTransition(record.id, "pending", "approved", "approved")
        requester = Actor(record.requested_by)
        try:
            stored = await self.store.commit(
                Change(
                    record.operation,
                    record.object_type,
                    record.object_id,
                    record.object,
                    secrets,
                    expected_version=record.base_version if record.operation != "create" else None,
                    audit=(
                        entry(
                            approver.id,
                            "approval.approved",
                            record.object_type,
                            record.object_id,
                            approval_id=record.id,
                        ),
                        entry(
                            record.requested_by,
                            f"{record.object_type}.{record.operation}",
                            record.object_type,
                            record.object_id,
                            approval_id=record.id,
                            approved_by=approver.id,
                        ),
                    ),
                    approval=transition,
                )
            )
        except (VersionMismatch, NotFound, Conflict) as exc:
            if isinstance(exc, Conflict) and "no longer pending" in str(exc):
                raise
            reason = "the object changed after the change was requested"
            if isinstance(exc, Conflict):
                reason = "the object was created by someone else after the change was requested"
            elif isinstance(exc, NotFound):
                reason = "the object was deleted after the change was requested"
            await self.store.transition_approval(
                ApprovalTransition(record.id, "pending", "failed", reason),
                entry(
                    approver.id,
                    "approval.failed",
                    record.object_type,
                    record.object_id,
                    approval_id=record.id,
                    reason=reason,
                ),
            )
            failed = await self.store.get_approval(record.id)
            await self.events.publish("system.approval.failed", approval_event(failed or record))
            raise Conflict(reason) from exc
        done = await self.store.get_approval(record.id)
        await self.events.publish("system.approval.approved", approval_event(done or record))
        await self._committed(record.operation, stored, record.previous, requester, "", approval_id=record.id)
        return stored


def approval_event(record: ApprovalRecord) -> dict[str, Any]:
    """Event payload (and API body) of an approval; secrets are never part of a record."""
    return {
        "id": record.id,
        "object_type": record.object_type,
        "object_id": record.object_id,
        "operation": record.operation,
        "requested_by": record.requested_by,
        "object": record.object,
        "previous": record.previous,
        "base_version": record.base_version,
        "groups": list(record.groups),
        "min_approvals": record.min_approvals,
        "expires_at": record.expires_at,
        "state": record.state,
        "created_at": record.created_at,
        "decided_at": record.decided_at,
        "reason": record.reason,
        "message": record.message,
        "rule": record.rule,
        "plugin": record.plugin,
        "votes": [
            {"user_id": v.user_id, "decision": v.decision, "comment": v.comment, "at": v.at}
            for v in record.votes
        ],
    }
