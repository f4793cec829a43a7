"""The typed CEL variables as protobuf messages, built in code into the default descriptor pool.

Declaring `request`, `identity`, ... as message types (not `map(string, dyn)`) is what makes
cel-expr-python's checker catch typos (`request.methd`) and type errors (`request.size > "1"`)
at lint time. The JSON body stays a `google.protobuf.Value` (dynamic), headers are
`map<string, string>`, the query is `map<string, ListValue>` (CEL: `map(string, list(dyn))`).
`IP` and `CIDR` back the IP/CIDR library: a Python function cannot return a CEL abstract type
at run time, but it can return a message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, struct_pb2, timestamp_pb2
from google.protobuf.message import Message

PACKAGE = "celgate.policy.v1"
_FILE = "celgate/policy/v1/variables.proto"

_F = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    "string": _F.TYPE_STRING,
    "int": _F.TYPE_INT64,
    "double": _F.TYPE_DOUBLE,
    "bool": _F.TYPE_BOOL,
}
_WELL_KNOWN = {
    "value": ".google.protobuf.Value",
    "struct": ".google.protobuf.Struct",
    "list_value": ".google.protobuf.ListValue",
}

# message name -> [(field, type)]; type: a scalar, a well-known type, "list<string>",
# "map<string>" (map string -> string), "map<list>" (map string -> ListValue) or "msg:Name".
SCHEMA: dict[str, list[tuple[str, str]]] = {
    "Request": [
        ("id", "string"),
        ("method", "string"),
        ("path", "string"),
        ("query", "map<list>"),
        ("headers", "map<string>"),
        ("body", "value"),
        ("size", "int"),
        ("remote_addr", "string"),
        ("client_ip", "string"),
        ("host", "string"),
    ],
    "Identity": [
        ("authenticated", "bool"),
        ("app_id", "string"),
        ("user_id", "string"),
        ("groups", "list<string>"),
        ("claims", "struct"),
    ],
    "Llm": [("id", "string"), ("slug", "string"), ("vendor", "string"), ("model", "string")],
    "Usage": [("prompt_tokens", "int"), ("completion_tokens", "int"), ("total_tokens", "int")],
    "Response": [("status", "int"), ("headers", "map<string>"), ("body", "value"), ("usage", "msg:Usage")],
    "Actor": [("id", "string"), ("email", "string"), ("groups", "list<string>")],
    "LlmObject": [
        ("id", "string"),
        ("name", "string"),
        ("vendor", "string"),
        ("api_endpoint", "string"),
        ("default_model", "string"),
        ("models", "list<string>"),
        ("privacy_score", "int"),
        ("active", "bool"),
        ("api_key_set", "bool"),
        ("owner", "string"),
        ("metadata", "map<string>"),
    ],
    "AppObject": [
        ("id", "string"),
        ("name", "string"),
        ("description", "string"),
        ("owner", "string"),
        ("llms", "list<string>"),
        ("monthly_budget", "double"),
        ("active", "bool"),
        ("metadata", "map<string>"),
    ],
    "ToolObject": [
        ("id", "string"),
        ("name", "string"),
        ("description", "string"),
        ("endpoint", "string"),
        ("privacy_score", "int"),
        ("active", "bool"),
        ("owner", "string"),
        ("metadata", "map<string>"),
    ],
    "DatasourceObject": [
        ("id", "string"),
        ("name", "string"),
        ("kind", "string"),
        ("endpoint", "string"),
        ("privacy_score", "int"),
        ("active", "bool"),
        ("owner", "string"),
        ("metadata", "map<string>"),
    ],
    "UserObject": [
        ("id", "string"),
        ("email", "string"),
        ("name", "string"),
        ("groups", "list<string>"),
        ("role", "string"),
        ("active", "bool"),
        ("metadata", "map<string>"),
    ],
    "IP": [("text", "string"), ("family", "int")],
    "CIDR": [("text", "string"), ("family", "int")],
}

OBJECT_MESSAGES: dict[str, str] = {
    "llm": "LlmObject",
    "app": "AppObject",
    "tool": "ToolObject",
    "datasource": "DatasourceObject",
    "user": "UserObject",
}
OBJECT_TYPES: tuple[str, ...] = tuple(OBJECT_MESSAGES)


def _build_file() -> descriptor_pb2.FileDescriptorProto:
    fd = descriptor_pb2.FileDescriptorProto(name=_FILE, package=PACKAGE, syntax="proto3")
    fd.dependency.append("google/protobuf/struct.proto")
    for name, fields in SCHEMA.items():
        msg = fd.message_type.add(name=name)
        for number, (fname, ftype) in enumerate(fields, 1):
            if ftype.startswith("map<"):
                entry_name = "".join(p.title() for p in fname.split("_")) + "Entry"
                entry = msg.nested_type.add(name=entry_name)
                entry.options.map_entry = True
                entry.field.add(name="key", number=1, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL)
                if ftype == "map<string>":
                    entry.field.add(name="value", number=2, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL)
                else:
                    entry.field.add(
                        name="value",
                        number=2,
                        type=_F.TYPE_MESSAGE,
                        label=_F.LABEL_OPTIONAL,
                        type_name=_WELL_KNOWN["list_value"],
                    )
                msg.field.add(
                    name=fname,
                    number=number,
                    type=_F.TYPE_MESSAGE,
                    label=_F.LABEL_REPEATED,
                    type_name=f".{PACKAGE}.{name}.{entry_name}",
                )
            elif ftype == "list<string>":
                msg.field.add(name=fname, number=number, type=_F.TYPE_STRING, label=_F.LABEL_REPEATED)
            elif ftype in _WELL_KNOWN:
                msg.field.add(
                    name=fname,
                    number=number,
                    type=_F.TYPE_MESSAGE,
                    label=_F.LABEL_OPTIONAL,
                    type_name=_WELL_KNOWN[ftype],
                )
            elif ftype.startswith("msg:"):
                msg.field.add(
                    name=fname,
                    number=number,
                    type=_F.TYPE_MESSAGE,
                    label=_F.LABEL_OPTIONAL,
                    type_name=f".{PACKAGE}.{ftype[4:]}",
                )
            else:
                msg.field.add(name=fname, number=number, type=_SCALARS[ftype], label=_F.LABEL_OPTIONAL)
    return fd


def _register() -> descriptor_pool.DescriptorPool:
    # The default pool, so that google.protobuf.Value etc. are the same classes as struct_pb2's.
    pool = descriptor_pool.Default()
    # Make sure the well-known dependencies are in the pool before our file.
    _ = (struct_pb2.DESCRIPTOR, timestamp_pb2.DESCRIPTOR)
    try:
        pool.FindFileByName(_FILE)
    except KeyError:
        pool.Add(_build_file())
    return pool


POOL = _register()


def message_class(name: str) -> type[Message]:
    """The generated class of `celgate.policy.v1.<name>`."""
    return _CLASSES[name]


_CLASSES: dict[str, type[Message]] = {
    name: message_factory.GetMessageClass(POOL.FindMessageTypeByName(f"{PACKAGE}.{name}")) for name in SCHEMA
}


def field_kinds(name: str) -> dict[str, str]:
    """Field name -> schema type of message `name`."""
    return dict(SCHEMA[name])


def build_message(name: str, data: Any) -> Message:
    """A message from a plain mapping (JSON-like); unknown fields raise ValueError.

    Omitted fields take their zero value (the contract's "neutral defaults").
    """
    cls = _CLASSES[name]
    msg = cls()
    if data is None:
        return msg
    if not isinstance(data, dict):
        raise ValueError(f"{name.lower()} must be a mapping, not {type(data).__name__}")
    kinds = SCHEMA[name]
    known = dict(kinds)
    for key, value in data.items():
        ftype = known.get(key)
        if ftype is None:
            raise ValueError(f"unknown field {key!r} (expected one of: {', '.join(known)})")
        _set_field(msg, key, ftype, value)
    return msg


def _set_field(msg: Any, key: str, ftype: str, value: Any) -> None:
    if value is None:
        return
    if ftype == "value":
        getattr(msg, key).CopyFrom(to_value(value))
    elif ftype == "struct":
        if not isinstance(value, dict):
            raise ValueError(f"{key} must be a mapping")
        getattr(msg, key).update(value)
    elif ftype == "map<string>":
        if not isinstance(value, dict):
            raise ValueError(f"{key} must be a mapping")
        target = getattr(msg, key)
        for k, v in value.items():
            target[str(k)] = v if isinstance(v, str) else _scalar_text(v)
    elif ftype == "map<list>":
        if not isinstance(value, dict):
            raise ValueError(f"{key} must be a mapping")
        target = getattr(msg, key)
        for k, v in value.items():
            items = v if isinstance(v, list) else [v]
            target[str(k)].extend([_scalar_text(i) for i in items])
    elif ftype == "list<string>":
        items = value if isinstance(value, list) else [value]
        getattr(msg, key).extend([_scalar_text(i) for i in items])
    elif ftype.startswith("msg:"):
        getattr(msg, key).CopyFrom(build_message(ftype[4:], value))
    elif ftype == "string":
        setattr(msg, key, value if isinstance(value, str) else _scalar_text(value))
    elif ftype == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{key} must be an integer, not {value!r}")
        setattr(msg, key, value)
    elif ftype == "double":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{key} must be a number, not {value!r}")
        setattr(msg, key, float(value))
    elif ftype == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be true or false, not {value!r}")
        setattr(msg, key, value)
    else:  # pragma: no cover - the schema above is closed
        raise AssertionError(ftype)


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    raise ValueError(f"expected a string, not {type(value).__name__}")


def to_value(data: Any) -> struct_pb2.Value:
    """A JSON-like Python value as `google.protobuf.Value` (numbers become doubles, as in JSON)."""
    value = struct_pb2.Value()
    if data is None:
        value.null_value = struct_pb2.NULL_VALUE
    elif isinstance(data, bool):
        value.bool_value = data
    elif isinstance(data, int | float):
        value.number_value = float(data)
    elif isinstance(data, str):
        value.string_value = data
    elif isinstance(data, dict):
        value.struct_value.update({str(k): v for k, v in data.items()})
    elif isinstance(data, list | tuple):
        value.list_value.extend(list(data))
    else:
        raise ValueError(f"not a JSON value: {type(data).__name__}")
    return value


# -- the runtime form: plain, zero-filled mappings --------------------------------------------
#
# At run time the variables are fed as plain mappings in an environment where they are
# `map(string, dyn)` (several times cheaper to evaluate than protobuf messages, which
# cel-expr-python converts on every new activation). Every field is present with its zero
# value and JSON numbers are doubles, so that an expression reads exactly what it would read
# from the message its type check was done against.


def plain(name: str, data: Any) -> dict[str, Any]:
    """The runtime form of message `name` from a JSON-like mapping; ValueError on bad input."""
    out: dict[str, Any] = _PLAIN[name](data)
    return out


_FIELD_NAMES: dict[str, frozenset[str]] = {
    name: frozenset(f for f, _ in fields) for name, fields in SCHEMA.items()
}


def _plain_check(name: str, data: Any) -> Any:
    """`data` as a mapping to read fields from (None -> {}); ValueError on a non-mapping or an
    unknown field."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{name.lower()} must be a mapping, not {type(data).__name__}")
    if len(data) and not data.keys() <= _FIELD_NAMES[name]:
        unknown = sorted(set(data) - _FIELD_NAMES[name])
        expected = ", ".join(f for f, _ in SCHEMA[name])
        raise ValueError(f"unknown field {unknown[0]!r} (expected one of: {expected})")
    return data


def _plain_field(key: str, ftype: str, value: Any) -> Any:
    if ftype == "value":
        return json_value(value)
    if value is None:
        if ftype in _ZERO:
            return _ZERO[ftype]
        if ftype.startswith("msg:"):
            return plain(ftype[4:], None)
        return [] if ftype == "list<string>" else {}
    if ftype == "string":
        return value if isinstance(value, str) else _scalar_text(value)
    if ftype == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{key} must be an integer, not {value!r}")
        if not -(2**63) <= value < 2**63:
            raise ValueError(f"{key} is out of the 64-bit integer range: {value}")
        return value
    if ftype == "double":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{key} must be a number, not {value!r}")
        return float(value)
    if ftype == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be true or false, not {value!r}")
        return value
    if ftype == "list<string>":
        items = value if isinstance(value, list) else [value]
        return [_scalar_text(i) for i in items]
    if ftype.startswith("msg:"):
        return plain(ftype[4:], value)
    if not isinstance(value, dict):
        raise ValueError(f"{key} must be a mapping")
    if ftype == "struct":
        return {str(k): json_value(v) for k, v in value.items()}
    if ftype == "map<string>":
        return {str(k): v if isinstance(v, str) else _scalar_text(v) for k, v in value.items()}
    # map<list>
    return {str(k): [_scalar_text(i) for i in (v if isinstance(v, list) else [v])] for k, v in value.items()}


_ZERO: dict[str, Any] = {"string": "", "int": 0, "double": 0.0, "bool": False}

# `plain` is compiled once per message type into a function that builds the mapping in one
# dict display: each field's common case (absent, or already of the right type) is inline and
# everything else goes through `_plain_field` (the reference conversion, same values and
# errors). Fields are read in schema order, so the first bad field raises, as before.
_INLINE: dict[str, str] = {
    # v is the field's raw value; {k} the field name literal, {t} the schema type literal.
    "value": "_json(v)",
    "string": '"" if v is None else (v if v.__class__ is str else _field({k}, {t}, v))',
    "int": "0 if v is None else (v if v.__class__ is int and _IMIN <= v < _IMAX else _field({k}, {t}, v))",
    "double": "0.0 if v is None else (v if v.__class__ is float else _field({k}, {t}, v))",
    "bool": "False if v is None else (v if v is True or v is False else _field({k}, {t}, v))",
    "list<string>": "[] if v is None else (_texts(v) if v.__class__ is list else _field({k}, {t}, v))",
    "struct": "{{}} if v is None else (_json(v) if v.__class__ is dict else _field({k}, {t}, v))",
    "map<string>": "{{}} if v is None else (_text_map(v) if v.__class__ is dict else _field({k}, {t}, v))",
    "map<list>": "{{}} if v is None or (v.__class__ is dict and not v) else _field({k}, {t}, v)",
}


def _texts(items: list[Any]) -> list[str]:
    return [i if i.__class__ is str else _scalar_text(i) for i in items]


def _text_map(value: dict[Any, Any]) -> dict[str, str]:
    return {
        k if k.__class__ is str else str(k): v if v.__class__ is str else _scalar_text(v)
        for k, v in value.items()
    }


def _compile_plain(name: str) -> Callable[[Any], dict[str, Any]]:
    items: list[str] = []
    for fname, ftype in SCHEMA[name]:
        k, t = repr(fname), repr(ftype)
        expr = f"_PLAIN[{ftype[4:]!r}](v)" if ftype.startswith("msg:") else _INLINE[ftype].format(k=k, t=t)
        items.append(f"    v = g({k})\n    f{len(items)} = {expr}\n")
    fields = ", ".join(f"{f!r}: f{i}" for i, (f, _) in enumerate(SCHEMA[name]))
    source = (
        f"def plain_{name}(data):\n"
        "    if data is None:\n"
        "        data = _NO_DATA\n"
        "    elif data.__class__ is not dict or (data and not data.keys() <= _NAMES):\n"
        f"        data = _check({name!r}, data)\n"
        "    g = data.get\n" + "".join(items) + f"    return {{{fields}}}\n"
    )
    scope: dict[str, Any] = {
        "_check": _plain_check,
        "_field": _plain_field,
        "_json": json_value,
        "_texts": _texts,
        "_text_map": _text_map,
        "_NO_DATA": {},  # only read
        "_NAMES": _FIELD_NAMES[name],
        "_PLAIN": _PLAIN,
        "_IMIN": -(2**63),
        "_IMAX": 2**63,
    }
    exec(compile(source, f"<plain {name}>", "exec"), scope)
    fn: Callable[[Any], dict[str, Any]] = scope[f"plain_{name}"]
    return fn


# message name -> its compiled `plain`; filled at the end of the module (after json_value)
_PLAIN: dict[str, Callable[[Any], dict[str, Any]]] = {}


def json_value(data: Any) -> Any:
    """A JSON-like value as CEL reads a `google.protobuf.Value`: numbers are doubles."""
    t = data.__class__
    if t is str or t is float or t is bool or data is None:
        return data
    if t is dict:  # leaves of the exact JSON types inline: no call per string / float
        return {
            k if k.__class__ is str else str(k): v
            if (c := v.__class__) is str or c is float or c is bool or v is None
            else json_value(v)
            for k, v in data.items()
        }
    if t is list:
        return [
            v if (c := v.__class__) is str or c is float or c is bool or v is None else json_value(v)
            for v in data
        ]
    if isinstance(data, bool | str):
        return data
    if isinstance(data, int | float):
        return float(data)
    if isinstance(data, dict):
        return {str(k): json_value(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [json_value(v) for v in data]
    raise ValueError(f"not a JSON value: {type(data).__name__}")


_PLAIN.update({name: _compile_plain(name) for name in SCHEMA})
