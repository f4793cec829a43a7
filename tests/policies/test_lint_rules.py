"""Individual lint rules: positions of CEL errors in every scalar style, limits, helpers."""

from __future__ import annotations

import pytest

from celgate.policies.checks import expressions
from celgate.policies.checks.constants import constant_value, regex_literals, regex_problem
from celgate.policies.formats import line
from celgate.policies.lint import lint_text
from celgate.policies.parse import parse_duration, parse_network

HEAD = (
    "apiVersion: celgate.dev/v1\nkind: RequestValidation\nmetadata: {name: rv}\n"
    "spec:\n  rules:\n    - name: r\n"
)


def lines(text: str) -> list[str]:
    return [line(d) for d in lint_text(text, "p.yaml").diagnostics]


@pytest.mark.parametrize(
    ("expression_yaml", "where"),
    [
        ("      expression: request.sise > 1\n", "7:26"),
        ("      expression: 'request.sise > 1'\n", "7:27"),
        ("      expression: 'request.headers[''a''] == request.sise'\n", "7:53"),
        ('      expression: "request.path == \\"a\\" || request.sise > 1"\n', "7:52"),
        ("      expression: |\n        request.size > 1 &&\n          request.sise > 1\n", "9:18"),
        ("      expression: >\n        request.size > 1\n        && request.sise > 1\n", "9:19"),
        ("      expression: request.size > 1\n        && request.sise > 1\n", "8:19"),
        ("      expression: >-\n\n        request.size > 1 &&\n\n        request.sise > 1\n", "11:16"),
    ],
)
def test_cel_type_errors_point_into_the_yaml_file(expression_yaml: str, where: str) -> None:
    got = lines(HEAD + expression_yaml)
    assert got == [
        f"p.yaml:{where}: CG202 error: undefined field 'sise' not found in struct 'celgate.policy.v1.Request'"
    ]


def test_cel_syntax_error_position_and_code() -> None:
    got = lines(HEAD + "      expression: 'request.size > > 1'\n")
    assert len(got) == 1 and got[0].startswith("p.yaml:7:35: CG201 error: ")


def test_overlong_expression_is_reported_without_checking_it() -> None:
    long = " || ".join(["request.size > 1"] * 300)
    assert lines(HEAD + f"      expression: '{long}'\n") == [
        f"p.yaml:7:20: CG205 error: expression is {len(long)} characters long (limit 4096)"
    ]


def test_without_the_cel_environment_other_checks_still_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(expressions, "_cel", lambda: None)
    got = lines(HEAD + "      expression: 'request.sise.matches(\"(\")'\n")
    # CG207 sits at the document start
    assert [g.split(": ", 2)[1] for g in got] == ["CG207 info", "CG110 error"]


def test_constant_folding() -> None:
    assert constant_value("true") is True
    assert constant_value(" !(true && false) ") is True
    assert constant_value("false || (false)") is False
    assert constant_value("true && x") is None
    assert constant_value("(true") is None
    assert constant_value("") is None


def test_regex_literals_and_re2_restrictions() -> None:
    src = r"""a.matches("^a+$") && matches(b, r'(x') && c.matches('\\d(?=x)')"""
    found = list(regex_literals(src))
    assert [p for _, p in found] == ["^a+$", "(x", "\\d(?=x)"]
    assert src[found[1][0] :].startswith("r'(x'")
    assert regex_problem("^a+$") is None
    assert regex_problem("(x") is not None
    assert "RE2" in (regex_problem("\\d(?=x)") or "")


def test_durations_and_networks() -> None:
    assert parse_duration("250ms") == 0.25
    assert parse_duration("7d") == 7 * 86400
    assert parse_duration("1.5h") == 5400
    assert parse_duration("1 m") is None and parse_duration("-1s") is None and parse_duration("1w") is None
    assert str(parse_network("192.0.2.7")) == "192.0.2.7/32"
    assert "host bits" in str(parse_network("10.0.0.1/8"))
    assert "not an IP" in str(parse_network("10.0.0.0/33"))


def test_body_schema_refs_must_be_local_and_resolve() -> None:
    text = (
        "apiVersion: celgate.dev/v1\nkind: RequestValidation\nmetadata: {name: x}\nspec:\n  body:\n"
        "    schema:\n      $defs: {a: {type: string}}\n"
        '      properties: {x: {$ref: "#/$defs/a"}, y: {$ref: "#/$defs/b"}, z: {$ref: "https://e.com/s"}}\n'
    )
    got = lines(text)
    assert [g.split(" error: ")[0] for g in got] == ["p.yaml:8:54: CG111", "p.yaml:8:78: CG111"]
    assert "points at nothing" in got[0] and "nothing is fetched" in got[1]


def test_test_inputs_must_hold_ip_addresses() -> None:
    text = (
        "apiVersion: celgate.dev/v1\nkind: PolicyTest\nmetadata: {name: t}\n"
        "spec:\n  policies: [t]\n  cases:\n"
        "    - name: a\n      request: {client_ip: 10.0.0.300}\n      expect: {decision: allow}\n"
        "    - name: b\n      sequence:\n"
        "        - {request: {remote_addr: localhost}, expect: {decision: allow}}\n"
    )
    got = [g for g in lines(text) if "CG109" in g]
    assert got == [
        "p.yaml:8:28: CG109 error: request.client_ip: '10.0.0.300' is not an IP address",
        "p.yaml:12:35: CG109 error: request.remote_addr: 'localhost' is not an IP address",
    ]


def test_ipv4_mapped_ranges_count_as_ipv4_for_shadowing() -> None:
    text = (
        "apiVersion: celgate.dev/v1\nkind: IPFilter\nmetadata: {name: m}\nspec:\n"
        '  allow: ["192.168.0.0/16"]\n  deny: ["::ffff:192.168.13.0/120", "10.0.0.0/8"]\n'
    )
    assert lines(text) == [
        "p.yaml:6:37: CG303 warning: deny range 10.0.0.0/8 contains no address of the allow list, "
        "so it never changes a decision"
    ]


def test_an_unknown_field_does_not_hide_the_rest_of_the_document() -> None:
    text = HEAD + "      expression: request.sise > 1\n      mesage: too big\n"
    result = lint_text(text, "p.yaml")
    assert [line(d) for d in result.diagnostics] == [
        "p.yaml:7:26: CG202 error: undefined field 'sise' not found in struct 'celgate.policy.v1.Request'",
        "p.yaml:8:7: CG101 error: unknown field 'mesage' in spec.rules[0] (did you mean 'message'?)",
    ]
    assert result.exit_code == 1
    assert result.documents == []  # never handed on as clean: compile stops on it


def test_other_schema_errors_still_stop_the_document() -> None:
    text = HEAD + "      expression: request.sise > 1\n      status: loud\n      mesage: x\n"
    codes = [d.code for d in lint_text(text, "p.yaml").diagnostics]
    assert "CG202" not in codes and "CG101" in codes
