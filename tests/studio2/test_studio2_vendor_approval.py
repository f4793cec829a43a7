"""Issue 6 item 7 end to end: the compiled example vendor-approval policy, installed through the
studio API, parks an LLM with an unknown vendor for the security group, across a host restart.

Real processes throughout: `celgate compile` as a subprocess, the compiled plugin as its own
process under the host's supervisor, the studio on a real port and a real SQLite file.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from studio2_helpers import Running, host_yaml, running_host, wait_for

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "examples" / "policies" / "vendor-approval" / "llm-vendor-approval.yaml"


def compile_policy(out: Path) -> Path:
    done = subprocess.run(
        [sys.executable, "-m", "celgate", "compile", str(POLICY), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    folder = out / "llm-vendor-approval"
    assert (folder / "manifest.json").is_file()
    return folder


async def user_token(h: Running, user_id: str, role: str, groups: list[str]) -> str:
    created = await h.call(
        "POST",
        "/api/v1/users",
        {"id": user_id, "email": f"{user_id}@corp.io", "role": role, "groups": groups},
    )
    assert created.status == 201, created.body
    issued = await h.call("POST", f"/api/v1/users/{user_id}/tokens", {"name": "test"})
    assert issued.status == 201, issued.body
    token: str = issued.body["token"]
    return token


async def test_unknown_vendor_waits_for_security_and_survives_a_restart(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    plugin = compile_policy(tmp_path / "build")
    db = tmp_path / "studio.db"
    llm = {
        "id": "acme-7b",
        "name": "Acme 7B",
        "vendor": "acme",
        "api_endpoint": "https://acme.example/v1",
        "privacy_score": 70,
    }

    async with running_host(monkeypatch, tmp_path, host_yaml(db)) as h:
        installed = await h.call(
            "POST", "/api/v1/plugins", {"id": "llm-vendor-approval", "ref": f"file://{plugin}"}
        )
        assert installed.status == 201, installed.body
        assert installed.body["status"]["capabilities"] == ["config_provider", "object_hooks"]
        requester = await user_token(h, "rita", "admin", ["security"])  # an admin, even in security
        approver = await user_token(h, "sam", "approver", ["security"])
        outsider = await user_token(h, "olga", "approver", ["finance"])

        known = await h.call(
            "POST", "/api/v1/llms", {"name": "g", "vendor": "openai", "privacy_score": 80}, token=requester
        )
        assert known.status == 201 and known.body["metadata"] == {"reviewed_by": "celgate"}
        plain = await h.call(
            "POST", "/api/v1/llms", {**llm, "api_endpoint": "http://acme.example"}, token=requester
        )
        assert plain.status == 403 and plain.body["error"]["rule"] == "https-only"

        parked = await h.call("POST", "/api/v1/llms", llm, token=requester)
        assert parked.status == 202, parked.body
        approval = parked.body["approval"]
        assert approval["id"] and approval["groups"] == ["security"] and approval["state"] == "pending"
        assert approval["message"] == "vendor acme needs a security review"
        assert (await h.call("GET", "/api/v1/llms/acme-7b")).status == 404

        alone = await h.call("POST", f"/api/v1/approvals/{approval['id']}/approve", token=requester)
        assert alone.status == 403, alone.body  # the requester cannot approve it alone
        wrong_group = await h.call("POST", f"/api/v1/approvals/{approval['id']}/approve", token=outsider)
        assert wrong_group.status == 403
        assert (await h.call("GET", "/api/v1/llms/acme-7b")).status == 404

    # a new host on the same SQLite file: the approval, the install and the users are all there
    async with running_host(monkeypatch, tmp_path, host_yaml(db)) as h:
        assert (await h.call("GET", "/api/v1/plugins/llm-vendor-approval")).body["status"]["healthy"] is True
        pending = await h.call("GET", f"/api/v1/approvals/{approval['id']}", token=approver)
        assert pending.status == 200 and pending.body["state"] == "pending"

        approved = await h.call("POST", f"/api/v1/approvals/{approval['id']}/approve", token=approver)
        assert approved.status == 200, approved.body
        assert approved.body["state"] == "approved"
        created = await h.call("GET", "/api/v1/llms/acme-7b", token=approver)
        assert created.status == 200, created.body
        assert created.body["vendor"] == "acme" and created.body["privacy_score"] == 70
        audit = (await h.call("GET", "/api/v1/audit?object_type=llm&object_id=acme-7b")).body["items"]
        assert {"rita", "sam"} <= {a["actor"] for a in audit}


async def test_reloading_the_policy_plugin_while_objects_are_written_fails_no_write(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    plugin = compile_policy(tmp_path / "build")
    async with running_host(monkeypatch, tmp_path, host_yaml(tmp_path / "s.db")) as h:
        ref = f"file://{plugin}"
        assert (
            await h.call("POST", "/api/v1/plugins", {"id": "llm-vendor-approval", "ref": ref})
        ).status == 201
        old_pid = h.manager.handle("llm-vendor-approval").pid  # type: ignore[union-attr]
        statuses: list[int] = []
        stop = asyncio.Event()

        async def writer(n: int) -> None:
            i = 0
            while not stop.is_set():
                i += 1
                body = {"id": f"w{n}-{i}", "name": "n", "vendor": "openai", "privacy_score": 80}
                r = await h.call("POST", "/api/v1/llms", body)
                statuses.append(
                    r.status if r.body.get("metadata") == {"reviewed_by": "celgate"} else -r.status
                )

        async with asyncio.timeout(60):
            workers = [asyncio.create_task(writer(n)) for n in range(4)]
            await wait_for(lambda: asyncio.sleep(0, len(statuses) >= 20))
            reloaded = await h.call("POST", "/api/v1/plugins/llm-vendor-approval/reload")
            assert reloaded.status == 200, reloaded.body
            before = len(statuses)
            await wait_for(lambda: asyncio.sleep(0, len(statuses) >= before + 20))
            stop.set()
            await asyncio.gather(*workers)
        assert reloaded.body["status"]["pid"] != old_pid
        # every write was reviewed by the policy (its mutate stamp) and applied: none skipped or failed
        assert statuses and set(statuses) == {201}
