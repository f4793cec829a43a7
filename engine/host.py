"""The composition root: config in, a running host out (service API, plugins, gateway, studio).

`Host.start()` brings things up in dependency order: the stand-in upstream (when an upstream
says `base_url: standin`), the Service API, the plugin supervisor, the gateway pipeline and
data collector, then the HTTP servers. `Host.stop()` takes them down in reverse: stop
accepting, drain data collection, stop the plugins (no orphans), close the upstream pool.
`serve_forever()` runs until SIGINT or SIGTERM.

Plugin sources other than the config file (the compiler issue's `--policies DIR`) hand their
plugins over as `extra_plugins`; they join the pipeline after the configured ones.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import shutil
import signal
import tempfile
from collections.abc import Sequence
from typing import Any

from celgate.engine.config import STANDIN, HostConfig, PluginConfig
from celgate.engine.counters_redis import counters_from_config
from celgate.engine.datacollect import DataCollector, Sink
from celgate.engine.gateway import Gateway
from celgate.engine.httpserver import AsgiServer, bind
from celgate.engine.objecthooks import PluginHookTargets
from celgate.engine.pipeline import DATA_COLLECTION, Pipeline
from celgate.engine.plugin_manager import DeclaredGrants, PluginManager, attach_to_host
from celgate.engine.service_api import HostServiceServer
from celgate.engine.standin import StandinApp
from celgate.engine.studio import plugin_info, studio_app
from celgate.engine.studio_api import studio_routes
from celgate.engine.studio_state import StudioState, open_studio
from celgate.engine.supervisor import PluginSpec, Supervisor
from celgate.engine.upstream import UpstreamClient

log = logging.getLogger("celgate.host")


class HostError(Exception):
    """The host could not start (a port in use, a plugin that fails to load, ...)."""


def plugin_spec(p: PluginConfig, config: HostConfig) -> PluginSpec:
    """The supervisor's view of a configured plugin; relative file:// refs resolve against the
    config file's folder."""
    return PluginSpec(
        id=p.id,
        ref=p.ref,
        config=p.config,
        runtime=p.runtime,
        failure_policy=p.failure_policy,
        deadline_ms=p.deadline_ms,
        deadlines=dict(p.deadlines),
        env=dict(p.env),
        base_dir=str(config.base_dir),
    )


class Host:
    def __init__(self, config: HostConfig, *, extra_plugins: Sequence[PluginConfig] = ()) -> None:
        self.config = config
        self.plugins = [*config.ordered_plugins(), *extra_plugins]
        self.service_api: HostServiceServer | None = None
        self.supervisor: Supervisor | None = None
        self.client = UpstreamClient()
        self.collector: DataCollector | None = None
        self.gateway: Gateway | None = None
        self.servers: list[AsgiServer] = []
        self.standin: AsgiServer | None = None
        self.gateway_server: AsgiServer | None = None
        self.studio_server: AsgiServer | None = None
        self.studio_state: StudioState | None = None
        self.plugin_manager: PluginManager | None = None
        self._tmpdir: str | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        cfg = self.config
        if any(u.base_url == STANDIN for u in cfg.upstreams):
            self.standin = AsgiServer(StandinApp(), bind("127.0.0.1", 0), name="standin")
            await self.standin.start()
            cfg.upstreams = [
                dataclasses.replace(u, base_url=self.standin.url) if u.base_url == STANDIN else u
                for u in cfg.upstreams
            ]
            log.info("stand-in upstream on %s", self.standin.url)
        # Bind the public ports before starting plugins: a port in use fails fast.
        try:
            gw_sock = bind(cfg.gateway.listen.host, cfg.gateway.listen.port)
            studio_sock = bind(cfg.studio.listen.host, cfg.studio.listen.port) if cfg.studio.enabled else None
        except OSError as exc:
            raise HostError(str(exc.strerror or exc)) from None

        gateway_plugins = [p for p in self.plugins if p.runtime == "gateway"]
        # counters: {backend: redis, redis_url: ...} shares rate limits across gateway replicas
        counters = counters_from_config(cfg.counters.backend, cfg.counters.redis_url)
        self.service_api = HostServiceServer(counters=counters)
        await self.service_api.start()
        self.supervisor = Supervisor(self.service_api)
        # Service API scopes: configured plugins hold what their manifest declares; with the
        # studio, the plugin manager adds the operator's grants for installed plugins.
        self.service_api.service.grants = DeclaredGrants(self.supervisor, [p.id for p in self.plugins])
        try:
            specs = [plugin_spec(p, cfg) for p in self.plugins]
        except ValueError as exc:
            raise HostError(str(exc)) from None
        await self.supervisor.start(specs)
        supervisor = self.supervisor

        pipeline = Pipeline(gateway_plugins, supervisor)
        sinks = [
            Sink(s.id, _getter(supervisor, s.id), s.timeouts[DATA_COLLECTION])
            for s in pipeline.data_collection
        ]
        self.collector = DataCollector(cfg.data_collection, sinks)
        self.collector.start()
        self.gateway = Gateway(cfg, pipeline, self.client, self.collector)

        self.gateway_server = AsgiServer(self.gateway.app(), gw_sock, name="gateway")
        await self.gateway_server.start()
        self.servers.append(self.gateway_server)
        if studio_sock is not None:
            state = await self._open_studio()
            app = studio_app(self.plugins, self._handle_of, self._gateway_stats, studio_routes(state))
            self.studio_server = AsgiServer(app, studio_sock, name="studio")
            await self.studio_server.start()
            self.servers.append(self.studio_server)

    async def _open_studio(self) -> StudioState:
        """The studio's store, object hooks (the studio-runtime plugins) and scheduler."""
        assert self.supervisor is not None and self.service_api is not None
        db = self.config.studio.db
        if not db:
            self._tmpdir = tempfile.mkdtemp(prefix="celgate-studio-")
            db = os.path.join(self._tmpdir, "studio.db")
            log.warning("studio: no studio.db configured; using a throw-away database %s", db)
        try:
            os.makedirs(os.path.dirname(db) or ".", exist_ok=True)
            state = await open_studio(db, plugins=PluginHookTargets(), events=self.service_api.bus)
        except Exception as exc:  # sqlite3, OSError, a bad CELGATE_ADMIN_TOKEN, ...
            raise HostError(f"studio: cannot open {db}: {exc}") from None
        self.studio_state = state
        state.plugin_status = self._plugin_status
        for problem in await state.refresh_plugins(self._studio_handles()):
            log.warning("studio: %s", problem)
        # plugin management (/api/v1/plugins/...), operator scope grants, the studio Service API
        # methods, and the plugins installed through the API (started again here)
        self.plugin_manager = await attach_to_host(self)
        return state

    def _studio_handles(self) -> list[Any]:
        assert self.supervisor is not None
        return [h for h in self.supervisor.handles if h.spec.runtime == "studio"]

    def _plugin_status(self, plugin_id: str) -> dict[str, Any] | None:
        for p in self.plugins:
            if p.id == plugin_id:
                return plugin_info(p, self._handle_of(plugin_id))
        return None

    async def reload_plugin(self, plugin_id: str) -> None:
        """Hot-reload one plugin (new process, health check, swap, drain the old one), then
        recompute the gateway's per-phase plugin lists in case its capabilities changed."""
        assert self.supervisor is not None
        await self.supervisor.reload(plugin_id)
        if self.gateway is not None:
            self.gateway.pipeline.refresh()
        if self.studio_state is not None:
            for problem in await self.studio_state.refresh_plugins(self._studio_handles()):
                log.warning("studio: %s", problem)

    def _gateway_stats(self) -> dict[str, Any]:
        stats = self.collector.stats if self.collector is not None else None
        return {"data_collection": dataclasses.asdict(stats) if stats is not None else {}}

    def _handle_of(self, plugin_id: str) -> Any | None:
        if self.supervisor is None:
            return None
        try:
            return self.supervisor.get(plugin_id)
        except KeyError:
            return None

    async def stop(self) -> None:
        for server in reversed(self.servers):
            await server.stop()
        self.servers.clear()
        if self.collector is not None:
            await self.collector.stop()
        if self.plugin_manager is not None:
            try:
                await self.plugin_manager.close()
            except Exception:
                log.exception("stopping the gateway parts of installed plugins failed")
            self.plugin_manager = None
        if self.studio_state is not None:
            try:
                await self.studio_state.close()
            except Exception:
                log.exception("closing the studio failed")
            self.studio_state = None
        if self.supervisor is not None:
            try:
                await self.supervisor.stop()
            except Exception:
                log.exception("stopping plugins failed")
            self.supervisor = None
        if self.service_api is not None:
            await self.service_api.stop()
            self.service_api = None
        await self.client.close()
        if self.standin is not None:
            await self.standin.stop()
            self.standin = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    async def serve_forever(self, stop: asyncio.Event | None = None) -> None:
        """Run until `stop` is set (by default: until SIGINT/SIGTERM), then stop gracefully."""
        if stop is None:
            stop = asyncio.Event()
            install_stop_signals(stop)
        try:
            await stop.wait()
            log.info("shutting down")
        finally:
            await self.stop()


def install_stop_signals(stop: asyncio.Event) -> None:
    """SIGINT and SIGTERM set `stop` (install before starting, so no signal is missed)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


def _getter(supervisor: Supervisor, plugin_id: str) -> Any:
    return lambda: supervisor.get(plugin_id)
