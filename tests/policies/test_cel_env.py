"""The CEL environment: declarations per kind and role, type errors with offsets, absent values."""

from __future__ import annotations

import pytest

from celgate.policies.cel import CelEvalError, ExprContext, check, compile_program, estimate_cost
from celgate.policies.cel.env import offset_of
from celgate.policies.cel.messages import build_message
from celgate.policies.runtime import RequestInputs

RV = ExprContext("RequestValidation", "rule")


def test_typo_in_a_field_is_reported_at_its_offset() -> None:
    src = 'request.path == "/" && request.methd == "POST"'
    result = check(src, RV)
    assert len(result.issues) == 1
    issue = result.issues[0]
    assert "undefined field 'methd'" in issue.message
    assert src[issue.offset :].startswith(".methd")


def test_type_error_on_a_later_line_maps_to_the_right_offset() -> None:
    src = 'request.path == "/"\n  && request.size > "1000"'
    issue = check(src, RV).issues[0]
    assert "no matching overload" in issue.message
    assert src[issue.offset] == ">"


def test_syntax_error_is_an_issue_not_an_exception() -> None:
    result = check("request.(", RV)
    assert result.issues and "Syntax error" in result.issues[0].message


def test_output_types_are_reported() -> None:
    assert check("request.size > 10", RV).output_type == "bool"
    assert check("request.path", RV).output_type == "string"
    assert check("request.body", RV).output_type == "dyn"
    assert check("request.query", RV).output_type == "map<string, list<dyn>>"
    assert check("identity.groups.size()", RV).output_type == "int"


def test_identity_is_declared_only_in_post_auth_kinds() -> None:
    assert check("identity.app_id", ExprContext("IPFilter", "match")).issues
    assert check("identity.app_id", ExprContext("RequestValidation", "rule", phase="pre_auth")).issues
    assert not check("identity.app_id", ExprContext("RequestValidation", "rule")).issues
    assert not check("identity.app_id", ExprContext("RateLimit", "key")).issues


def test_response_is_declared_only_for_rate_limit_costs() -> None:
    assert not check("response.usage.total_tokens", ExprContext("RateLimit", "cost")).issues
    assert check("response.usage.total_tokens", ExprContext("RateLimit", "key")).issues
    assert check("response.status", RV).issues


def test_object_is_typed_when_one_object_type_and_dynamic_otherwise() -> None:
    one = ExprContext("ObjectApproval", "when", object_types=("llm",))
    assert "LlmObject" in check("object.vendr == 'x'", one).issues[0].message
    assert not check("object.vendor == 'x' && object.privacy_score > 3", one).issues
    assert check("object.privacy_score > 'x'", one).issues
    several = ExprContext("ObjectApproval", "when", object_types=("llm", "tool"))
    assert not check("object.vendr == 'x'", several).issues
    assert check("request.path == '/'", one).issues


def test_unknown_policy_variable_is_reported() -> None:
    ctx = ExprContext("IPFilter", "match", variables=("known",))
    src = 'variables.known && variables.unknwn == "variables.fake"'
    issues = check(src, ctx).issues
    assert [src[i.offset :].split(" ")[0] for i in issues] == ["unknwn"]


def test_strings_extension_and_optional_are_available() -> None:
    assert not check('request.path.lowerAscii().split("/").size() > 1', RV).issues
    assert not check('request.headers[?"x-a"].orValue("") == ""', RV).issues


def test_cost_grows_with_nested_comprehensions() -> None:
    flat = estimate_cost("request.size > 1")
    one = estimate_cost("request.body.messages.exists(m, m.role == 'system')")
    two = estimate_cost("request.body.messages.exists(m, request.body.tools.exists(t, t == m))")
    assert flat < one < two
    assert two >= 100 * 100
    assert check("request.size > 1", RV).cost == flat


def test_offset_of_counts_lines() -> None:
    assert offset_of("ab\ncd", 2, 2) == 4
    assert offset_of("ab", 9, 9) == 2


def _eval(src: str, raw: dict[str, object]) -> object:
    program = compile_program(src, RV)
    return program.evaluate(RequestInputs.from_mapping(raw).data | {"variables": {}})


def test_absent_header_is_an_error_and_in_tests_presence() -> None:
    raw: dict[str, object] = {"request": {"headers": {"X-Present": "1"}}}
    with pytest.raises(CelEvalError, match="x-absent"):
        _eval('request.headers["x-absent"] == "1"', raw)
    assert _eval('"x-absent" in request.headers', raw) is False
    assert _eval('request.headers["x-present"] == "1"', raw) is True
    assert _eval('request.headers[?"x-absent"].orValue("none")', raw) == "none"


def test_absent_body_field_is_an_error_and_has_tests_presence() -> None:
    raw: dict[str, object] = {"request": {"body": {"a": 1}}}
    with pytest.raises(CelEvalError):
        _eval("request.body.b > 1", raw)
    assert _eval("has(request.body.b)", raw) is False
    assert _eval("request.body.a == 1", raw) is True


def test_null_body_reads_as_null() -> None:
    assert _eval("request.body == null", {"request": {}}) is True


def test_unset_message_fields_read_as_zero_values() -> None:
    assert _eval('request.host == "" && request.size == 0', {"request": {}}) is True


def test_repeated_headers_are_joined_and_names_lowered() -> None:
    raw: dict[str, object] = {"request": {"headers": {"X-Multi": ["a", "b"]}}}
    assert _eval('request.headers["x-multi"]', raw) == "a, b"


def test_query_is_a_map_of_lists() -> None:
    raw: dict[str, object] = {"request": {"query": {"q": ["1", "2"]}}}
    assert _eval('request.query["q"][1] == "2" && request.query["q"].size() == 2', raw) is True


def test_building_a_message_rejects_unknown_fields() -> None:
    with pytest.raises(ValueError, match="unknown field"):
        build_message("Request", {"pth": "/"})


def test_has_on_a_declared_field_is_rejected_and_below_json_is_allowed() -> None:
    for src in ("has(request.host)", "has(request.body)", "has(response.usage.total_tokens)"):
        issues = check(src, ExprContext("RateLimit", "cost")).issues
        assert issues and "always true" in issues[0].message, src
    for src in ("has(request.body.x)", "has(identity.claims.team)", "has(request.headers.x)"):
        assert not check(src, ExprContext("RateLimit", "cost")).issues, src
    obj = ExprContext("ObjectApproval", "when", object_types=("llm", "tool"))
    assert check("has(object.vendor)", obj).issues
    assert not check("has(object.metadata.team)", obj).issues
