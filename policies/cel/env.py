"""CEL environments per (kind, role), type checking, cost estimates and compiled programs.

`check(source, ctx)` is what the linter calls; `compile_program(source, ctx)` is what the
decision procedures call (once per expression, when a policy is lowered). Environments are
built once per distinct set of declarations and cached.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from cel_expr_python import cel
from cel_expr_python.ext.ext_optional import ExtOptional
from cel_expr_python.ext.ext_strings import ExtStrings

from celgate.policies.cel import iplib
from celgate.policies.cel.messages import OBJECT_MESSAGES, PACKAGE, POOL, SCHEMA

REQUEST_KINDS = ("IPFilter", "RequestValidation", "RateLimit")
ROLES = ("match", "variable", "rule", "message", "key", "cost", "reserve", "when")

# What each role's expression must evaluate to (the linter checks `output_type` against it).
EXPECTED_TYPES: dict[str, tuple[str, ...]] = {
    "match": ("bool",),
    "rule": ("bool",),
    "when": ("bool",),
    "message": ("string",),
    "key": ("string",),
    "cost": ("int", "uint", "double"),
    "reserve": ("int", "uint", "double"),
    "variable": (),  # anything
}


@dataclass(frozen=True, slots=True)
class ExprContext:
    """Where an expression appears; decides which variables are declared.

    `variables` are the policy variables visible here (for a `variable` role: the earlier
    ones). `phase` matters for RequestValidation only ("pre_auth" hides `identity`).
    """

    kind: str
    role: str
    variables: tuple[str, ...] = ()
    object_types: tuple[str, ...] = ()
    phase: str = ""


@dataclass(frozen=True, slots=True)
class CelIssue:
    """A problem found in an expression; `offset` is a 0-based index into its source."""

    offset: int
    message: str


@dataclass(frozen=True, slots=True)
class CheckResult:
    issues: list[CelIssue] = field(default_factory=list)
    output_type: str = "dyn"
    cost: int = 0

    @property
    def ok(self) -> bool:
        return not self.issues


class CelEvalError(Exception):
    """An expression evaluated to a CEL error (or to a value of the wrong type)."""


def declarations(ctx: ExprContext) -> dict[str, str]:
    """Variable name -> declared type name for an expression context."""
    decls: dict[str, str] = {"now": "timestamp", "variables": "map"}
    if ctx.kind in REQUEST_KINDS:
        decls["request"] = f"{PACKAGE}.Request"
        decls["llm"] = f"{PACKAGE}.Llm"
        post_auth = ctx.kind == "RateLimit" or (ctx.kind == "RequestValidation" and ctx.phase != "pre_auth")
        if post_auth:
            decls["identity"] = f"{PACKAGE}.Identity"
        if ctx.kind == "RateLimit" and ctx.role == "cost":
            decls["response"] = f"{PACKAGE}.Response"
    elif ctx.kind == "ObjectApproval":
        types = tuple(t for t in ctx.object_types if t in OBJECT_MESSAGES)
        decls["object"] = f"{PACKAGE}.{OBJECT_MESSAGES[types[0]]}" if len(types) == 1 else "dyn"
        # `previous` is null on create, which a message-typed variable cannot hold: dynamic.
        decls["previous"] = "dyn"
        decls["operation"] = "string"
        decls["object_type"] = "string"
        decls["actor"] = f"{PACKAGE}.Actor"
    return decls


def _cel_type(name: str) -> cel.Type:
    simple = {
        "timestamp": cel.Type.TIMESTAMP,
        "map": cel.Type.Map(cel.Type.STRING, cel.Type.DYN),
        "dyn": cel.Type.DYN,
        "string": cel.Type.STRING,
    }
    return simple[name] if name in simple else cel.Type(name)


def runtime_declarations(ctx: ExprContext) -> dict[str, str]:
    """What the run-time environment declares: message-typed variables become `map(string, dyn)`.

    Expressions are type-checked against the messages (`check`) and then compiled here, where
    they are fed plain zero-filled mappings (`messages.plain`): same values, several times
    cheaper to evaluate (cel-expr-python converts message values on every new activation)."""
    return {name: ("map" if t.startswith(PACKAGE + ".") else t) for name, t in declarations(ctx).items()}


def runtime_env_for(ctx: ExprContext) -> cel.Env:
    return _env(tuple(sorted(runtime_declarations(ctx).items())))


@lru_cache(maxsize=64)
def _env(decls: tuple[tuple[str, str], ...]) -> cel.Env:
    return cel.NewEnv(
        POOL,
        variables={name: _cel_type(type_name) for name, type_name in decls},
        extensions=[ExtStrings(), ExtOptional()],
        functions=iplib.function_decls(),
    )


def env_for(ctx: ExprContext) -> cel.Env:
    """The (cached) environment of a context."""
    return _env(tuple(sorted(declarations(ctx).items())))


_POS = re.compile(r"ERROR: <input>:(\d+):(\d+): (.*)")
_TYPE_NAMES = {
    "BOOL": "bool",
    "INT": "int",
    "UINT": "uint",
    "DOUBLE": "double",
    "STRING": "string",
    "BYTES": "bytes",
    "DYN": "dyn",
    "NULL": "null",
    "NULL_TYPE": "null",
    "TIMESTAMP": "timestamp",
    "DURATION": "duration",
    "google.protobuf.Timestamp": "timestamp",
    "google.protobuf.Duration": "duration",
}


def type_name(t: cel.Type) -> str:
    """A readable, stable name for a CEL type ("bool", "map<string, dyn>", a message name)."""
    raw = str(t.name())
    if raw in _TYPE_NAMES:
        return _TYPE_NAMES[raw]
    if raw.startswith(("MAP<", "LIST<")):
        return re.sub(r"[A-Z_]+", lambda m: _TYPE_NAMES.get(m.group(0), m.group(0).lower()), raw)
    return raw


def offset_of(source: str, line: int, column: int) -> int:
    """0-based index in `source` of a 1-based (line, column) reported by CEL."""
    lines = source.split("\n")
    start = sum(len(lines[i]) + 1 for i in range(min(line - 1, len(lines))))
    return max(0, min(len(source), start + column - 1))


def _issues_from(source: str, text: str) -> list[CelIssue]:
    issues = [
        CelIssue(offset_of(source, int(m.group(1)), int(m.group(2))), m.group(3).strip())
        for m in _POS.finditer(text)
    ]
    if not issues:
        issues.append(CelIssue(0, text.strip().splitlines()[0] if text.strip() else "invalid expression"))
    return issues


_TRIPLE_DQ = '"' * 3
_TRIPLE_SQ = "'" * 3
_STRING_LIT = re.compile(
    r"[rRbB]{0,2}("
    + _TRIPLE_DQ
    + r"[\s\S]*?"
    + _TRIPLE_DQ
    + "|"
    + _TRIPLE_SQ
    + r"[\s\S]*?"
    + _TRIPLE_SQ
    + r"""|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*')"""
)
_VAR_REF = re.compile(r"\bvariables\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)")


def blank_strings(source: str) -> str:
    """`source` with string literals replaced by spaces (offsets kept)."""
    return _STRING_LIT.sub(lambda m: " " * len(m.group(0)), source)


def variable_refs(source: str) -> set[str]:
    """The names `source` reads as `variables.<name>` (string literals ignored)."""
    return {m.group(1) for m in _VAR_REF.finditer(blank_strings(source))}


def _variable_issues(source: str, ctx: ExprContext) -> list[CelIssue]:
    known = set(ctx.variables)
    issues = []
    for m in _VAR_REF.finditer(blank_strings(source)):
        if m.group(1) not in known:
            defined = ", ".join(ctx.variables)
            hint = f" (defined here: {defined})" if defined else " (no variables are defined here)"
            issues.append(CelIssue(m.start(1), f"undefined variable 'variables.{m.group(1)}'{hint}"))
    return issues


_WHERE = {
    "identity": "post-auth kinds (RateLimit, RequestValidation unless phase: pre_auth)",
    "response": "RateLimit token costs",
    "request": "IPFilter, RequestValidation and RateLimit",
    "llm": "IPFilter, RequestValidation and RateLimit",
    "object": "ObjectApproval",
    "previous": "ObjectApproval",
    "operation": "ObjectApproval",
    "object_type": "ObjectApproval",
    "actor": "ObjectApproval",
}


def _with_hint(issue: CelIssue, ctx: ExprContext) -> CelIssue:
    m = re.match(r"undeclared reference to '([A-Za-z_]+)", issue.message)
    if m and m.group(1) in _WHERE:
        where = _WHERE[m.group(1)]
        return CelIssue(issue.offset, f"{issue.message}: `{m.group(1)}` is only available in {where}")
    return issue


_HAS = re.compile(r"\bhas\(\s*([A-Za-z_]\w*)((?:\s*\.\s*[A-Za-z_]\w*)+)\s*\)")


def _has_issues(source: str, ctx: ExprContext) -> list[CelIssue]:
    """`has()` on a declared message field: always true at run time, so reject it."""
    decls = declarations(ctx)
    issues = []
    for m in _HAS.finditer(blank_strings(source)):
        root = m.group(1)
        path = [p.strip() for p in m.group(2).split(".")[1:]]
        type_name_ = decls.get(root, "")
        if root in ("object", "previous"):
            candidates = [OBJECT_MESSAGES[t] for t in ctx.object_types if t in OBJECT_MESSAGES] or list(
                OBJECT_MESSAGES.values()
            )
        elif type_name_.startswith(PACKAGE + "."):
            candidates = [type_name_.removeprefix(PACKAGE + ".")]
        else:
            continue
        if any(_declared_field(c, path) for c in candidates):
            field_path = f"{root}.{'.'.join(path)}"
            issues.append(
                CelIssue(
                    m.start(),
                    (
                        f"has({field_path}) is always true: declared fields are always present (with "
                        "their zero value when not given); compare with the zero value instead"
                    ),
                )
            )
    return issues


def _declared_field(message: str, path: list[str]) -> bool:
    """True if `path` ends on a field of our messages reached only through message fields."""
    for i, name in enumerate(path):
        ftype = dict(SCHEMA.get(message, ())).get(name)
        if ftype is None:
            return False
        if i == len(path) - 1:
            return True
        if not ftype.startswith("msg:"):
            return False  # below a map, list or JSON value: a real presence test
        message = ftype[4:]
    return False


def check(source: str, ctx: ExprContext) -> CheckResult:
    """Parse and type-check `source` in the environment of `ctx`."""
    if not source.strip():
        return CheckResult([CelIssue(0, "empty expression")])
    try:
        compiled = env_for(ctx).compile(source)
    except Exception as exc:  # cel-expr-python raises RuntimeError with positions in the text
        return CheckResult([_with_hint(i, ctx) for i in _issues_from(source, str(exc))])
    issues = _variable_issues(source, ctx) + _has_issues(source, ctx)
    return CheckResult(issues, type_name(compiled.return_type()), estimate_cost(source, ctx))


_MACRO = re.compile(r"\.\s*(all|exists|exists_one|existsOne|map|filter|transformList|transformMap)\s*\(")
_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d+)?|\S")
ASSUMED_LIST_SIZE = 100


def estimate_cost(source: str, ctx: ExprContext | None = None) -> int:
    """A static cost estimate: tokens, with comprehension bodies weighted by an assumed list size.

    cel-expr-python exposes no cost estimator; this heuristic grows with what matters (nested
    comprehensions are multiplicative) and is deterministic, which is what a lint limit needs.
    """
    text = blank_strings(source)
    cost = 0
    depth_stack: list[int] = []  # paren depth at which each open comprehension started
    depth = 0
    pending_macro = {m.end() - 1 for m in _MACRO.finditer(text)}
    for m in _TOKEN.finditer(text):
        tok = m.group(0)
        weight = ASSUMED_LIST_SIZE ** len(depth_stack)
        if tok == "(":
            depth += 1
            if m.start() in pending_macro:
                depth_stack.append(depth)
        elif tok == ")":
            if depth_stack and depth_stack[-1] == depth:
                depth_stack.pop()
            depth -= 1
        cost += weight
    return cost


@dataclass(slots=True)
class Program:
    """One compiled expression, evaluated many times."""

    source: str
    ctx: ExprContext
    expression: cel.Expression
    output_type: str
    needs: tuple[str, ...] = ()  # policy variables it reads (transitively), in declaration order

    def evaluate(self, activation: Mapping[str, Any] | cel.Activation) -> Any:
        """The plain Python value; raises CelEvalError on a CEL error value.

        A prebuilt `cel.Activation` (see `activation_of`) is several times cheaper than a
        mapping when more than one expression reads the same data."""
        if activation.__class__ is not _ACTIVATION and isinstance(activation, Mapping):
            value = self.expression.eval(data=activation)
        else:
            value = self.expression.eval(activation)
        # `type()` builds a Type object per call: ask it only when the plain value could be an
        # error (an error value's plain form is its message, a str).
        try:
            plain = value.plain_value()
        except Exception:
            if value.type() == _ERROR:
                raise CelEvalError(str(value.value())) from None
            raise
        if isinstance(plain, str) and value.type() == _ERROR:
            raise CelEvalError(str(value.value()))
        return plain


_ACTIVATION = cel.Activation
_ERROR = cel.Type.ERROR


_ACTIVATION_CTX = ExprContext("RequestValidation", "rule")


def activation_of(data: Mapping[str, Any]) -> cel.Activation:
    """A reusable activation for `data` (usable with expressions of any of our environments)."""
    return _activation_env().Activation(dict(data))


@lru_cache(maxsize=1)
def _activation_env() -> cel.Env:
    return runtime_env_for(_ACTIVATION_CTX)  # the same (cached) env, without the lookup per call


class CelCompileError(ValueError):
    def __init__(self, source: str, issues: list[CelIssue]) -> None:
        super().__init__("; ".join(f"{source!r} at {i.offset}: {i.message}" for i in issues))
        self.issues = issues


def compile_program(source: str, ctx: ExprContext) -> Program:
    """Compile (and type-check) once; raises CelCompileError with issues."""
    result = check(source, ctx)
    if result.issues:
        raise CelCompileError(source, result.issues)
    expression = runtime_env_for(ctx).compile(source)
    return Program(source, ctx, expression, result.output_type)


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
