"""Host configuration: `celgate.yaml` loaded, validated and turned into typed dataclasses.

Every problem is a `ConfigError` naming the file, line and setting, never a traceback. Secrets
never live in the file: an upstream names the environment variable that holds its API key.
With no file at all, `default_config()` gives the embedded development setup (gateway on
127.0.0.1:8080 in front of the in-process stand-in upstream, studio on 127.0.0.1:8081, no
client authentication).
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_GATEWAY_LISTEN = "127.0.0.1:8080"
DEFAULT_STUDIO_LISTEN = "127.0.0.1:8081"
STANDIN = "standin"  # `base_url: standin` starts the stand-in upstream inside the host
_PLUGIN_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")  # as engine.supervisor checks it
FAILURE_POLICIES = ("fail-closed", "fail-open")
# Phases a per-phase deadline may name (hook phases plus the out-of-band calls).
PHASES = ("pre_auth", "auth", "post_auth", "response", "data_collection", "custom_endpoints")


class ConfigError(Exception):
    """A configuration problem, formatted `file:line: setting: message`."""

    def __init__(self, message: str, *, file: str = "", line: int = 0, where: str = "") -> None:
        self.message = message
        self.file = file
        self.line = line
        self.where = where
        super().__init__(self.format())

    def format(self) -> str:
        loc = self.file or "<config>"
        if self.line:
            loc += f":{self.line}"
        return f"{loc}: {self.where + ': ' if self.where else ''}{self.message}"


@dataclass(frozen=True)
class Listen:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass
class UpstreamConfig:
    id: str
    base_url: str  # "standin" until the host has started the stand-in and rewritten it
    slug: str = ""
    vendor: str = "openai"
    models: list[str] = field(default_factory=list)  # "*" or "prefix*" patterns allowed
    api_key_env: str = ""
    default: bool = False
    timeout_s: float = 120.0
    connect_timeout_s: float = 5.0

    @property
    def api_key(self) -> str:
        """Read at use, so the key is never copied into config objects or logs."""
        return os.environ.get(self.api_key_env, "") if self.api_key_env else ""

    def serves(self, model: str) -> bool:
        for pattern in self.models:
            if pattern == model or pattern == "*":
                return True
            if pattern.endswith("*") and model.startswith(pattern[:-1]):
                return True
        return False


@dataclass
class PluginConfig:
    id: str
    ref: str
    order: int = 0
    config: dict[str, Any] = field(default_factory=dict)
    failure_policy: str = "fail-closed"
    deadline_ms: int = 1000
    deadlines: dict[str, int] = field(default_factory=dict)
    runtime: str = "gateway"
    env: dict[str, str] = field(default_factory=dict)
    enabled: bool = True


@dataclass
class DataCollectionConfig:
    batch_size: int = 100
    interval_ms: int = 1000
    queue_size: int = 10000
    timeout_ms: int = 5000
    max_body_bytes: int = 1 << 20  # request/response bodies kept per record, truncated beyond


@dataclass
class CountersConfig:
    backend: str = "memory"  # memory | redis
    redis_url: str = ""  # parsed now, served by the compiler issue


@dataclass
class GatewayConfig:
    listen: Listen = field(default_factory=lambda: parse_listen(DEFAULT_GATEWAY_LISTEN))
    trusted_proxies: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(default_factory=list)
    max_body_bytes: int = 16 << 20
    endpoint_timeout_s: float = 300.0


@dataclass
class StudioConfig:
    enabled: bool = True
    listen: Listen = field(default_factory=lambda: parse_listen(DEFAULT_STUDIO_LISTEN))
    db: str = ""  # the studio's SQLite file; "" = a fresh one in a temporary folder (development)


@dataclass
class HostConfig:
    gateway: GatewayConfig = field(default_factory=GatewayConfig)
    studio: StudioConfig = field(default_factory=StudioConfig)
    upstreams: list[UpstreamConfig] = field(default_factory=list)
    plugins: list[PluginConfig] = field(default_factory=list)
    data_collection: DataCollectionConfig = field(default_factory=DataCollectionConfig)
    counters: CountersConfig = field(default_factory=CountersConfig)
    source: str = ""  # the file it came from ("" = embedded defaults)
    base_dir: Path = field(default_factory=Path.cwd)  # relative file:// refs resolve here

    @property
    def is_default(self) -> bool:
        return not self.source

    def ordered_plugins(self) -> list[PluginConfig]:
        """Enabled plugins by `order`, ties kept in file order."""
        return sorted((p for p in self.plugins if p.enabled), key=lambda p: p.order)


def default_config() -> HostConfig:
    """The embedded development setup used when no config file is given."""
    return HostConfig(
        upstreams=[UpstreamConfig(id="standin", slug="standin", base_url=STANDIN, models=["*"], default=True)]
    )


def parse_listen(value: str) -> Listen:
    """`host:port` (IPv6 as `[::1]:8080`); raises ValueError with a readable message."""
    text = str(value).strip()
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return Listen(host, int(port))


# ----------------------------------------------------------------- loading with positions


def _compose(text: str, file: str) -> tuple[Any, dict[tuple[Any, ...], int]]:
    """Parse YAML into plain values plus a map from setting path to line number."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"invalid YAML: {problem}", file=file, line=mark.line + 1 if mark else 0) from None
    lines: dict[tuple[Any, ...], int] = {}

    def walk(n: yaml.Node | None, path: tuple[Any, ...]) -> Any:
        if n is None:
            return None
        lines[path] = n.start_mark.line + 1
        if isinstance(n, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for k, v in n.value:
                key = walk(k, (*path, "<key>"))
                if not isinstance(key, str | int | float | bool) and key is not None:
                    raise ConfigError("mapping keys must be scalars", file=file, line=k.start_mark.line + 1)
                if key in out:
                    raise ConfigError(f"duplicate key {key!r}", file=file, line=k.start_mark.line + 1)
                lines[(*path, key)] = k.start_mark.line + 1
                out[key] = walk(v, (*path, key))
                lines[(*path, key)] = k.start_mark.line + 1
            return out
        if isinstance(n, yaml.SequenceNode):
            return [walk(item, (*path, i)) for i, item in enumerate(n.value)]
        return _scalar(n, file)

    return walk(node, ()), lines


def _scalar(n: yaml.Node, file: str) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(n, deep=True)
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid value: {exc}", file=file, line=n.start_mark.line + 1) from None
    finally:
        loader.dispose()


class _Reader:
    """Typed accessors over the parsed document that raise ConfigError with positions."""

    def __init__(self, file: str, lines: dict[tuple[Any, ...], int]) -> None:
        self.file = file
        self.lines = lines

    def error(self, path: tuple[Any, ...], message: str) -> ConfigError:
        p = path
        while p and p not in self.lines:
            p = p[:-1]
        return ConfigError(message, file=self.file, line=self.lines.get(p, 0), where=_dotted(path))

    def mapping(self, value: Any, path: tuple[Any, ...], allowed: set[str]) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.error(path, f"expected a mapping, got {_kind(value)}")
        for key in value:
            if key not in allowed:
                hint = _closest(str(key), allowed)
                raise self.error(
                    (*path, key),
                    f"unknown setting {key!r}"
                    + (f" (did you mean {hint!r}?)" if hint else "")
                    + f"; allowed: {', '.join(sorted(allowed))}",
                )
        return value

    def str_(self, m: dict[str, Any], path: tuple[Any, ...], key: str, default: str | None = None) -> str:
        v = m.get(key)
        if v is None:
            if default is None:
                raise self.error((*path, key), "is required")
            return default
        if isinstance(v, bool) or not isinstance(v, str | int | float):
            raise self.error((*path, key), f"expected a string, got {_kind(v)}")
        return str(v)

    def int_(self, m: dict[str, Any], path: tuple[Any, ...], key: str, default: int, minimum: int = 0) -> int:
        v = m.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.error((*path, key), f"expected an integer, got {_kind(v)}")
        if v < minimum:
            raise self.error((*path, key), f"must be >= {minimum}, got {v}")
        return v

    def num(self, m: dict[str, Any], path: tuple[Any, ...], key: str, default: float) -> float:
        v = m.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0:
            raise self.error((*path, key), f"expected a positive number, got {v!r}")
        return float(v)

    def bool_(self, m: dict[str, Any], path: tuple[Any, ...], key: str, default: bool) -> bool:
        v = m.get(key, default)
        if not isinstance(v, bool):
            raise self.error((*path, key), f"expected true or false, got {_kind(v)}")
        return v

    def list_(self, m: dict[str, Any], path: tuple[Any, ...], key: str) -> list[Any]:
        v = m.get(key)
        if v is None:
            return []
        if not isinstance(v, list):
            raise self.error((*path, key), f"expected a list, got {_kind(v)}")
        return v

    def listen(self, m: dict[str, Any], path: tuple[Any, ...], key: str, default: str) -> Listen:
        try:
            return parse_listen(self.str_(m, path, key, default))
        except ValueError as exc:
            raise self.error((*path, key), str(exc)) from None


def _dotted(path: tuple[Any, ...]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _kind(v: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", type(None): "nothing"}.get(
        type(v), type(v).__name__
    )


def _closest(word: str, options: set[str]) -> str:
    import difflib

    match = difflib.get_close_matches(word, sorted(options), n=1, cutoff=0.6)
    return match[0] if match else ""


def load_config(path: str | Path) -> HostConfig:
    """Read and validate a config file; raises ConfigError (never anything else for bad input)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config: {exc}", file=str(path)) from None
    return parse_config(text, file=str(path), base_dir=p.resolve().parent)


def parse_config(text: str, *, file: str = "<config>", base_dir: Path | None = None) -> HostConfig:
    doc, lines = _compose(text, file)
    r = _Reader(file, lines)
    top = r.mapping(doc, (), {"gateway", "studio", "upstreams", "plugins", "data_collection", "counters"})
    cfg = HostConfig(source=file, base_dir=base_dir or Path.cwd())

    g = r.mapping(
        top.get("gateway"),
        ("gateway",),
        {"listen", "trusted_proxies", "max_body_bytes", "endpoint_timeout_s"},
    )
    cfg.gateway.listen = r.listen(g, ("gateway",), "listen", DEFAULT_GATEWAY_LISTEN)
    for i, net in enumerate(r.list_(g, ("gateway",), "trusted_proxies")):
        try:
            cfg.gateway.trusted_proxies.append(ipaddress.ip_network(str(net), strict=False))
        except ValueError:
            raise r.error(
                ("gateway", "trusted_proxies", i), f"not an IP address or CIDR range: {net!r}"
            ) from None
    cfg.gateway.max_body_bytes = r.int_(g, ("gateway",), "max_body_bytes", cfg.gateway.max_body_bytes, 1)
    cfg.gateway.endpoint_timeout_s = r.num(
        g, ("gateway",), "endpoint_timeout_s", cfg.gateway.endpoint_timeout_s
    )

    if "studio" in top and top["studio"] in (False, None):
        cfg.studio.enabled = False
    else:
        s = r.mapping(top.get("studio"), ("studio",), {"listen", "enabled", "db"})
        cfg.studio.enabled = r.bool_(s, ("studio",), "enabled", True)
        cfg.studio.listen = r.listen(s, ("studio",), "listen", DEFAULT_STUDIO_LISTEN)
        db = r.str_(s, ("studio",), "db", "")
        cfg.studio.db = str((cfg.base_dir / db).resolve()) if db else ""

    cfg.upstreams = _upstreams(r, top)
    cfg.plugins = _plugins(r, top)

    d = r.mapping(
        top.get("data_collection"),
        ("data_collection",),
        {"batch_size", "interval_ms", "queue_size", "timeout_ms", "max_body_bytes"},
    )
    dc = cfg.data_collection
    dc.batch_size = r.int_(d, ("data_collection",), "batch_size", dc.batch_size, 1)
    dc.interval_ms = r.int_(d, ("data_collection",), "interval_ms", dc.interval_ms, 1)
    dc.queue_size = r.int_(d, ("data_collection",), "queue_size", dc.queue_size, 1)
    dc.timeout_ms = r.int_(d, ("data_collection",), "timeout_ms", dc.timeout_ms, 1)
    dc.max_body_bytes = r.int_(d, ("data_collection",), "max_body_bytes", dc.max_body_bytes, 0)

    c = r.mapping(top.get("counters"), ("counters",), {"backend", "redis_url"})
    cfg.counters.backend = r.str_(c, ("counters",), "backend", "memory")
    if cfg.counters.backend not in ("memory", "redis"):
        raise r.error(("counters", "backend"), f"expected 'memory' or 'redis', got {cfg.counters.backend!r}")
    cfg.counters.redis_url = r.str_(c, ("counters",), "redis_url", "")
    if cfg.counters.backend == "redis" and not cfg.counters.redis_url.startswith(
        ("redis://", "rediss://", "unix://")
    ):
        raise r.error(("counters", "redis_url"), "backend 'redis' needs redis_url (redis://host:port/db)")
    return cfg


_UPSTREAM_KEYS = {
    "id",
    "slug",
    "vendor",
    "base_url",
    "models",
    "api_key_env",
    "default",
    "timeout_s",
    "connect_timeout_s",
    "api_key",
}


def _upstreams(r: _Reader, top: dict[str, Any]) -> list[UpstreamConfig]:
    out: list[UpstreamConfig] = []
    raw = r.list_(top, (), "upstreams")
    if not raw:
        raise r.error(
            ("upstreams",),
            "at least one upstream is required (use `base_url: standin` for the built-in stand-in)",
        )
    seen: set[str] = set()
    for i, item in enumerate(raw):
        path: tuple[Any, ...] = ("upstreams", i)
        m = r.mapping(item, path, _UPSTREAM_KEYS)
        if "api_key" in m:
            raise r.error(
                (*path, "api_key"),
                "API keys are never stored in the config: set api_key_env to the "
                "name of an environment variable holding the key",
            )
        uid = r.str_(m, path, "id")
        if uid in seen:
            raise r.error((*path, "id"), f"duplicate upstream id {uid!r}")
        seen.add(uid)
        base = r.str_(m, path, "base_url").rstrip("/")
        if base != STANDIN and not base.startswith(("http://", "https://")):
            raise r.error((*path, "base_url"), f"expected an http(s) URL or 'standin', got {base!r}")
        models = [str(x) for x in r.list_(m, path, "models")]
        up = UpstreamConfig(
            id=uid,
            base_url=base,
            slug=r.str_(m, path, "slug", uid),
            vendor=r.str_(m, path, "vendor", "openai"),
            models=models,
            api_key_env=r.str_(m, path, "api_key_env", ""),
            default=r.bool_(m, path, "default", False),
            timeout_s=r.num(m, path, "timeout_s", 120.0),
            connect_timeout_s=r.num(m, path, "connect_timeout_s", 5.0),
        )
        out.append(up)
    defaults = [u for u in out if u.default]
    if len(defaults) > 1:
        raise r.error(("upstreams",), f"only one upstream may be the default, got {[u.id for u in defaults]}")
    if not defaults:
        out[0].default = True
    return out


_PLUGIN_KEYS = {
    "id",
    "ref",
    "order",
    "config",
    "failure_policy",
    "deadline_ms",
    "deadlines",
    "runtime",
    "env",
    "enabled",
}


def _plugins(r: _Reader, top: dict[str, Any]) -> list[PluginConfig]:
    out: list[PluginConfig] = []
    seen: set[str] = set()
    for i, item in enumerate(r.list_(top, (), "plugins")):
        path: tuple[Any, ...] = ("plugins", i)
        m = r.mapping(item, path, _PLUGIN_KEYS)
        pid = r.str_(m, path, "id")
        if not _PLUGIN_ID.match(pid):
            raise r.error(
                (*path, "id"),
                f"plugin id must be 1-64 of a-z 0-9 . _ - (starting with a letter or digit), got {pid!r}",
            )
        if pid in seen:
            raise r.error((*path, "id"), f"duplicate plugin id {pid!r}")
        seen.add(pid)
        ref = r.str_(m, path, "ref")
        if not ref.startswith(("file://", "grpc://", "oci://")):
            raise r.error((*path, "ref"), f"expected file://, grpc:// or oci:// reference, got {ref!r}")
        conf = m.get("config") or {}
        if not isinstance(conf, dict):
            raise r.error((*path, "config"), f"expected a mapping, got {_kind(conf)}")
        policy = r.str_(m, path, "failure_policy", "fail-closed")
        if policy not in FAILURE_POLICIES:
            raise r.error(
                (*path, "failure_policy"), f"expected one of {', '.join(FAILURE_POLICIES)}, got {policy!r}"
            )
        runtime = r.str_(m, path, "runtime", "gateway")
        if runtime not in ("gateway", "studio"):
            raise r.error((*path, "runtime"), f"expected 'gateway' or 'studio', got {runtime!r}")
        deadlines_raw = r.mapping(m.get("deadlines"), (*path, "deadlines"), set(PHASES))
        deadlines = {k: r.int_(deadlines_raw, (*path, "deadlines"), k, 0, 1) for k in deadlines_raw}
        env_raw = m.get("env") or {}
        if not isinstance(env_raw, dict):
            raise r.error((*path, "env"), f"expected a mapping, got {_kind(env_raw)}")
        out.append(
            PluginConfig(
                id=pid,
                ref=ref,
                order=r.int_(m, path, "order", i, -(1 << 31)),
                config=conf,
                failure_policy=policy,
                deadline_ms=r.int_(m, path, "deadline_ms", 1000, 1),
                deadlines=deadlines,
                runtime=runtime,
                env={str(k): str(v) for k, v in env_raw.items()},
                enabled=r.bool_(m, path, "enabled", True),
            )
        )
    return out
