"""No traceback, ever: generated and mutated input yields diagnostics and exit codes 0 or 1.

Inputs: random nested structures dumped to YAML, random text, and mutated copies of valid
policies (fields deleted, duplicated, retyped; unicode inserted; indentation broken; lines
dropped or repeated). Once through the real CLI in a subprocess as well.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from celgate.policies.codes import CODES
from celgate.policies.lint import LintResult, lint_text

VALID = (Path(__file__).parent / "lint_cases" / "valid" / "policies.yaml").read_text(encoding="utf-8")
VALID_DOCS = [d for d in yaml.safe_load_all(VALID)]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.sampled_from(
        ["IPFilter", "RateLimit", "celgate.dev/v1", "request.size > 1", "1m", "10.0.0.0/8", "true"]
    ),
)
keys = st.one_of(
    st.text(max_size=10),
    st.sampled_from(["apiVersion", "kind", "metadata", "name", "spec", "rules", "limits", "when", "match"]),
)
structures = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=25,
)


def assert_only_diagnostics(result: LintResult) -> None:
    assert result.exit_code in (0, 1)
    for d in result.diagnostics:
        assert d.code in CODES
        assert d.span.line >= 1 and d.span.column >= 1
        assert d.severity in ("error", "warning", "info")


@SETTINGS
@given(structures)
def test_random_structures_dumped_to_yaml(value: Any) -> None:
    assert_only_diagnostics(lint_text(yaml.safe_dump(value, allow_unicode=True), "gen.yaml"))


@SETTINGS
@given(st.text(max_size=300))
def test_random_text(text: str) -> None:
    assert_only_diagnostics(lint_text(text, "text.yaml"))


def _mutate(value: Any, data: st.DataObject) -> Any:
    """Apply one structural mutation somewhere in `value`."""
    if isinstance(value, dict) and value:
        key = data.draw(st.sampled_from(sorted(value)))
        op = data.draw(st.sampled_from(["delete", "retype", "recurse", "add"]))
        out = dict(value)
        if op == "delete":
            del out[key]
        elif op == "retype":
            out[key] = data.draw(scalars | st.lists(scalars, max_size=2))
        elif op == "add":
            out[data.draw(keys)] = data.draw(structures)
        else:
            out[key] = _mutate(value[key], data)
        return out
    if isinstance(value, list) and value:
        i = data.draw(st.integers(0, len(value) - 1))
        op = data.draw(st.sampled_from(["delete", "duplicate", "recurse"]))
        out_list = list(value)
        if op == "delete":
            del out_list[i]
        elif op == "duplicate":
            out_list.insert(i, value[i])
        else:
            out_list[i] = _mutate(value[i], data)
        return out_list
    return data.draw(scalars)


@SETTINGS
@given(st.data())
def test_structurally_mutated_valid_policies(data: st.DataObject) -> None:
    docs = [_mutate(d, data) if data.draw(st.booleans()) else d for d in VALID_DOCS]
    assert_only_diagnostics(lint_text(yaml.safe_dump_all(docs, allow_unicode=True), "mut.yaml"))


@SETTINGS
@given(st.data())
def test_textually_mutated_valid_policies(data: st.DataObject) -> None:
    lines = VALID.split("\n")
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(lines) - 1))
        op = data.draw(st.sampled_from(["drop", "repeat", "indent", "dedent", "unicode", "char", "tab"]))
        if op == "drop":
            del lines[i]
        elif op == "repeat":
            lines.insert(i, lines[i])
        elif op == "indent":
            lines[i] = " " * data.draw(st.integers(1, 3)) + lines[i]
        elif op == "dedent":
            lines[i] = lines[i][data.draw(st.integers(1, 3)) :]
        elif op == "tab":
            lines[i] = "\t" + lines[i].lstrip()
        else:
            pos = data.draw(st.integers(0, len(lines[i])))
            insert = data.draw(
                st.text(min_size=1, max_size=3)
                if op == "unicode"
                else st.sampled_from(list("'\"[]{}:#&*!|>-,%@`"))
            )
            lines[i] = lines[i][:pos] + insert + lines[i][pos:]
        if not lines:
            lines = [""]
    assert_only_diagnostics(lint_text("\n".join(lines), "text-mut.yaml"))


def test_generated_garbage_through_the_cli_subprocess(tmp_path: Path) -> None:
    samples = [
        "a: [\n",
        "\t- x\n",
        VALID.replace("spec:", "spec: [", 1),
        VALID.replace("  name: corp-ip-allowlist", "  name: corp-ip-allowlist\n  name: again", 1),
        "apiVersion: celgate.dev/v1\nkind: RateLimit\nmetadata: {name: r}\nspec: {limits: [{}]}\n",
        "a: &a [*a, *a]\n",
        "\u2028\u00e9\U0001f600: \x85\n",
        "key: !!binary aGVsbG8=\n",
        VALID,
    ]
    for i, text in enumerate(samples):
        (tmp_path / f"s{i}.yaml").write_text(text, encoding="utf-8")
    (tmp_path / "bad-bytes.yaml").write_bytes(b"kind: \xff\xfe\n")
    proc = subprocess.run(
        [sys.executable, "-m", "celgate", "lint", str(tmp_path), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert '"code": "CG004"' in proc.stdout and '"code": "CG003"' in proc.stdout
