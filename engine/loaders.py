"""Plugin references -> running endpoints: `file://` (a process we start) and `grpc://host:port`.

A loader resolves and checks a reference (clear errors for missing, non-executable or escaping
paths), then `launch()` returns an `Endpoint`: the gRPC target to dial and, for processes we
started, the process with its handshake done and its stderr forwarded into `logging`.
`oci://` fits the same shape later: pull and verify into a cache folder, then run it as `file://`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import re
import signal
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from celgate.sdk import protocol

log = logging.getLogger("celgate.plugin")

STDERR_TAIL_LINES = 20


class LoadError(Exception):
    """A plugin that cannot be loaded; the message says which and why."""


@dataclass
class Endpoint:
    """A plugin we can dial. `process` is None for network plugins we did not start."""

    plugin_id: str
    target: str  # a gRPC target: "unix:/path" or "host:port"
    process: asyncio.subprocess.Process | None = None
    stderr_tail: collections.deque[str] = field(
        default_factory=lambda: collections.deque(maxlen=STDERR_TAIL_LINES)
    )
    _pumps: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is None or self.process.returncode is None

    async def wait(self) -> int | None:
        """Wait for the process to exit (returns at once for network plugins: None)."""
        if self.process is None:
            return None
        return await self.process.wait()

    async def terminate(self, grace: float = 2.0) -> None:
        """Close stdin (the SDK exits on EOF), wait `grace`, then kill the whole process group."""
        proc = self.process
        if proc is None:
            return
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.close()
        if proc.returncode is None and grace > 0:
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 1.0)
        # The plugin leads its own process group: take any children with it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.returncode is None:
            await proc.wait()
        _remove_socket_dir(self.target)
        for pump in self._pumps:
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)


def _remove_socket_dir(target: str) -> None:
    """A plugin killed by force leaves its private socket folder behind: remove it, but only a
    folder that looks like one (named celgate-plugin-*, holding nothing but sockets)."""
    if not target.startswith("unix:"):
        return
    folder = Path(target[5:]).parent
    try:
        if not folder.name.startswith("celgate-plugin-") or not folder.is_dir() or folder.is_symlink():
            return
        entries = list(folder.iterdir())
        if all(stat.S_ISSOCK(e.lstat().st_mode) for e in entries):
            for entry in entries:
                entry.unlink()
            folder.rmdir()
    except OSError:
        pass


class Loader(Protocol):
    scheme: str

    def check(self, ref: str, base_dir: Path) -> None:
        """Raise LoadError when `ref` cannot be loaded (before any process starts)."""

    async def launch(
        self, plugin_id: str, ref: str, base_dir: Path, env: Mapping[str, str], handshake_timeout: float
    ) -> Endpoint: ...


# ---------------------------------------------------------------- file://


@dataclass(frozen=True)
class Command:
    argv: list[str]
    cwd: Path
    manifest: Path | None


class FileLoader:
    """`file://PATH`: a plugin folder with manifest.json naming its entrypoint, or an executable.

    Relative paths resolve against `base_dir` (the config file's folder, or the cwd). An
    entrypoint ending in `.py` runs with the host's own interpreter; anything else must be an
    executable file inside the folder.
    """

    scheme = "file"

    def resolve(self, ref: str, base_dir: Path) -> Command:
        raw = ref[len("file://") :] if ref.startswith("file://") else ref
        if not raw:
            raise LoadError(f"{ref!r}: empty path")
        if "\x00" in raw:
            raise LoadError(f"{ref!r}: path contains a NUL byte")
        path = Path(raw) if os.path.isabs(raw) else base_dir / raw
        if not path.exists():
            raise LoadError(f"{ref}: {path} does not exist")
        if path.is_dir():
            return self._folder(ref, path)
        if not path.is_file():
            raise LoadError(f"{ref}: {path} is not a file or a plugin folder")
        if not os.access(path, os.X_OK):
            raise LoadError(
                f"{ref}: {path} is not executable (chmod +x it, or use a folder with manifest.json)"
            )
        return Command(argv=[str(path.resolve())], cwd=path.resolve().parent, manifest=None)

    def _folder(self, ref: str, folder: Path) -> Command:
        manifest_path = folder / "manifest.json"
        if not manifest_path.is_file():
            raise LoadError(f"{ref}: {folder} has no manifest.json")
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError) as exc:
            raise LoadError(f"{ref}: cannot read {manifest_path}: {exc}") from exc
        if not isinstance(manifest, dict):
            raise LoadError(f"{ref}: {manifest_path} is not a JSON object")
        entry = manifest.get("entrypoint")
        if not isinstance(entry, str) or not entry:
            raise LoadError(f'{ref}: {manifest_path} has no "entrypoint" (e.g. "plugin.py")')
        root = folder.resolve()
        entry_path = (root / entry).resolve()
        if not entry_path.is_relative_to(root):
            raise LoadError(f"{ref}: entrypoint {entry!r} points outside the plugin folder")
        if not entry_path.is_file():
            raise LoadError(f"{ref}: entrypoint {entry_path} does not exist")
        if entry_path.suffix == ".py":
            argv = [sys.executable, "-u", str(entry_path)]
        elif os.access(entry_path, os.X_OK):
            argv = [str(entry_path)]
        else:
            raise LoadError(f"{ref}: entrypoint {entry_path} is neither a .py file nor executable")
        return Command(argv=argv, cwd=root, manifest=manifest_path.resolve())

    def check(self, ref: str, base_dir: Path) -> None:
        self.resolve(ref, base_dir)

    async def launch(
        self, plugin_id: str, ref: str, base_dir: Path, env: Mapping[str, str], handshake_timeout: float
    ) -> Endpoint:
        command = self.resolve(ref, base_dir)
        child_env = dict(env)
        if command.manifest is not None:
            child_env[protocol.ENV_MANIFEST] = str(command.manifest)
        try:
            proc = await asyncio.create_subprocess_exec(
                *command.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=str(command.cwd),
                env=child_env,
                start_new_session=True,  # its own process group, killed as a whole on stop
            )
        except OSError as exc:
            raise LoadError(f"plugin {plugin_id}: cannot start {command.argv[0]}: {exc}") from exc
        endpoint = Endpoint(plugin_id=plugin_id, target="", process=proc)
        assert proc.stderr is not None and proc.stdout is not None
        endpoint._pumps.append(
            asyncio.create_task(_pump_stderr(plugin_id, proc.stderr, endpoint.stderr_tail))
        )
        try:
            endpoint.target = await _handshake(plugin_id, proc, endpoint, handshake_timeout)
        except BaseException:
            await endpoint.terminate(grace=0.2)
            raise
        endpoint._pumps.append(asyncio.create_task(_pump_stdout(plugin_id, proc.stdout)))
        return endpoint


_HANDSHAKE = re.compile(r"^(\d+)\|(\d+)\|(unix|tcp)\|([^|]+)\|(grpc)$")


async def _handshake(
    plugin_id: str, proc: asyncio.subprocess.Process, endpoint: Endpoint, timeout: float
) -> str:
    assert proc.stdout is not None
    read = asyncio.ensure_future(proc.stdout.readline())
    exited = asyncio.ensure_future(proc.wait())
    try:
        done, _ = await asyncio.wait({read, exited}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        exited.cancel()
    if read not in done:
        read.cancel()
        if exited in done or proc.returncode is not None:
            await asyncio.sleep(0.05)  # let the stderr pump catch the last lines
            raise LoadError(
                f"plugin {plugin_id} exited with code {proc.returncode} before its handshake"
                + _tail(endpoint)
            )
        raise LoadError(f"plugin {plugin_id} sent no handshake within {timeout:g}s" + _tail(endpoint))
    line = read.result()
    if not line:
        await proc.wait()
        await asyncio.sleep(0.05)
        raise LoadError(
            f"plugin {plugin_id} exited with code {proc.returncode} before its handshake" + _tail(endpoint)
        )
    text = line.decode("utf-8", "replace").strip()
    match = _HANDSHAKE.match(text)
    if match is None:
        raise LoadError(
            f"plugin {plugin_id} printed {text[:200]!r} instead of a handshake line "
            "'1|1|unix|/path/to.sock|grpc' (stdout is reserved for the handshake; log to stderr)"
        )
    core, app, network, address, _ = match.groups()
    if int(core) != protocol.CORE_PROTOCOL_VERSION:
        raise LoadError(f"plugin {plugin_id} speaks core protocol {core}; this host speaks 1")
    if int(app) != protocol.APP_PROTOCOL_VERSION:
        raise LoadError(f"plugin {plugin_id} speaks app protocol {app}; this host accepts 1")
    return f"unix:{address}" if network == "unix" else address


def _tail(endpoint: Endpoint) -> str:
    if not endpoint.stderr_tail:
        return ""
    return "; its stderr ended with:\n  " + "\n  ".join(endpoint.stderr_tail)


async def _pump_stderr(plugin_id: str, stream: asyncio.StreamReader, tail: collections.deque[str]) -> None:
    """Forward the plugin's stderr into the host's log, line by line, with the plugin id."""
    plugin_log = logging.getLogger(f"celgate.plugin.{plugin_id}")
    while True:
        try:
            line = await stream.readline()
        except (ValueError, asyncio.LimitOverrunError):  # an overlong line: skip what is buffered
            continue
        if not line:
            return
        text = line.decode("utf-8", "replace").rstrip()
        tail.append(text)
        plugin_log.info("%s", text, extra={"plugin_id": plugin_id})


async def _pump_stdout(plugin_id: str, stream: asyncio.StreamReader) -> None:
    while True:
        line = await stream.readline()
        if not line:
            return
        log.warning("plugin %s wrote to stdout after its handshake: %r", plugin_id, line[:200])


# ---------------------------------------------------------------- grpc://


_HOST_PORT = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.\-]+):(\d{1,5})$")


class GrpcLoader:
    """`grpc://host:port`: a plugin already running as a network service (no process, no cookie)."""

    scheme = "grpc"

    def target(self, ref: str) -> str:
        rest = ref[len("grpc://") :]
        match = _HOST_PORT.match(rest)
        if match is None or not 0 < int(match.group(2)) < 65536:
            raise LoadError(f"{ref!r}: expected grpc://HOST:PORT")
        return rest

    def check(self, ref: str, base_dir: Path) -> None:
        self.target(ref)

    async def launch(
        self, plugin_id: str, ref: str, base_dir: Path, env: Mapping[str, str], handshake_timeout: float
    ) -> Endpoint:
        return Endpoint(plugin_id=plugin_id, target=self.target(ref))


LOADERS: dict[str, Loader] = {"file": FileLoader(), "grpc": GrpcLoader()}


def loader_for(ref: str) -> Loader:
    scheme = ref.split("://", 1)[0] if "://" in ref else "file"
    loader = LOADERS.get(scheme)
    if loader is None:
        raise LoadError(f"{ref!r}: unsupported reference scheme {scheme}:// (supported: file://, grpc://)")
    return loader
