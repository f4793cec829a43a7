"""Loading plugins: handshake failures, loader checks, manifest/capability agreement."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from runtime_helpers import PLUGINS, pre_auth, spec

from celgate.engine.loaders import LoadError
from celgate.engine.supervisor import PluginSpec, Supervisor
from celgate.sdk import protocol


def _run_plugin(name: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(PLUGINS / name / "plugin.py"), *args],
        env={k: v for k, v in {**os.environ, **env}.items() if v is not None},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_plugin_run_by_hand_refuses_without_the_cookie() -> None:
    env = dict(os.environ)
    env.pop(protocol.COOKIE_KEY, None)
    result = subprocess.run(
        [sys.executable, str(PLUGINS / "echo" / "plugin.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert result.stdout == ""
    assert "started by the celgate host" in result.stderr


def test_plugin_refuses_a_wrong_cookie() -> None:
    result = _run_plugin("echo", {protocol.COOKIE_KEY: "not-the-cookie"})
    assert result.returncode != 0
    assert result.stdout == ""
    assert "started by the celgate host" in result.stderr


def test_plugin_refuses_when_manifest_capabilities_disagree() -> None:
    result = _run_plugin("mismatch", {protocol.COOKIE_KEY: protocol.COOKIE_VALUE})
    assert result.returncode != 0
    assert result.stdout == ""
    assert "implemented but not declared: ['post_auth']" in result.stderr
    assert "declared but not implemented: ['auth']" in result.stderr


async def test_host_reports_the_capability_mismatch(supervisor: Supervisor) -> None:
    with pytest.raises(LoadError, match="disagree"):
        await supervisor.start([spec("mismatch")])


async def test_garbage_on_stdout_fails_the_load(supervisor: Supervisor) -> None:
    with pytest.raises(LoadError, match="instead of a handshake line"):
        await supervisor.start([spec("garbage")])


async def test_slow_start_past_the_handshake_timeout_fails(api: object) -> None:
    sup = Supervisor(handshake_timeout=0.5)
    try:
        with pytest.raises(LoadError, match=r"no handshake within 0\.5s"):
            await sup.start([spec("slow")])
    finally:
        await sup.stop()


async def test_early_exit_fails_the_load_with_its_stderr(supervisor: Supervisor) -> None:
    with pytest.raises(LoadError, match="exited with code 3 before its handshake") as info:
        await supervisor.start([spec("early_exit")])
    assert "cannot open the model file" in str(info.value)


async def test_a_failed_load_stops_the_plugins_already_started(supervisor: Supervisor) -> None:
    with pytest.raises(LoadError):
        await supervisor.start([spec("echo"), spec("early_exit")])
    assert supervisor.handles == []


async def test_configure_failure_fails_the_load(supervisor: Supervisor) -> None:
    with pytest.raises(LoadError, match="configure was told to fail"):
        await supervisor.start([spec("echo", config={"fail_configure": True})])


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("file:///nonexistent/plugin", "does not exist"),
        ("oci://registry.example/p@sha256:00", "unsupported reference scheme oci://"),
        ("grpc://no-port", "expected grpc://HOST:PORT"),
    ],
)
async def test_bad_references_are_refused_before_any_process(
    supervisor: Supervisor, ref: str, message: str
) -> None:
    with pytest.raises(LoadError, match=message):
        await supervisor.start([PluginSpec(id="bad", ref=ref)])


async def test_loader_checks_folders_and_files(supervisor: Supervisor, tmp_path: Path) -> None:
    (tmp_path / "nomanifest").mkdir()
    not_exec = tmp_path / "tool"
    not_exec.write_text("#!/bin/sh\n")
    escape = tmp_path / "escape"
    escape.mkdir()
    (escape / "manifest.json").write_text('{"entrypoint": "../tool"}')
    bad_json = tmp_path / "badjson"
    bad_json.mkdir()
    (bad_json / "manifest.json").write_text("{not json")
    cases = {
        "nomanifest": "has no manifest.json",
        "tool": "is not executable",
        "escape": "outside the plugin folder",
        "badjson": "cannot read",
    }
    for name, message in cases.items():
        with pytest.raises(LoadError, match=message):
            await supervisor.start([PluginSpec(id="p", ref=f"file://{name}", base_dir=str(tmp_path))])


async def test_relative_file_refs_resolve_against_base_dir(supervisor: Supervisor) -> None:
    await supervisor.start([PluginSpec(id="echo", ref="file://echo", base_dir=str(PLUGINS))])
    reply = await supervisor.get("echo").hook(pre_auth(), 2.0)
    assert reply.request.WhichOneof("verdict") == "proceed"


async def test_invalid_specs_are_refused() -> None:
    with pytest.raises(ValueError, match="failure_policy"):
        PluginSpec(id="x", ref="file://x", failure_policy="maybe")
    with pytest.raises(ValueError, match="runtime"):
        PluginSpec(id="x", ref="file://x", runtime="edge")
    with pytest.raises(ValueError, match="plugin id"):
        PluginSpec(id="../x", ref="file://x")


def test_plugin_refuses_an_unsupported_protocol_version_or_another_id() -> None:
    cookie = {protocol.COOKIE_KEY: protocol.COOKIE_VALUE}
    result = _run_plugin("echo", {**cookie, protocol.ENV_PROTOCOL_VERSIONS: "2,3"})
    assert result.returncode != 0 and "protocol versions" in result.stderr
    result = _run_plugin("echo", {**cookie, protocol.ENV_PLUGIN_ID: "someone-else"})
    assert result.returncode != 0 and "manifest says 'echo'" in result.stderr


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "plugin.sh"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


async def test_executable_file_plugins_and_handshake_versions(supervisor: Supervisor, tmp_path: Path) -> None:
    wrong_core = _script(tmp_path, "echo '2|1|unix|/tmp/x.sock|grpc'\nsleep 30\n")
    with pytest.raises(LoadError, match="core protocol 2"):
        await supervisor.start([PluginSpec(id="sh", ref=f"file://{wrong_core}")])
    wrong_protocol = _script(tmp_path, "echo '1|1|unix|/tmp/x.sock|netrpc'\nsleep 30\n")
    with pytest.raises(LoadError, match="instead of a handshake line"):
        await supervisor.start([PluginSpec(id="sh", ref=f"file://{wrong_protocol}")])
    nothing_there = _script(tmp_path, f"echo '1|1|unix|{tmp_path}/missing.sock|grpc'\nsleep 30\n")
    supervisor.handshake_timeout = 1.0
    with pytest.raises(LoadError, match="cannot connect"):
        await supervisor.start([PluginSpec(id="sh", ref=f"file://{nothing_there}")])
