"""The supervisor: the host half of the plugin lifecycle (the plugin half is sdk/serve.py).

It starts each configured plugin (handshake, health check, manifest, Configure), watches it
(process exit, health checks, a lost hooks stream), restarts it with backoff, reloads it
without failing requests (start new, health-check, swap, drain old) and stops everything
gracefully, then by force, leaving no process behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celgate import __version__
from celgate.engine.eventbus import Subscription
from celgate.engine.handle import (
    FAILURE_POLICIES,
    PHASES,
    RUNTIMES,
    Connection,
    HookError,
    PluginHandle,
    PluginSpec,
)
from celgate.engine.loaders import Endpoint, LoadError, loader_for
from celgate.engine.service_api import HostServiceServer
from celgate.sdk import protocol
from celgate.sdk.capabilities import HOOK_CAPABILITIES
from celgate.v1 import common_pb2, plugin_pb2

log = logging.getLogger("celgate.supervisor")

__all__ = [
    "FAILURE_POLICIES",
    "PHASES",
    "RUNTIMES",
    "HookError",
    "LoadError",
    "PluginHandle",
    "PluginSpec",
    "Supervisor",
]


@dataclass
class Description:
    manifest: dict[str, Any]
    capabilities: frozenset[str]
    response_chunks: bool
    subscriptions: list[str]
    routes: list[plugin_pb2.EndpointRoute]
    hooks_address: str = ""


@dataclass
class Instance:
    """One running incarnation of a plugin."""

    spec: PluginSpec
    endpoint: Endpoint
    conn: Connection
    secret: str
    desc: Description
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    retiring: asyncio.Future[None] | None = None
    subscription: Subscription | None = None

    @property
    def retired(self) -> bool:
        return self.retiring is not None


class Supervisor:
    def __init__(
        self,
        service_api: HostServiceServer | None = None,
        *,
        handshake_timeout: float = 10.0,
        call_timeout: float = 5.0,
        health_interval: float = 2.0,
        health_timeout: float = 1.0,
        health_failures: int = 3,
        backoff_initial: float = 0.1,
        backoff_max: float = 10.0,
        stop_grace: float = 2.0,
    ) -> None:
        self.service_api = service_api
        self.handshake_timeout = handshake_timeout
        self.call_timeout = call_timeout
        self.health_interval = health_interval
        self.health_timeout = health_timeout
        self.health_failures = health_failures
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.stop_grace = stop_grace
        self._handles: dict[str, PluginHandle] = {}
        self._instances: dict[str, Instance] = {}
        self._restarts: dict[str, asyncio.Task[None]] = {}
        self._stopping = False

    # ------------------------------------------------------------ public

    @property
    def handles(self) -> list[PluginHandle]:
        return list(self._handles.values())

    def get(self, plugin_id: str) -> PluginHandle:
        try:
            return self._handles[plugin_id]
        except KeyError:
            raise KeyError(f"no plugin {plugin_id!r} is configured") from None

    async def start(self, specs: Iterable[PluginSpec]) -> None:
        """Start every plugin (in parallel); if one fails to load, stop the rest and raise LoadError."""
        specs = list(specs)
        ids = [s.id for s in specs]
        dupes = sorted({i for i in ids if ids.count(i) > 1} | (set(ids) & set(self._handles)))
        if dupes:
            raise LoadError(f"plugin ids configured more than once: {dupes}")
        for spec in specs:
            loader_for(spec.ref).check(spec.ref, self._base(spec))  # fail fast, before any process
        results = await asyncio.gather(*(self._launch(s) for s in specs), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            await asyncio.gather(*(self._retire(r) for r in results if isinstance(r, Instance)))
            first = errors[0]
            raise first if isinstance(first, LoadError) else LoadError(str(first))
        for spec, inst in zip(specs, results, strict=True):
            assert isinstance(inst, Instance)
            handle = PluginHandle(spec)
            self._handles[spec.id] = handle
            self._install(handle, inst)

    async def reload(self, plugin_id: str, spec: PluginSpec | None = None) -> None:
        """Start a new instance, health-check it, swap it in, then drain and stop the old one.

        If the new instance fails to load, the old one keeps serving and LoadError is raised.
        """
        handle = self.get(plugin_id)
        spec = spec or handle.spec
        if spec.id != plugin_id:
            raise ValueError(f"reload({plugin_id!r}) was given a spec for {spec.id!r}")
        loader_for(spec.ref).check(spec.ref, self._base(spec))
        inst = await self._launch(spec)
        if self._stopping:
            await self._retire(inst)
            return
        pending = self._restarts.pop(plugin_id, None)
        if pending is not None:
            pending.cancel()
        old = self._instances.get(plugin_id)
        self._install(handle, inst)
        if old is not None:
            await self._retire(old, drain=True)

    async def remove(self, plugin_id: str) -> None:
        """Stop one plugin (drain, then stop its process) and forget it (disable / uninstall)."""
        handle = self.get(plugin_id)
        pending = self._restarts.pop(plugin_id, None)
        if pending is not None:
            pending.cancel()
        del self._handles[plugin_id]
        handle._swap(None)
        inst = self._instances.pop(plugin_id, None)
        if inst is not None:
            await self._retire(inst, drain=True)

    async def stop(self) -> None:
        """Shutdown every plugin gracefully, then by force; no process survives."""
        self._stopping = True
        for task in self._restarts.values():
            task.cancel()
        self._restarts.clear()
        instances = list(self._instances.values())
        for handle in self._handles.values():
            handle._swap(None)
        await asyncio.gather(*(self._retire(i, drain=True) for i in instances), return_exceptions=True)
        self._instances.clear()

    # ------------------------------------------------------------ launch

    def _base(self, spec: PluginSpec) -> Path:
        return Path(spec.base_dir) if spec.base_dir else Path.cwd()

    def _env(self, spec: PluginSpec, secret: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(spec.env)
        env.update(
            {
                protocol.COOKIE_KEY: protocol.COOKIE_VALUE,
                protocol.ENV_PROTOCOL_VERSIONS: str(protocol.APP_PROTOCOL_VERSION),
                protocol.ENV_PLUGIN_ID: spec.id,
                protocol.ENV_RUNTIME: spec.runtime,
                protocol.ENV_HOST_SERVICE: self.service_api.address if self.service_api else "",
                protocol.ENV_HOST_SERVICE_FAST: getattr(self.service_api, "fast_address", ""),
                protocol.ENV_SECRET: secret,
            }
        )
        env.pop(protocol.ENV_LISTEN, None)
        return env

    async def _launch(self, spec: PluginSpec) -> Instance:
        loader = loader_for(spec.ref)
        secret = self.service_api.register(spec.id) if self.service_api else ""
        endpoint: Endpoint | None = None
        conn: Connection | None = None
        try:
            endpoint = await loader.launch(
                spec.id, spec.ref, self._base(spec), self._env(spec, secret), self.handshake_timeout
            )
            conn = Connection(spec.id, endpoint.target)
            try:
                await conn.wait_ready(self.handshake_timeout)
            except TimeoutError:
                raise LoadError(f"plugin {spec.id}: cannot connect to {endpoint.target}") from None
            if not await conn.check_health(self.call_timeout):
                raise LoadError(f"plugin {spec.id}: health check at {endpoint.target} did not report SERVING")
            desc = await self._describe(spec, conn)
            await self._configure(spec, conn, secret)
            if desc.capabilities & HOOK_CAPABILITIES:
                await conn.open_hooks(desc.hooks_address if endpoint.process is not None else "")
            return Instance(spec=spec, endpoint=endpoint, conn=conn, secret=secret, desc=desc)
        except BaseException as exc:
            if conn is not None:
                await conn.close()
            if endpoint is not None:
                await endpoint.terminate(grace=0.5)
            if self.service_api and secret:
                self.service_api.revoke(secret)
            if isinstance(exc, LoadError | asyncio.CancelledError):
                raise
            if isinstance(exc, Exception):
                raise LoadError(f"plugin {spec.id}: {type(exc).__name__}: {exc}") from exc
            raise

    async def _describe(self, spec: PluginSpec, conn: Connection) -> Description:
        reply = await conn.stub.GetManifest(common_pb2.Empty(), timeout=self.call_timeout)
        try:
            manifest = json.loads(reply.manifest_json) if reply.manifest_json else {}
        except ValueError as exc:
            raise LoadError(f"plugin {spec.id}: its manifest is not JSON: {exc}") from None
        if not isinstance(manifest, dict):
            raise LoadError(f"plugin {spec.id}: its manifest is not a JSON object")
        if manifest.get("id") != spec.id:
            raise LoadError(f"plugin {spec.id}: the plugin says its id is {manifest.get('id')!r}")
        capabilities = frozenset(reply.capabilities)
        declared = manifest.get("capabilities")
        if isinstance(declared, list) and set(declared) != capabilities:
            raise LoadError(
                f"plugin {spec.id}: manifest capabilities {sorted(declared)} disagree with the implemented "
                f"{sorted(capabilities)}"
            )
        routes: list[plugin_pb2.EndpointRoute] = []
        if "custom_endpoints" in capabilities:
            routes = list(
                (await conn.stub.ListEndpoints(common_pb2.Empty(), timeout=self.call_timeout)).routes
            )
        return Description(
            manifest,
            capabilities,
            reply.response_chunks,
            list(reply.subscriptions),
            routes,
            reply.hooks_address,
        )

    async def _configure(self, spec: PluginSpec, conn: Connection, secret: str) -> None:
        service = self.service_api
        address = ""
        if service is not None:
            network = spec.ref.startswith("grpc://")
            address = service.network_address if network and service.network_address else service.address
        request = plugin_pb2.ConfigureRequest(
            plugin_id=spec.id,
            runtime=spec.runtime,
            config_json=json.dumps(spec.config),
            host_version=__version__,
            host_service_address=address,
            plugin_secret=secret,
        )
        reply = await conn.stub.Configure(request, timeout=self.call_timeout)
        if not reply.ok:
            raise LoadError(f"plugin {spec.id}: Configure failed: {reply.error}")

    # ------------------------------------------------------------ watch, restart, retire

    def _install(self, handle: PluginHandle, inst: Instance) -> None:
        handle.spec = inst.spec
        handle.manifest = inst.desc.manifest
        handle.capabilities = inst.desc.capabilities
        handle.response_chunks = inst.desc.response_chunks
        handle.subscriptions = inst.desc.subscriptions
        handle._routes = inst.desc.routes
        handle.pid = inst.endpoint.pid
        handle._swap(inst.conn)
        self._instances[handle.plugin_id] = inst
        inst.tasks.append(asyncio.create_task(self._watch(handle, inst)))
        if inst.desc.subscriptions and self.service_api is not None:
            # Subscribe now, not in the task: no event published after start() returns is missed.
            sub = inst.subscription = self.service_api.bus.subscribe(inst.desc.subscriptions)
            inst.tasks.append(asyncio.create_task(self._deliver_events(handle, sub)))
        log.info(
            "plugin %s up (pid %s, %s)", handle.plugin_id, handle.pid, ", ".join(sorted(handle.capabilities))
        )

    async def _watch(self, handle: PluginHandle, inst: Instance) -> None:
        exited = asyncio.ensure_future(inst.endpoint.wait()) if inst.endpoint.process is not None else None
        failures = 0
        reason = ""
        try:
            while not reason:
                if exited is not None:
                    done, _ = await asyncio.wait({exited}, timeout=self.health_interval)
                    if done:
                        reason = f"exited with code {exited.result()}"
                        break
                else:
                    await asyncio.sleep(self.health_interval)
                if not inst.conn.alive:
                    reason = "its hooks stream was lost"
                    break
                if await inst.conn.check_health(self.health_timeout):
                    failures = 0
                else:
                    failures += 1
                    if failures >= self.health_failures:
                        reason = f"failed {failures} health checks"
        finally:
            if exited is not None and not exited.done():
                exited.cancel()
        if inst.retired or self._stopping:
            return
        log.warning("plugin %s %s; restarting", handle.plugin_id, reason)
        inst.conn.alive = False
        inst.conn.fail_pending("crash", f"the plugin {reason}")
        if self._instances.get(handle.plugin_id) is inst:
            handle._swap(None)
            self._restarts[handle.plugin_id] = asyncio.create_task(self._restart(handle, inst))

    async def _restart(self, handle: PluginHandle, dead: Instance) -> None:
        await self._retire(dead, graceful=False)  # dead or hung: no Shutdown call, kill at once
        attempt = 0
        while not self._stopping:
            delay = min(self.backoff_max, self.backoff_initial * (2**attempt))
            await asyncio.sleep(delay)
            try:
                inst = await self._launch(handle.spec)
            except LoadError as exc:
                attempt += 1
                log.error("plugin %s: restart failed (attempt %d): %s", handle.plugin_id, attempt, exc)
                continue
            if self._stopping:
                await self._retire(inst)
                return
            handle.restarts += 1
            self._restarts.pop(handle.plugin_id, None)
            self._install(handle, inst)
            return

    async def _deliver_events(self, handle: PluginHandle, sub: Subscription) -> None:
        timeout = handle.spec.timeout("events")
        try:
            while True:
                event = await sub.get()
                pb = common_pb2.Event(
                    id=event.id,
                    topic=event.topic,
                    origin=event.origin,
                    payload=event.payload,
                    unix_ms=event.unix_ms,
                )
                try:
                    await handle.unary("DeliverEvent", pb, timeout)
                except HookError as exc:
                    log.warning("plugin %s: event %s not delivered: %s", handle.plugin_id, event.topic, exc)
        finally:
            sub.close()

    async def _retire(self, inst: Instance, drain: bool = False, graceful: bool = True) -> None:
        """Stop one instance: drain, Shutdown RPC, close, then terminate its process group.

        Runs once per instance, shielded: a caller that is cancelled (a restart overtaken by a
        reload or a stop) never leaves a process half-stopped, and later callers wait for it.
        """
        if inst.retiring is None:
            inst.retiring = asyncio.ensure_future(self._stop_instance(inst, drain, graceful))
        await asyncio.shield(inst.retiring)

    async def _stop_instance(self, inst: Instance, drain: bool, graceful: bool) -> None:
        if inst.subscription is not None:
            inst.subscription.close()
        current = asyncio.current_task()
        for task in inst.tasks:
            if task is not current:
                task.cancel()
        if drain:
            await inst.conn.drain(self.stop_grace)
        if graceful and inst.endpoint.process is not None and inst.endpoint.running:  # never a grpc:// one
            with contextlib.suppress(Exception):
                await inst.conn.stub.Shutdown(
                    plugin_pb2.ShutdownRequest(grace_ms=int(self.stop_grace * 1000)), timeout=self.stop_grace
                )
        await inst.conn.close()
        await inst.endpoint.terminate(self.stop_grace if graceful else 0.0)
        if self.service_api is not None and inst.secret:
            self.service_api.revoke(inst.secret)
