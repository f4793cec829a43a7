"""The typed policy model: what the loader produces and every later stage consumes.

Every node that a diagnostic may point at carries a `Span` (file, line, column, 1-based).
CEL expressions are `Expr` values: their source text plus the map from offsets inside the
text to positions in the YAML file, so that a CEL error at offset N is reported at the right
line and column even inside quoted strings, block scalars and folded scalars.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["IPFilter", "RequestValidation", "RateLimit", "ObjectApproval", "PolicyTest"]
POLICY_KINDS: tuple[str, ...] = ("IPFilter", "RequestValidation", "RateLimit", "ObjectApproval")
ALL_KINDS: tuple[str, ...] = (*POLICY_KINDS, "PolicyTest")

Mode = Literal["enforce", "warn", "audit"]
FailurePolicy = Literal["fail-closed", "fail-open"]


@dataclass(frozen=True, slots=True)
class Span:
    """A position in a source file (1-based line and column)."""

    path: str
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Expr:
    """A CEL expression as written in the policy file.

    `offsets[i]` is the (line, column) in the file of character i of `source`; one extra
    entry stands for the end of the text. Positions inside an expression are mapped through
    it (see `position_of`).
    """

    source: str
    span: Span
    offsets: tuple[tuple[int, int], ...] = ()

    def position_of(self, index: int) -> Span:
        if not self.offsets:
            return self.span
        index = max(0, min(index, len(self.offsets) - 1))
        line, column = self.offsets[index]
        return Span(self.span.path, line, column)


@dataclass(frozen=True, slots=True)
class Duration:
    text: str
    seconds: float
    span: Span


@dataclass(frozen=True, slots=True)
class Variable:
    name: str
    expression: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Metadata:
    name: str
    span: Span
    description: str = ""
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CidrEntry:
    text: str
    span: Span


@dataclass(frozen=True, slots=True)
class IPFilterSpec:
    trusted_proxies: tuple[CidrEntry, ...] = ()
    allow: tuple[CidrEntry, ...] = ()
    deny: tuple[CidrEntry, ...] = ()
    status: int = 403
    message: str = "forbidden"


@dataclass(frozen=True, slots=True)
class ValidationRule:
    name: str
    expression: Expr
    span: Span
    message: str | None = None
    message_expression: Expr | None = None
    status: int = 400


@dataclass(frozen=True, slots=True)
class RequestValidationSpec:
    phase: Literal["pre_auth", "post_auth"] = "post_auth"
    body_schema: dict[str, Any] | None = None
    body_schema_span: Span | None = None
    rules: tuple[ValidationRule, ...] = ()


@dataclass(frozen=True, slots=True)
class Limit:
    name: str
    key: Expr
    window: Duration
    span: Span
    requests: int | None = None
    tokens: int | None = None
    cost: Expr | None = None  # tokens limits: default total tokens of the response
    reserve: Expr | None = None


@dataclass(frozen=True, slots=True)
class RateLimitSpec:
    algorithm: Literal["sliding-window", "fixed-window", "token-bucket"] = "sliding-window"
    limits: tuple[Limit, ...] = ()
    status: int = 429


@dataclass(frozen=True, slots=True)
class Approvers:
    groups: tuple[str, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class ApprovalRule:
    name: str
    when: Expr
    action: Literal["deny", "require_approval", "mutate"]
    span: Span
    message: str | None = None
    message_expression: Expr | None = None
    approvers: Approvers | None = None
    min_approvals: int = 1
    expires_after: Duration | None = None
    patch: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ObjectApprovalSpec:
    objects: tuple[str, ...] = ()
    operations: tuple[str, ...] = ("create", "update", "delete")
    rules: tuple[ApprovalRule, ...] = ()


Spec = IPFilterSpec | RequestValidationSpec | RateLimitSpec | ObjectApprovalSpec


@dataclass(frozen=True, slots=True)
class Policy:
    """One policy document (any kind but PolicyTest)."""

    kind: str
    metadata: Metadata
    spec: Spec
    span: Span  # the document's start
    match: Expr | None = None
    mode: Mode = "enforce"
    failure_policy: FailurePolicy = "fail-closed"
    variables: tuple[Variable, ...] = ()
    source_text: str = ""  # the document's YAML text, for content hashes


@dataclass(frozen=True, slots=True)
class TestStep:
    """A request or object input with its expectation (a case, or one step of a sequence)."""

    span: Span
    inputs: dict[str, Any]  # request, identity, llm, response, object: raw mappings
    expect: dict[str, Any]
    at: Duration | None = None


@dataclass(frozen=True, slots=True)
class TestCase:
    name: str
    span: Span
    steps: tuple[TestStep, ...]  # one step for a single case; several for a sequence
    sequence: bool = False


@dataclass(frozen=True, slots=True)
class PolicyTestDoc:
    metadata: Metadata
    policies: tuple[str, ...]
    cases: tuple[TestCase, ...]
    span: Span
    policy_spans: tuple[Span, ...] = ()  # position of each entry of `policies`


Document = Policy | PolicyTestDoc
