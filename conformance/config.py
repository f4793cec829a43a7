"""The plugin config a conformance run uses, and the checks on a plugin's config schema.

When the operator gives no `--config`, the run uses the plugin's own defaults: every
`default` in its schema, plus a placeholder for each required property that has none. String
placeholders are paths inside the run's scratch folder, so a plugin that treats one as a file
writes there and never into its own folder.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema

_MAX_DEPTH = 8


def parse_schema(schema_json: str) -> dict[str, Any] | None:
    """The schema as a dict; None when the plugin takes no config (""); ValueError if unusable."""
    if not schema_json:
        return None
    schema = json.loads(schema_json)
    if not isinstance(schema, dict):
        raise ValueError("the config schema is not a JSON object")
    return schema


def schema_problems(schema: dict[str, Any]) -> list[str]:
    """Why `schema` is not a valid JSON Schema (its own metaschema, else Draft 2020-12)."""
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    problems: list[str] = []
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        problems.append(f"not a valid JSON Schema at {where}: {exc.message}")
    if schema.get("type", "object") != "object" and "properties" not in schema:
        problems.append(f"a plugin config is a JSON object, but the schema says type {schema.get('type')!r}")
    return problems


def default_problems(schema: dict[str, Any]) -> list[str]:
    """Every `default` must validate against the subschema that declares it."""
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    problems: list[str] = []

    def walk(node: Any, where: str, depth: int) -> None:
        if depth > _MAX_DEPTH or not isinstance(node, dict):
            return
        if "default" in node:
            sub = {k: v for k, v in node.items() if k != "default"}
            for error in cls(sub).iter_errors(node["default"]):
                problems.append(f"default at {where or '(root)'} = {node['default']!r}: {error.message}")
        for key in ("properties", "patternProperties", "$defs", "definitions"):
            children = node.get(key)
            if isinstance(children, dict):
                for name, child in children.items():
                    walk(child, f"{where}/{key}/{name}", depth + 1)
        for key in ("items", "additionalProperties", "not", "if", "then", "else"):
            walk(node.get(key), f"{where}/{key}", depth + 1)
        for key in ("allOf", "anyOf", "oneOf", "prefixItems"):
            children = node.get(key)
            if isinstance(children, list):
                for i, child in enumerate(children):
                    walk(child, f"{where}/{key}/{i}", depth + 1)

    walk(schema, "", 0)
    return problems


def defaults_of(schema: dict[str, Any], scratch: str, depth: int = 0) -> Any:
    """The config the plugin gets when the operator sets nothing: defaults and placeholders."""
    if "default" in schema:
        return schema["default"]
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = kind[0] if kind else None
    props = schema.get("properties")
    if kind == "object" or (kind is None and isinstance(props, dict)):
        out: dict[str, Any] = {}
        if depth > _MAX_DEPTH or not isinstance(props, dict):
            return out
        required = set(schema.get("required") or [])
        for name, sub in props.items():
            if not isinstance(sub, dict):
                continue
            if "default" in sub or name in required:
                out[name] = defaults_of(sub, f"{scratch}/{name}", depth + 1)
        return out
    if kind == "array":
        return []
    if kind == "string":
        return scratch
    if kind == "integer":
        return int(schema.get("minimum", 0))
    if kind == "number":
        return schema.get("minimum", 0)
    if kind == "boolean":
        return False
    return None


def config_for(schema_json: str, scratch: str) -> dict[str, Any]:
    """The config for a run without `--config`; {} when the schema cannot be used."""
    try:
        schema = parse_schema(schema_json)
    except ValueError:
        return {}
    if schema is None:
        return {}
    value = defaults_of(schema, f"{scratch}/config")
    return value if isinstance(value, dict) else {}


def config_problems(schema: dict[str, Any], config: dict[str, Any]) -> list[str]:
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return [
        f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
        for e in cls(schema).iter_errors(config)
    ]
