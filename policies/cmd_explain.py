"""`celgate explain POLICY_PATH --input FILE.json`: the decision and, per rule, why.

The input file holds the case's inputs as JSON (or YAML): `{"request": {...}, "identity":
{...}, "llm": {...}, "response": {...}, "now": "..."}` or `{"object": {...}}`. Exit 0 with
the explanation; 2 for usage or I/O errors, unreadable input, or policies with lint errors
(printed as diagnostics).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from celgate.policies.explain import explain, format_json, format_text
from celgate.policies.lint import lint_paths
from celgate.policies.model import Policy
from celgate.policies.runtime import InputError, PlanError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("policy_path", metavar="POLICY_PATH", help="a policy file or directory")
    parser.add_argument("--input", required=True, metavar="FILE", help="the input as JSON (or YAML)")
    parser.add_argument(
        "--policy", action="append", default=[], metavar="NAME", help="only this policy (repeatable)"
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")


def _fail(message: str) -> int:
    print(f"celgate explain: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    if not Path(args.policy_path).exists():
        return _fail(f"cannot read {args.policy_path}: no such file or directory")
    try:
        text = Path(args.input).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return _fail(f"cannot read {args.input}: {exc}")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError:
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            return _fail(f"{args.input}: neither JSON nor YAML: {exc}")
    if not isinstance(raw, dict):
        return _fail(f"{args.input}: the input must be a mapping")
    lint = lint_paths([args.policy_path])
    if lint.errors:
        for d in lint.diagnostics:
            if d.severity == "error":
                print(
                    f"{d.span.path}:{d.span.line}:{d.span.column}: {d.code} error: {d.message}",
                    file=sys.stderr,
                )
        return _fail("the policies have errors; fix them first (celgate lint)")
    policies = [d for d in lint.documents if isinstance(d, Policy)]
    if args.policy:
        policies = [p for p in policies if p.metadata.name in args.policy]
    if not policies:
        return _fail("no policy found" + (f" named {', '.join(args.policy)}" if args.policy else ""))
    try:
        results, combined = explain(policies, raw)
    except InputError as exc:
        return _fail(f"{args.input}: {exc}")
    except PlanError as exc:
        return _fail(str(exc))
    sys.stdout.write((format_json if args.format == "json" else format_text)(results, combined))
    return 0
