"""`celgate schema [KIND]`: print the JSON Schema of a policy kind.

Without KIND, lists the kinds (one per line). `--out DIR` writes every schema to
`DIR/<Kind>.json` (for editors: `# yaml-language-server: $schema=DIR/IPFilter.json`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from celgate.policies.model import ALL_KINDS
from celgate.policies.schema import schema_text


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", nargs="?", metavar="KIND", help=f"one of {', '.join(ALL_KINDS)}")
    parser.add_argument("--out", metavar="DIR", help="write every kind's schema to DIR/<Kind>.json")


def run(args: argparse.Namespace) -> int:
    if args.out:
        folder = Path(args.out)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for kind in ALL_KINDS:
                (folder / f"{kind}.json").write_text(schema_text(kind), encoding="utf-8")
        except OSError as exc:
            print(f"celgate schema: cannot write to {folder}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        return 0
    if args.kind is None:
        sys.stdout.write("".join(k + "\n" for k in ALL_KINDS))
        return 0
    by_lower = {k.lower(): k for k in ALL_KINDS}
    found = by_lower.get(args.kind.lower())
    if found is None:
        print(f"celgate schema: unknown kind {args.kind!r}; kinds: {', '.join(ALL_KINDS)}", file=sys.stderr)
        return 2
    sys.stdout.write(schema_text(found))
    return 0
