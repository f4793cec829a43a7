"""Static facts about CEL source text: constant conditions and regex literals.

Nothing here evaluates policy text as Python: constant folding is a small recursive-descent
evaluator over the tokens `true`, `false`, `!`, `&&`, `||` and parentheses.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

_CONST_TOKEN = re.compile(r"\s*(true|false|&&|\|\||!|\(|\))")


def constant_value(source: str) -> bool | None:
    """True/False when `source` is a constant boolean expression, else None."""
    tokens: list[str] = []
    pos = 0
    text = source.strip()
    while pos < len(text):
        m = _CONST_TOKEN.match(text, pos)
        if m is None:
            return None
        tokens.append(m.group(1))
        pos = m.end()
        if text[pos:].strip() == "":
            break
    if not tokens:
        return None
    parser = _Fold(tokens)
    value = parser.parse_or()
    if value is None or parser.i != len(tokens):
        return None
    return value


class _Fold:
    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.i = 0

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def parse_or(self) -> bool | None:
        left = self.parse_and()
        while left is not None and self.peek() == "||":
            self.i += 1
            right = self.parse_and()
            left = None if right is None else (left or right)
        return left

    def parse_and(self) -> bool | None:
        left = self.parse_not()
        while left is not None and self.peek() == "&&":
            self.i += 1
            right = self.parse_not()
            left = None if right is None else (left and right)
        return left

    def parse_not(self) -> bool | None:
        if self.peek() == "!":
            self.i += 1
            inner = self.parse_not()
            return None if inner is None else not inner
        return self.parse_atom()

    def parse_atom(self) -> bool | None:
        tok = self.peek()
        self.i += 1
        if tok == "true":
            return True
        if tok == "false":
            return False
        if tok == "(":
            inner = self.parse_or()
            if self.peek() != ")":
                return None
            self.i += 1
            return inner
        return None


_LITERAL = r"""([rR]?)("(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*')"""
_MATCHES = re.compile(r"\bmatches\s*\(\s*(?:[^,()\"']*,\s*)?" + _LITERAL)
_SIMPLE_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "`": "`",
    "?": "?",
}
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-3][0-7]{2}|.)")


def decode_literal(raw_prefix: str, quoted: str) -> str:
    """The value of a (single-line) CEL string literal."""
    body = quoted[1:-1]
    if raw_prefix:
        return body

    def unescape(m: re.Match[str]) -> str:
        e = m.group(1)
        if e[0] in "xuU" and len(e) > 1:
            return chr(int(e[1:], 16))
        if e[0].isdigit() and len(e) == 3:
            return chr(int(e, 8))
        return _SIMPLE_ESCAPES.get(e, "\\" + e)

    return _ESCAPE.sub(unescape, body)


def regex_literals(source: str) -> Iterator[tuple[int, str]]:
    """(offset of the literal, pattern) for each string literal passed to matches()."""
    for m in _MATCHES.finditer(source):
        yield m.start(1), decode_literal(m.group(1), m.group(2))


_RE2_UNSUPPORTED = re.compile(r"\(\?[=!]|\(\?<[=!]|\\[1-9]|[*+?}]\+")


def regex_problem(pattern: str) -> str | None:
    """Why `pattern` is not a valid RE2 regular expression, or None."""
    bad = _RE2_UNSUPPORTED.search(pattern)
    if bad is not None:
        return (
            f"{bad.group(0)!r} (lookaround, backreference or possessive quantifier) is not supported by RE2"
        )
    try:
        re.compile(pattern)
    except re.error as exc:
        return str(exc)
    except (OverflowError, RecursionError, ValueError):
        return "pattern too large"
    return None
