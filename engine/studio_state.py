"""The studio's control-plane state: store, hooks, change pipeline, approvals, scheduler.

`open_studio(db_path, plugins=..., events=...)` opens (and migrates) the SQLite store, wires
the services, bootstraps the first admin on an empty store and starts the scheduler with
the approval-expiry job. `studio_api.studio_routes(state)` serves it over HTTP.

Bootstrapping: when the store has no user, an admin user is created (email from
`CELGATE_ADMIN_EMAIL`, default `admin@localhost`, group `admins`) with one API token, taken
from `CELGATE_ADMIN_TOKEN` if set, otherwise generated and printed once on stderr.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from celgate.engine.approvals import Approvals
from celgate.engine.audit import EventPublisher, Events, entry
from celgate.engine.changes import DEFAULT_APPROVAL_EXPIRY, ChangeService
from celgate.engine.objecthooks import HookDispatcher, HookTargets, PluginHookTargets
from celgate.engine.objects import zero
from celgate.engine.scheduler import Scheduler, add_plugin_schedules
from celgate.engine.store.base import Change, Store, StoredObject, TokenRecord
from celgate.engine.store.sqlite import open_sqlite

TOKEN_PREFIX = "cgt_"


def hash_token(token: str) -> str:
    """Tokens are stored only as SHA-256 hashes (they are random, so no salt is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


@dataclass
class StudioState:
    """Everything the studio routes need."""

    store: Store
    hooks: HookDispatcher
    events: Events
    changes: ChangeService
    approvals: Approvals
    scheduler: Scheduler
    bootstrap_token: str | None = None  # set only when this start created the admin's token
    # live status of a plugin (healthy, pid, capabilities...) for the plugin routes; set by the host
    plugin_status: Callable[[str], dict[str, Any] | None] | None = None

    async def issue_token(self, user_id: str, name: str, actor: str) -> tuple[TokenRecord, str]:
        """Create an API token for `user_id`; the token itself is returned once, never stored."""
        token = new_token()
        record = TokenRecord(secrets.token_hex(6), user_id, name, time.time())
        await self.store.create_token(
            record,
            hash_token(token),
            entry(actor, "token.created", "user", user_id, token_id=record.id, name=name),
        )
        return record, token

    async def authenticate(self, token: str) -> StoredObject | None:
        """The active user owning `token`, or None."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        found = await self.store.user_for_token(hash_token(token))
        if found is None or not found[1].data.get("active", True):
            return None
        return found[1]

    async def refresh_plugins(self, handles: Iterable[Any]) -> list[str]:
        """Re-read hooks and schedules from the supervised plugins (after start and every reload).

        `handles` are `engine.handle.PluginHandle`s (studio runtime). Hook registrations are
        refreshed when the studio was opened with a `PluginHookTargets`; manifest schedules are
        (re)registered. Returns problems to log (a plugin with invalid schedules is skipped).
        """
        handles = list(handles)
        if isinstance(self.hooks.targets, PluginHookTargets):
            await self.hooks.targets.refresh(handles)
        return add_plugin_schedules(self.scheduler, handles)

    async def close(self) -> None:
        await self.scheduler.stop()
        await self.hooks.drain()
        await self.store.close()


async def _bootstrap(state: StudioState, admin_email: str | None, admin_token: str | None) -> None:
    if await state.store.count_objects("user") > 0:
        return
    email = admin_email or os.environ.get("CELGATE_ADMIN_EMAIL") or "admin@localhost"
    given = admin_token or os.environ.get("CELGATE_ADMIN_TOKEN") or ""
    admin = {
        **zero("user"),
        "id": "admin",
        "email": email,
        "name": "Administrator",
        "role": "admin",
        "groups": ["admins"],
    }
    await state.store.commit(
        Change(
            "create",
            "user",
            "admin",
            admin,
            audit=(entry("host", "user.create", "user", "admin", bootstrap=True),),
        )
    )
    if given:
        if not given.startswith(TOKEN_PREFIX) or len(given) < len(TOKEN_PREFIX) + 16:
            raise ValueError(
                f"CELGATE_ADMIN_TOKEN must start with {TOKEN_PREFIX!r} and have at least 16 more characters"
            )
        record = TokenRecord(secrets.token_hex(6), "admin", "bootstrap", time.time())
        await state.store.create_token(
            record,
            hash_token(given),
            entry("host", "token.created", "user", "admin", token_id=record.id, name="bootstrap"),
        )
        return
    _, token = await state.issue_token("admin", "bootstrap", "host")
    state.bootstrap_token = token
    print(f"celgate studio: created admin user {email}; its API token (shown once): {token}", file=sys.stderr)


async def open_studio(
    db_path: str,
    *,
    plugins: HookTargets | None = None,
    events: EventPublisher | None = None,
    start_scheduler: bool = True,
    approval_sweep_every: float = 30.0,
    default_approval_expiry: float = DEFAULT_APPROVAL_EXPIRY,
    admin_email: str | None = None,
    admin_token: str | None = None,
) -> StudioState:
    """Open the studio on the SQLite file `db_path` (created if missing)."""
    store = await open_sqlite(db_path)
    try:
        bus = Events(events)
        hooks = HookDispatcher(plugins)
        changes = ChangeService(store, hooks, bus, default_approval_expiry=default_approval_expiry)
        approvals = Approvals(store, changes, bus)
        scheduler = Scheduler(store, bus)
        state = StudioState(store, hooks, bus, changes, approvals, scheduler)
        await _bootstrap(state, admin_email, admin_token)
        scheduler.add_job("approvals.expire", approval_sweep_every, approvals.expire_due)
        if start_scheduler:
            await scheduler.start()
        return state
    except BaseException:
        await store.close()
        raise
