"""The `celgate` command line: a thin layer that parses arguments and hands over.

Each subcommand lives in the component that owns it, as a module exposing
`configure(parser)` and `run(args) -> int`. Exit codes follow docs/cli.md:
0 success, 1 findings (lint errors, failed tests or checks), 2 usage or I/O errors.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from celgate import __version__

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("celgate.engine.cmd_serve", "run the gateway and the studio"),
    "lint": ("celgate.policies.cmd_lint", "check policy files"),
    "test": ("celgate.policies.cmd_test", "run PolicyTest files"),
    "explain": ("celgate.policies.cmd_explain", "show the decision for an input, rule by rule"),
    "schema": ("celgate.policies.cmd_schema", "print the JSON Schema of a policy kind"),
    "compile": ("celgate.codegen.cmd_compile", "compile policies into plugins"),
    "conformance": ("celgate.conformance.cmd_conformance", "check a plugin against the capability contracts"),
}


def _load(name: str) -> ModuleType | None:
    module_name = COMMANDS[name][0]
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None
        raise


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="celgate",
        description="Policy engine and plugin host for AI gateways.",
    )
    parser.add_argument("--version", action="version", version=f"celgate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Only the chosen subcommand's module is imported, so `celgate lint` never pays for
    # importing the gateway.
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (_, help_text) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = _load(name)
            if module is not None:
                module.configure(sp)
            sp.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args_list)
    args, extra = parser.parse_known_args(args_list)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    module = getattr(args, "_module", None)
    if module is None:
        print(f"celgate {args.command}: not yet available in this version", file=sys.stderr)
        return 2
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(module.run(args))
    except KeyboardInterrupt:
        return 130
