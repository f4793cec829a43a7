"""Audit entries and change events: the two records every studio step leaves behind.

Audit rows are written by the store in the same transaction as the change they describe.
Events are published on the in-process event bus after the change commits; publishing
never fails the change (a broken subscriber is logged, not propagated).
"""

from __future__ import annotations

import inspect
import logging
import time
from typing import Any, Protocol

from celgate.engine.store.base import AuditEntry

log = logging.getLogger("celgate.studio")


class EventPublisher(Protocol):
    """The part of the event bus the studio uses (`engine/eventbus.py`)."""

    def publish(self, topic: str, payload: dict[str, Any]) -> Any: ...


def entry(actor: str, action: str, object_type: str = "", object_id: str = "", **detail: Any) -> AuditEntry:
    """An audit entry stamped now."""
    return AuditEntry(actor, action, object_type, object_id, detail, time.time())


def audit_json(e: AuditEntry) -> dict[str, Any]:
    """The API representation of an audit row."""
    return {
        "id": e.id,
        "at": e.at,
        "actor": e.actor,
        "action": e.action,
        "object_type": e.object_type,
        "object_id": e.object_id,
        "detail": e.detail,
    }


class Events:
    """Publishes studio events on the bus, if there is one."""

    def __init__(self, bus: EventPublisher | None) -> None:
        self.bus = bus

    async def publish(self, topic: str, payload: dict[str, Any]) -> None:
        if self.bus is None:
            return
        try:
            result = self.bus.publish(topic, payload)
            if inspect.isawaitable(result):
                await result
        except Exception:  # the change is committed; a subscriber's failure must not undo it
            log.exception("publishing %s failed", topic)
