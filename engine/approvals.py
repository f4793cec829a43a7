"""Approvals: votes on parked changes, application when complete, rejection and expiry.

A pending change (created by `ChangeService` when a before-hook answers "pending approval")
is stored durably. Who may vote: an active user whose role is `approver` or `admin`, who is a
member of at least one of the approval's groups, and who is not the requester. Each user votes
once. One rejection rejects the change; `min_approvals` distinct approvals apply it, and only
if the object has not changed since the request (otherwise the approval fails with 409).
The scheduler calls `expire_due` to expire approvals past their deadline.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from celgate.engine.audit import Events, entry
from celgate.engine.changes import ChangeService, approval_event
from celgate.engine.objecthooks import Actor
from celgate.engine.store.base import (
    ApprovalRecord,
    ApprovalTransition,
    Conflict,
    NotFound,
    Store,
    StoredObject,
    Vote,
)

VOTER_ROLES = ("approver", "admin")


@dataclass
class ApprovalDenied(Exception):
    """The user may not vote on this approval (HTTP 403)."""

    message: str

    def __str__(self) -> str:
        return self.message


class Approvals:
    """The approval queue."""

    def __init__(self, store: Store, changes: ChangeService, events: Events) -> None:
        self.store = store
        self.changes = changes
        self.events = events

    async def get(self, approval_id: str) -> ApprovalRecord:
        record = await self.store.get_approval(approval_id)
        if record is None:
            raise NotFound(f"approval {approval_id!r} not found")
        return record

    async def list(self, state: str = "", limit: int = 100) -> list[ApprovalRecord]:
        return await self.store.list_approvals(state=state, limit=limit)

    def check_voter(self, record: ApprovalRecord, user: StoredObject) -> None:
        data = user.data
        if user.id == record.requested_by:
            raise ApprovalDenied("the requester cannot approve or reject their own change")
        if not data.get("active", True):
            raise ApprovalDenied("inactive users cannot vote")
        if data.get("role") not in VOTER_ROLES:
            raise ApprovalDenied("only users with the approver or admin role can vote")
        if not set(data.get("groups", [])) & set(record.groups):
            raise ApprovalDenied(f"only members of {', '.join(record.groups)} can vote on this change")

    async def vote(
        self, approval_id: str, user: StoredObject, decision: str, comment: str = ""
    ) -> ApprovalRecord:
        """Record `user`'s vote (approve | reject) and act on it. Returns the updated record."""
        if decision not in ("approve", "reject"):
            raise ValueError("decision must be approve or reject")
        record = await self.get(approval_id)
        if record.state == "pending" and record.expires_at <= time.time():
            await self._expire(record, "host")
            record = await self.get(approval_id)
        if record.state != "pending":
            raise Conflict(f"approval is {record.state}, not pending")
        self.check_voter(record, user)
        voter = Actor(user.id, str(user.data.get("email", "")), tuple(user.data.get("groups", [])))
        record = await self.store.add_vote(
            approval_id,
            Vote(user.id, decision, comment, time.time()),
            entry(
                user.id,
                "approval.voted",
                record.object_type,
                record.object_id,
                approval_id=approval_id,
                decision=decision,
                comment=comment,
            ),
        )
        await self.events.publish(
            "system.approval.voted", {**approval_event(record), "voter": user.id, "decision": decision}
        )
        if decision == "reject":
            reason = comment or f"rejected by {user.id}"
            ok = await self.store.transition_approval(
                ApprovalTransition(approval_id, "pending", "rejected", reason),
                entry(
                    user.id,
                    "approval.rejected",
                    record.object_type,
                    record.object_id,
                    approval_id=approval_id,
                    reason=reason,
                ),
            )
            if ok:
                await self.events.publish(
                    "system.approval.rejected", approval_event(await self.get(approval_id))
                )
            return await self.get(approval_id)
        approvers = {v.user_id for v in record.votes if v.decision == "approve"}
        if len(approvers) >= record.min_approvals:
            try:
                await self.changes.apply_approved(record, voter)
            except Conflict:
                if (await self.get(approval_id)).state != "approved":
                    raise  # the object changed: the approval failed
                # a concurrent vote applied it first: nothing left to do
        return await self.get(approval_id)

    async def expire_due(self, now: float | None = None) -> int:
        """Expire every pending approval whose deadline has passed; returns how many."""
        now = time.time() if now is None else now
        count = 0
        for record in await self.store.list_approvals(state="pending", limit=10_000):
            if record.expires_at <= now and await self._expire(record, "scheduler"):
                count += 1
        return count

    async def _expire(self, record: ApprovalRecord, actor: str) -> bool:
        ok = await self.store.transition_approval(
            ApprovalTransition(record.id, "pending", "expired", "expired before enough approvals"),
            entry(actor, "approval.expired", record.object_type, record.object_id, approval_id=record.id),
        )
        if ok:
            await self.events.publish("system.approval.expired", approval_event(await self.get(record.id)))
        return ok
