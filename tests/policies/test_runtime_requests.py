"""Decision procedures for the request kinds: IPFilter, RequestValidation, modes, failurePolicy."""

from __future__ import annotations

from typing import Any

import pytest

from celgate.policies.cel import iplib
from celgate.policies.runtime import (
    WARNING_HEADER,
    InputError,
    IPFilterProcedure,
    PlanError,
    RequestInputs,
    RequestValidationProcedure,
    build,
    resolve_client_ip,
)


def ipfilter(**spec: Any) -> IPFilterProcedure:
    plan: dict[str, Any] = {"kind": "IPFilter", "name": "ips", "spec": spec}
    proc = build(plan)
    assert isinstance(proc, IPFilterProcedure)
    return proc


def rv(
    rules: list[dict[str, Any]], schema: dict[str, Any] | None = None, **common: Any
) -> RequestValidationProcedure:
    plan = {
        "kind": "RequestValidation",
        "name": "val",
        "spec": {"body_schema": schema, "rules": rules},
        **common,
    }
    proc = build(plan)
    assert isinstance(proc, RequestValidationProcedure)
    return proc


def req(**fields: Any) -> RequestInputs:
    extra = {k: fields.pop(k) for k in ("identity", "llm") if k in fields}
    return RequestInputs.from_mapping({"request": fields, **extra})


# -- client_ip resolution --------------------------------------------------------------------

TRUSTED = (iplib.parse_cidr("10.0.0.0/8"),)


def test_peer_is_the_client_when_not_a_trusted_proxy() -> None:
    assert resolve_client_ip("203.0.113.9", "192.168.1.1", TRUSTED) == "203.0.113.9"


def test_rightmost_untrusted_forwarded_address_is_the_client() -> None:
    assert resolve_client_ip("10.0.0.1", "1.1.1.1, 192.168.1.1, 10.0.0.9", TRUSTED) == "192.168.1.1"


def test_all_trusted_hops_yield_the_leftmost() -> None:
    assert resolve_client_ip("10.0.0.1", "10.0.0.3, 10.0.0.2", TRUSTED) == "10.0.0.3"


def test_garbage_hop_yields_unknown_client() -> None:
    assert resolve_client_ip("10.0.0.1", "1.1.1.1, garbage", TRUSTED) == ""


def test_ports_and_mapped_addresses_are_normalised() -> None:
    assert resolve_client_ip("[::ffff:10.0.0.1]:443", "192.168.1.1:5000", TRUSTED) == "192.168.1.1"


# -- IPFilter ---------------------------------------------------------------------------------


def test_deny_range_wins_over_allow() -> None:
    proc = ipfilter(allow=["192.168.0.0/16"], deny=["192.168.13.0/24"])
    assert proc.decide(req(client_ip="192.168.13.5")).decision == "deny"
    assert proc.decide(req(client_ip="192.168.1.5")).decision == "allow"


def test_empty_allow_allows_everything_not_denied() -> None:
    proc = ipfilter(deny=["10.0.0.0/8"])
    assert proc.decide(req(client_ip="8.8.8.8")).decision == "allow"
    denied = proc.decide(req(client_ip="10.2.3.4"))
    assert (denied.decision, denied.status, denied.message) == ("deny", 403, "forbidden")


def test_ipv4_mapped_peer_matches_ipv4_ranges() -> None:
    proc = ipfilter(allow=["192.168.0.0/16"])
    assert proc.decide(req(remote_addr="::ffff:192.168.7.7")).decision == "allow"


def test_ipv6_ranges() -> None:
    proc = ipfilter(allow=["2001:db8::/32"])
    assert proc.decide(req(client_ip="2001:db8::1")).decision == "allow"
    assert proc.decide(req(client_ip="2001:db9::1")).decision == "deny"


def test_trusted_proxies_of_the_policy_resolve_the_client() -> None:
    proc = ipfilter(trusted_proxies=["10.0.0.0/8"], allow=["172.16.0.0/12"], status=451, message="nope")
    ok = req(remote_addr="10.9.9.9", headers={"X-Forwarded-For": "172.16.0.4"})
    spoofed = req(remote_addr="10.9.9.9", headers={"X-Forwarded-For": "172.16.0.4, 8.8.8.8"})
    assert proc.decide(ok).decision == "allow"
    d = proc.decide(spoofed)
    assert (d.decision, d.status, d.message) == ("deny", 451, "nope")
    assert d.body == {"error": {"type": "forbidden", "policy": "ips", "message": "nope"}}


def test_unknown_client_is_denied_when_allow_is_set() -> None:
    assert ipfilter(allow=["0.0.0.0/0"]).decide(req(remote_addr="garbage")).decision == "deny"


def test_match_false_is_not_applicable() -> None:
    proc = build(
        {
            "kind": "IPFilter",
            "name": "ips",
            "match": 'request.path == "/admin"',
            "spec": {"allow": ["10.0.0.0/8"]},
        }
    )
    d = proc.decide(req(client_ip="8.8.8.8"))  # type: ignore[call-arg]
    assert (d.decision, d.outcome) == ("allow", "not_applicable")


def test_invalid_range_is_a_plan_error() -> None:
    with pytest.raises(PlanError, match="invalid range"):
        ipfilter(allow=["10.0.0.0/33"])


# -- RequestValidation ------------------------------------------------------------------------

RULES = [
    {"name": "max-tokens", "expression": "request.body.max_tokens <= 4096", "message": "too many tokens"},
    {
        "name": "model",
        "expression": 'request.body.model.startsWith("gpt")',
        "message_expression": '"model " + request.body.model + " is not allowed"',
        "status": 403,
    },
]
SCHEMA = {"type": "object", "required": ["model"], "properties": {"max_tokens": {"type": "integer"}}}


@pytest.mark.parametrize("trace", [False, True])
def test_all_violations_are_collected_and_the_first_status_wins(trace: bool) -> None:
    d = rv(RULES).decide(req(body={"model": "llama", "max_tokens": 9999}), trace=trace)
    assert d.decision == "deny" and d.status == 400
    assert [(v.rule, v.message) for v in d.violations] == [
        ("max-tokens", "too many tokens"),
        ("model", "model llama is not allowed"),
    ]
    assert d.body == {
        "error": {
            "type": "policy_violation",
            "policy": "val",
            "violations": [
                {"rule": "max-tokens", "message": "too many tokens"},
                {"rule": "model", "message": "model llama is not allowed"},
            ],
        }
    }


@pytest.mark.parametrize("trace", [False, True])
def test_passing_request_is_allowed(trace: bool) -> None:
    d = rv(RULES).decide(req(body={"model": "gpt-4", "max_tokens": 10}), trace=trace)
    assert (d.decision, d.outcome, d.violations) == ("allow", "passed", ())


def test_schema_failure_is_one_violation_and_rules_do_not_run() -> None:
    d = rv(RULES, SCHEMA).decide(req(body={"max_tokens": "x"}), trace=True)
    assert [v.rule for v in d.violations] == ["body"]
    assert d.status == 400
    assert {t.rule for t in d.trace} == {"body"}


def test_non_json_body_fails_an_object_schema() -> None:
    d = rv([], {"type": "object"}).decide(req())
    assert d.decision == "deny" and d.violations[0].rule == "body"


@pytest.mark.parametrize("trace", [False, True])
def test_evaluation_error_fails_closed_with_503(trace: bool) -> None:
    d = rv(RULES).decide(req(body={"model": "gpt"}), trace=trace)  # max_tokens absent: error
    assert (d.decision, d.status, d.outcome) == ("deny", 503, "error")
    assert d.body is not None and d.body["error"]["type"] == "policy_error"
    assert "max_tokens" in d.log[0].reason


def test_fail_open_skips_the_failing_rule_but_keeps_others() -> None:
    proc = rv(RULES, failure_policy="fail-open")
    skipped = proc.decide(req(body={"model": "gpt"}))
    assert (skipped.decision, skipped.outcome) == ("allow", "skipped")
    other = proc.decide(req(body={"model": "llama"}))
    assert other.decision == "deny" and [v.rule for v in other.violations] == ["model"]


def test_warn_mode_allows_with_a_warning_header() -> None:
    d = rv(RULES, mode="warn").decide(req(body={"model": "llama", "max_tokens": 1}))
    assert (d.decision, d.outcome, d.status) == ("allow", "warned", 200)
    assert d.headers[WARNING_HEADER] == "val: model llama is not allowed"
    assert d.log[0].verdict == "deny" and d.log[0].decision == "allow"


def test_audit_mode_only_records() -> None:
    d = rv(RULES, mode="audit").decide(req(body={"model": "llama", "max_tokens": 1}))
    assert (d.decision, d.outcome, d.headers) == ("allow", "audited", {})
    assert d.log[0].verdict == "deny"


def test_audit_mode_never_blocks_even_on_errors() -> None:
    d = rv(RULES, mode="audit").decide(req(body={}))
    assert d.decision == "allow" and d.log[0].verdict == "deny"


def test_failing_message_expression_falls_back_to_the_static_message() -> None:
    rules = [
        {"name": "r", "expression": "false", "message": "static", "message_expression": "request.body.x"}
    ]
    d = rv(rules).decide(req(body={}))
    assert d.violations[0].message == "static"


def test_variables_are_lazy_and_a_failing_one_only_affects_its_readers() -> None:
    plan = {
        "kind": "RequestValidation",
        "name": "val",
        "match": 'request.path.startsWith("/v1/chat")',
        "variables": [
            {"name": "model", "expression": "request.body.model"},
            {"name": "is_gpt", "expression": 'variables.model.startsWith("gpt")'},
        ],
        "spec": {
            "rules": [
                {"name": "gpt", "expression": "variables.is_gpt"},
                {"name": "small", "expression": "request.size < 1000"},
            ]
        },
    }
    proc = build(plan)
    assert proc.decide(req(path="/v1/models")).decision == "allow"  # type: ignore[call-arg]
    assert proc.decide(req(body={"model": "gpt-4"})).decision == "allow"  # type: ignore[call-arg]
    d = proc.decide(req(body={}))  # type: ignore[call-arg]
    assert d.status == 503 and "variables.model" in d.log[0].reason


def test_non_bool_rule_result_is_an_error() -> None:
    proc = rv([{"name": "r", "expression": "request.body.x"}])
    assert proc.decide(req(body={"x": 1})).status == 503


def test_bad_cel_in_a_plan_is_a_plan_error() -> None:
    with pytest.raises(PlanError, match=r"rules\.r"):
        rv([{"name": "r", "expression": "request.nope"}])


def test_hostile_inputs_are_input_errors_not_crashes() -> None:
    nested: dict[str, Any] = {}
    cur = nested
    for _ in range(5000):
        cur["a"] = {}
        cur = cur["a"]
    with pytest.raises(InputError, match="nested too deeply"):
        RequestInputs.from_mapping({"request": {"body": nested, "size": 1}})
    with pytest.raises(InputError, match="64-bit"):
        RequestInputs.from_mapping({"request": {"size": 2**70}})
    with pytest.raises(InputError, match="not JSON"):
        RequestInputs.from_mapping({"request": {"body": {"x": object()}}})
    with pytest.raises(InputError, match="unknown input field"):
        RequestInputs.from_mapping({"requests": {}})
