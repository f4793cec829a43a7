"""The studio store interface and the records it keeps.

Every object write goes through one method, `commit`, which applies a `Change` atomically:
the version check (If-Match), the write, the audit rows and, for an approved change, the
approval's state transition all commit together or not at all. A PostgreSQL store later
implements the same protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from celgate.engine.objects import Secrets


class StoreError(Exception):
    """Base class of store errors."""


class NotFound(StoreError):
    """The record does not exist."""


class Conflict(StoreError):
    """A record with that id already exists, or a state transition no longer applies."""


class VersionMismatch(StoreError):
    """The record changed since the caller read it (If-Match failed)."""

    def __init__(self, current: int) -> None:
        super().__init__(f"version is {current}")
        self.current = current


@dataclass(frozen=True)
class StoredObject:
    """One studio object with its version. `data` never contains a secret."""

    type: str
    id: str
    version: int
    data: dict[str, Any]
    created_at: float
    updated_at: float

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


@dataclass(frozen=True)
class AuditEntry:
    """One audited step. `actor` is a user id, or `host` / `scheduler` for the system."""

    actor: str
    action: str
    object_type: str = ""
    object_id: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    at: float = 0.0
    id: int = 0


@dataclass(frozen=True)
class ApprovalTransition:
    """Move an approval from `expected_state` to `new_state` in the same transaction."""

    approval_id: str
    expected_state: str
    new_state: str
    reason: str = ""


@dataclass(frozen=True)
class Change:
    """An object write. `expected_version` None on update/delete means unconditional."""

    op: str  # create | update | delete
    object_type: str
    object_id: str
    data: dict[str, Any] | None = None
    secrets: Secrets = field(default_factory=Secrets)
    expected_version: int | None = None
    audit: tuple[AuditEntry, ...] = ()
    approval: ApprovalTransition | None = None


@dataclass(frozen=True)
class TokenRecord:
    """An API token's metadata; the token itself is only ever stored as a hash."""

    id: str
    user_id: str
    name: str
    created_at: float
    last_used_at: float = 0.0


@dataclass(frozen=True)
class Vote:
    user_id: str
    decision: str  # approve | reject
    comment: str
    at: float


@dataclass(frozen=True)
class ApprovalRecord:
    """A parked change waiting for approvers.

    `base_version` is the object's version when the change was requested (0 for a create):
    the change is applied only if the object still has that version.
    """

    id: str
    object_type: str
    object_id: str
    operation: str
    requested_by: str
    object: dict[str, Any] | None
    previous: dict[str, Any] | None
    base_version: int
    groups: tuple[str, ...]
    min_approvals: int
    expires_at: float
    state: str  # pending | approved (applied) | rejected | expired | failed
    created_at: float
    decided_at: float = 0.0
    reason: str = ""
    message: str = ""
    rule: str = ""
    plugin: str = ""
    votes: tuple[Vote, ...] = ()


@dataclass(frozen=True)
class PluginInstall:
    """An operator's record of an installed plugin (the supervisor acts on it)."""

    id: str
    ref: str
    config: dict[str, Any]
    enabled: bool
    scopes: tuple[str, ...]
    version: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


@dataclass(frozen=True)
class ScheduleRun:
    """One run of a scheduled task. state: running | ok | error | timeout | skipped | interrupted."""

    run_id: str
    plugin_id: str
    schedule_id: str
    state: str
    scheduled_at: float
    started_at: float
    finished_at: float = 0.0
    error: str = ""
    output: str = ""
    trigger: str = "cron"  # cron | manual


class Store(Protocol):
    """What the studio needs from a store. All methods are coroutines."""

    async def close(self) -> None: ...

    # objects
    async def get_object(self, object_type: str, object_id: str) -> StoredObject | None: ...
    async def list_objects(
        self, object_type: str, *, limit: int = 100, after: str = ""
    ) -> list[StoredObject]: ...
    async def commit(self, change: Change) -> StoredObject: ...
    async def get_secret(self, object_type: str, object_id: str) -> str | None: ...
    async def count_objects(self, object_type: str) -> int: ...
    async def find_user_by_email(self, email: str) -> StoredObject | None: ...

    # tokens
    async def create_token(self, record: TokenRecord, token_hash: str, audit: AuditEntry) -> None: ...
    async def user_for_token(self, token_hash: str) -> tuple[TokenRecord, StoredObject] | None: ...
    async def list_tokens(self, user_id: str) -> list[TokenRecord]: ...
    async def delete_token(self, user_id: str, token_id: str, audit: AuditEntry) -> None: ...

    # approvals
    async def create_approval(self, record: ApprovalRecord, secrets: Secrets, audit: AuditEntry) -> None: ...
    async def get_approval(self, approval_id: str) -> ApprovalRecord | None: ...
    async def get_approval_secrets(self, approval_id: str) -> Secrets: ...
    async def list_approvals(self, *, state: str = "", limit: int = 100) -> list[ApprovalRecord]: ...
    async def add_vote(self, approval_id: str, vote: Vote, audit: AuditEntry) -> ApprovalRecord: ...
    async def transition_approval(self, transition: ApprovalTransition, audit: AuditEntry) -> bool: ...

    # audit
    async def add_audit(self, entries: list[AuditEntry]) -> None: ...
    async def list_audit(
        self, *, limit: int = 100, object_type: str = "", object_id: str = "", before_id: int = 0
    ) -> list[AuditEntry]: ...

    # plugin installs
    async def put_plugin(
        self, record: PluginInstall, expected_version: int | None, audit: AuditEntry
    ) -> PluginInstall: ...
    async def get_plugin(self, plugin_id: str) -> PluginInstall | None: ...
    async def list_plugins(self) -> list[PluginInstall]: ...
    async def delete_plugin(
        self, plugin_id: str, expected_version: int | None, audit: AuditEntry
    ) -> None: ...

    # schedule runs
    async def start_run(self, run: ScheduleRun) -> None: ...
    async def finish_run(self, run: ScheduleRun) -> None: ...
    async def list_runs(self, plugin_id: str, schedule_id: str, *, limit: int = 50) -> list[ScheduleRun]: ...
    async def interrupt_running(self) -> int: ...
