"""`serve(plugin)`: the plugin half of the handshake (the host half is engine/supervisor.py).

Started by a host: the magic cookie must be in the environment; the plugin binds a unix socket
in a fresh 0700 directory, prints exactly one line `1|1|unix|<path>|grpc` on stdout, serves
PluginService and grpc.health.v1, and exits when its stdin reaches EOF (the host keeps a pipe
open, so a plugin never outlives its host), on SIGTERM, or after a Shutdown call.

Run as a network service (`grpc://` references): pass `--listen HOST:PORT` or set
CELGATE_PLUGIN_LISTEN; no cookie is needed and nothing is printed on stdout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import stat
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from celgate.sdk import capabilities as caps
from celgate.sdk.context import Services
from celgate.sdk.fasthooks import FastHooksServer
from celgate.sdk.host import HostConnection
from celgate.sdk.protocol import (
    APP_PROTOCOL_VERSION,
    COOKIE_KEY,
    COOKIE_VALUE,
    CORE_PROTOCOL_VERSION,
    ENV_FAST_HOOKS,
    ENV_HOST_SERVICE,
    ENV_LISTEN,
    ENV_MANIFEST,
    ENV_PLUGIN_ID,
    ENV_PROTOCOL_VERSIONS,
    ENV_RUNTIME,
    ENV_SECRET,
    HEALTH_SERVICE_NAME,
    MAX_MESSAGE_BYTES,
)
from celgate.sdk.server import PluginServicer
from celgate.v1 import plugin_pb2_grpc


class PluginError(Exception):
    """A plugin that cannot start: the message is printed on stderr, exit code 1."""


def load_manifest(plugin: caps.Plugin) -> dict[str, Any]:
    """The manifest from the class, a ManifestProvider, $CELGATE_PLUGIN_MANIFEST or manifest.json
    beside the entry script, in that order."""
    if plugin.manifest is not None:
        manifest: Any = plugin.manifest
    elif isinstance(plugin, caps.ManifestProvider):
        manifest = plugin.provide_manifest()
    else:
        candidates = []
        if os.environ.get(ENV_MANIFEST):
            candidates.append(Path(os.environ[ENV_MANIFEST]))
        main = sys.modules.get("__main__")
        main_file = getattr(main, "__file__", None)
        if main_file:
            candidates.append(Path(main_file).resolve().parent / "manifest.json")
        candidates.append(Path(sys.argv[0]).resolve().parent / "manifest.json")
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise PluginError(
                f"no manifest: looked for {', '.join(str(p) for p in candidates) or 'manifest.json'}"
            )
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise PluginError(f"cannot read manifest {path}: {exc}") from exc
    if not isinstance(manifest, dict):
        raise PluginError("the manifest must be a JSON object")
    if not isinstance(manifest.get("id"), str) or not manifest["id"]:
        raise PluginError('the manifest has no "id"')
    return manifest


def check_capabilities(plugin: caps.Plugin, manifest: dict[str, Any]) -> list[str]:
    """The derived capability list; PluginError when the manifest declares a different one."""
    derived = caps.capabilities_of(plugin)
    declared = manifest.get("capabilities")
    if not isinstance(declared, list) or not all(isinstance(c, str) for c in declared):
        raise PluginError(
            f'manifest "capabilities" must be a list of names; this plugin implements {derived}'
        )
    unknown = sorted(set(declared) - set(caps.CAPABILITIES))
    missing = sorted(set(derived) - set(declared))
    extra = sorted(set(declared) - set(derived) - set(unknown))
    problems = []
    if unknown:
        problems.append(f"unknown capabilities {unknown}")
    if missing:
        problems.append(f"implemented but not declared: {missing}")
    if extra:
        problems.append(f"declared but not implemented: {extra}")
    if problems:
        raise PluginError("manifest capabilities disagree with the plugin class: " + "; ".join(problems))
    return derived


def _listen_address(argv: Sequence[str]) -> str | None:
    args = list(argv)
    for i, arg in enumerate(args):
        if arg == "--listen" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--listen="):
            return arg.split("=", 1)[1]
    return os.environ.get(ENV_LISTEN) or None


def serve(plugin: caps.Plugin, argv: Sequence[str] | None = None) -> NoReturn:
    """Run `plugin` until the host stops it; never returns."""
    argv = sys.argv[1:] if argv is None else argv
    # stdout is reserved for the handshake line: everything else printed goes to stderr.
    handshake_out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        manifest = load_manifest(plugin)
        check_capabilities(plugin, manifest)
        plugin.id = manifest["id"]
        listen = _listen_address(argv)
        if listen is None:
            if os.environ.get(COOKIE_KEY) != COOKIE_VALUE:
                raise PluginError(
                    f"this is a celgate plugin ({plugin.id}): it is started by the celgate host, "
                    "not run by hand.\n"
                    f"To run it as a network service for a grpc:// reference, pass --listen HOST:PORT."
                )
            versions = os.environ.get(ENV_PROTOCOL_VERSIONS, str(APP_PROTOCOL_VERSION)).split(",")
            if str(APP_PROTOCOL_VERSION) not in [v.strip() for v in versions]:
                raise PluginError(
                    f"the host accepts protocol versions {versions}; "
                    f"this plugin speaks {APP_PROTOCOL_VERSION}"
                )
            expected_id = os.environ.get(ENV_PLUGIN_ID)
            if expected_id and expected_id != plugin.id:
                raise PluginError(
                    f"the host started plugin {expected_id!r} but this manifest says {plugin.id!r}"
                )
    except PluginError as exc:
        print(f"celgate plugin: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is optional
        runner = asyncio.run
    code = runner(_serve(plugin, manifest, listen, handshake_out))
    sys.exit(code)


async def _serve(
    plugin: caps.Plugin, manifest: dict[str, Any], listen: str | None, handshake_out: Any
) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    conn = HostConnection(os.environ.get(ENV_HOST_SERVICE, ""), os.environ.get(ENV_SECRET, ""), plugin.id)
    services = Services(conn, loop)
    servicer = PluginServicer(plugin, manifest, services, on_shutdown=lambda: _later(loop, stop))
    servicer.runtime = os.environ.get(ENV_RUNTIME, "")  # Configure confirms or overrides it

    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.so_reuseport", 0),
    ]
    server = grpc.aio.server(options=options)
    plugin_pb2_grpc.add_PluginServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    await health.set("", health_pb2.HealthCheckResponse.SERVING)
    await health.set(HEALTH_SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)

    sock_dir: str | None = None
    if listen is None:
        sock_dir = tempfile.mkdtemp(prefix="celgate-plugin-")  # mode 0700, fresh and private
        os.chmod(sock_dir, 0o700)
        sock_path = os.path.join(sock_dir, "plugin.sock")
        server.add_insecure_port(f"unix:{sock_path}")
    else:
        if server.add_insecure_port(listen) == 0:
            print(f"celgate plugin: cannot listen on {listen}", file=sys.stderr, flush=True)
            return 1
    await server.start()
    fast: FastHooksServer | None = None
    wants_hooks = bool(set(caps.capabilities_of(plugin)) & caps.HOOK_CAPABILITIES)
    if listen is None and wants_hooks and os.environ.get(ENV_FAST_HOOKS, "1") != "0":
        fast = FastHooksServer(servicer.handle_hook, servicer.hook_inline)
        fast_path = os.path.join(sock_dir or "", "hooks.sock")
        await fast.start(fast_path)
        servicer.hooks_address = f"unix:{fast_path}"

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if listen is None:
        handshake_out.write(f"{CORE_PROTOCOL_VERSION}|{APP_PROTOCOL_VERSION}|unix|{sock_path}|grpc\n")
        handshake_out.flush()
        _watch_stdin(loop, stop)
    else:
        print(f"celgate plugin {plugin.id} listening on {listen}", file=sys.stderr, flush=True)
    handshake_out.close()

    try:
        await stop.wait()
    finally:
        # The host may be gone (stderr a broken pipe): every step is best effort, and the
        # socket folder goes first.
        if sock_dir is not None:
            shutil.rmtree(sock_dir, ignore_errors=True)
        for step in (health.enter_graceful_shutdown, servicer.run_shutdown):
            with contextlib.suppress(Exception):
                await step()
        if fast is not None:
            with contextlib.suppress(Exception):
                await fast.stop()
        with contextlib.suppress(Exception):
            await server.stop(grace=1.0)
        with contextlib.suppress(Exception):
            await conn.close()
    return 0


def _later(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Stop shortly after the Shutdown reply has gone out."""
    loop.call_later(0.05, stop.set)


def _watch_stdin(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Stop when the host's end of our stdin pipe closes (the host exited or was killed)."""
    try:
        mode = os.fstat(0).st_mode
    except OSError:
        return
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        return

    def readable() -> None:
        try:
            data = os.read(0, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            with contextlib.suppress(Exception):
                loop.remove_reader(0)
            stop.set()

    os.set_blocking(0, False)
    loop.add_reader(0, readable)
