"""A plugin under test, loaded the way the host loads it, one step at a time.

The supervisor does launch -> dial -> health -> manifest -> Configure -> hooks in one go and
refuses a plugin at the first problem. Conformance needs each step as its own observation
(a plugin whose manifest disagrees with what it implements must still be probed), so
`Session` drives the same pieces the supervisor uses (`loader_for(...).launch`, `Connection`,
`PluginHandle`, the real `HostServiceServer`) without the all-or-nothing wrapper.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

import grpc

from celgate import __version__
from celgate.conformance.config import config_for
from celgate.engine.handle import Connection, PluginHandle, PluginSpec
from celgate.engine.loaders import Endpoint, LoadError, loader_for
from celgate.engine.plugin_manager import declared_scopes
from celgate.engine.service_api import METHOD_SCOPES, HostServiceServer
from celgate.sdk import protocol
from celgate.sdk.capabilities import HOOK_CAPABILITIES
from celgate.v1 import common_pb2, plugin_pb2

CONFORMANCE_ID = "conformance-plugin"


@dataclass
class Observed:
    """What the load steps saw; checks read it instead of repeating the steps."""

    load_error: str = ""  # the first step that failed, with the host's message
    handshake_error: str = ""
    health_error: str = ""
    manifest_reply: plugin_pb2.ManifestReply | None = None
    manifest: dict[str, Any] | None = None
    manifest_error: str = ""
    configure_error: str = ""
    schema_json: str | None = None
    schema_error: str = ""
    routes: list[plugin_pb2.EndpointRoute] = field(default_factory=list)
    object_hooks: list[plugin_pb2.ObjectHookRegistration] = field(default_factory=list)


@dataclass
class ScopeRefusal:
    method: str
    scope: str


class Session:
    """One plugin reference under test: the host side (Service API, connection, handle)."""

    def __init__(
        self,
        ref: str,
        *,
        config: dict[str, Any] | None = None,
        runtime: str = "gateway",
        base_dir: str = "",
        deadline_ms: int = 1000,
        handshake_timeout: float = 10.0,
        call_timeout: float = 5.0,
        env: dict[str, str] | None = None,
    ) -> None:
        self.ref = ref
        self.config = config
        self.runtime = runtime
        self.base_dir = base_dir
        self.deadline_ms = deadline_ms
        self.handshake_timeout = handshake_timeout
        self.call_timeout = call_timeout
        self.env = dict(env or {})
        self.scratch = tempfile.mkdtemp(prefix="celgate-conformance-")
        self.plugin_id = CONFORMANCE_ID
        self.api: HostServiceServer | None = None
        self.endpoint: Endpoint | None = None
        self.conn: Connection | None = None
        self.handle: PluginHandle | None = None
        self.secret = ""
        self.observed = Observed()
        # Service API: the scopes granted right now (None = every mapped scope), and what the
        # plugin was refused.
        self.granted: frozenset[str] | None = None
        self.refusals: list[ScopeRefusal] = []
        self.service_calls: list[str] = []
        self.recording = True  # False while a check probes the Service API itself

    # ------------------------------------------------------------ properties

    @property
    def is_process(self) -> bool:
        return self.endpoint is not None and self.endpoint.process is not None

    @property
    def capabilities(self) -> frozenset[str]:
        reply = self.observed.manifest_reply
        return frozenset(reply.capabilities) if reply is not None else frozenset()

    @property
    def declared(self) -> frozenset[str]:
        manifest = self.observed.manifest or {}
        caps = manifest.get("capabilities")
        return frozenset(c for c in caps if isinstance(c, str)) if isinstance(caps, list) else frozenset()

    @property
    def declared_scopes(self) -> frozenset[str] | None:
        """The manifest's `permissions.scopes` (read as the host reads it), or None when absent."""
        return declared_scopes(self.observed.manifest or {})

    def spec(self) -> PluginSpec:
        return PluginSpec(
            id=self.plugin_id,
            ref=self.ref,
            config=self.config or {},
            runtime=self.runtime,
            deadline_ms=self.deadline_ms,
            env=self.env,
            base_dir=self.base_dir,
        )

    # ------------------------------------------------------------ host side

    async def start_api(self) -> None:
        # A grpc:// plugin is a network service: offer it the Service API over TCP too, as the
        # host does (loopback: the suite runs next to the plugin it checks).
        tcp = "127.0.0.1:0" if self.ref.startswith("grpc://") else None
        self.api = HostServiceServer(grants=lambda _plugin_id: self.granted, tcp=tcp)
        service = self.api.service
        original = service._caller

        async def caller(context: Any, method: str, *args: Any) -> str:
            # Watch the host's own scope decision (one place, `HostService._caller`): what the
            # plugin asked for that it was refused.
            self.service_calls.append(method)
            try:
                return await original(context, method, *args)
            except Exception:
                scope = METHOD_SCOPES.get(method, "")
                if "{type}" in scope and args:
                    scope = scope.format(type=args[0])
                if self.recording and self.granted is not None and scope not in self.granted:
                    self.refusals.append(ScopeRefusal(method, scope))
                raise

        service._caller = caller  # type: ignore[method-assign,assignment]
        await self.api.start()

    def manifest_id(self) -> str:
        """The id the host must configure: the one in the folder's manifest.json, if any."""
        raw = self.ref[len("file://") :] if self.ref.startswith("file://") else ""
        if not raw:
            return self.plugin_id
        path = Path(raw) if os.path.isabs(raw) else Path(self.base_dir or ".") / raw
        try:
            manifest = json.loads((path / "manifest.json").read_text())
        except (OSError, ValueError):
            return self.plugin_id
        pid = manifest.get("id") if isinstance(manifest, dict) else None
        return pid if _usable_id(pid) else self.plugin_id

    def _env(self, secret: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        env.update(
            {
                protocol.COOKIE_KEY: protocol.COOKIE_VALUE,
                protocol.ENV_PROTOCOL_VERSIONS: str(protocol.APP_PROTOCOL_VERSION),
                protocol.ENV_PLUGIN_ID: self.plugin_id if self.plugin_id != CONFORMANCE_ID else "",
                protocol.ENV_RUNTIME: self.runtime,
                protocol.ENV_HOST_SERVICE: self.api.address if self.api else "",
                protocol.ENV_SECRET: secret,
            }
        )
        env.pop(protocol.ENV_LISTEN, None)
        return env

    async def launch(self) -> Endpoint:
        """Start (or dial) the plugin and complete the handshake; raise LoadError on failure."""
        spec = self.spec()
        loader = loader_for(spec.ref)
        base = Path(spec.base_dir) if spec.base_dir else Path.cwd()
        loader.check(spec.ref, base)
        assert self.api is not None
        if self.secret:
            self.api.revoke(self.secret)
        self.secret = self.api.register(self.plugin_id)
        return await loader.launch(spec.id, spec.ref, base, self._env(self.secret), self.handshake_timeout)

    async def connect(self, endpoint: Endpoint) -> Connection:
        conn = Connection(self.plugin_id, endpoint.target)
        try:
            await conn.wait_ready(self.handshake_timeout)
        except TimeoutError:
            await conn.close()
            raise LoadError(f"cannot connect to {endpoint.target}") from None
        return conn

    async def configure(self, conn: Connection) -> plugin_pb2.ConfigureReply:
        assert self.api is not None
        network = self.ref.startswith("grpc://")
        request = plugin_pb2.ConfigureRequest(
            plugin_id=self.plugin_id,
            runtime=self.runtime,
            config_json=json.dumps(self.config or {}),
            host_version=__version__,
            host_service_address=self.api.network_address
            if network and self.api.network_address
            else self.api.address,
            plugin_secret=self.secret,
        )
        reply: plugin_pb2.ConfigureReply = await conn.stub.Configure(request, timeout=self.call_timeout)
        return reply

    async def open(self) -> None:
        """The full load, recording each step's outcome in `observed` (never raises LoadError)."""
        obs = self.observed
        if self.api is None:
            await self.start_api()
        self.plugin_id = self.manifest_id()
        try:
            self.endpoint = await self.launch()
        except (LoadError, ValueError) as exc:
            obs.handshake_error = obs.load_error = str(exc)
            return
        try:
            self.conn = await self.connect(self.endpoint)
        except LoadError as exc:
            obs.handshake_error = obs.load_error = str(exc)
            return
        if not await self.conn.check_health(self.call_timeout):
            obs.health_error = "the grpc.health.v1 check did not report SERVING"
        try:
            reply = await self.conn.stub.GetManifest(common_pb2.Empty(), timeout=self.call_timeout)
        except grpc.aio.AioRpcError as exc:
            obs.manifest_error = obs.load_error = f"GetManifest failed: {exc.code().name}: {exc.details()}"
            return
        obs.manifest_reply = reply
        try:
            manifest = json.loads(reply.manifest_json) if reply.manifest_json else None
        except ValueError as exc:
            manifest = None
            obs.manifest_error = f"manifest_json is not JSON: {exc}"
        if manifest is not None and not isinstance(manifest, dict):
            obs.manifest_error = "manifest_json is not a JSON object"
            manifest = None
        obs.manifest = manifest
        said = (manifest or {}).get("id")
        if _usable_id(said) and self.plugin_id == CONFORMANCE_ID:
            self.plugin_id = said  # a plugin found by its address: configure it under its own id
        try:
            schema = await self.conn.stub.GetConfigSchema(common_pb2.Empty(), timeout=self.call_timeout)
            obs.schema_json = schema.schema_json
        except grpc.aio.AioRpcError as exc:
            obs.schema_error = f"GetConfigSchema failed: {exc.code().name}: {exc.details()}"
        if self.config is None:
            self.config = config_for(obs.schema_json or "", self.scratch)
        try:
            configured = await self.configure(self.conn)
        except grpc.aio.AioRpcError as exc:
            obs.configure_error = obs.load_error = f"Configure failed: {exc.code().name}: {exc.details()}"
            return
        if not configured.ok:
            obs.configure_error = obs.load_error = f"Configure refused the config: {configured.error}"
            return
        await self._install(self.conn, self.endpoint)

    async def reopen(self) -> None:
        """Stop what is left of the current instance and load the plugin again."""
        await self.close_instance()
        self.observed = Observed()
        await self.open()

    async def _install(self, conn: Connection, endpoint: Endpoint) -> None:
        reply = self.observed.manifest_reply
        assert reply is not None
        caps = frozenset(reply.capabilities)
        if caps & HOOK_CAPABILITIES:
            await conn.open_hooks(reply.hooks_address if endpoint.process is not None else "")
        handle = PluginHandle(self.spec())
        handle.manifest = self.observed.manifest or {}
        handle.capabilities = caps
        handle.response_chunks = reply.response_chunks
        handle.pid = endpoint.pid
        handle._swap(conn)
        self.handle = handle

    @property
    def ready(self) -> bool:
        return self.handle is not None and not self.observed.load_error

    async def hook(self, call: plugin_pb2.HookCall, timeout: float | None = None) -> plugin_pb2.HookReply:
        assert self.handle is not None
        return await self.handle.hook(call, timeout if timeout is not None else self.deadline_ms / 1000)

    async def raw_hook(self, call: plugin_pb2.HookCall, timeout: float) -> plugin_pb2.HookReply:
        """A hook call without the handle's capability filter (probing undeclared hooks).

        A plugin without hook capabilities may not serve `Hooks` at all, and a failed stream
        marks its connection dead: probe it over a connection of its own."""
        assert self.endpoint is not None and self.handle is not None
        if self.conn is not None and self.conn.transport:
            return await self.conn.hook(call, next(self.handle._ids), timeout)
        probe = Connection(self.plugin_id, self.endpoint.target)
        try:
            await probe.wait_ready(self.call_timeout)
            probe._open_stream()
            return await probe.hook(call, 1, timeout)
        finally:
            await probe.close()

    async def alive(self) -> bool:
        """The plugin still runs and reports SERVING."""
        if self.endpoint is None or self.conn is None:
            return False
        if self.endpoint.process is not None and self.endpoint.process.returncode is not None:
            return False
        return self.conn.alive and await self.conn.check_health(self.call_timeout)

    # ------------------------------------------------------------ teardown

    async def close_instance(self, graceful: bool = False) -> None:
        if self.conn is not None:
            await self.conn.close()
            self.conn = None
        if self.endpoint is not None:
            await self.endpoint.terminate(grace=1.0 if graceful else 0.0)
            self.endpoint = None
        self.handle = None

    async def kill(self) -> None:
        """SIGKILL the plugin's process group (a crash, as far as the host can tell)."""
        if self.endpoint is not None and self.endpoint.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.endpoint.process.pid, signal.SIGKILL)
            await self.endpoint.process.wait()

    async def close(self) -> None:
        await self.close_instance()
        if self.api is not None:
            await self.api.stop(grace=0.2)
            self.api = None
        shutil.rmtree(self.scratch, ignore_errors=True)


def _usable_id(value: object) -> TypeGuard[str]:
    """A manifest id the host accepts as a plugin id (else the suite uses its own)."""
    if not isinstance(value, str) or not value:
        return False
    try:
        PluginSpec(id=value, ref="file://x")
    except ValueError:
        return False
    return True


async def wait_exit(endpoint: Endpoint, timeout: float) -> int | None:
    """The process's exit code, or None if it is still running after `timeout` seconds."""
    proc = endpoint.process
    assert proc is not None
    try:
        return await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        return None
