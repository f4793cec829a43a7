"""`celgate serve [--config FILE] [--gateway-listen HOST:PORT] [--studio-listen HOST:PORT]`.

Loads the host config (or the embedded development defaults, with a loud warning), starts the
host and runs until SIGINT/SIGTERM. Exit codes: 0 after a clean shutdown, 2 for a bad config,
an address in use or a plugin that cannot load. Once everything listens it prints one line
per listener on stderr, `celgate: gateway listening on http://HOST:PORT` (tests wait for it).

`PLUGIN_SOURCES` is the seam for other ways to add plugins: each source adds its own flags
and turns the parsed arguments into PluginConfigs appended after the configured plugins (the
compiler issue registers `--policies DIR` here: compile a policy folder into a plugin folder).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

from celgate.engine.config import (
    ConfigError,
    HostConfig,
    PluginConfig,
    default_config,
    load_config,
    parse_listen,
)

DEV_WARNING = """\
celgate: WARNING: no --config given: running the DEVELOPMENT setup.
celgate: WARNING:   gateway on {gateway} in front of the built-in stand-in upstream (fake replies),
celgate: WARNING:   studio on {studio}, and NO client authentication.
celgate: WARNING: do not expose this; write a celgate.yaml (see examples/celgate.yaml, docs/config.md)."""


@dataclass(frozen=True)
class PluginSource:
    """Another way to contribute plugins: `add_arguments(parser)`, then `plugins(args, config)`."""

    add_arguments: Callable[[argparse.ArgumentParser], None]
    plugins: Callable[[argparse.Namespace, HostConfig], list[PluginConfig]]


PLUGIN_SOURCES: list[PluginSource] = []


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", "-c", metavar="FILE", help="host config (celgate.yaml); default: dev setup"
    )
    parser.add_argument("--gateway-listen", metavar="HOST:PORT", help="override gateway.listen")
    parser.add_argument("--studio-listen", metavar="HOST:PORT", help="override studio.listen")
    parser.add_argument("--no-studio", action="store_true", help="do not open the studio port")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"], help="default: info"
    )
    for source in PLUGIN_SOURCES:
        source.add_arguments(parser)


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def build_config(args: argparse.Namespace) -> HostConfig:
    """The effective config: file or defaults, then command-line overrides. Raises ConfigError."""
    config = load_config(args.config) if args.config else default_config()
    try:
        if args.gateway_listen:
            config.gateway.listen = parse_listen(args.gateway_listen)
        if args.studio_listen:
            config.studio.listen = parse_listen(args.studio_listen)
    except ValueError as exc:
        raise ConfigError(str(exc), file="<command line>") from None
    if args.no_studio:
        config.studio.enabled = False
    return config


def run(args: argparse.Namespace) -> int:
    try:
        config = build_config(args)
        extra = [p for source in PLUGIN_SOURCES for p in source.plugins(args, config)]
    except ConfigError as exc:
        print(f"celgate serve: {exc}", file=sys.stderr)
        return 2
    _setup_logging(args.log_level)
    # Plugins are started with fork+exec; gRPC's fork handlers only print noise about it.
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")
    if config.is_default:
        print(DEV_WARNING.format(gateway=config.gateway.listen, studio=config.studio.listen), file=sys.stderr)
    try:
        import uvloop

        return uvloop.run(_serve(config, extra))
    except KeyboardInterrupt:
        return 130


async def _serve(config: HostConfig, extra: list[PluginConfig]) -> int:
    # Imported here so that `celgate serve --help` and config errors stay fast.
    from celgate.engine.host import Host, HostError, install_stop_signals
    from celgate.engine.loaders import LoadError

    # Signals first: a Ctrl-C during startup still shuts down cleanly (plugins stopped).
    stop = asyncio.Event()
    install_stop_signals(stop)
    host = Host(config, extra_plugins=extra)
    try:
        await host.start()
    except (HostError, LoadError, OSError) as exc:
        print(f"celgate serve: {exc}", file=sys.stderr)
        return 2
    except asyncio.CancelledError:
        return 130
    assert host.gateway_server is not None
    print(f"celgate: gateway listening on {host.gateway_server.url}", file=sys.stderr, flush=True)
    if host.studio_server is not None:
        print(f"celgate: studio listening on {host.studio_server.url}", file=sys.stderr, flush=True)
    await host.serve_forever(stop)
    return 0


def _register_policy_source() -> None:
    """`--policies DIR` (engine/policy_bundle.py): compile a policy folder and serve it."""
    from celgate.engine import policy_bundle

    PLUGIN_SOURCES.append(PluginSource(policy_bundle.add_arguments, policy_bundle.plugins))


_register_policy_source()
