"""The compiler as a library: lint, group into bundles, emit, write.

`compile_paths(paths, out_dir, bundle=None)` is what `celgate compile` and
`celgate serve --policies` call. Lint errors stop it before anything is written; the result
says which plugin folders were written (each `manifest.json` + `plugin.py`). Writing is
atomic per file and produces the same bytes for the same sources.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from celgate.codegen.bundle import Bundle, BundleError, plan_bundles
from celgate.codegen.emit import emit_module
from celgate.codegen.manifest import ENTRYPOINT, manifest_text
from celgate.policies.lint import LintResult, lint_paths
from celgate.policies.model import Policy


@dataclass(slots=True)
class Emitted:
    """One plugin folder: its id, where it was written and its files' text."""

    id: str
    folder: Path
    manifest: str
    module: str
    bundle: Bundle


@dataclass(slots=True)
class CompileResult:
    lint: LintResult
    plugins: list[Emitted] = field(default_factory=list)
    error: str | None = None  # a problem that is not a lint diagnostic (bundle, I/O)
    io_error: bool = False

    @property
    def exit_code(self) -> int:
        if self.io_error or self.lint.io_error:
            return 2
        if self.lint.errors or self.error:
            return 1
        return 0


def generate(paths: Sequence[str | Path], bundle: str | None = None) -> CompileResult:
    """Lint and emit in memory (nothing written)."""
    lint = lint_paths(paths)
    result = CompileResult(lint)
    if lint.errors or lint.io_error:
        return result
    policies = [d for d in lint.documents if isinstance(d, Policy)]
    if not policies:
        result.error = "no policies found (PolicyTest documents are not compiled)"
        return result
    try:
        bundles = plan_bundles(policies, bundle)
    except BundleError as exc:
        result.error = str(exc)
        return result
    except OSError as exc:
        result.error, result.io_error = f"cannot read a source: {exc}", True
        return result
    for b in bundles:
        result.plugins.append(Emitted(b.id, Path(), manifest_text(b), emit_module(b), b))
    return result


def compile_paths(
    paths: Sequence[str | Path], out_dir: str | Path, bundle: str | None = None
) -> CompileResult:
    """Lint, emit and write one folder per plugin under `out_dir`."""
    result = generate(paths, bundle)
    if result.exit_code:
        return result
    out = Path(out_dir)
    try:
        for plugin in result.plugins:
            plugin.folder = out / plugin.id
            plugin.folder.mkdir(parents=True, exist_ok=True)
            write_atomic(plugin.folder / "manifest.json", plugin.manifest)
            write_atomic(plugin.folder / ENTRYPOINT, plugin.module)
    except OSError as exc:
        result.error, result.io_error = f"cannot write to {out}: {exc.strerror or exc}", True
    return result


def write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with_suppressed_unlink(tmp)
        raise


def with_suppressed_unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
