"""Injection safety: every string from a policy is embedded as data, never as code.

Property: arbitrary strings in every string field a plan carries (messages, CEL string literals
in expressions, rate-limit keys, JSON Schema keys and values, patch keys and values, approver
groups) compile to a plugin that imports and holds exactly those strings. A fixed set of
hostile strings also checks that the output stays ruff-clean and never runs anything.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from codegen_helpers import import_plugin
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from celgate.codegen.compile import compile_paths
from celgate.codegen.literal import literal

RUFF = str(Path(sys.executable).parent / "ruff")
# Any character YAML can carry (no surrogates); the loader normalises nothing inside scalars.
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
HOSTILE = [
    '"""; import os; os.system("touch PWNED"); """',
    "'''\n__import__('os').system('touch PWNED')\n'''",
    "\\",
    '\\"',
    "\n# noqa\nimport os",
    "\r\x00\x0b\x0c\x1b\x7f\x85\u2028\u2029\ufeff",
    '\uff45\uff56\uff41\uff4c("x") \u2013 \u2018quotes\u2019 \U0001f600 \U0010ffff',
    "{PLANS}",
    "x" * 300,
    "a b " * 80 + '"' * 5 + "'" * 5,
]


def cel_string(text: str) -> str:
    """`text` as a CEL string literal (double-quoted, escapes for anything unusual)."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable() and ch not in "\u2028\u2029" and ch.isascii():
            out.append(ch)
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


def documents(s: list[str]) -> list[dict[str, Any]]:
    """Four policies with `s[i]` in every string field that reaches the plan."""
    return [
        {
            "apiVersion": "celgate.dev/v1",
            "kind": "RequestValidation",
            "metadata": {"name": "rv", "description": s[0], "labels": {"team": s[1]}},
            "spec": {
                "body": {
                    "schema": {
                        "type": "object",
                        "title": s[2],
                        "properties": {
                            s[3] or "k": {"description": s[4], "enum": [s[5], s[6]], "default": s[5]}
                        },
                    }
                },
                "rules": [
                    {
                        "name": "r1",
                        "expression": f"request.path != {cel_string(s[7])}",
                        "message": s[8] or "m",
                    },
                    {
                        "name": "r2",
                        "expression": "true",
                        "messageExpression": f"{cel_string(s[9])} + request.path",
                    },
                ],
            },
        },
        {
            "apiVersion": "celgate.dev/v1",
            "kind": "IPFilter",
            "metadata": {"name": "ip"},
            "spec": {"allow": ["10.0.0.0/8"], "message": s[10] or "m"},
        },
        {
            "apiVersion": "celgate.dev/v1",
            "kind": "RateLimit",
            "metadata": {"name": "rl"},
            "spec": {
                "limits": [
                    {
                        "name": "l",
                        "key": f"{cel_string(s[11])} + identity.app_id",
                        "requests": 5,
                        "window": "1s",
                    }
                ]
            },
        },
        {
            "apiVersion": "celgate.dev/v1",
            "kind": "ObjectApproval",
            "metadata": {"name": "oa"},
            "spec": {
                "objects": ["llm"],
                "rules": [
                    {
                        "name": "d",
                        "when": f"object.name == {cel_string(s[12])}",
                        "action": "deny",
                        "message": s[13] or "m",
                    },
                    {
                        "name": "p",
                        "when": "true",
                        "action": "mutate",
                        "patch": {"metadata": {s[14] or "k": s[15]}},
                    },
                ],
            },
        },
    ]


def compile_and_import(tmp: Path, strings: list[str]) -> tuple[Any, list[dict[str, Any]]]:
    src = tmp / "src"
    src.mkdir(parents=True, exist_ok=True)
    docs = documents(strings)
    (src / "p.yaml").write_text(yaml.safe_dump_all(docs, allow_unicode=False), encoding="utf-8")
    result = compile_paths([src], tmp / "out", bundle="fuzz")
    assert result.exit_code == 0, (result.error, [d.message for d in result.lint.diagnostics])
    return import_plugin(tmp / "out" / "fuzz"), docs


def check_reproduced(module: Any, s: list[str]) -> None:
    rv, ip, rl, oa = module.PLANS
    schema = rv["spec"]["body_schema"]
    assert schema["title"] == s[2]
    assert schema["properties"] == {s[3] or "k": {"description": s[4], "enum": [s[5], s[6]], "default": s[5]}}
    assert rv["spec"]["rules"][0]["expression"] == f"request.path != {cel_string(s[7])}"
    assert rv["spec"]["rules"][0]["message"] == (s[8] or "m")
    assert rv["spec"]["rules"][1]["message_expression"] == f"{cel_string(s[9])} + request.path"
    assert ip["spec"]["message"] == (s[10] or "m")
    assert rl["spec"]["limits"][0]["key"] == f"{cel_string(s[11])} + identity.app_id"
    assert oa["spec"]["rules"][0]["message"] == (s[13] or "m")
    assert oa["spec"]["rules"][1]["patch"] == {"metadata": {s[14] or "k": s[15]}}
    module.CompiledPolicies()  # the plans build: the runtime compiles what was embedded


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(TEXT, min_size=16, max_size=16))
def test_arbitrary_strings_compile_to_a_plugin_that_reproduces_them(
    tmp_path_factory: Any, strings: list[str]
) -> None:
    tmp = tmp_path_factory.mktemp("fuzz")
    module, _ = compile_and_import(tmp, strings)
    check_reproduced(module, strings)


def test_hostile_strings_stay_data_and_the_output_stays_ruff_clean(tmp_path: Path) -> None:
    strings = (HOSTILE * 2)[:16]
    module, _ = compile_and_import(tmp_path, strings)
    check_reproduced(module, strings)
    assert not list(tmp_path.rglob("PWNED")) and not Path("PWNED").exists()
    check = subprocess.run(
        [RUFF, "check", "--no-cache", str(tmp_path / "out")], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | TEXT,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
        max_leaves=20,
    )
)
def test_literals_evaluate_back_to_the_same_data(value: Any) -> None:
    assert eval(literal(value), {"__builtins__": {}}) == value
