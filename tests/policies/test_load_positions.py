"""Expression positions: every character of an expression maps back to where it is in the file.

For every scalar style (plain, single- and double-quoted, literal and folded blocks, and
multi-line flow scalars), the character at the mapped (line, column) of the file is the
expression's character itself, except where YAML turned something into it: a folded line
break (mapped to that line break), an escape sequence (mapped to its backslash), or a
quote pair `''` (mapped to the first quote).
"""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from celgate.policies.source import compose_text, scalar_offsets

STYLES = [None, "'", '"', "|", ">"]


def _check_mapping(
    text: str, path: tuple[str | int, ...] = ("expr",)
) -> tuple[str, tuple[tuple[int, int], ...]]:
    docs, diagnostics = compose_text(text, "x.yaml")
    assert diagnostics == []
    loc = docs[0].index[path]
    node = loc.node
    assert isinstance(node, yaml.ScalarNode)
    offsets = scalar_offsets(node, docs[0].source)
    assert len(offsets) == len(node.value) + 1
    lines = docs[0].source.text.split("\n")
    for ch, (line, column) in zip(node.value, offsets, strict=False):
        at = lines[line - 1][column - 1] if column - 1 < len(lines[line - 1]) else "\n"
        if ch == at:
            continue
        assert (ch in " \n" and at in "\n \t") or at == "\\" or (ch == "'" and at == "'"), (
            ch,
            at,
            line,
            column,
        )
    return node.value, offsets


def test_folded_block_scalar_maps_each_line_and_the_folded_breaks() -> None:
    text = "expr: >\n  request.size > 10\n  && request.x\n"
    value, offsets = _check_mapping(text)
    assert value == "request.size > 10 && request.x\n"
    assert offsets[0] == (2, 3)
    assert offsets[value.index("&&")] == (3, 3)
    assert offsets[len("request.size > 10")] == (2, 20)  # the folded line break


def test_double_quoted_escapes_and_continuation_lines() -> None:
    text = 'expr: "a == \\"b\\" &&\n    c\\tz"\n'
    value, offsets = _check_mapping(text)
    assert value == 'a == "b" && c\tz'
    assert offsets[value.index("c")] == (2, 5)
    assert offsets[value.index('"')] == (1, 13)


def test_single_quoted_quote_pairs() -> None:
    value, offsets = _check_mapping("expr: 'a[''k''] == 1'\n")
    assert value == "a['k'] == 1"
    assert offsets[value.index("==")] == (1, 17)


def test_literal_block_keeps_lines_and_indentation() -> None:
    value, offsets = _check_mapping("expr: |\n    a &&\n      b\n\n    c\n")
    assert value == "a &&\n  b\n\nc\n"
    assert offsets[value.index("b")] == (3, 7)
    assert offsets[value.index("c")] == (5, 5)


expression_text = st.text(
    alphabet=st.sampled_from(list("abcxyz019 .()[]&|=!<>+-*\"'\\\t\n#:,{}é€😀")), min_size=1, max_size=80
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expression_text, st.sampled_from(STYLES), st.integers(min_value=8, max_value=60), st.booleans())
def test_every_style_yaml_can_write_maps_back_to_the_file(
    value: str, style: str | None, width: int, nested: bool
) -> None:
    doc: object = {"spec": {"rules": [{"name": "r", "expr": value}]}} if nested else {"expr": value}
    path: tuple[str | int, ...] = ("spec", "rules", 0, "expr") if nested else ("expr",)
    try:
        text = yaml.dump(doc, default_style=style, width=width, allow_unicode=True)
    except yaml.YAMLError:
        return
    if yaml.safe_load(text) != doc:  # PyYAML cannot always round-trip (trailing spaces in blocks)
        return
    got, _ = _check_mapping(text, path)
    assert got == value
