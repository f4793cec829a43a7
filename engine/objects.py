"""Studio object types: fields, validation, secret redaction and JSON merge patch.

The fields are fixed by POLICY-LANGUAGE.md ("Studio objects"): the same shape is used by the
REST API, the store, object hooks and ObjectApproval policies. Secrets (an llm's `api_key`)
are accepted on write, kept apart from the public fields, and never returned or shown to a
hook; `api_key_set` says whether one exists.
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

OBJECT_TYPES: tuple[str, ...] = ("llm", "app", "tool", "datasource", "user")
PLURALS: dict[str, str] = {
    "llm": "llms",
    "app": "apps",
    "tool": "tools",
    "datasource": "datasources",
    "user": "users",
}
ROLES: tuple[str, ...] = ("admin", "approver", "member")
OPERATIONS: tuple[str, ...] = ("create", "update", "delete")

# field kinds: str, int, bool, float, strlist, strmap
_COMMON = {"id": "str", "active": "bool", "metadata": "strmap"}
FIELDS: dict[str, dict[str, str]] = {
    "llm": {
        **_COMMON,
        "name": "str",
        "vendor": "str",
        "api_endpoint": "str",
        "default_model": "str",
        "models": "strlist",
        "privacy_score": "int",
        "api_key_set": "bool",
        "owner": "str",
    },
    "app": {
        **_COMMON,
        "name": "str",
        "description": "str",
        "owner": "str",
        "llms": "strlist",
        "monthly_budget": "float",
    },
    "tool": {
        **_COMMON,
        "name": "str",
        "description": "str",
        "endpoint": "str",
        "privacy_score": "int",
        "owner": "str",
    },
    "datasource": {
        **_COMMON,
        "name": "str",
        "kind": "str",
        "endpoint": "str",
        "privacy_score": "int",
        "owner": "str",
    },
    "user": {**_COMMON, "email": "str", "name": "str", "groups": "strlist", "role": "str"},
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "llm": ("name",),
    "app": ("name",),
    "tool": ("name",),
    "datasource": ("name",),
    "user": ("email",),
}
# write-only secret fields per type: accepted on input, stored apart, never returned
SECRET_FIELDS: dict[str, tuple[str, ...]] = {"llm": ("api_key",)}
# fields only the host sets
READ_ONLY: dict[str, tuple[str, ...]] = {"llm": ("api_key_set",)}

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,127}$")
_GROUP_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_ZERO: dict[str, Any] = {"str": "", "int": 0, "bool": False, "float": 0.0, "strlist": [], "strmap": {}}


@dataclass(frozen=True)
class FieldError:
    """One problem with one field of an object."""

    field: str
    message: str


@dataclass
class ObjectError(Exception):
    """The object (or patch) is invalid; `errors` names each bad field."""

    errors: list[FieldError] = field(default_factory=list)

    def __str__(self) -> str:
        return "; ".join(f"{e.field}: {e.message}" for e in self.errors)


@dataclass(frozen=True)
class Secrets:
    """Secret values split off an input object. `None` leaves the stored secret unchanged."""

    api_key: str | None = None
    clear_api_key: bool = False


def new_id() -> str:
    """A fresh object id (lower-case, URL-safe)."""
    return secrets.token_hex(8)


def zero(object_type: str) -> dict[str, Any]:
    """An object of the type with every field at its zero value (id left empty)."""
    out: dict[str, Any] = {}
    for name, kind in FIELDS[object_type].items():
        value = _ZERO[kind]
        out[name] = (
            list(value) if isinstance(value, list) else dict(value) if isinstance(value, dict) else value
        )
    if "active" in out:
        out["active"] = True
    if object_type == "user":
        out["role"] = "member"
    return out


def split_secrets(object_type: str, data: Mapping[str, Any]) -> tuple[dict[str, Any], Secrets]:
    """Remove write-only secret fields from `data` and return them separately."""
    public = dict(data)
    if object_type != "llm" or "api_key" not in public:
        return public, Secrets()
    key = public.pop("api_key")
    if key is None or key == "":
        return public, Secrets(clear_api_key=True)
    if not isinstance(key, str):
        raise ObjectError([FieldError("api_key", "must be a string")])
    return public, Secrets(api_key=key)


def check(object_type: str, data: Mapping[str, Any], *, allow_read_only: bool = False) -> dict[str, Any]:
    """Validate a complete object and return it normalised (zero values filled in).

    Unknown fields are errors, as in policies. Read-only fields are rejected unless the host
    itself is writing (`allow_read_only`).
    """
    if object_type not in FIELDS:
        raise ObjectError([FieldError("type", f"unknown object type {object_type!r}")])
    if not isinstance(data, Mapping):
        raise ObjectError([FieldError("", "an object (JSON map) is required")])
    spec = FIELDS[object_type]
    errors: list[FieldError] = []
    out = zero(object_type)
    for name, value in data.items():
        if name not in spec:
            errors.append(FieldError(str(name), "unknown field"))
            continue
        if name in READ_ONLY.get(object_type, ()) and not allow_read_only:
            continue  # silently ignored: clients echo objects they read back to us
        problem = _check_kind(spec[name], value)
        if problem:
            errors.append(FieldError(name, problem))
            continue
        out[name] = value
    for name in REQUIRED[object_type]:
        if not out.get(name):
            errors.append(FieldError(name, "is required"))
    if out["id"] and not _ID_RE.match(out["id"]):
        errors.append(FieldError("id", "must match [a-z0-9][a-z0-9_.-]* (at most 128 characters)"))
    if "privacy_score" in spec and not 0 <= out["privacy_score"] <= 100:
        errors.append(FieldError("privacy_score", "must be between 0 and 100"))
    if object_type == "app" and not 0 <= out["monthly_budget"] < math.inf:
        errors.append(FieldError("monthly_budget", "must be a finite number, not negative"))
    if object_type == "user":
        if out["role"] not in ROLES:
            errors.append(FieldError("role", f"must be one of {', '.join(ROLES)}"))
        if out["email"] and "@" not in out["email"]:
            errors.append(FieldError("email", "is not an email address"))
        for g in out["groups"]:
            if not _GROUP_RE.match(g):
                errors.append(FieldError("groups", f"invalid group name {g!r}"))
    if errors:
        raise ObjectError(errors)
    return out


def _check_kind(kind: str, value: Any) -> str | None:
    if kind == "str":
        return None if isinstance(value, str) else "must be a string"
    if kind == "bool":
        return None if isinstance(value, bool) else "must be true or false"
    if kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else "must be an integer"
    if kind == "float":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else "must be a number"
    if kind == "strlist":
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return None if ok else "must be a list of strings"
    if kind == "strmap":
        ok = isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        )
        return None if ok else "must be a map of string to string"
    return f"unknown kind {kind}"  # pragma: no cover - FIELDS is static


def normalise(object_type: str, obj: dict[str, Any]) -> dict[str, Any]:
    """Floats stay floats (JSON may send `10` for a double field)."""
    if object_type == "app":
        obj["monthly_budget"] = float(obj["monthly_budget"])
    return obj


def redact(object_type: str, obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object as callers and hooks may see it: no secret field, ever."""
    return {k: v for k, v in obj.items() if k not in SECRET_FIELDS.get(object_type, ())}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch: `null` deletes a key, maps merge, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result: dict[str, Any] = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def apply_hook_object(object_type: str, current: Mapping[str, Any], modified: Any) -> dict[str, Any]:
    """Validate an object a hook returned (verdict `modify`) against `current`.

    A hook cannot change the id or the host-owned fields (`api_key_set`), and cannot add a
    secret: whatever it sends for those is replaced by the current values.
    """
    if not isinstance(modified, dict):
        raise ObjectError([FieldError("", "modify verdict must carry a JSON object")])
    candidate = {k: v for k, v in modified.items() if k not in SECRET_FIELDS.get(object_type, ())}
    candidate["id"] = current.get("id", "")
    for name in READ_ONLY.get(object_type, ()):
        candidate[name] = current.get(name)
    return normalise(object_type, check(object_type, candidate, allow_read_only=True))
