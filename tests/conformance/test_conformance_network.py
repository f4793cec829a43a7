"""`grpc://` references: a plugin running as a network service is checked over TCP; the
checks about a process the host owns are skipped with their reason."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

from conformance_helpers import EXAMPLES, explain, run_many, status


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_grpc_reference_passes_and_skips_process_checks() -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "header-rewrite" / "plugin.py"), f"--listen=127.0.0.1:{port}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 15
        line = ""
        while "listening" not in line and time.monotonic() < deadline:
            line = proc.stderr.readline()  # the SDK says "listening on" once it serves
            assert line or proc.poll() is None, "the plugin exited"
        ref = f"grpc://127.0.0.1:{port}"
        report = run_many([ref])[ref]
    finally:
        proc.kill()
        proc.wait()
    assert report.passed, explain(report)
    assert report.implementation["id"] == "header-rewrite"
    for check_id in ("plugin.handshake", "hooks.robust", "response.chunk-order", "service-api.scopes"):
        assert status(report, check_id) == "passed", explain(report)
    for check_id in ("lifecycle.shutdown", "lifecycle.restart", "lifecycle.stdin-eof", "lifecycle.cookie"):
        result = next(r for r in report.results if r.id == check_id)
        assert result.status == "skipped" and result.message, explain(report)
