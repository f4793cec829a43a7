"""Loading policy files: positions, multi-document files, folders, and hostile input."""

from __future__ import annotations

from pathlib import Path

from celgate.policies.load import MAX_FILE_BYTES, load_bytes, load_paths, load_text
from celgate.policies.model import IPFilterSpec, Policy, PolicyTestDoc, RateLimitSpec, Span

IPFILTER = """\
apiVersion: celgate.dev/v1
kind: IPFilter
metadata:
  name: corp
spec:
  allow: ["10.0.0.0/8"]
"""


def codes(result: object) -> list[tuple[str, int, int]]:
    return [(d.code, d.span.line, d.span.column) for d in result.diagnostics]  # type: ignore[attr-defined]


def test_multi_document_file_yields_documents_in_order_with_positions() -> None:
    text = IPFILTER + "---\n" + IPFILTER.replace("corp", "second").replace("10.0.0.0/8", "192.0.2.0/24")
    result = load_text(text, "p.yaml")
    assert result.diagnostics == []
    names = [d.metadata.name for d in result.documents]  # type: ignore[union-attr]
    assert names == ["corp", "second"]
    second = result.documents[1]
    assert isinstance(second, Policy) and isinstance(second.spec, IPFilterSpec)
    assert second.span == Span("p.yaml", 8, 1)
    assert second.metadata.span == Span("p.yaml", 11, 9)
    assert second.spec.allow[0].span == Span("p.yaml", 13, 11)
    assert "second" in second.source_text and "corp" not in second.source_text


def test_folders_are_walked_for_yaml_files_in_sorted_order(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "z.yml").write_text(IPFILTER.replace("corp", "z"))
    (tmp_path / "a.yaml").write_text(IPFILTER.replace("corp", "a"))
    (tmp_path / "c.yaml").write_text(IPFILTER.replace("corp", "c"))
    (tmp_path / "notes.txt").write_text("not a policy: [")
    result = load_paths([tmp_path])
    assert result.diagnostics == []
    assert [d.metadata.name for d in result.documents] == ["a", "z", "c"]  # type: ignore[union-attr]


def test_missing_path_is_an_io_diagnostic(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = load_paths([missing])
    assert codes(result) == [("CG001", 1, 1)]
    assert str(missing) in result.diagnostics[0].message


def test_rate_limit_durations_and_expressions_are_typed() -> None:
    text = """\
apiVersion: celgate.dev/v1
kind: RateLimit
metadata: {name: rl}
spec:
  limits:
    - name: l
      key: identity.app_id
      requests: 3
      window: 1.5m
"""
    result = load_text(text, "rl.yaml")
    assert result.diagnostics == []
    policy = result.documents[0]
    assert isinstance(policy, Policy) and isinstance(policy.spec, RateLimitSpec)
    limit = policy.spec.limits[0]
    assert limit.window.seconds == 90.0
    assert limit.key.source == "identity.app_id"
    assert limit.key.position_of(0) == Span("rl.yaml", 7, 12)
    assert limit.key.position_of(8) == Span("rl.yaml", 7, 20)


def test_policy_test_documents_are_parsed_into_steps() -> None:
    text = """\
apiVersion: celgate.dev/v1
kind: PolicyTest
metadata: {name: t}
spec:
  policies: [rl]
  cases:
    - name: seq
      sequence:
        - {at: 0s, request: {path: /v1/x}, expect: {decision: allow}}
        - {at: 250ms, request: {path: /v1/x}, expect: {decision: deny, status: 429}}
    - name: one
      request: {client_ip: 10.1.2.3}
      identity: {app_id: a}
      expect: {decision: allow}
"""
    result = load_text(text, "t.yaml")
    assert result.diagnostics == []
    doc = result.documents[0]
    assert isinstance(doc, PolicyTestDoc)
    seq, one = doc.cases
    assert seq.sequence and len(seq.steps) == 2
    assert seq.steps[1].at is not None and seq.steps[1].at.seconds == 0.25
    assert seq.steps[1].expect == {"decision": "deny", "status": 429}
    assert not one.sequence and one.steps[0].inputs == {
        "request": {"client_ip": "10.1.2.3"},
        "identity": {"app_id": "a"},
    }
    assert doc.policy_spans == (Span("t.yaml", 5, 14),)


def test_duplicate_keys_are_errors_and_the_document_is_not_returned() -> None:
    result = load_text(IPFILTER + "  deny: []\n  deny: []\n", "d.yaml")
    assert codes(result) == [("CG005", 8, 3)]
    assert "first at line 7, column 3" in result.diagnostics[0].message
    assert result.documents == []


def test_invalid_utf8_is_reported_at_the_bad_byte() -> None:
    result = load_bytes(b"apiVersion: celgate.dev/v1\nkind: \xc3\x28\n", "u.yaml")
    assert codes(result) == [("CG003", 2, 7)]


def test_files_over_the_size_cap_are_rejected_unread() -> None:
    result = load_bytes(b"#" * (MAX_FILE_BYTES + 1), "big.yaml")
    assert codes(result) == [("CG002", 1, 1)]


def test_billion_laughs_is_capped_quickly() -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        prev, cur = chr(96 + i), chr(97 + i)
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 10) + "]")
    result = load_text("\n".join(lines) + "\n", "lol.yaml")  # 10^10 nodes if it were expanded
    assert [d.code for d in result.diagnostics] == ["CG006"]


def test_recursive_alias_is_an_error() -> None:
    assert [d.code for d in load_text("a: &a [*a]\n", "r.yaml").diagnostics] == ["CG006"]


def test_deep_nesting_is_an_error_not_a_recursion_crash() -> None:
    assert [d.code for d in load_text("a: " + "[" * 100 + "]" * 100, "n.yaml").diagnostics] == ["CG007"]
    assert [d.code for d in load_text("a: " + "[" * 20000 + "]" * 20000, "n.yaml").diagnostics] in (
        ["CG004"],
        ["CG007"],
    )


def test_tabs_used_for_indentation_are_explained() -> None:
    result = load_text("apiVersion: celgate.dev/v1\nspec:\n\tallow: []\n", "tab.yaml")
    assert codes(result) == [("CG004", 3, 1)]
    assert "tab" in result.diagnostics[0].message


def test_explicit_tags_and_merge_keys_are_rejected() -> None:
    text = IPFILTER.replace('["10.0.0.0/8"]', '!!python/object/apply:os.system ["true"]')
    assert ("CG008", 6, 10) in codes(load_text(text, "tag.yaml"))
    assert load_text(text, "tag.yaml").documents == []
    merged = "base: &b {name: x}\nmetadata:\n  <<: *b\n"
    assert ("CG008", 3, 3) in codes(load_text(merged, "merge.yaml"))


def test_bom_and_crlf_line_endings_keep_positions() -> None:
    text = "\ufeff" + IPFILTER.replace("\n", "\r\n").replace("10.0.0.0/8", "10.0.0.0/99")
    result = load_text(text, "crlf.yaml")
    assert codes(result) == [("CG109", 6, 11)]


def test_empty_documents_are_noted_and_skipped() -> None:
    result = load_text("---\n" + IPFILTER + "---\n", "e.yaml")
    assert [d.code for d in result.diagnostics] == ["CG010"]
    assert len(result.documents) == 1


def test_non_mapping_documents_are_errors() -> None:
    assert codes(load_text("- a\n- b\n", "l.yaml")) == [("CG009", 1, 1)]
    assert codes(load_text("just text\n", "s.yaml")) == [("CG009", 1, 1)]


def test_lone_surrogates_in_text_are_reported_not_raised() -> None:
    assert codes(load_text("a: \ud800\n", "s.yaml")) == [("CG003", 1, 4)]
