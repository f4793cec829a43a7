"""The studio's durable store: objects, users' tokens, approvals, audit, plugin installs, runs.

`base` defines the interface and its records; `sqlite` is the embedded default (one file).
"""

from __future__ import annotations

from celgate.engine.store.base import (
    ApprovalRecord,
    ApprovalTransition,
    AuditEntry,
    Change,
    Conflict,
    NotFound,
    PluginInstall,
    ScheduleRun,
    Store,
    StoredObject,
    StoreError,
    TokenRecord,
    VersionMismatch,
    Vote,
)
from celgate.engine.store.sqlite import SQLiteStore, open_sqlite

__all__ = [
    "ApprovalRecord",
    "ApprovalTransition",
    "AuditEntry",
    "Change",
    "Conflict",
    "NotFound",
    "PluginInstall",
    "SQLiteStore",
    "ScheduleRun",
    "Store",
    "StoreError",
    "StoredObject",
    "TokenRecord",
    "VersionMismatch",
    "Vote",
    "open_sqlite",
]
