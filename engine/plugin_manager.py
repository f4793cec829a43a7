"""Plugin management: install, enable/disable, config updates, scope grants and hot reload.

Two kinds of plugins run in a host. *Configured* plugins come from celgate.yaml (or
`serve --policies`); the operator's file is their consent, so their scopes are the ones their
manifest declares in `permissions.scopes` (or top-level `scopes`), and nothing when it declares
none (fail closed; `log.write` is always held). *Installed* plugins come
through the studio API and live in the store's install records; they run in the studio
runtime and hold only the scopes an operator granted (`POST /api/v1/plugins/{id}/scopes`),
which must be among those their manifest declares: fail closed.

Config changes are validated with jsonschema against the schema the running plugin reports
(`GetConfigSchema`) before anything is stored, then applied by a reload. Every reload, of either
kind, is the supervisor's: start the new process, health-check it, swap, drain the old one.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import jsonschema

from celgate.engine.audit import entry
from celgate.engine.handle import HookError, PluginHandle, PluginSpec
from celgate.engine.loaders import LoadError
from celgate.engine.service_api import ALWAYS_GRANTED, KNOWN_SCOPES
from celgate.engine.store.base import NotFound, PluginInstall, Store, VersionMismatch
from celgate.engine.supervisor import Supervisor
from celgate.v1 import common_pb2

log = logging.getLogger("celgate.plugin_manager")

INSTALLED_RUNTIME = "studio"
SCHEMES = ("file", "grpc", "oci")


class ManagerError(Exception):
    """A management request the manager refuses; `status` and `kind` map to the HTTP answer."""

    def __init__(self, status: int, kind: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.kind, self.message, self.extra = status, kind, message, extra


def declared_scopes(manifest: dict[str, Any]) -> frozenset[str] | None:
    """The scopes a manifest declares, in `permissions.scopes` or (as `celgate compile` writes
    them) a top-level `scopes` list; None when it declares neither."""
    perms = manifest.get("permissions")
    lists = [perms.get("scopes")] if isinstance(perms, dict) and "scopes" in perms else []
    if "scopes" in manifest:
        lists.append(manifest["scopes"])
    if not lists:
        return None
    return frozenset(s for scopes in lists if isinstance(scopes, list) for s in scopes if isinstance(s, str))


class DeclaredGrants:
    """The Service API grants of the plugins configured in the host config: exactly what each
    manifest declares (nothing, when it declares nothing: fail closed; `log.write` is held by
    every plugin anyway); any other plugin id holds nothing.

    Called on every Service API call, so it allocates nothing once a manifest was seen.
    """

    def __init__(self, supervisor: Supervisor, plugin_ids: Iterable[str]) -> None:
        self.supervisor = supervisor
        self.plugin_ids = frozenset(plugin_ids)
        self._cache: dict[str, tuple[Any, frozenset[str] | None]] = {}  # id -> (manifest, declared)

    def __call__(self, plugin_id: str) -> frozenset[str] | None:
        if plugin_id not in self.plugin_ids:
            return _NOTHING
        try:
            manifest: Any = self.supervisor.get(plugin_id).manifest
        except KeyError:
            manifest = None
        cached = self._cache.get(plugin_id)
        if cached is None or (manifest and cached[0] is not manifest):
            declared = declared_scopes(manifest) if manifest else None
            cached = self._cache[plugin_id] = (manifest, _NOTHING if declared is None else declared)
        return cached[1]


_NOTHING: frozenset[str] = frozenset()
P = ParamSpec("P")
T = TypeVar("T")


def _serialized(
    method: Callable[Concatenate[PluginManager, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[PluginManager, P], Coroutine[Any, Any, T]]:
    """One management operation at a time: a reload never races a disable of the same plugin."""

    @functools.wraps(method)
    async def wrapper(self: PluginManager, /, *args: P.args, **kwargs: P.kwargs) -> T:
        async with self._lock:
            return await method(self, *args, **kwargs)

    return wrapper


class PluginManager:
    """Acts on the store's install records through the supervisor; one per host."""

    def __init__(
        self,
        store: Store,
        supervisor: Supervisor,
        *,
        configured: Sequence[PluginSpec] = (),
        refresh: Callable[[], Awaitable[None]] | None = None,
        base_dir: str = "",
        call_timeout: float = 5.0,
        gateway_parts: Supervisor | None = None,
    ) -> None:
        self.store = store
        self.supervisor = supervisor
        self.configured = {s.id: s for s in configured}
        self._refresh = refresh
        self.base_dir = base_dir
        self.call_timeout = call_timeout
        # the gateway-runtime processes of installed plugins whose manifest lists both runtimes
        self.gateway_parts = gateway_parts
        self._lock = asyncio.Lock()
        self._grants: dict[str, frozenset[str]] = {}  # installed plugin -> granted scopes
        self._declared: dict[str, frozenset[str] | None] = {}  # last manifest seen per plugin
        self._errors: dict[str, str] = {}  # installed plugin -> why it is not running
        self._configured_grants = DeclaredGrants(supervisor, self.configured)

    # ------------------------------------------------------------------ scopes

    def grants_for(self, plugin_id: str) -> frozenset[str] | None:
        """What the Service API lets `plugin_id` do (None: every scope). On every Service API
        call, so it allocates nothing: the service adds `ALWAYS_GRANTED` itself."""
        granted = self._grants.get(plugin_id)
        if granted is not None:
            return granted
        return self._configured_grants(plugin_id)

    def _declared_now(self, plugin_id: str) -> frozenset[str] | None:
        handle = self.handle(plugin_id)
        if handle is not None and handle.manifest:
            self._declared[plugin_id] = declared_scopes(handle.manifest)
        return self._declared.get(plugin_id)

    @_serialized
    async def grant(self, plugin_id: str, scopes: Iterable[str], actor: str) -> PluginInstall:
        """Replace the scopes granted to an installed plugin; only declared scopes are grantable."""
        wanted = list(scopes)
        current = await self._installed(plugin_id)
        unknown = sorted(set(wanted) - KNOWN_SCOPES)
        if unknown:
            raise ManagerError(
                422, "invalid", f"unknown scopes: {', '.join(unknown)}", known=sorted(KNOWN_SCOPES)
            )
        if plugin_id not in self._declared and self.handle(plugin_id) is None:
            raise ManagerError(409, "conflict", f"plugin {plugin_id} has not run yet: enable it first")
        declared = self._declared_now(plugin_id) or frozenset()
        undeclared = sorted(set(wanted) - declared)
        if undeclared:
            raise ManagerError(
                422,
                "invalid",
                f"plugin {plugin_id} does not declare {', '.join(undeclared)} in permissions.scopes",
                declared=sorted(declared),
            )
        record = replace(current, scopes=tuple(sorted(set(wanted))))
        saved = await self.store.put_plugin(
            record,
            current.version,
            entry(actor, "plugin.scopes", "plugin", plugin_id, scopes=list(record.scopes)),
        )
        self._grants[plugin_id] = frozenset(saved.scopes)
        return saved

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> list[str]:
        """Load the grants and start every enabled installed plugin; returns problems to log.

        A plugin that fails to start is reported and left down; it never stops the host.
        """
        problems = []
        started = False
        for record in await self.store.list_plugins():
            if record.id in self.configured:  # the host config wins over a stale install record
                problems.append(f"installed plugin {record.id} is also in the host config; using the config")
                continue
            self._grants[record.id] = frozenset(record.scopes)
            if not record.enabled:
                continue
            try:
                await self._launch(self._spec(record))
                started = True
            except ManagerError as exc:
                self._errors[record.id] = exc.message
                problems.append(f"installed plugin {record.id} did not start: {exc.message}")
        if started:
            await self._refreshed()
        return problems

    @_serialized
    async def install(
        self, plugin_id: str, ref: str, config: dict[str, Any], enabled: bool, actor: str
    ) -> PluginInstall:
        """Record and (when enabled) start a plugin; its config must satisfy its schema."""
        if plugin_id in self.configured:
            raise ManagerError(409, "conflict", f"plugin {plugin_id} is configured in the host config")
        _check_ref(ref)
        record = PluginInstall(plugin_id, ref, config, enabled, ())
        spec = self._spec(record)  # checks the id
        if await self.store.get_plugin(plugin_id) is not None:
            raise ManagerError(409, "conflict", f"plugin {plugin_id!r} is already installed")
        if enabled:
            await self._launch(spec)
            try:
                await self._validate(plugin_id, config)
            except BaseException:
                await self._remove(plugin_id)
                raise
        try:
            saved = await self.store.put_plugin(
                record, None, entry(actor, "plugin.install", "plugin", plugin_id, ref=ref)
            )
        except BaseException:
            if enabled:
                await self._remove(plugin_id)
            raise
        self._grants[plugin_id] = frozenset()
        if enabled:
            await self._refreshed()
        return saved

    @_serialized
    async def set_enabled(self, plugin_id: str, enabled: bool, actor: str) -> PluginInstall:
        current = await self._installed(plugin_id)
        running = self.handle(plugin_id) is not None
        if enabled and not running:
            await self._launch(self._spec(current))
            try:  # a config stored while the plugin was disabled is checked now
                await self._validate(plugin_id, current.config)
            except BaseException:
                await self._remove(plugin_id)
                raise
        elif not enabled and running:
            self._declared_now(plugin_id)
            await self._remove(plugin_id)
        saved = await self.store.put_plugin(
            replace(current, enabled=enabled),
            current.version,
            entry(actor, "plugin.enable" if enabled else "plugin.disable", "plugin", plugin_id),
        )
        await self._refreshed()
        return saved

    @_serialized
    async def update_config(
        self, plugin_id: str, config: dict[str, Any], expected_version: int | None, actor: str
    ) -> PluginInstall:
        """Validate `config` against the running plugin's schema, reload with it, then store it.

        A disabled plugin has no process to ask: its config is stored and checked on enable."""
        current = await self._installed(plugin_id)
        if expected_version is not None and expected_version != current.version:
            raise VersionMismatch(current.version)
        record = replace(current, config=config)
        if self.handle(plugin_id) is not None:
            await self._validate(plugin_id, config)
            await self._reload(plugin_id, self._spec(record))
        saved = await self.store.put_plugin(
            record, current.version, entry(actor, "plugin.config", "plugin", plugin_id)
        )
        return saved

    @_serialized
    async def reload(self, plugin_id: str, actor: str) -> None:
        """Hot-reload any running plugin, configured or installed (the old one serves meanwhile)."""
        if self.handle(plugin_id) is None:
            raise ManagerError(409, "conflict", f"plugin {plugin_id} is not running")
        spec = None
        if plugin_id not in self.configured:
            spec = self._spec(await self._installed(plugin_id))
        await self._reload(plugin_id, spec)
        await self.store.add_audit([entry(actor, "plugin.reload", "plugin", plugin_id)])

    @_serialized
    async def uninstall(self, plugin_id: str, expected_version: int | None, actor: str) -> None:
        if plugin_id in self.configured:
            raise ManagerError(409, "conflict", f"plugin {plugin_id} is configured in the host config")
        await self.store.delete_plugin(
            plugin_id, expected_version, entry(actor, "plugin.uninstall", "plugin", plugin_id)
        )
        if self.handle(plugin_id) is not None:
            await self._remove(plugin_id)
            await self._refreshed()
        self._grants.pop(plugin_id, None)
        self._declared.pop(plugin_id, None)
        self._errors.pop(plugin_id, None)

    # ------------------------------------------------------------------ status

    def status(self, plugin_id: str) -> dict[str, Any] | None:
        """Live status of a plugin: running, healthy, pid, capabilities, scopes."""
        handle = self.handle(plugin_id)
        if handle is None and plugin_id not in self.configured and plugin_id not in self._grants:
            return None
        grants = self.grants_for(plugin_id)
        grants = None if grants is None else grants | ALWAYS_GRANTED
        out: dict[str, Any] = {
            "source": "config" if plugin_id in self.configured else "installed",
            "running": handle is not None,
            "healthy": bool(handle is not None and handle.healthy),
            "scopes": "all" if grants is None else sorted(grants),
        }
        if handle is not None:
            out.update(
                runtime=handle.spec.runtime,
                pid=handle.pid,
                restarts=handle.restarts,
                version=str(handle.manifest.get("version", "")),
                capabilities=sorted(handle.capabilities),
                declared_scopes=sorted(declared_scopes(handle.manifest) or ()),
            )
        part = self.gateway_part(plugin_id)
        if part is not None:
            out["parts"] = {"gateway": {"pid": part.pid, "healthy": part.healthy, "restarts": part.restarts}}
        if plugin_id in self._errors:
            out["error"] = self._errors[plugin_id]
        return out

    # ------------------------------------------------------------------ internals

    def handle(self, plugin_id: str) -> PluginHandle | None:
        try:
            return self.supervisor.get(plugin_id)
        except KeyError:
            return None

    async def _installed(self, plugin_id: str) -> PluginInstall:
        if plugin_id in self.configured:
            raise ManagerError(
                409, "conflict", f"plugin {plugin_id} is configured in the host config; change it there"
            )
        record = await self.store.get_plugin(plugin_id)
        if record is None:
            raise NotFound(f"plugin {plugin_id!r} is not installed")
        return record

    def _spec(self, record: PluginInstall) -> PluginSpec:
        try:
            return PluginSpec(
                id=record.id,
                ref=record.ref,
                config=dict(record.config),
                runtime=INSTALLED_RUNTIME,
                deadline_ms=5000,
                base_dir=self.base_dir,
            )
        except ValueError as exc:
            raise ManagerError(422, "invalid", str(exc)) from None

    def _wants_gateway_part(self, spec: PluginSpec) -> bool:
        """A `file://` plugin folder whose manifest lists `runtimes: [studio, gateway]`."""
        if self.gateway_parts is None or not spec.ref.startswith("file://"):
            return False
        folder = Path(self.base_dir or ".") / spec.ref[len("file://") :]
        try:
            manifest = json.loads((folder / "manifest.json").read_text())
        except (OSError, ValueError):
            return False
        runtimes = manifest.get("runtimes") if isinstance(manifest, dict) else None
        return isinstance(runtimes, list) and "gateway" in runtimes

    def gateway_part(self, plugin_id: str) -> PluginHandle | None:
        if self.gateway_parts is None:
            return None
        try:
            return self.gateway_parts.get(plugin_id)
        except KeyError:
            return None

    async def _launch(self, spec: PluginSpec) -> None:
        """Start the plugin's studio process and, when its manifest asks, its gateway process:
        two processes of one plugin, each told its runtime, one identity on the Service API."""
        try:
            await self.supervisor.start([spec])
            if self._wants_gateway_part(spec):
                assert self.gateway_parts is not None
                try:
                    await self.gateway_parts.start([replace(spec, runtime="gateway")])
                except BaseException:
                    await self.supervisor.remove(spec.id)
                    raise
        except (LoadError, ValueError) as exc:
            raise ManagerError(422, "load_failed", str(exc)) from None
        self._errors.pop(spec.id, None)
        self._declared_now(spec.id)

    async def _remove(self, plugin_id: str) -> None:
        if self.handle(plugin_id) is not None:
            await self.supervisor.remove(plugin_id)
        if self.gateway_parts is not None and self.gateway_part(plugin_id) is not None:
            await self.gateway_parts.remove(plugin_id)

    async def close(self) -> None:
        """Stop the gateway parts (the host's supervisor stops everything else)."""
        if self.gateway_parts is not None:
            await self.gateway_parts.stop()

    async def _reload(self, plugin_id: str, spec: PluginSpec | None) -> None:
        try:
            await self.supervisor.reload(plugin_id, spec)
            part = self.gateway_part(plugin_id)
            if part is not None and self.gateway_parts is not None:
                await self.gateway_parts.reload(plugin_id, replace(spec or part.spec, runtime="gateway"))
        except (LoadError, ValueError) as exc:
            raise ManagerError(
                422, "load_failed", f"reload failed, the old process keeps serving: {exc}"
            ) from None
        self._declared_now(plugin_id)
        await self._refreshed()

    async def _refreshed(self) -> None:
        if self._refresh is not None:
            await self._refresh()

    async def config_schema(self, plugin_id: str) -> dict[str, Any] | None:
        """The JSON Schema the running plugin reports for its config (None: it takes any)."""
        handle = self.handle(plugin_id)
        if handle is None:
            return None
        try:
            reply: Any = await handle.unary("GetConfigSchema", common_pb2.Empty(), self.call_timeout)
        except HookError as exc:
            raise ManagerError(
                502, "plugin_error", f"plugin {plugin_id}: GetConfigSchema failed: {exc}"
            ) from None
        if not reply.schema_json:
            return None
        try:
            schema = json.loads(reply.schema_json)
        except ValueError:
            raise ManagerError(
                502, "plugin_error", f"plugin {plugin_id} reports a config schema that is not JSON"
            ) from None
        return schema if isinstance(schema, dict) else None

    async def _validate(self, plugin_id: str, config: dict[str, Any]) -> None:
        schema = await self.config_schema(plugin_id)
        if schema is None:
            return
        try:
            validator_cls = jsonschema.validators.validator_for(schema)
            validator_cls.check_schema(schema)
            validator = validator_cls(schema)
        except jsonschema.SchemaError as exc:
            raise ManagerError(
                502, "plugin_error", f"plugin {plugin_id} reports an invalid config schema: {exc.message}"
            ) from None
        errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
        if errors:
            raise ManagerError(
                422,
                "invalid",
                f"the config does not match plugin {plugin_id}'s config schema",
                fields=[
                    {"field": "/".join(str(p) for p in e.absolute_path) or "(root)", "message": e.message}
                    for e in errors[:20]
                ],
            )


def _check_ref(ref: str) -> None:
    scheme, sep, rest = ref.partition("://")
    if not sep or scheme not in SCHEMES or not rest:
        raise ManagerError(422, "invalid", "ref must be a file://, grpc:// or oci:// reference")


async def attach_to_host(host: Any) -> PluginManager:
    """Give a started `engine.host.Host` its plugin manager: grants from the store on the Service
    API, live status and the management routes on the studio, installed plugins started.

    `Host` calls it once the studio is open and calls the manager's `close()` (which stops the
    gateway parts of installed plugins) when it stops. Returns the manager (also set as
    `host.studio_state.plugin_manager`).
    """
    from celgate.engine.host import plugin_spec  # the host imports this module: import late

    supervisor, service_api, state = host.supervisor, host.service_api, host.studio_state
    if supervisor is None or service_api is None or state is None:
        raise RuntimeError("attach_to_host needs a started host with the studio enabled")

    async def refresh() -> None:
        if host.gateway is not None:
            host.gateway.pipeline.refresh()
        studio = [h for h in supervisor.handles if h.spec.runtime == "studio"]
        running = {h.plugin_id for h in studio}
        for schedule in {s.plugin_id for s, _, _ in state.scheduler.schedules()} - running:
            state.scheduler.remove_plugin(schedule)  # a disabled or uninstalled plugin's tasks
        for problem in await state.refresh_plugins(studio):
            log.warning("studio: %s", problem)

    manager = PluginManager(
        state.store,
        supervisor,
        configured=[plugin_spec(p, host.config) for p in host.plugins],
        refresh=refresh,
        base_dir=str(host.config.base_dir),
        gateway_parts=Supervisor(service_api),
    )
    service_api.service.grants = manager.grants_for
    service_api.service.studio = state
    state.plugin_status = manager.status
    state.plugin_manager = manager
    for problem in await manager.start():
        log.error("%s", problem)
    return manager
