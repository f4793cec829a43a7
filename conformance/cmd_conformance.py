"""`celgate conformance PLUGIN_REF`: check a plugin against the capability contracts.

Exit codes: 0 every selected check passed (or was skipped), 1 a check failed, 2 a usage or
I/O error (unknown profile or check id, unreadable --config, a reference that cannot be loaded
at all, an unwritable --report).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

import yaml

from celgate.conformance import report as fmt
from celgate.conformance import runner
from celgate.conformance.registry import PROFILES, CheckResult, Options, all_checks
from celgate.engine.loaders import LoadError, loader_for


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "ref",
        nargs="?",
        metavar="PLUGIN_REF",
        help="file://PATH (a plugin folder or executable) or grpc://HOST:PORT",
    )
    parser.add_argument(
        "--profile",
        action="append",
        choices=PROFILES,
        default=[],
        help="run only this profile's checks (repeatable; default: all profiles)",
    )
    parser.add_argument(
        "--check",
        action="append",
        default=[],
        metavar="ID",
        help="run only this check (repeatable); see --list",
    )
    parser.add_argument("--format", choices=sorted(fmt.FORMATS), default="text", help="output format")
    parser.add_argument("--report", metavar="FILE", help="also write the YAML conformance report here")
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="the plugin's config (a YAML or JSON object); default: its schema's defaults",
    )
    parser.add_argument("--runtime", choices=("gateway", "studio"), default="gateway")
    parser.add_argument("--deadline-ms", type=int, default=1000, help="hook deadline (default 1000)")
    parser.add_argument("--examples", type=int, default=25, help="Hypothesis examples per hook (default 25)")
    parser.add_argument("--list", action="store_true", help="list the checks and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the plugin's stderr")


def _list() -> str:
    lines = []
    for c in all_checks():
        caps = f" [{', '.join(sorted(c.capabilities))}]" if c.capabilities else ""
        lines.append(f"{c.id:<38} {c.profile:<9}{caps}\n    {c.doc}")
    return "\n".join(lines) + "\n"


def _load_config(path: str) -> dict[str, Any]:
    text = Path(path).read_text()
    data = yaml.safe_load(text) if text.strip() else {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the plugin config must be a mapping, not {type(data).__name__}")
    return data


def run(args: argparse.Namespace) -> int:
    if args.list:
        sys.stdout.write(_list())
        return 0
    if not args.ref:
        print(
            "celgate conformance: a PLUGIN_REF is required (file://PATH or grpc://HOST:PORT)", file=sys.stderr
        )
        return 2
    ref = args.ref if "://" in args.ref else f"file://{args.ref}"
    try:
        runner.select(args.profile, args.check)
    except ValueError as exc:
        print(f"celgate conformance: {exc}", file=sys.stderr)
        return 2
    if args.examples < 1 or args.deadline_ms < 1:
        print("celgate conformance: --examples and --deadline-ms must be positive", file=sys.stderr)
        return 2
    config = None
    if args.config:
        try:
            config = _load_config(args.config)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            print(f"celgate conformance: cannot read --config: {exc}", file=sys.stderr)
            return 2
    try:
        loader_for(ref).check(ref, Path.cwd())
    except LoadError as exc:
        print(f"celgate conformance: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.CRITICAL,
        stream=sys.stderr,
        format="%(name)s: %(message)s",
    )
    tty = sys.stderr.isatty()

    def progress(check_id: str, result: CheckResult | None) -> None:
        if not tty:
            return
        if result is None:
            sys.stderr.write(f"\r\x1b[K  running {check_id} ...")
        else:
            sys.stderr.write(f"\r\x1b[K  {result.status:<7} {check_id}\n")
        sys.stderr.flush()

    options = Options(examples=args.examples, check_timeout=max(30.0, args.examples * 0.5))
    try:
        report = asyncio.run(
            runner.run(
                ref,
                profiles=args.profile,
                ids=args.check,
                options=options,
                config=config,
                runtime=args.runtime,
                deadline_ms=args.deadline_ms,
                progress=progress,
            )
        )
    except KeyboardInterrupt:
        return 2
    sys.stdout.write(fmt.FORMATS[args.format](report))
    if args.report:
        try:
            Path(args.report).write_text(fmt.to_yaml(report))
        except OSError as exc:
            print(f"celgate conformance: cannot write the report: {exc}", file=sys.stderr)
            return 2
    return 0 if report.passed else 1
