"""Serving a policy folder directly: `celgate serve --policies DIR`.

The folder is linted and compiled like `celgate compile DIR -o OUT --bundle NAME` would do it,
into at most two plugins: the request kinds (IPFilter, RequestValidation, RateLimit) as one
gateway plugin `<name>`, and ObjectApproval policies as one studio plugin `<name>-objects`.
They join the host's pipeline after the configured plugins, fail-closed (a policy plugin
that does not answer blocks, as the policies themselves fail closed by default).

`compile_policy_dir(dir, out_dir)` is the library call; `add_arguments` / `plugins` are the
`PluginSource` hooks `engine/cmd_serve.py` registers. Lint errors become a `ConfigError`
listing them (`celgate serve` prints it and exits 2); nothing is started.
"""

from __future__ import annotations

import argparse
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from celgate.engine.config import ConfigError, HostConfig, PluginConfig

DEFAULT_DEADLINE_MS = 1000
POLICY_ORDER = 1_000_000  # after every configured plugin


@dataclass(slots=True)
class CompiledPlugin:
    id: str
    folder: Path
    runtime: str  # gateway | studio
    version: str
    policies: list[str] = field(default_factory=list)

    def plugin_config(
        self, order: int = POLICY_ORDER, deadline_ms: int = DEFAULT_DEADLINE_MS
    ) -> PluginConfig:
        return PluginConfig(
            id=self.id,
            ref=f"file://{self.folder.resolve()}",
            order=order,
            failure_policy="fail-closed",
            deadline_ms=deadline_ms,
            runtime=self.runtime,
        )


class PolicyDirError(ConfigError):
    """The policy folder does not compile; the message lists every lint error."""


def bundle_name(folder: Path) -> str:
    """A plugin id from the folder's name (`examples/policies` -> `policies`)."""
    name = re.sub(r"[^a-z0-9._-]+", "-", folder.resolve().name.lower()).strip("-._")
    return (name or "policies")[:48]


def compile_policy_dir(
    directory: str | Path, out_dir: str | Path, name: str | None = None
) -> list[CompiledPlugin]:
    """Lint and compile `directory` into plugin folders under `out_dir`; raises PolicyDirError."""
    from celgate.codegen.bundle import BundleError, plan_bundles
    from celgate.codegen.compile import write_atomic
    from celgate.codegen.emit import emit_module
    from celgate.codegen.manifest import ENTRYPOINT, manifest_text
    from celgate.policies.formats import format_text
    from celgate.policies.lint import lint_paths
    from celgate.policies.model import Policy

    folder = Path(directory)
    where = str(folder)
    if not folder.is_dir():
        raise PolicyDirError("not a folder of policy files", file=where, where="--policies")
    lint = lint_paths([folder])
    if lint.errors or lint.io_error:
        raise PolicyDirError("policies have errors:\n" + format_text(lint).rstrip(), file=where)
    policies = [d for d in lint.documents if isinstance(d, Policy)]
    if not policies:
        raise PolicyDirError("no policies found", file=where, where="--policies")
    base = name or bundle_name(folder)
    groups = [
        (base, "gateway", [p for p in policies if p.kind != "ObjectApproval"]),
        (f"{base}-objects", "studio", [p for p in policies if p.kind == "ObjectApproval"]),
    ]
    out: list[CompiledPlugin] = []
    for pid, runtime, members in groups:
        if not members:
            continue
        try:
            (bundle,) = plan_bundles(members, pid)
        except (BundleError, OSError) as exc:
            raise PolicyDirError(str(exc), file=where) from exc
        target = Path(out_dir) / pid
        try:
            target.mkdir(parents=True, exist_ok=True)
            write_atomic(target / "manifest.json", manifest_text(bundle))
            write_atomic(target / ENTRYPOINT, emit_module(bundle))
        except OSError as exc:
            raise PolicyDirError(f"cannot write {target}: {exc.strerror or exc}", file=where) from exc
        names = [f"{e.policy.kind} {e.policy.metadata.name}" for e in bundle.entries]
        out.append(CompiledPlugin(pid, target, runtime, bundle.content_hash, names))
    return out


# -- the `celgate serve` plugin source ------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--policies",
        metavar="DIR",
        action="append",
        default=[],
        help="compile this policy folder and serve it as plugins (repeatable)",
    )
    parser.add_argument(
        "--policies-deadline-ms",
        metavar="MS",
        type=int,
        default=DEFAULT_DEADLINE_MS,
        help=f"deadline of each policy hook call (default {DEFAULT_DEADLINE_MS}; fail-closed past it)",
    )
    parser.add_argument(
        "--policies-out",
        metavar="DIR",
        help="where --policies are compiled to (default: a fresh temporary folder)",
    )


def plugins(args: argparse.Namespace, config: HostConfig) -> list[PluginConfig]:
    dirs: list[str] = list(getattr(args, "policies", None) or [])
    if not dirs:
        return []
    out = (
        Path(args.policies_out)
        if getattr(args, "policies_out", None)
        else Path(tempfile.mkdtemp(prefix="celgate-policies-"))
    )
    taken = {p.id for p in config.plugins}
    result: list[PluginConfig] = []
    for i, directory in enumerate(dirs):
        name = bundle_name(Path(directory))
        if name in taken:
            name = f"{name}-{i + 1}"
        for compiled in compile_policy_dir(directory, out, name):
            if compiled.id in taken:
                raise PolicyDirError(f"plugin id {compiled.id!r} is already configured", file=directory)
            taken.add(compiled.id)
            deadline = int(getattr(args, "policies_deadline_ms", DEFAULT_DEADLINE_MS))
            if deadline <= 0:
                raise PolicyDirError("--policies-deadline-ms must be positive", file=directory)
            result.append(compiled.plugin_config(POLICY_ORDER + len(result), deadline))
    return result
