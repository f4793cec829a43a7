"""Item 7 through `celgate serve` subprocesses: the compiled vendor-approval policy installed over
the API, the host killed (SIGKILL) while the approval is pending, a new `celgate serve` on the
same SQLite file, and the approval completing there."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from test_studio2_vendor_approval import compile_policy

ADMIN = "cgt_serve-restart-admin-token-0123456789"


class Serve:
    """`celgate serve --config FILE` in its own session; the studio URL comes from its log."""

    def __init__(self, config: Path) -> None:
        env = {**os.environ, "CELGATE_ADMIN_TOKEN": ADMIN, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celgate", "serve", "--config", str(config)],
            cwd=config.parent,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        self.studio = ""
        deadline = time.monotonic() + 60
        while not self.studio:
            line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            assert line is not None, "celgate serve exited:\n" + "\n".join(self.log)
            if "studio listening on " in line:
                self.studio = line.split("studio listening on ", 1)[1].strip()

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line.rstrip("\n"))
            self.lines.put(line)
        self.lines.put(None)

    def call(self, method: str, path: str, body: Any = None, token: str = ADMIN) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.studio + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def kill(self) -> None:
        """SIGKILL the whole session (host and plugins): no graceful shutdown at all."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=20)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=20)


def token_for(s: Serve, user_id: str, role: str, groups: list[str]) -> str:
    status, _ = s.call(
        "POST", "/api/v1/users", {"id": user_id, "email": f"{user_id}@x.io", "role": role, "groups": groups}
    )
    assert status == 201
    status, body = s.call("POST", f"/api/v1/users/{user_id}/tokens", {"name": "t"})
    assert status == 201
    return str(body["token"])


def test_pending_approval_survives_a_killed_host(tmp_path: Path) -> None:
    plugin = compile_policy(tmp_path / "build")
    config = tmp_path / "celgate.yaml"
    config.write_text(
        'gateway: {listen: "127.0.0.1:0"}\n'
        'studio: {listen: "127.0.0.1:0", db: "state/studio.db"}\n'
        "upstreams: [{id: s, base_url: standin}]\n"
        "plugins: []\n"
    )
    first = Serve(config)
    try:
        status, body = first.call(
            "POST", "/api/v1/plugins", {"id": "llm-vendor-approval", "ref": f"file://{plugin}"}
        )
        assert status == 201, body
        requester = token_for(first, "rita", "admin", ["security"])
        approver = token_for(first, "sam", "approver", ["security"])
        llm = {
            "id": "acme",
            "name": "Acme",
            "vendor": "acme",
            "api_endpoint": "https://a.example",
            "privacy_score": 70,
        }
        status, body = first.call("POST", "/api/v1/llms", llm, token=requester)
        assert status == 202, body
        approval_id = body["approval"]["id"]
        status, _ = first.call("POST", f"/api/v1/approvals/{approval_id}/approve", token=requester)
        assert status == 403  # the requester cannot approve it alone
    finally:
        first.kill()
    assert (tmp_path / "state" / "studio.db").is_file()

    second = Serve(config)
    try:
        status, body = second.call("GET", "/api/v1/plugins/llm-vendor-approval")
        assert status == 200 and body["status"]["healthy"] is True  # the install was restored
        status, body = second.call("POST", f"/api/v1/approvals/{approval_id}/approve", token=approver)
        assert status == 200 and body["state"] == "approved", body
        status, body = second.call("GET", "/api/v1/llms/acme", token=approver)
        assert status == 200 and body["vendor"] == "acme"
        # and the policy still runs in the new process: another unknown vendor is parked again
        status, body = second.call(
            "POST", "/api/v1/llms", {**llm, "id": "zeta", "vendor": "zeta"}, token=requester
        )
        assert status == 202, body
    finally:
        second.stop()
