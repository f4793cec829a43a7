"""Plain data -> Python source literals that evaluate back to exactly that data.

This is the only way policy content reaches generated code: every string (names, messages,
patterns, keys, schema values) is encoded character by character as an escaped, ASCII-only,
double-quoted literal, so no policy text can end a string, open a comment or become code, and
the result is deterministic, ruff-clean (no line over the limit, no ambiguous characters) and
equal to the input when evaluated. Accepted values: None, bool, int, finite float, str, and
lists, tuples and str-keyed dicts of them.
"""

from __future__ import annotations

import math
from typing import Any

LINE_LIMIT = 110
INDENT = "    "


class LiteralError(ValueError):
    """A value that has no faithful JSON-like literal (NaN, a set, a non-string key, ...)."""


def quote_for(text: str) -> str:
    """Double quotes, unless the text holds double quotes and no single ones (as ruff formats)."""
    return "'" if '"' in text and "'" not in text else '"'


def _piece(char: str, quote: str) -> str:
    """One character as it appears inside an ASCII literal delimited by `quote`."""
    if char == quote:
        return "\\" + quote
    if char in "'\"":
        return char
    return ascii(char)[1:-1]  # \xNN, \uNNNN, \UNNNNNNNN or the printable ASCII character itself


def string_pieces(text: str, quote: str = '"') -> list[str]:
    return [_piece(c, quote) for c in text]


def string_literal(text: str) -> str:
    """`text` as one ASCII-only literal."""
    quote = quote_for(text)
    return quote + "".join(string_pieces(text, quote)) + quote


def _chunks(text: str, width: int) -> list[str]:
    """Adjacent literals of at most `width` characters each (escapes are never split)."""
    width = max(width, 16)
    parts: list[str] = []
    start, size = 0, 2
    for i, char in enumerate(text):
        piece = len(_piece(char, '"'))  # the longest form either quote gives it
        if i > start and size + piece > width:
            parts.append(text[start:i])
            start, size = i, 2
        size += piece
    parts.append(text[start:])
    return [string_literal(p) for p in parts]


def scalar(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return repr(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise LiteralError(f"{value!r} has no JSON form")
        return repr(value)
    if isinstance(value, str):
        return string_literal(value)
    raise LiteralError(f"cannot embed a {type(value).__name__} as data")


def render(value: Any, indent: int = 0, prefix: str = "", suffix: str = "") -> list[str]:
    """Lines of `value` as a literal, the first line starting with `prefix` (e.g. `"key": `) and
    the last ending with `suffix` (e.g. `,`), indented `indent` levels."""
    pad = INDENT * indent
    if isinstance(value, dict):
        if not value:
            return [f"{pad}{prefix}{{}}{suffix}"]
        lines = [f"{pad}{prefix}{{"]
        for key, item in value.items():
            if not isinstance(key, str):
                raise LiteralError(f"dict keys must be strings, not {type(key).__name__}")
            lines.extend(_keyed(key, item, indent + 1))
        lines.append(f"{pad}}}{suffix}")
        return lines
    if isinstance(value, list | tuple):
        opening, closing = ("[", "]") if isinstance(value, list) else ("(", ")")
        if not value:
            return [f"{pad}{prefix}{opening}{closing}{suffix}"]
        if isinstance(value, tuple) and len(value) == 1 and not isinstance(value[0], dict | list | tuple):
            line = f"{pad}{prefix}({scalar(value[0])},){suffix}"  # as ruff formats a 1-tuple
            if len(line) <= LINE_LIMIT:
                return [line]
        lines = [f"{pad}{prefix}{opening}"]
        for item in value:
            lines.extend(render(item, indent + 1, "", ","))
        lines.append(f"{pad}{closing}{suffix}")
        return lines
    text = scalar(value)
    line = f"{pad}{prefix}{text}{suffix}"
    if len(line) <= LINE_LIMIT or not isinstance(value, str):
        return [line]
    # A long string: parenthesised adjacent literals, one per line.
    inner = INDENT * (indent + 1)
    parts = _chunks(value, LINE_LIMIT - len(inner))
    return [f"{pad}{prefix}(", *(f"{inner}{p}" for p in parts), f"{pad}){suffix}"]


def _keyed(key: str, item: Any, indent: int) -> list[str]:
    pad = INDENT * indent
    key_text = string_literal(key)
    if len(pad) + len(key_text) + 4 <= LINE_LIMIT - 8:
        return render(item, indent, f"{key_text}: ", ",")
    # A very long key: parenthesised adjacent literals, then the value on its own.
    inner = INDENT * (indent + 1)
    parts = _chunks(key, LINE_LIMIT - len(inner))
    head = [f"{pad}(", *(f"{inner}{p}" for p in parts)]
    value_lines = render(item, indent, "", ",")
    first = value_lines[0].lstrip()
    return [*head, f"{pad}): {first}", *value_lines[1:]]


def literal(value: Any, indent: int = 0) -> str:
    """`value` as source text (first line not indented)."""
    return "\n".join(render(value, indent)).lstrip()
