"""`celgate lint PATH...`: check policy files; `--explain CODE` documents a rule code.

Exit codes: 0 clean (warnings allowed), 1 errors found, 2 usage or I/O error (a path that
does not exist or cannot be read; the other paths are still linted and reported).
"""

from __future__ import annotations

import argparse
import sys

from celgate.policies.codes import explain
from celgate.policies.formats import FORMATS, render
from celgate.policies.lint import lint_paths


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", metavar="PATH", help="policy files or folders (*.yaml, *.yml)")
    parser.add_argument(
        "--format", "-f", choices=FORMATS, default="text", help="output format (default text)"
    )
    parser.add_argument("--output", "-o", metavar="FILE", help="write the report to FILE instead of stdout")
    parser.add_argument("--explain", metavar="CODE", help="explain a rule code (for example CG101) and exit")


def run(args: argparse.Namespace) -> int:
    if args.explain:
        text = explain(args.explain)
        if text is None:
            print(f"celgate lint: unknown rule code {args.explain!r}", file=sys.stderr)
            return 2
        sys.stdout.write(text)
        return 0
    if not args.paths:
        print("celgate lint: no PATH given (usage: celgate lint PATH... [--format FORMAT])", file=sys.stderr)
        return 2
    result = lint_paths(args.paths)
    output = render(result, args.format)
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(output)
        except OSError as exc:
            print(f"celgate lint: cannot write {args.output}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    else:
        sys.stdout.write(output)
    return result.exit_code
