"""Stable lint rule codes, their default severities and explanations (`lint --explain`).

Codes never change meaning once released. Ranges: CG0xx reading and YAML, CG1xx envelope
and schema, CG2xx CEL expressions, CG3xx semantic checks across rules, policies and tests.
"""

from __future__ import annotations

from dataclasses import dataclass

from celgate.policies.diagnostics import Diagnostic, Severity
from celgate.policies.model import Span


@dataclass(frozen=True, slots=True)
class Code:
    code: str
    severity: Severity
    title: str
    explanation: str


_CODES: tuple[Code, ...] = (
    # -- CG0xx: reading files and YAML ------------------------------------------------------
    Code(
        "CG001",
        "error",
        "file cannot be read",
        "The path does not exist or cannot be read. `celgate lint` exits with 2 for this.",
    ),
    Code(
        "CG002",
        "error",
        "file too large",
        "Policy files are capped (1 MiB by default) so that a huge or hostile file cannot "
        "exhaust memory. Split the policy set into several files.",
    ),
    Code(
        "CG003",
        "error",
        "file is not UTF-8",
        "Policy files must be UTF-8 encoded. The position of the first invalid byte is given.",
    ),
    Code(
        "CG004",
        "error",
        "YAML syntax error",
        "The YAML parser rejected the text (bad indentation, tab characters used for "
        "indentation, an unclosed quote or bracket, ...). The position is where the parser "
        "noticed the problem.",
    ),
    Code(
        "CG005",
        "error",
        "duplicate mapping key",
        "A key appears twice in the same mapping. YAML loaders silently keep the last one; "
        "celgate rejects it because the first value would be lost without notice.",
    ),
    Code(
        "CG006",
        "error",
        "alias expansion too large",
        "Anchors and aliases may not expand into more than 20,000 nodes per document, and "
        "may not be recursive (the 'billion laughs' attack).",
    ),
    Code(
        "CG007", "error", "nesting too deep", "Mappings and sequences may be nested at most 64 levels deep."
    ),
    Code(
        "CG008",
        "error",
        "unsupported YAML feature",
        "Explicit tags (`!!python/...`, `!foo`), merge keys (`<<`) and non-scalar mapping keys "
        "are not part of the policy language. Nothing in a policy file is ever executed.",
    ),
    Code(
        "CG009",
        "error",
        "document is not a mapping",
        "Each YAML document must be a mapping with apiVersion, kind, metadata and spec.",
    ),
    Code(
        "CG010",
        "info",
        "empty document",
        "A YAML document without content (for example after a trailing `---`) is ignored.",
    ),
    # -- CG1xx: envelope and schema -----------------------------------------------------------
    Code(
        "CG101",
        "error",
        "unknown field",
        "The field is not part of the schema of this kind. Unknown fields are errors rather "
        "than being ignored, so that a typo (`alow:`) never silently disables a rule. "
        "`celgate schema KIND` prints the schema.",
    ),
    Code(
        "CG102",
        "error",
        "missing required field",
        "A field the kind requires is absent (for example `metadata.name`, a rule's `name`).",
    ),
    Code(
        "CG103",
        "error",
        "wrong type",
        "The value has the wrong type (for example a number where a string or a duration is "
        "expected). Quote values such as `'on'` or `'1.0'` that YAML would read as another type.",
    ),
    Code(
        "CG104",
        "error",
        "invalid value",
        "The value is outside the allowed set or range (an enum such as `mode`, an HTTP status "
        "outside 100-599, an empty list where items are needed, ...).",
    ),
    Code("CG105", "error", "unsupported apiVersion", "Only `apiVersion: celgate.dev/v1` is supported."),
    Code(
        "CG106",
        "error",
        "unknown kind",
        "kind must be one of IPFilter, RequestValidation, RateLimit, ObjectApproval, PolicyTest.",
    ),
    Code(
        "CG107",
        "error",
        "invalid metadata.name",
        "Names are 1-63 lowercase letters, digits and '-', starting and ending with a letter "
        "or digit (like Kubernetes object names), so they can be used as plugin ids.",
    ),
    Code(
        "CG108",
        "error",
        "invalid duration",
        "Durations are a non-negative number and a unit: ms, s, m, h or d (`250ms`, `0.5s`, "
        "`1m`, `1h`, `7d`). `window` and `expiresAfter` must be greater than zero.",
    ),
    Code(
        "CG109",
        "error",
        "invalid IP range",
        "trustedProxies, allow and deny take CIDR ranges (`10.0.0.0/8`, `2001:db8::/32`) or "
        "single addresses (`192.0.2.7`, read as /32 or /128). Host bits must be zero: "
        "`10.0.0.1/8` is rejected because it most likely means something else.",
    ),
    Code(
        "CG110",
        "error",
        "invalid regular expression",
        "A `pattern` in a body schema or a literal passed to CEL `matches()` is not a valid "
        "regular expression (RE2 syntax for CEL, ECMA-262 for JSON Schema).",
    ),
    Code(
        "CG111",
        "error",
        "invalid body schema",
        "spec.body.schema must itself be a valid JSON Schema (draft 2020-12).",
    ),
    # -- CG2xx: CEL expressions ---------------------------------------------------------------
    Code(
        "CG201",
        "error",
        "CEL syntax error",
        "The expression does not parse as CEL. The position is inside the YAML file.",
    ),
    Code(
        "CG202",
        "error",
        "CEL type error",
        "The expression does not type-check: an undeclared variable, an unknown field, or an "
        "operator applied to the wrong types. Variables and fields are listed in "
        "docs/policy-language.md.",
    ),
    Code(
        "CG203",
        "error",
        "condition is not bool",
        "match, a RequestValidation rule's expression and an ObjectApproval rule's when must "
        "have type bool. A `dyn` result (for example `request.body.stream`) is accepted; wrap "
        "it as `request.body.stream == true` to make the intent explicit.",
    ),
    Code(
        "CG204",
        "error",
        "expression has the wrong result type",
        "A rate limit key and a messageExpression must be strings; cost and reserve must be "
        "int (or dyn). Use string(...) or int(...) to convert.",
    ),
    Code(
        "CG205",
        "error",
        "expression too long",
        "Expressions are limited to 4,096 characters; long logic belongs in variables.",
    ),
    Code(
        "CG206",
        "error",
        "expression too complex",
        "The expression's estimated evaluation cost (or its size) exceeds the limit, so it "
        "could slow down every request. Split it into variables or simplify it.",
    ),
    Code(
        "CG207",
        "info",
        "CEL checker unavailable",
        "The CEL type checker could not be loaded, so expressions were not type-checked.",
    ),
    # -- CG3xx: semantics -----------------------------------------------------------------
    Code(
        "CG301",
        "error",
        "duplicate policy name",
        "Two policies of the same kind have the same metadata.name in one policy set (all the "
        "files given to one lint or compile run).",
    ),
    Code(
        "CG302",
        "error",
        "duplicate name",
        "Two rules of a policy, two limits of a RateLimit, two variables or two test cases of "
        "a PolicyTest share a name; names identify them in decisions and test reports.",
    ),
    Code(
        "CG303",
        "warning",
        "deny range outside the allow list",
        "IPFilter: a deny range that contains no address of any allow range can never change "
        "a decision, because such addresses are already denied for not being allowed.",
    ),
    Code(
        "CG304",
        "warning",
        "deny range shadowed",
        "IPFilter: a deny (or allow) range lies entirely inside another range of the same list, "
        "so it has no effect.",
    ),
    Code(
        "CG305",
        "warning",
        "rule can never apply",
        "A rule whose condition is the constant `false` never applies; a RequestValidation rule "
        "whose expression is the constant `false` always fails; a `match` that is constant "
        "`false` disables the whole policy. Constants are found after trivial folding "
        "(`true`, `false`, `!true`, `true && false`, ...).",
    ),
    Code(
        "CG306", "error", "RateLimit without limits", "A RateLimit needs at least one entry in spec.limits."
    ),
    Code(
        "CG307",
        "error",
        "limit counts nothing",
        "Each limit needs `requests` or `tokens` (or both). `cost` and `reserve` only make "
        "sense with `tokens`.",
    ),
    Code(
        "CG308",
        "error",
        "approval without approvers",
        "A require_approval rule needs `approvers.groups` with at least one group, otherwise "
        "nobody could ever approve the change and it would always expire.",
    ),
    Code("CG309", "error", "minApprovals below 1", "minApprovals must be at least 1."),
    Code(
        "CG310",
        "error",
        "PolicyTest names an unknown policy",
        "Every name in a PolicyTest's spec.policies must be the metadata.name of a policy in "
        "the same policy set (the files given to the run).",
    ),
    Code(
        "CG311",
        "error",
        "message and messageExpression both given",
        "A rule gives either a fixed message or a messageExpression, not both.",
    ),
    Code(
        "CG312",
        "error",
        "test case has no input",
        "A PolicyTest case needs `request` (with optional identity, llm, response), `object`, "
        "or a `sequence` of steps; and an `expect` on each step.",
    ),
    Code(
        "CG313",
        "warning",
        "field has no effect",
        "The field is ignored in this position (for example `approvers` or `minApprovals` on a "
        "rule whose action is not require_approval, `patch` on a rule that does not mutate).",
    ),
    Code(
        "CG314",
        "error",
        "rule is missing a field its action needs",
        "A mutate rule needs `patch` (a JSON merge patch); without one it would change nothing.",
    ),
    Code(
        "CG315",
        "warning",
        "variable never used",
        "No expression of the policy refers to `variables.NAME`: the variable is evaluated for "
        "nothing, or its name is misspelt where it is used.",
    ),
)

CODES: dict[str, Code] = {c.code: c for c in _CODES}


def diag(
    code: str,
    message: str,
    span: Span,
    *,
    end: Span | None = None,
    policy: str | None = None,
    rule_name: str | None = None,
    severity: Severity | None = None,
) -> Diagnostic:
    """A diagnostic with the code's default severity."""
    return Diagnostic(code, severity or CODES[code].severity, message, span, end, policy, rule_name)


def explain(code: str) -> str | None:
    """The text printed by `celgate lint --explain CODE`, or None for an unknown code."""
    c = CODES.get(code.upper())
    if c is None:
        return None
    return f"{c.code} ({c.severity}): {c.title}\n\n{c.explanation}\n"


def markdown() -> str:
    """docs/lint-codes.md, generated from the table above (`python -m celgate.policies.codes`)."""
    out = [
        "# celgate lint rule codes",
        "",
        "Generated by `python -m celgate.policies.codes > docs/lint-codes.md`; the same text is",
        "printed by `celgate lint --explain CODE`. Codes are stable: a code never changes meaning.",
        "CG0xx reading and YAML, CG1xx envelope and schema, CG2xx CEL expressions, CG3xx semantics.",
        "Exit code: 1 when any `error` is reported (2 for CG001); warnings and notes alone exit 0.",
        "",
        "| code | severity | title |",
        "|---|---|---|",
    ]
    out += [f"| [{c.code}](#{c.code.lower()}) | {c.severity} | {c.title} |" for c in _CODES]
    for c in _CODES:
        out += ["", f"## {c.code}", "", f"**{c.title}** ({c.severity})", "", c.explanation]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
