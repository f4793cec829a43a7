"""Key-value stores behind the Service API: in memory, and SQLite for one machine.

Keys are namespaced by the caller (the Service API passes the plugin id as `namespace`), values
are bytes, a TTL is optional, and `list` pages through keys in order.
"""

from __future__ import annotations

import asyncio
import bisect
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

DEFAULT_PAGE = 100
MAX_PAGE = 1000
MAX_KEY_BYTES = 512
MAX_VALUE_BYTES = 4 * 1024 * 1024


class KVError(ValueError):
    """A key or value the store refuses (too long, empty)."""


def check(key: str, value: bytes | None = None) -> None:
    if not key:
        raise KVError("empty key")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise KVError(f"key longer than {MAX_KEY_BYTES} bytes")
    if value is not None and len(value) > MAX_VALUE_BYTES:
        raise KVError(f"value larger than {MAX_VALUE_BYTES} bytes")


def page_size(limit: int) -> int:
    return DEFAULT_PAGE if limit <= 0 else min(limit, MAX_PAGE)


class KVStore(Protocol):
    async def get(self, namespace: str, key: str) -> bytes | None: ...
    async def set(self, namespace: str, key: str, value: bytes, ttl_ms: int = 0) -> bool: ...
    async def delete(self, namespace: str, key: str) -> bool: ...
    async def list(
        self, namespace: str, prefix: str = "", limit: int = 0, after: str = ""
    ) -> tuple[list[str], bool]: ...
    async def close(self) -> None: ...


class MemoryKV:
    """A dict per namespace; expired entries vanish on read."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._data: dict[str, dict[str, tuple[bytes, float | None]]] = {}

    def _live(self, namespace: str, key: str) -> bytes | None:
        space = self._data.get(namespace)
        if space is None or key not in space:
            return None
        value, expires = space[key]
        if expires is not None and expires <= self._clock():
            del space[key]
            return None
        return value

    async def get(self, namespace: str, key: str) -> bytes | None:
        return self._live(namespace, key)

    async def set(self, namespace: str, key: str, value: bytes, ttl_ms: int = 0) -> bool:
        check(key, value)
        created = self._live(namespace, key) is None
        expires = self._clock() + ttl_ms / 1000 if ttl_ms > 0 else None
        self._data.setdefault(namespace, {})[key] = (bytes(value), expires)
        return created

    async def delete(self, namespace: str, key: str) -> bool:
        existed = self._live(namespace, key) is not None
        self._data.get(namespace, {}).pop(key, None)
        return existed

    async def list(
        self, namespace: str, prefix: str = "", limit: int = 0, after: str = ""
    ) -> tuple[list[str], bool]:
        size = page_size(limit)
        keys = sorted(k for k in list(self._data.get(namespace, {})) if k.startswith(prefix))
        start = bisect.bisect_right(keys, after) if after else 0
        out: list[str] = []
        for key in keys[start:]:
            if self._live(namespace, key) is None:
                continue
            if len(out) == size:
                return out, True
            out.append(key)
        return out, False

    async def close(self) -> None:
        self._data.clear()


class SQLiteKV:
    """One table, (namespace, key) primary key, expiry as wall-clock ms. Calls run in a thread."""

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS plugin_kv (namespace TEXT NOT NULL, key TEXT NOT NULL, "
            "value BLOB NOT NULL, expires_ms INTEGER, PRIMARY KEY (namespace, key)) WITHOUT ROWID"
        )
        self._lock = asyncio.Lock()

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def _run(self, fn: Callable[[], object]) -> object:
        async with self._lock:
            return await asyncio.to_thread(fn)

    async def get(self, namespace: str, key: str) -> bytes | None:
        def op() -> bytes | None:
            row = self._db.execute(
                "SELECT value FROM plugin_kv WHERE namespace=? AND key=? "
                "AND (expires_ms IS NULL OR expires_ms>?)",
                (namespace, key, self._now_ms()),
            ).fetchone()
            return bytes(row[0]) if row else None

        result = await self._run(op)
        return result if isinstance(result, bytes) else None

    async def set(self, namespace: str, key: str, value: bytes, ttl_ms: int = 0) -> bool:
        check(key, value)

        def op() -> bool:
            now = self._now_ms()
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                row = self._db.execute(
                    "SELECT 1 FROM plugin_kv WHERE namespace=? AND key=? "
                    "AND (expires_ms IS NULL OR expires_ms>?)",
                    (namespace, key, now),
                ).fetchone()
                self._db.execute(
                    "INSERT OR REPLACE INTO plugin_kv (namespace, key, value, expires_ms) VALUES (?,?,?,?)",
                    (namespace, key, bytes(value), now + ttl_ms if ttl_ms > 0 else None),
                )
            return row is None

        return bool(await self._run(op))

    async def delete(self, namespace: str, key: str) -> bool:
        def op() -> bool:
            now = self._now_ms()
            cur = self._db.execute(
                "DELETE FROM plugin_kv WHERE namespace=? AND key=? RETURNING expires_ms", (namespace, key)
            )
            rows = cur.fetchall()
            return any(r[0] is None or r[0] > now for r in rows)

        return bool(await self._run(op))

    async def list(
        self, namespace: str, prefix: str = "", limit: int = 0, after: str = ""
    ) -> tuple[list[str], bool]:
        size = page_size(limit)

        def op() -> tuple[list[str], bool]:
            # Range scan on the primary key: prefix <= key < prefix + U+10FFFF.
            rows = self._db.execute(
                "SELECT key FROM plugin_kv WHERE namespace=? AND key>=? AND key<? AND key>? "
                "AND (expires_ms IS NULL OR expires_ms>?) ORDER BY key LIMIT ?",
                (namespace, prefix, prefix + "\U0010ffff", after, self._now_ms(), size + 1),
            ).fetchall()
            keys = [r[0] for r in rows]
            return keys[:size], len(keys) > size

        result = await self._run(op)
        assert isinstance(result, tuple)
        return result

    async def close(self) -> None:
        self._db.close()
