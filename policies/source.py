"""YAML text -> plain JSON-like values with a position for every node.

PyYAML's composer (libyaml when available) keeps a mark per node. The composed nodes are
turned into plain values plus an index from each node's path (`("spec", "rules", 0, "when")`)
to its position (`Located`), so that later stages can point at any value or key. Duplicate
keys, alias bombs, deep nesting and explicit tags are reported, never raised.
`scalar_offsets` maps every character of a scalar's value back to the file, for every
scalar style (plain, quoted, literal and folded block scalars, multi-line flow scalars).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Any

import yaml

from celgate.policies.codes import diag
from celgate.policies.diagnostics import Diagnostic
from celgate.policies.model import Span

MAX_NODES = 20_000  # per document, after alias expansion (real policies: a few hundred)
MAX_DEPTH = 64

PathKey = tuple[str | int, ...]

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_SCALAR_TAGS = {
    _STR,
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:timestamp",  # kept as its text: policies have no timestamp fields
}

_CONSTRUCTOR = yaml.constructor.SafeConstructor()


class LineTable:
    """Maps character offsets in a text to 1-based (line, column)."""

    __slots__ = ("starts",)

    def __init__(self, text: str) -> None:
        starts = [0]
        find = text.find
        i = find("\n")
        while i >= 0:
            starts.append(i + 1)
            i = find("\n", i + 1)
        self.starts = starts

    def position(self, index: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.starts, index) - 1
        return line + 1, index - self.starts[line] + 1

    def positions(self, indices: list[int]) -> tuple[tuple[int, int], ...]:
        """`position` of each index; fast for the increasing runs of a scalar's characters.

        The (line, column) pairs are shared between expressions (and files): a policy set
        holds few distinct pairs but many expressions, so this keeps memory flat.
        """
        starts = self.starts
        out: list[tuple[int, int]] = []
        line = -1
        line_start = next_start = 0
        pair = _PAIRS.setdefault
        for index in indices:
            if not line_start <= index < next_start:
                line = bisect.bisect_right(starts, index) - 1
                line_start = starts[line]
                next_start = starts[line + 1] if line + 1 < len(starts) else 1 << 62
            key = (line + 1, index - line_start + 1)
            out.append(pair(key, key) if len(_PAIRS) < _MAX_SHARED_PAIRS else key)
        return tuple(out)


_PAIRS: dict[tuple[int, int], tuple[int, int]] = {}
_MAX_SHARED_PAIRS = 100_000


@dataclass(slots=True)
class Located:
    """Where one value of a document is: its start, end and (under a mapping) its key."""

    span: Span
    end: Span
    key_span: Span | None
    node: yaml.Node
    key_end: Span | None = None


@dataclass(slots=True)
class Source:
    """One decoded file: its text and line table (shared by all its documents)."""

    path: str
    text: str
    lines: LineTable

    def span(self, index: int) -> Span:
        line, column = self.lines.position(index)
        return Span(self.path, line, column)


@dataclass(slots=True)
class RawDocument:
    """One YAML document as plain values, with positions for every node."""

    source: Source
    value: Any
    index: dict[PathKey, Located]
    span: Span
    text: str
    ok: bool = True  # False when composing it reported an error (duplicate key, bad tag, ...)

    def at(self, path: PathKey) -> Span:
        """The position of the value at `path`, or of its closest ancestor that exists."""
        while path not in self.index and path:
            path = path[:-1]
        loc = self.index.get(path)
        return loc.span if loc else self.span

    def end_at(self, path: PathKey) -> Span | None:
        """Where the value at `path` ends (exclusive), if it exists."""
        loc = self.index.get(path)
        return loc.end if loc else None

    def key_end_at(self, path: PathKey) -> Span | None:
        """Where the key naming the value at `path` ends (exclusive)."""
        loc = self.index.get(path)
        return loc.key_end if loc else None

    def key_at(self, path: PathKey) -> Span:
        """The position of the key naming the value at `path` (the value's for list items)."""
        loc = self.index.get(path)
        if loc is not None and loc.key_span is not None:
            return loc.key_span
        return self.at(path)


# -- YAML -> positioned plain values --------------------------------------------------------


def compose_text(text: str, path: str) -> tuple[list[RawDocument], list[Diagnostic]]:
    """Compose every YAML document of `text`; stops at the first syntax error."""
    if text.startswith("\ufeff"):
        text = text[1:]
    # One line-break convention for marks and the line table (columns are unaffected).
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    source = Source(path, text, LineTable(text))
    docs: list[RawDocument] = []
    diagnostics: list[Diagnostic] = []
    try:
        loader = _Loader(text)
    except UnicodeEncodeError as exc:  # lone surrogates: text that no file could have held
        diagnostics.append(
            diag("CG003", "text contains characters that are not valid Unicode", source.span(exc.start))
        )
        return docs, diagnostics
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            raw = _to_raw(node, source, diagnostics)
            if raw is not None:
                docs.append(raw)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        span = Span(path, mark.line + 1, mark.column + 1) if mark else Span(path, 1, 1)
        message = _yaml_message(exc)
        if mark is not None and text[mark.index : mark.index + 1] == "\t" and "tab" not in message:
            message += " (a tab character: YAML indentation must use spaces)"
        diagnostics.append(diag("CG004", message, span))
    except yaml.YAMLError as exc:  # ReaderError (control characters) and the like
        position = getattr(exc, "position", None)
        span = source.span(position) if isinstance(position, int) else Span(path, 1, 1)
        diagnostics.append(diag("CG004", _first_line(str(exc)), span))
    except RecursionError:
        diagnostics.append(diag("CG007", f"nesting deeper than {MAX_DEPTH} levels", Span(path, 1, 1)))
    finally:
        loader.dispose()
    return docs, diagnostics


def _first_line(message: str) -> str:
    return " ".join(message.split("\n")[0].split())


def _yaml_message(exc: yaml.MarkedYAMLError) -> str:
    parts = [p for p in (exc.context, exc.problem) if p]
    message = ": ".join(parts) if parts else "invalid YAML"
    return " ".join(message.split())


class _Abort(Exception):
    pass


class _Builder:
    def __init__(self, source: Source, diagnostics: list[Diagnostic]) -> None:
        self.source = source
        self.diagnostics = diagnostics
        self.index: dict[PathKey, Located] = {}
        self.count = 0
        self.active: set[int] = set()

    def span(self, mark: Any) -> Span:
        return Span(self.source.path, mark.line + 1, mark.column + 1)

    def error(self, code: str, message: str, node: yaml.Node) -> None:
        self.diagnostics.append(diag(code, message, self.span(node.start_mark)))

    def build(self, node: yaml.Node, path: PathKey, named_by: yaml.Node | None, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            self.error("CG006", f"document expands to more than {MAX_NODES} nodes (alias bomb?)", node)
            raise _Abort
        if depth > MAX_DEPTH:
            self.error("CG007", f"nesting deeper than {MAX_DEPTH} levels", node)
            raise _Abort
        self.index[path] = Located(
            self.span(node.start_mark),
            self.span(node.end_mark),
            self.span(named_by.start_mark) if named_by is not None else None,
            node,
            self.span(named_by.end_mark) if named_by is not None else None,
        )
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node)
        if id(node) in self.active:
            self.error("CG006", "recursive alias", node)
            raise _Abort
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                if node.tag != _SEQ:
                    self.error("CG008", f"unsupported tag {node.tag}", node)
                return [self.build(item, (*path, i), None, depth + 1) for i, item in enumerate(node.value)]
            assert isinstance(node, yaml.MappingNode)
            if node.tag != _MAP:
                self.error("CG008", f"unsupported tag {node.tag}", node)
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    self.error("CG008", "mapping keys must be plain strings", key_node)
                    continue
                if key_node.tag == "tag:yaml.org,2002:merge":
                    self.error("CG008", "merge keys (<<) are not supported", key_node)
                    continue
                key = key_node.value
                if key in out:
                    first = self.index[(*path, key)].key_span
                    where = f" (first at line {first.line}, column {first.column})" if first else ""
                    self.error("CG005", f"duplicate key '{key}'{where}", key_node)
                    continue
                out[key] = self.build(value_node, (*path, key), key_node, depth + 1)
            return out
        finally:
            self.active.discard(id(node))

    def scalar(self, node: yaml.ScalarNode) -> Any:
        tag = node.tag
        if tag == _STR or tag == "tag:yaml.org,2002:timestamp":
            return node.value
        if tag not in _SCALAR_TAGS:
            self.error("CG008", f"unsupported tag {tag}", node)
            return node.value
        try:
            return _CONSTRUCTOR.yaml_constructors[tag](_CONSTRUCTOR, node)
        except (yaml.YAMLError, ValueError, OverflowError):
            return node.value


def _to_raw(node: yaml.Node, source: Source, diagnostics: list[Diagnostic]) -> RawDocument | None:
    start = node.start_mark.index
    span = source.span(start)
    if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null" and node.value in ("", "~"):
        diagnostics.append(diag("CG010", "empty document", span))
        return None
    builder = _Builder(source, diagnostics)
    before = len(diagnostics)
    try:
        value = builder.build(node, (), None, 0)
    except _Abort:
        return None
    if not isinstance(value, dict):
        diagnostics.append(diag("CG009", "a policy document must be a mapping (apiVersion, kind, ...)", span))
        return None
    text = source.text[start : node.end_mark.index]
    return RawDocument(source, value, builder.index, span, text, ok=len(diagnostics) == before)


# -- expression positions ----------------------------------------------------------------------

_ESCAPES = {
    "0": "\0",
    "a": "\x07",
    "b": "\x08",
    "t": "\t",
    "\t": "\t",
    "n": "\n",
    "v": "\x0b",
    "f": "\x0c",
    "r": "\r",
    "e": "\x1b",
    " ": " ",
    '"': '"',
    "/": "/",
    "\\": "\\",
    "N": "\x85",
    "_": "\xa0",
    "L": "\u2028",
    "P": "\u2029",
}
_HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}

_INDENT = re.compile(r"[ ]*(?:-[ ]+)*")

# token kinds for flow scalars
_CHAR, _WS, _BREAK, _ESC_BREAK, _LITERAL = range(5)


def scalar_offsets(node: yaml.ScalarNode, source: Source) -> tuple[tuple[int, int], ...]:
    """(line, column) in the file of every character of the scalar's value, plus its end.

    Falls back to the scalar's start for every character if the raw text cannot be mapped
    (the reconstruction is checked against the parser's value).
    """
    text = source.text
    start, end = node.start_mark.index, node.end_mark.index
    try:
        if node.style in ("|", ">"):
            pairs = _block_pairs(text, start, end, node.style == ">")
        elif node.style == '"':
            pairs = _flow_pairs(_double_tokens(text, start + 1, end - 1))
        elif node.style == "'":
            pairs = _flow_pairs(_single_tokens(text, start + 1, end - 1))
        else:
            pairs = _flow_pairs(_single_tokens(text, start, end, quotes=False))
    except (IndexError, ValueError):
        pairs = []
    if "".join(c for c, _ in pairs) != node.value:
        first = source.lines.position(start)
        return (first,) * (len(node.value) + 1)
    return source.lines.positions([i for _, i in pairs] + [end])


def _single_tokens(text: str, start: int, end: int, quotes: bool = True) -> list[tuple[str, int, int]]:
    tokens: list[tuple[str, int, int]] = []
    i = start
    while i < end:
        c = text[i]
        if quotes and c == "'" and i + 1 < end and text[i + 1] == "'":
            tokens.append(("'", i, _LITERAL))
            i += 2
            continue
        kind = _BREAK if c == "\n" else _WS if c in " \t" else _CHAR
        tokens.append((c, i, kind))
        i += 1
    return tokens


def _double_tokens(text: str, start: int, end: int) -> list[tuple[str, int, int]]:
    tokens: list[tuple[str, int, int]] = []
    i = start
    while i < end:
        c = text[i]
        if c == "\\":
            nxt = text[i + 1]
            if nxt == "\n":
                tokens.append(("", i, _ESC_BREAK))
                i += 2
            elif nxt in _HEX_ESCAPES:
                width = _HEX_ESCAPES[nxt]
                tokens.append((chr(int(text[i + 2 : i + 2 + width], 16)), i, _LITERAL))
                i += 2 + width
            else:
                tokens.append((_ESCAPES[nxt], i, _LITERAL))
                i += 2
            continue
        kind = _BREAK if c == "\n" else _WS if c in " \t" else _CHAR
        tokens.append((c, i, kind))
        i += 1
    return tokens


def _flow_pairs(tokens: list[tuple[str, int, int]]) -> list[tuple[str, int]]:
    """Apply YAML line folding to flow-scalar tokens (plain, single- or double-quoted)."""
    lines: list[list[tuple[str, int, int]]] = [[]]
    breaks: list[tuple[int, int]] = []  # (kind, index) of the break ending each line
    for tok in tokens:
        if tok[2] in (_BREAK, _ESC_BREAK):
            breaks.append((tok[2], tok[1]))
            lines.append([])
        else:
            lines[-1].append(tok)
    # strip whitespace around unescaped breaks
    for n, line in enumerate(lines):
        if n > 0:
            while line and line[0][2] == _WS:
                line.pop(0)
        if n < len(breaks) and breaks[n][0] == _BREAK:
            while line and line[-1][2] == _WS:
                line.pop()
    out: list[tuple[str, int]] = [(c, i) for c, i, _ in lines[0]]
    empties: list[int] = []
    last = len(lines) - 1
    for n in range(1, len(lines)):
        kind, brk = breaks[n - 1]
        if not lines[n] and n < last and kind == _BREAK:
            empties.append(breaks[n][1])
            continue
        if kind == _BREAK or empties:
            if empties:
                out.extend(("\n", e) for e in empties)
            else:
                out.append((" ", brk))
        empties = []
        out.extend((c, i) for c, i, _ in lines[n])
    return out


def _block_pairs(text: str, start: int, end: int, folded: bool) -> list[tuple[str, int]]:
    header_end = text.index("\n", start) if "\n" in text[start:end] else end
    header = text[start + 1 : header_end].split("#")[0].strip()
    chomp = "+" if "+" in header else "-" if "-" in header else ""
    raw_lines: list[tuple[int, str, int]] = []  # (start index, text, index of its break)
    i = header_end + 1
    while i < end:
        j = text.find("\n", i)
        if j < 0 or j >= end:
            if text[i:end].strip(" "):
                raw_lines.append((i, text[i:end], end))
            break
        raw_lines.append((i, text[i:j], j))
        i = j + 1
    content = [ln for ln in raw_lines if ln[1].strip(" ")]
    if not content:
        return [("\n", b) for _, _, b in raw_lines] if chomp == "+" else []
    digits = [c for c in header if c.isdigit()]
    if digits:  # explicit indentation indicator: relative to the line holding the header
        line_start = text.rfind("\n", 0, start) + 1
        header_line = text[line_start:start]
        parent = _INDENT.match(header_line)  # the key's column: spaces and "- " entries skipped
        indent = (parent.end() if parent else 0) + int(digits[0])
    else:
        indent = len(content[0][1]) - len(content[0][1].lstrip(" "))
    out: list[tuple[str, int]] = []
    prev: tuple[int, str, int] | None = None
    empties: list[int] = []
    for ln in raw_lines:
        s, body, brk = ln
        if len(body) <= indent and not body.strip(" "):
            empties.append(brk)
            continue
        more = body[indent : indent + 1] in (" ", "\t")
        if prev is not None:
            prev_more = prev[1][indent : indent + 1] in (" ", "\t")
            if folded and not more and not prev_more:
                out.extend([(" ", prev[2])] if not empties else [("\n", e) for e in empties])
            else:
                out.append(("\n", prev[2]))
                out.extend(("\n", e) for e in empties)
        else:
            out.extend(("\n", e) for e in empties)
        empties = []
        out.extend((c, s + indent + k) for k, c in enumerate(body[indent:]))
        prev = ln
    assert prev is not None
    if chomp != "-" and text[prev[2] : prev[2] + 1] == "\n":
        out.append(("\n", prev[2]))
    if chomp == "+":
        out.extend(("\n", e) for e in empties)
    return out
