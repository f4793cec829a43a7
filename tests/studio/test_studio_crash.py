"""A pending approval survives the studio process being killed (SIGKILL) and restarted."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

SERVER = Path(__file__).parent / "bin" / "serve_studio.py"
ADMIN = "cgt_crash-test-admin-token-0000"


@asynccontextmanager
async def studio_process(db: Path) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SERVER),
        str(db),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        assert line.startswith(b"PORT "), line
        yield proc, f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def call(url: str, method: str, path: str, token: str = ADMIN, body: Any = None) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as s,
        s.request(
            method,
            url + path,
            data=json.dumps(body) if body is not None else None,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        ) as r,
    ):
        text = await r.text()
        return r.status, json.loads(text) if text else None


async def test_pending_approval_survives_sigkill(tmp_path: Path) -> None:
    db = tmp_path / "crash.db"
    async with studio_process(db) as (proc, url):
        for uid, role in (("ann", "admin"), ("sam", "approver")):
            status, _ = await call(
                url,
                "POST",
                "/api/v1/users",
                body={"id": uid, "email": f"{uid}@x.io", "role": role, "groups": ["security"]},
            )
            assert status == 201
        _, ann = await call(url, "POST", "/api/v1/users/ann/tokens", body={})
        _, sam = await call(url, "POST", "/api/v1/users/sam/tokens", body={})
        status, parked = await call(
            url,
            "POST",
            "/api/v1/llms",
            ann["token"],
            {"id": "r", "name": "R", "privacy_score": 90, "api_key": "sk-kept"},
        )
        assert status == 202
        proc.send_signal(signal.SIGKILL)  # no clean shutdown
        await proc.wait()
    async with studio_process(db) as (_, url):
        status, pending = await call(url, "GET", "/api/v1/approvals", sam["token"])
        assert status == 200 and [a["id"] for a in pending["items"]] == [parked["approval"]["id"]]
        status, done = await call(
            url, "POST", f"/api/v1/approvals/{parked['approval']['id']}/approve", sam["token"], {}
        )
        assert status == 200 and done["state"] == "approved"
        status, obj = await call(url, "GET", "/api/v1/llms/r")
        assert status == 200 and obj["api_key_set"] is True and obj["privacy_score"] == 90
