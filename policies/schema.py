"""JSON Schema per kind: loading the shipped schemas and validating documents against them.

Validation reports every problem at the exact node: an unknown field at its key, a wrong
type at the value, a missing field at the mapping that lacks it. jsonschema-rs answers the
common case (a valid document) quickly; only invalid documents go through the `jsonschema`
package, whose errors carry the paths we map back to YAML positions.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
import jsonschema_rs
import yaml

from celgate.policies.codes import diag
from celgate.policies.diagnostics import Diagnostic
from celgate.policies.model import ALL_KINDS
from celgate.policies.source import RawDocument

API_VERSION = "celgate.dev/v1"


@cache
def schema_text(kind: str) -> str:
    """The shipped schema of `kind`, as text (what `celgate schema KIND` prints)."""
    return resources.files("celgate.policies.schemas").joinpath(f"{kind}.json").read_text("utf-8")


@cache
def schema_for(kind: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(schema_text(kind))
    return loaded


@cache
def _validators(kind: str) -> tuple[Any, jsonschema.Draft202012Validator]:
    schema = schema_for(kind)
    return jsonschema_rs.validator_for(schema), jsonschema.Draft202012Validator(schema)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _where(path: tuple[str | int, ...]) -> str:
    if not path:
        return "the document"
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def validate_document(raw: RawDocument) -> list[Diagnostic]:
    """Envelope and schema checks for one document; an empty list when it is valid."""
    value = raw.value
    out: list[Diagnostic] = []
    api = value.get("apiVersion")
    if api is None:
        out.append(diag("CG102", "missing required field 'apiVersion' (celgate.dev/v1)", raw.span))
    elif api != API_VERSION:
        out.append(
            diag(
                "CG105", f"unsupported apiVersion {api!r}: expected {API_VERSION!r}", raw.at(("apiVersion",))
            )
        )
    kind = value.get("kind")
    if kind is None:
        out.append(diag("CG102", "missing required field 'kind'", raw.span))
        return out
    if not isinstance(kind, str) or kind not in ALL_KINDS:
        out.append(
            diag("CG106", f"unknown kind {kind!r}: expected one of {', '.join(ALL_KINDS)}", raw.at(("kind",)))
        )
        return out
    fast, full = _validators(kind)
    if not out and fast.is_valid(value):
        return out
    for error in full.iter_errors(value):
        path = tuple(error.absolute_path)
        for d in _report(raw, kind, error):
            if d.end is None and d.code != "CG102" and d.span == raw.at(path):
                d = dataclasses.replace(d, end=raw.end_at(path))
            out.append(d)
    metadata = value.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if isinstance(name, str):
        out = [dataclasses.replace(d, policy=name) for d in out]
    return out


def without_unknown_fields(raw: RawDocument) -> RawDocument | None:
    """A copy of `raw` without the fields its kind's schema does not know, when that makes it
    valid (None otherwise). Lint uses it to go on checking the rest of a document (its CEL
    expressions, ranges, names) after reporting the unknown fields, instead of stopping there.
    Positions stay valid: the index is keyed by path and only whole fields are removed."""
    kind = raw.value.get("kind") if isinstance(raw.value, dict) else None
    if not isinstance(kind, str) or kind not in ALL_KINDS:
        return None
    _, full = _validators(kind)
    value = copy.deepcopy(raw.value)
    removed = False
    for error in full.iter_errors(raw.value):
        if error.validator != "additionalProperties" or not isinstance(error.instance, dict):
            return None
        target: Any = value
        for step in error.absolute_path:
            target = target[step]
        known = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        for key in [k for k in target if k not in known]:
            del target[key]
            removed = True
    if not removed or not _validators(kind)[0].is_valid(value):
        return None
    return dataclasses.replace(raw, value=value)


def _report(raw: RawDocument, kind: str, error: jsonschema.ValidationError) -> list[Diagnostic]:
    path = tuple(error.absolute_path)
    where = _where(path)
    instance = error.instance
    validator = error.validator
    schema = error.schema if isinstance(error.schema, dict) else {}
    if validator == "additionalProperties" and isinstance(instance, dict):
        known = sorted(schema.get("properties", {}))
        out = []
        for key in instance:
            if key in schema.get("properties", {}):
                continue
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            if close:
                hint = f" (did you mean '{close[0]}'?)"
            else:
                hint = f"; expected one of: {', '.join(known)}" if known else ""
            kpath = (*path, key)
            message = f"unknown field '{key}' in {where}{hint}"
            out.append(diag("CG101", message, raw.key_at(kpath), end=raw.key_end_at(kpath)))
        return out
    if validator == "required" and isinstance(instance, dict):
        missing = [k for k in error.validator_value if k not in instance]
        return [diag("CG102", f"missing required field '{k}' in {where}", raw.key_at(path)) for k in missing]
    span = raw.at(path)
    if validator == "type":
        expected = error.validator_value
        expected_text = " or ".join(expected) if isinstance(expected, list) else str(expected)
        if schema.get("pattern") and "ms|s|m|h|d" in str(schema.get("pattern")):
            expected_text = "a duration string such as '1m'"
        message = f"{where}: expected {expected_text}, found {_json_type(instance)}"
        loc = raw.index.get(path)
        node = loc.node if loc else None
        if "string" in expected_text and isinstance(node, yaml.ScalarNode) and not node.style:
            message += f" (YAML reads {node.value} as a {_json_type(instance)}; quote it: '{node.value}')"
        return [diag("CG103", message, span)]
    if validator == "const":
        if path == ("apiVersion",):
            return []  # reported by the envelope check
        return [diag("CG104", f"{where}: expected {error.validator_value!r}, found {instance!r}", span)]
    if validator == "enum":
        options = ", ".join(str(v) for v in error.validator_value)
        return [diag("CG104", f"{where}: {instance!r} is not one of: {options}", span)]
    if validator == "pattern":
        if path == ("metadata", "name"):
            return [
                diag(
                    "CG107",
                    f"invalid name {instance!r}: use lowercase letters, digits and '-' "
                    "(starting and ending with a letter or digit)",
                    span,
                )
            ]
        if "ms|s|m|h|d" in str(error.validator_value):
            return [
                diag(
                    "CG108",
                    f"{where}: invalid duration {instance!r}: expected a number and a unit "
                    "(ms, s, m, h, d) such as 250ms, 0.5s, 1m, 1h, 7d",
                    span,
                )
            ]
        return [diag("CG104", f"{where}: {instance!r} does not match {error.validator_value}", span)]
    if validator == "maxLength" and path == ("metadata", "name"):
        return [diag("CG107", f"invalid name: longer than {error.validator_value} characters", span)]
    if validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        bound = "at least" if "inimum" in str(validator) else "at most"
        return [diag("CG104", f"{where}: {instance!r} must be {bound} {error.validator_value}", span)]
    if validator == "uniqueItems":
        return [diag("CG104", f"{where}: lists the same value twice", span)]
    if validator in ("minLength", "minItems"):
        return [diag("CG104", f"{where}: must not be empty", span)]
    return [diag("CG104", f"{where}: {error.message}", span)]


def kinds() -> tuple[str, ...]:
    return ALL_KINDS
