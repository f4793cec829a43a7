"""Raw positioned documents -> the typed policy model (`model.Policy`, `model.PolicyTestDoc`).

Runs after schema validation, so shapes and types are known to be right here. This stage
adds the checks on single values that the schema cannot express and that every consumer
relies on: CIDR ranges parse, durations are positive where they must be, the body schema is
itself a valid JSON Schema. CEL expressions become `model.Expr` with their per-character
positions in the file.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import jsonschema
import jsonschema_rs

from celgate.policies.codes import diag
from celgate.policies.diagnostics import Diagnostic
from celgate.policies.model import (
    ApprovalRule,
    Approvers,
    CidrEntry,
    Document,
    Duration,
    Expr,
    IPFilterSpec,
    Limit,
    Metadata,
    ObjectApprovalSpec,
    Policy,
    PolicyTestDoc,
    RateLimitSpec,
    RequestValidationSpec,
    Spec,
    TestCase,
    TestStep,
    ValidationRule,
    Variable,
)
from celgate.policies.source import PathKey, RawDocument, scalar_offsets

_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_TEST_INPUTS = ("request", "identity", "llm", "response", "object")


def parse_duration(text: str) -> float | None:
    """Seconds for a duration such as `250ms` or `1h`; None when it is not one."""
    m = _DURATION.match(text)
    if m is None:
        return None
    return float(m.group(1)) * _UNIT_SECONDS[m.group(2)]


def parse_network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | str:
    """The network for a CIDR range or single address, or an error message."""
    try:
        return ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as exc:
        if "host bits set" in str(exc):
            net = ipaddress.ip_network(text.strip(), strict=False)
            return f"{text!r} has host bits set (did you mean {net}?)"
        return f"{text!r} is not an IP address or CIDR range"


class _Parser:
    def __init__(self, raw: RawDocument) -> None:
        self.raw = raw
        self.diagnostics: list[Diagnostic] = []
        self.name: str | None = None

    def error(self, code: str, message: str, path: PathKey, rule: str | None = None) -> None:
        span = self.raw.at(path)
        end = self.raw.end_at(path) if path in self.raw.index else None
        self.diagnostics.append(diag(code, message, span, end=end, policy=self.name, rule_name=rule))

    def expr(self, path: PathKey) -> Expr:
        loc = self.raw.index[path]
        node = loc.node
        return Expr(node.value, loc.span, scalar_offsets(node, self.raw.source))  # type: ignore[arg-type]

    def opt_expr(self, mapping: dict[str, Any], key: str, path: PathKey) -> Expr | None:
        return self.expr((*path, key)) if key in mapping else None

    def duration(self, text: str, path: PathKey, positive: bool) -> Duration:
        seconds = parse_duration(text)
        if seconds is None:  # the schema's pattern normally catches this first
            self.error("CG108", f"invalid duration {text!r}", path)
            seconds = 0.0
        elif positive and seconds <= 0:
            self.error("CG108", f"duration {text!r} must be greater than zero", path)
        return Duration(text, seconds, self.raw.at(path))

    def cidrs(self, spec: dict[str, Any], key: str) -> tuple[CidrEntry, ...]:
        out = []
        for i, text in enumerate(spec.get(key, [])):
            path: PathKey = ("spec", key, i)
            net = parse_network(text)
            if isinstance(net, str):
                self.error("CG109", f"spec.{key}[{i}]: {net}", path)
            out.append(CidrEntry(text, self.raw.at(path)))
        return tuple(out)

    def metadata(self) -> Metadata:
        meta = self.raw.value["metadata"]
        self.name = meta["name"]
        return Metadata(
            meta["name"],
            self.raw.at(("metadata", "name")),
            meta.get("description", ""),
            dict(meta.get("labels", {})),
        )

    def variables(self, spec: dict[str, Any]) -> tuple[Variable, ...]:
        return tuple(
            Variable(
                v["name"],
                self.expr(("spec", "variables", i, "expression")),
                self.raw.at(("spec", "variables", i)),
            )
            for i, v in enumerate(spec.get("variables", []))
        )

    # -- kinds --------------------------------------------------------------------------

    def document(self) -> Document:
        kind = self.raw.value["kind"]
        metadata = self.metadata()
        spec = self.raw.value["spec"]
        if kind == "PolicyTest":
            return self.policy_test(metadata, spec)
        parsed: Spec
        if kind == "IPFilter":
            parsed = IPFilterSpec(
                self.cidrs(spec, "trustedProxies"),
                self.cidrs(spec, "allow"),
                self.cidrs(spec, "deny"),
                spec.get("status", 403),
                spec.get("message", "forbidden"),
            )
        elif kind == "RequestValidation":
            parsed = self.request_validation(spec)
        elif kind == "RateLimit":
            parsed = self.rate_limit(spec)
        else:
            parsed = self.object_approval(spec)
        return Policy(
            kind=kind,
            metadata=metadata,
            spec=parsed,
            span=self.raw.span,
            match=self.opt_expr(spec, "match", ("spec",)),
            mode=spec.get("mode", "enforce"),
            failure_policy=spec.get("failurePolicy", "fail-closed"),
            variables=self.variables(spec),
            source_text=self.raw.text,
        )

    def request_validation(self, spec: dict[str, Any]) -> RequestValidationSpec:
        body_schema = spec.get("body", {}).get("schema")
        if body_schema is not None:
            self.check_body_schema(body_schema)
        rules = []
        for i, r in enumerate(spec.get("rules", [])):
            path: PathKey = ("spec", "rules", i)
            rules.append(
                ValidationRule(
                    r["name"],
                    self.expr((*path, "expression")),
                    self.raw.at(path),
                    r.get("message"),
                    self.opt_expr(r, "messageExpression", path),
                    r.get("status", 400),
                )
            )
        return RequestValidationSpec(
            spec.get("phase", "post_auth"),
            body_schema,
            self.raw.at(("spec", "body", "schema")) if body_schema is not None else None,
            tuple(rules),
        )

    def check_body_schema(self, body_schema: dict[str, Any]) -> None:
        base: PathKey = ("spec", "body", "schema")
        for ref_path, ref in _refs(body_schema, ()):
            if not ref.startswith("#"):
                self.error(
                    "CG111",
                    f"$ref {ref!r}: only references inside the body schema ('#/...') are "
                    "allowed; nothing is fetched",
                    (*base, *ref_path),
                )
            elif _resolve_pointer(body_schema, ref[1:]) is None:
                self.error("CG111", f"$ref {ref!r} points at nothing in the body schema", (*base, *ref_path))
        try:  # fast path: jsonschema-rs checks the schema (regexes included) in microseconds
            if jsonschema_rs.meta.is_valid(body_schema):
                jsonschema_rs.validator_for(body_schema)
                return
        except Exception:  # reported with positions by the slow path below
            pass
        try:
            jsonschema.Draft202012Validator.check_schema(body_schema)
        except jsonschema.SchemaError as exc:
            path: PathKey = ("spec", "body", "schema", *exc.absolute_path)
            if exc.validator == "format" and exc.validator_value == "regex":
                self.error("CG110", f"invalid regular expression {exc.instance!r} in the body schema", path)
            else:
                self.error("CG111", f"invalid body schema: {exc.message}", path)
        except Exception as exc:  # a hostile schema must not take the linter down
            self.error("CG111", f"invalid body schema: {exc}", ("spec", "body", "schema"))

    def rate_limit(self, spec: dict[str, Any]) -> RateLimitSpec:
        limits = []
        for i, lim in enumerate(spec.get("limits", [])):
            path: PathKey = ("spec", "limits", i)
            limits.append(
                Limit(
                    lim["name"],
                    self.expr((*path, "key")),
                    self.duration(lim["window"], (*path, "window"), positive=True),
                    self.raw.at(path),
                    lim.get("requests"),
                    lim.get("tokens"),
                    self.opt_expr(lim, "cost", path),
                    self.opt_expr(lim, "reserve", path),
                )
            )
        return RateLimitSpec(spec.get("algorithm", "sliding-window"), tuple(limits), spec.get("status", 429))

    def object_approval(self, spec: dict[str, Any]) -> ObjectApprovalSpec:
        rules = []
        for i, r in enumerate(spec.get("rules", [])):
            path: PathKey = ("spec", "rules", i)
            approvers = None
            if "approvers" in r:
                groups = tuple(r["approvers"].get("groups", []))
                approvers = Approvers(groups, self.raw.at((*path, "approvers")))
            expires_text = r.get("expiresAfter")
            expires = None
            if expires_text is not None:
                expires = self.duration(expires_text, (*path, "expiresAfter"), positive=True)
            rules.append(
                ApprovalRule(
                    r["name"],
                    self.expr((*path, "when")),
                    r["action"],
                    self.raw.at(path),
                    r.get("message"),
                    self.opt_expr(r, "messageExpression", path),
                    approvers,
                    r.get("minApprovals", 1),
                    expires,
                    r.get("patch"),
                )
            )
        return ObjectApprovalSpec(
            tuple(spec.get("objects", ())),
            tuple(spec.get("operations", ("create", "update", "delete"))),
            tuple(rules),
        )

    def check_addresses(self, step: dict[str, Any], path: PathKey) -> None:
        """A test request's client_ip and remote_addr must be IP addresses."""
        request = step.get("request") or {}
        for key in ("client_ip", "remote_addr"):
            text = request.get(key)
            if isinstance(text, str):
                try:
                    ipaddress.ip_address(text.strip())
                except ValueError:
                    self.error(
                        "CG109", f"request.{key}: {text!r} is not an IP address", (*path, "request", key)
                    )

    def policy_test(self, metadata: Metadata, spec: dict[str, Any]) -> PolicyTestDoc:
        cases = []
        for i, c in enumerate(spec["cases"]):
            path: PathKey = ("spec", "cases", i)
            steps = []
            has_inputs = any(k in c for k in _TEST_INPUTS)
            if "sequence" in c:
                if has_inputs or "expect" in c:
                    self.error(
                        "CG312",
                        f"case {c['name']!r}: give either a sequence or request/object and expect, not both",
                        path,
                    )
                for j, step in enumerate(c["sequence"]):
                    spath: PathKey = (*path, "sequence", j)
                    self.check_addresses(step, spath)
                    at = step.get("at")
                    steps.append(
                        TestStep(
                            self.raw.at(spath),
                            {k: step[k] for k in _TEST_INPUTS if k in step},
                            step["expect"],
                            self.duration(at, (*spath, "at"), positive=False) if at is not None else None,
                        )
                    )
            else:
                self.check_addresses(c, path)
                if not has_inputs:
                    self.error("CG312", f"case {c['name']!r} has no request, object or sequence", path)
                if "expect" not in c:
                    self.error("CG312", f"case {c['name']!r} has no expect", path)
                if "object" in c and any(k in c for k in ("request", "identity", "llm", "response")):
                    self.error("CG312", f"case {c['name']!r}: an object case takes no request inputs", path)
                steps.append(
                    TestStep(
                        self.raw.at(path), {k: c[k] for k in _TEST_INPUTS if k in c}, c.get("expect", {})
                    )
                )
            cases.append(TestCase(c["name"], self.raw.at(path), tuple(steps), "sequence" in c))
        policy_spans = tuple(self.raw.at(("spec", "policies", i)) for i in range(len(spec["policies"])))
        return PolicyTestDoc(metadata, tuple(spec["policies"]), tuple(cases), self.raw.span, policy_spans)


def parse_document(raw: RawDocument) -> tuple[Document | None, list[Diagnostic]]:
    """The typed document for a schema-valid raw document, and any value-level problems."""
    parser = _Parser(raw)
    try:
        document = parser.document()
    except (KeyError, TypeError, AttributeError, ValueError) as exc:  # defensive: schema drift
        parser.error("CG104", f"cannot read the document: {exc}", ())
        return None, parser.diagnostics
    return document, parser.diagnostics


def _refs(node: Any, path: PathKey) -> list[tuple[PathKey, str]]:
    """Every `$ref` string in a JSON Schema, with its path."""
    out: list[tuple[PathKey, str]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                out.append(((*path, key), value))
            else:
                out.extend(_refs(value, (*path, key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out.extend(_refs(value, (*path, i)))
    return out


def _resolve_pointer(document: Any, pointer: str) -> Any:
    """The value at a JSON pointer (RFC 6901) inside `document`, or None."""
    if pointer == "":
        return document
    if not pointer.startswith("/"):
        return None  # anchors ("#name") are not supported
    node = document
    for token in pointer[1:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return None
    return node
