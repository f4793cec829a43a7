"""`celgate compile PATH... -o DIR [--bundle NAME] [--check]`: policies -> plugin folders.

Lints first: any lint error (printed like `celgate lint` prints it) stops it before anything
is written. Then one folder per policy (or one for the whole `--bundle`) under DIR, each
with `manifest.json` and `plugin.py`, runnable by the host as `file://DIR/<id>`.
`--check` writes nothing and fails when DIR's files differ from what would be written (CI).
Exit codes: 0 compiled, 1 policy errors (or `--check` found stale files), 2 usage or I/O error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from celgate.codegen.compile import CompileResult, compile_paths, generate
from celgate.codegen.manifest import ENTRYPOINT
from celgate.policies.formats import format_text


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", metavar="PATH", help="policy files or folders (*.yaml, *.yml)")
    parser.add_argument("--output", "-o", metavar="DIR", help="where plugin folders are written")
    parser.add_argument("--bundle", metavar="NAME", help="put every policy into one plugin with this id")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if DIR is not what compiling would write"
    )


def _report_failure(result: CompileResult) -> None:
    if result.lint.diagnostics and (result.lint.errors or result.lint.io_error):
        sys.stderr.write(format_text(result.lint))
        print("celgate compile: lint errors: nothing was written", file=sys.stderr)
    if result.error:
        print(f"celgate compile: {result.error}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    if not args.paths or not args.output:
        print("celgate compile: usage: celgate compile PATH... -o DIR [--bundle NAME]", file=sys.stderr)
        return 2
    if args.check:
        return _check(args)
    result = compile_paths(args.paths, args.output, args.bundle)
    if result.exit_code:
        _report_failure(result)
        return result.exit_code
    if result.lint.warnings:
        sys.stderr.write(format_text(result.lint))
    for plugin in result.plugins:
        kinds = ", ".join(f"{e.policy.kind} {e.policy.metadata.name}" for e in plugin.bundle.entries)
        print(f"{plugin.folder}: {kinds} (version {plugin.bundle.content_hash[:19]})")
    return 0


def _check(args: argparse.Namespace) -> int:
    result = generate(args.paths, args.bundle)
    if result.exit_code:
        _report_failure(result)
        return result.exit_code
    stale = []
    for plugin in result.plugins:
        folder = Path(args.output) / plugin.id
        for name, text in (("manifest.json", plugin.manifest), (ENTRYPOINT, plugin.module)):
            path = folder / name
            current: str | None
            try:
                current = path.read_text(encoding="utf-8")
            except OSError:
                current = None
            if current != text:
                stale.append(str(path))
    for stale_path in stale:
        print(f"{stale_path}: out of date (run celgate compile)", file=sys.stderr)
    return 1 if stale else 0
