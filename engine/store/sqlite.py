"""The embedded studio store: one SQLite file, versioned migrations, one writer thread.

All statements run on a single dedicated thread (SQLite connections are not shared across
threads), so the event loop never blocks on disk and writes are naturally serialised: a
version check and the write it guards can never interleave with another write.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from celgate.engine.objects import Secrets
from celgate.engine.store.base import (
    ApprovalRecord,
    ApprovalTransition,
    AuditEntry,
    Change,
    Conflict,
    NotFound,
    PluginInstall,
    ScheduleRun,
    StoredObject,
    TokenRecord,
    VersionMismatch,
    Vote,
)

T = TypeVar("T")

# Each entry moves the schema from version i to i+1 (PRAGMA user_version). Append only.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE objects (
        type TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, data TEXT NOT NULL,
        secret TEXT, created_at REAL NOT NULL, updated_at REAL NOT NULL,
        PRIMARY KEY (type, id)
    );
    CREATE TABLE tokens (
        id TEXT PRIMARY KEY, user_id TEXT NOT NULL, name TEXT NOT NULL, hash TEXT NOT NULL UNIQUE,
        created_at REAL NOT NULL, last_used_at REAL NOT NULL DEFAULT 0
    );
    CREATE INDEX tokens_user ON tokens (user_id);
    CREATE TABLE approvals (
        id TEXT PRIMARY KEY, object_type TEXT NOT NULL, object_id TEXT NOT NULL, operation TEXT NOT NULL,
        requested_by TEXT NOT NULL, object TEXT, previous TEXT, base_version INTEGER NOT NULL,
        groups_json TEXT NOT NULL, min_approvals INTEGER NOT NULL, expires_at REAL NOT NULL,
        state TEXT NOT NULL, created_at REAL NOT NULL, decided_at REAL NOT NULL DEFAULT 0,
        reason TEXT NOT NULL DEFAULT '', message TEXT NOT NULL DEFAULT '', rule TEXT NOT NULL DEFAULT '',
        plugin TEXT NOT NULL DEFAULT '', secret TEXT, clear_secret INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX approvals_state ON approvals (state, expires_at);
    CREATE TABLE approval_votes (
        approval_id TEXT NOT NULL, user_id TEXT NOT NULL, decision TEXT NOT NULL, comment TEXT NOT NULL,
        at REAL NOT NULL, PRIMARY KEY (approval_id, user_id)
    );
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
        object_type TEXT NOT NULL, object_id TEXT NOT NULL, detail TEXT NOT NULL
    );
    CREATE INDEX audit_object ON audit (object_type, object_id);
    CREATE TABLE plugins (
        id TEXT PRIMARY KEY, ref TEXT NOT NULL, config TEXT NOT NULL, enabled INTEGER NOT NULL,
        scopes TEXT NOT NULL, version INTEGER NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL
    );
    CREATE TABLE schedule_runs (
        run_id TEXT PRIMARY KEY, plugin_id TEXT NOT NULL, schedule_id TEXT NOT NULL, state TEXT NOT NULL,
        scheduled_at REAL NOT NULL, started_at REAL NOT NULL, finished_at REAL NOT NULL DEFAULT 0,
        error TEXT NOT NULL DEFAULT '', output TEXT NOT NULL DEFAULT '', trigger TEXT NOT NULL DEFAULT 'cron'
    );
    CREATE INDEX runs_schedule ON schedule_runs (plugin_id, schedule_id, started_at);
    """,
]


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class SQLiteStore:
    """`Store` on one SQLite file. Create it with `open_sqlite`."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="celgate-store")
        self._db: sqlite3.Connection | None = None

    # ------------------------------------------------------------------ plumbing

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._call, fn)

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._db is None:
            raise RuntimeError("store is closed")
        db = self._db
        db.execute("BEGIN IMMEDIATE")  # one transaction per call, holding the write lock from the start
        try:
            result = fn(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return result

    def _open(self) -> None:
        if self.path != ":memory:" and not os.path.exists(self.path):
            # the file holds LLM API keys: readable by the host's user only
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA busy_timeout=5000")
        current = db.execute("PRAGMA user_version").fetchone()[0]
        if current > len(MIGRATIONS):
            db.close()
            raise RuntimeError(
                f"{self.path}: schema version {current} is newer than this celgate ({len(MIGRATIONS)})"
            )
        for version in range(current, len(MIGRATIONS)):
            db.execute("BEGIN IMMEDIATE")
            for statement in MIGRATIONS[version].split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version={version + 1}")
            db.execute("COMMIT")
        self._db = db

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self._open)

    async def close(self) -> None:
        def _close() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, _close)
        self._pool.shutdown(wait=True)

    # ------------------------------------------------------------------ objects

    @staticmethod
    def _obj(row: sqlite3.Row | tuple[Any, ...]) -> StoredObject:
        return StoredObject(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5])

    _OBJ_COLS = "type, id, version, data, created_at, updated_at"

    async def get_object(self, object_type: str, object_id: str) -> StoredObject | None:
        def q(db: sqlite3.Connection) -> StoredObject | None:
            row = db.execute(
                f"SELECT {self._OBJ_COLS} FROM objects WHERE type=? AND id=?", (object_type, object_id)
            ).fetchone()
            return self._obj(row) if row else None

        return await self._run(q)

    async def list_objects(
        self, object_type: str, *, limit: int = 100, after: str = ""
    ) -> list[StoredObject]:
        def q(db: sqlite3.Connection) -> list[StoredObject]:
            rows = db.execute(
                f"SELECT {self._OBJ_COLS} FROM objects WHERE type=? AND id>? ORDER BY id LIMIT ?",
                (object_type, after, limit),
            ).fetchall()
            return [self._obj(r) for r in rows]

        return await self._run(q)

    async def count_objects(self, object_type: str) -> int:
        return await self._run(
            lambda db: int(
                db.execute("SELECT count(*) FROM objects WHERE type=?", (object_type,)).fetchone()[0]
            )
        )

    async def find_user_by_email(self, email: str) -> StoredObject | None:
        def q(db: sqlite3.Connection) -> StoredObject | None:
            row = db.execute(
                f"SELECT {self._OBJ_COLS} FROM objects WHERE type='user' AND json_extract(data, '$.email')=?",
                (email,),
            ).fetchone()
            return self._obj(row) if row else None

        return await self._run(q)

    async def get_secret(self, object_type: str, object_id: str) -> str | None:
        def q(db: sqlite3.Connection) -> str | None:
            row = db.execute(
                "SELECT secret FROM objects WHERE type=? AND id=?", (object_type, object_id)
            ).fetchone()
            return row[0] if row else None

        return await self._run(q)

    async def commit(self, change: Change) -> StoredObject:
        return await self._run(lambda db: self._commit(db, change))

    def _commit(self, db: sqlite3.Connection, c: Change) -> StoredObject:
        now = time.time()
        row = db.execute(
            f"SELECT {self._OBJ_COLS}, secret FROM objects WHERE type=? AND id=?",
            (c.object_type, c.object_id),
        ).fetchone()
        if c.approval is not None:
            self._transition(db, c.approval, now)
        if c.op == "create":
            if row is not None:
                raise Conflict(f"{c.object_type} {c.object_id!r} already exists")
            assert c.data is not None
            self._check_unique_email(db, c)
            secret = c.secrets.api_key
            data = self._with_secret_flag(c.object_type, c.data, secret)
            db.execute(
                "INSERT INTO objects (type, id, version, data, secret, created_at, updated_at) "
                "VALUES (?,?,?,?,?,?,?)",
                (c.object_type, c.object_id, 1, _dumps(data), secret, now, now),
            )
            result = StoredObject(c.object_type, c.object_id, 1, data, now, now)
        else:
            if row is None:
                raise NotFound(f"{c.object_type} {c.object_id!r} not found")
            current = self._obj(row)
            if c.expected_version is not None and current.version != c.expected_version:
                raise VersionMismatch(current.version)
            if c.op == "delete":
                db.execute("DELETE FROM objects WHERE type=? AND id=?", (c.object_type, c.object_id))
                if c.object_type == "user":
                    db.execute("DELETE FROM tokens WHERE user_id=?", (c.object_id,))
                result = current
            else:
                assert c.data is not None
                self._check_unique_email(db, c)
                secret = row[6]
                if c.secrets.clear_api_key:
                    secret = None
                elif c.secrets.api_key is not None:
                    secret = c.secrets.api_key
                data = self._with_secret_flag(c.object_type, c.data, secret)
                version = current.version + 1
                db.execute(
                    "UPDATE objects SET version=?, data=?, secret=?, updated_at=? WHERE type=? AND id=?",
                    (version, _dumps(data), secret, now, c.object_type, c.object_id),
                )
                result = StoredObject(c.object_type, c.object_id, version, data, current.created_at, now)
        self._audit(db, list(c.audit), now, version=result.version if c.op != "delete" else current.version)
        return result

    @staticmethod
    def _with_secret_flag(object_type: str, data: dict[str, Any], secret: str | None) -> dict[str, Any]:
        if object_type != "llm":
            return data
        return {**data, "api_key_set": secret is not None}

    @staticmethod
    def _check_unique_email(db: sqlite3.Connection, c: Change) -> None:
        if c.object_type != "user" or c.data is None:
            return
        row = db.execute(
            "SELECT id FROM objects WHERE type='user' AND json_extract(data, '$.email')=? AND id<>?",
            (c.data.get("email", ""), c.object_id),
        ).fetchone()
        if row:
            raise Conflict(f"a user with email {c.data.get('email')!r} already exists")

    # ------------------------------------------------------------------ tokens

    async def create_token(self, record: TokenRecord, token_hash: str, audit: AuditEntry) -> None:
        def q(db: sqlite3.Connection) -> None:
            if not db.execute(
                "SELECT 1 FROM objects WHERE type='user' AND id=?", (record.user_id,)
            ).fetchone():
                raise NotFound(f"user {record.user_id!r} not found")
            db.execute(
                "INSERT INTO tokens (id, user_id, name, hash, created_at) VALUES (?,?,?,?,?)",
                (record.id, record.user_id, record.name, token_hash, record.created_at),
            )
            self._audit(db, [audit], time.time())

        await self._run(q)

    async def user_for_token(self, token_hash: str) -> tuple[TokenRecord, StoredObject] | None:
        def q(db: sqlite3.Connection) -> tuple[TokenRecord, StoredObject] | None:
            row = db.execute(
                "SELECT t.id, t.user_id, t.name, t.created_at, t.last_used_at, "
                "o.type, o.id, o.version, o.data, o.created_at, o.updated_at "
                "FROM tokens t JOIN objects o ON o.type='user' AND o.id=t.user_id WHERE t.hash=?",
                (token_hash,),
            ).fetchone()
            if not row:
                return None
            now = time.time()
            if now - row[4] > 60:  # coarse: a write per request would serialise every call
                db.execute("UPDATE tokens SET last_used_at=? WHERE id=?", (now, row[0]))
            return TokenRecord(row[0], row[1], row[2], row[3], row[4]), self._obj(row[5:])

        return await self._run(q)

    async def list_tokens(self, user_id: str) -> list[TokenRecord]:
        def q(db: sqlite3.Connection) -> list[TokenRecord]:
            rows = db.execute(
                "SELECT id, user_id, name, created_at, last_used_at FROM tokens "
                "WHERE user_id=? ORDER BY created_at",
                (user_id,),
            ).fetchall()
            return [TokenRecord(*r) for r in rows]

        return await self._run(q)

    async def delete_token(self, user_id: str, token_id: str, audit: AuditEntry) -> None:
        def q(db: sqlite3.Connection) -> None:
            cur = db.execute("DELETE FROM tokens WHERE id=? AND user_id=?", (token_id, user_id))
            if cur.rowcount == 0:
                raise NotFound(f"token {token_id!r} not found")
            self._audit(db, [audit], time.time())

        await self._run(q)

    # ------------------------------------------------------------------ approvals

    _APPROVAL_COLS = (
        "id, object_type, object_id, operation, requested_by, object, previous, base_version, groups_json, "
        "min_approvals, expires_at, state, created_at, decided_at, reason, message, rule, plugin"
    )

    def _approval(self, db: sqlite3.Connection, row: tuple[Any, ...]) -> ApprovalRecord:
        votes = db.execute(
            "SELECT user_id, decision, comment, at FROM approval_votes WHERE approval_id=? ORDER BY at",
            (row[0],),
        ).fetchall()
        return ApprovalRecord(
            id=row[0],
            object_type=row[1],
            object_id=row[2],
            operation=row[3],
            requested_by=row[4],
            object=json.loads(row[5]) if row[5] else None,
            previous=json.loads(row[6]) if row[6] else None,
            base_version=row[7],
            groups=tuple(json.loads(row[8])),
            min_approvals=row[9],
            expires_at=row[10],
            state=row[11],
            created_at=row[12],
            decided_at=row[13],
            reason=row[14],
            message=row[15],
            rule=row[16],
            plugin=row[17],
            votes=tuple(Vote(*v) for v in votes),
        )

    async def create_approval(self, record: ApprovalRecord, secrets: Secrets, audit: AuditEntry) -> None:
        def q(db: sqlite3.Connection) -> None:
            db.execute(
                f"INSERT INTO approvals ({self._APPROVAL_COLS}, secret, clear_secret) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    record.id,
                    record.object_type,
                    record.object_id,
                    record.operation,
                    record.requested_by,
                    _dumps(record.object) if record.object is not None else None,
                    _dumps(record.previous) if record.previous is not None else None,
                    record.base_version,
                    _dumps(list(record.groups)),
                    record.min_approvals,
                    record.expires_at,
                    record.state,
                    record.created_at,
                    record.decided_at,
                    record.reason,
                    record.message,
                    record.rule,
                    record.plugin,
                    secrets.api_key,
                    int(secrets.clear_api_key),
                ),
            )
            self._audit(db, [audit], time.time())

        await self._run(q)

    async def get_approval(self, approval_id: str) -> ApprovalRecord | None:
        def q(db: sqlite3.Connection) -> ApprovalRecord | None:
            row = db.execute(
                f"SELECT {self._APPROVAL_COLS} FROM approvals WHERE id=?", (approval_id,)
            ).fetchone()
            return self._approval(db, row) if row else None

        return await self._run(q)

    async def get_approval_secrets(self, approval_id: str) -> Secrets:
        def q(db: sqlite3.Connection) -> Secrets:
            row = db.execute(
                "SELECT secret, clear_secret FROM approvals WHERE id=?", (approval_id,)
            ).fetchone()
            if not row:
                raise NotFound(f"approval {approval_id!r} not found")
            return Secrets(api_key=row[0], clear_api_key=bool(row[1]))

        return await self._run(q)

    async def list_approvals(self, *, state: str = "", limit: int = 100) -> list[ApprovalRecord]:
        def q(db: sqlite3.Connection) -> list[ApprovalRecord]:
            if state:
                rows = db.execute(
                    f"SELECT {self._APPROVAL_COLS} FROM approvals WHERE state=? ORDER BY created_at LIMIT ?",
                    (state, limit),
                ).fetchall()
            else:
                rows = db.execute(
                    f"SELECT {self._APPROVAL_COLS} FROM approvals ORDER BY created_at LIMIT ?", (limit,)
                ).fetchall()
            return [self._approval(db, r) for r in rows]

        return await self._run(q)

    async def add_vote(self, approval_id: str, vote: Vote, audit: AuditEntry) -> ApprovalRecord:
        def q(db: sqlite3.Connection) -> ApprovalRecord:
            row = db.execute(
                f"SELECT {self._APPROVAL_COLS} FROM approvals WHERE id=?", (approval_id,)
            ).fetchone()
            if not row:
                raise NotFound(f"approval {approval_id!r} not found")
            if row[11] != "pending":
                raise Conflict(f"approval is {row[11]}, not pending")
            if db.execute(
                "SELECT 1 FROM approval_votes WHERE approval_id=? AND user_id=?", (approval_id, vote.user_id)
            ).fetchone():
                raise Conflict("you have already voted on this approval")
            db.execute(
                "INSERT INTO approval_votes (approval_id, user_id, decision, comment, at) VALUES (?,?,?,?,?)",
                (approval_id, vote.user_id, vote.decision, vote.comment, vote.at),
            )
            self._audit(db, [audit], time.time())
            return self._approval(db, row)

        return await self._run(q)

    def _transition(self, db: sqlite3.Connection, t: ApprovalTransition, now: float) -> None:
        cur = db.execute(
            "UPDATE approvals SET state=?, decided_at=?, reason=?, secret=NULL WHERE id=? AND state=?",
            (t.new_state, now, t.reason, t.approval_id, t.expected_state),
        )
        if cur.rowcount == 0:
            raise Conflict(f"approval {t.approval_id!r} is no longer {t.expected_state}")

    async def transition_approval(self, transition: ApprovalTransition, audit: AuditEntry) -> bool:
        def q(db: sqlite3.Connection) -> bool:
            now = time.time()
            try:
                self._transition(db, transition, now)
            except Conflict:
                return False
            self._audit(db, [audit], now)
            return True

        return await self._run(q)

    # ------------------------------------------------------------------ audit

    @staticmethod
    def _audit(db: sqlite3.Connection, entries: list[AuditEntry], now: float, *, version: int = 0) -> None:
        for e in entries:
            detail = dict(e.detail)
            if version and "version" not in detail:
                detail["version"] = version
            db.execute(
                "INSERT INTO audit (at, actor, action, object_type, object_id, detail) VALUES (?,?,?,?,?,?)",
                (e.at or now, e.actor, e.action, e.object_type, e.object_id, _dumps(detail)),
            )

    async def add_audit(self, entries: list[AuditEntry]) -> None:
        await self._run(lambda db: self._audit(db, entries, time.time()))

    async def list_audit(
        self, *, limit: int = 100, object_type: str = "", object_id: str = "", before_id: int = 0
    ) -> list[AuditEntry]:
        def q(db: sqlite3.Connection) -> list[AuditEntry]:
            where, args = ["1=1"], []
            if object_type:
                where.append("object_type=?")
                args.append(object_type)
            if object_id:
                where.append("object_id=?")
                args.append(object_id)
            if before_id:
                where.append("id<?")
                args.append(str(before_id))
            rows = db.execute(
                "SELECT id, at, actor, action, object_type, object_id, detail FROM audit "
                f"WHERE {' AND '.join(where)} "
                "ORDER BY id DESC LIMIT ?",
                (*args, limit),
            ).fetchall()
            return [AuditEntry(r[2], r[3], r[4], r[5], json.loads(r[6]), r[1], r[0]) for r in rows]

        return await self._run(q)

    # ------------------------------------------------------------------ plugin installs

    @staticmethod
    def _plugin(row: tuple[Any, ...]) -> PluginInstall:
        return PluginInstall(
            row[0],
            row[1],
            json.loads(row[2]),
            bool(row[3]),
            tuple(json.loads(row[4])),
            row[5],
            row[6],
            row[7],
        )

    _PLUGIN_COLS = "id, ref, config, enabled, scopes, version, created_at, updated_at"

    async def put_plugin(
        self, record: PluginInstall, expected_version: int | None, audit: AuditEntry
    ) -> PluginInstall:
        def q(db: sqlite3.Connection) -> PluginInstall:
            now = time.time()
            row = db.execute(f"SELECT {self._PLUGIN_COLS} FROM plugins WHERE id=?", (record.id,)).fetchone()
            if row is None:
                if expected_version:
                    raise NotFound(f"plugin {record.id!r} not found")
                created, version = now, 1
            else:
                if expected_version is None or expected_version == 0:
                    raise Conflict(f"plugin {record.id!r} is already installed")
                if row[5] != expected_version:
                    raise VersionMismatch(row[5])
                created, version = row[6], row[5] + 1
            db.execute(
                "INSERT OR REPLACE INTO plugins "
                "(id, ref, config, enabled, scopes, version, created_at, updated_at) "
                "VALUES (?,?,?,?,?,?,?,?)",
                (
                    record.id,
                    record.ref,
                    _dumps(record.config),
                    int(record.enabled),
                    _dumps(list(record.scopes)),
                    version,
                    created,
                    now,
                ),
            )
            self._audit(db, [audit], now, version=version)
            return PluginInstall(
                record.id, record.ref, record.config, record.enabled, record.scopes, version, created, now
            )

        return await self._run(q)

    async def get_plugin(self, plugin_id: str) -> PluginInstall | None:
        def q(db: sqlite3.Connection) -> PluginInstall | None:
            row = db.execute(f"SELECT {self._PLUGIN_COLS} FROM plugins WHERE id=?", (plugin_id,)).fetchone()
            return self._plugin(row) if row else None

        return await self._run(q)

    async def list_plugins(self) -> list[PluginInstall]:
        return await self._run(
            lambda db: [
                self._plugin(r) for r in db.execute(f"SELECT {self._PLUGIN_COLS} FROM plugins ORDER BY id")
            ]
        )

    async def delete_plugin(self, plugin_id: str, expected_version: int | None, audit: AuditEntry) -> None:
        def q(db: sqlite3.Connection) -> None:
            row = db.execute("SELECT version FROM plugins WHERE id=?", (plugin_id,)).fetchone()
            if row is None:
                raise NotFound(f"plugin {plugin_id!r} not found")
            if expected_version is not None and row[0] != expected_version:
                raise VersionMismatch(row[0])
            db.execute("DELETE FROM plugins WHERE id=?", (plugin_id,))
            self._audit(db, [audit], time.time())

        await self._run(q)

    # ------------------------------------------------------------------ schedule runs

    _RUN_COLS = (
        "run_id, plugin_id, schedule_id, state, scheduled_at, started_at, finished_at, error, output, trigger"
    )

    async def start_run(self, run: ScheduleRun) -> None:
        def q(db: sqlite3.Connection) -> None:
            db.execute(
                f"INSERT INTO schedule_runs ({self._RUN_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    run.run_id,
                    run.plugin_id,
                    run.schedule_id,
                    run.state,
                    run.scheduled_at,
                    run.started_at,
                    run.finished_at,
                    run.error,
                    run.output,
                    run.trigger,
                ),
            )

        await self._run(q)

    async def finish_run(self, run: ScheduleRun) -> None:
        await self._run(
            lambda db: db.execute(
                "UPDATE schedule_runs SET state=?, finished_at=?, error=?, output=? WHERE run_id=?",
                (run.state, run.finished_at, run.error, run.output, run.run_id),
            )
        )

    async def list_runs(self, plugin_id: str, schedule_id: str, *, limit: int = 50) -> list[ScheduleRun]:
        def q(db: sqlite3.Connection) -> list[ScheduleRun]:
            rows = db.execute(
                f"SELECT {self._RUN_COLS} FROM schedule_runs WHERE plugin_id=? AND schedule_id=? "
                "ORDER BY started_at DESC, rowid DESC LIMIT ?",
                (plugin_id, schedule_id, limit),
            ).fetchall()
            return [ScheduleRun(*r) for r in rows]

        return await self._run(q)

    async def interrupt_running(self) -> int:
        def q(db: sqlite3.Connection) -> int:
            cur = db.execute(
                "UPDATE schedule_runs SET state='interrupted', finished_at=?, "
                "error='host restarted during the run' "
                "WHERE state='running'",
                (time.time(),),
            )
            return cur.rowcount

        return await self._run(q)


async def open_sqlite(path: str) -> SQLiteStore:
    """Open (creating and migrating as needed) the store in the SQLite file at `path`."""
    store = SQLiteStore(path)
    try:
        await store.open()
    except BaseException:
        store._pool.shutdown(wait=False)
        raise
    return store


__all__ = ["MIGRATIONS", "NotFound", "SQLiteStore", "open_sqlite"]
