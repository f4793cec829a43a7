"""`celgate lint` and `celgate schema` as commands: exit codes, formats, --explain."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from celgate.cli import main
from celgate.policies.codes import CODES
from celgate.policies.model import ALL_KINDS
from celgate.policies.schemas import build

CASES = Path(__file__).parent / "lint_cases"


def test_clean_folder_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", str(CASES / "valid")]) == 0
    assert capsys.readouterr().out == "no problems found in 2 files\n"


def test_errors_exit_1_and_print_positions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", str(CASES / "schema_errors.yaml")]) == 1
    out = capsys.readouterr().out
    assert f"{CASES / 'schema_errors.yaml'}:7:3: CG101 error: unknown field 'alow' in spec" in out


def test_warnings_only_exit_0(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(
        "apiVersion: celgate.dev/v1\nkind: IPFilter\nmetadata: {name: w}\n"
        'spec:\n  allow: ["10.0.0.0/8"]\n  deny: ["192.168.0.0/16"]\n'
    )
    assert main(["lint", str(path)]) == 0


def test_missing_path_and_no_path_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", str(tmp_path / "missing.yaml"), str(CASES / "valid")]) == 2
    assert "CG001" in capsys.readouterr().out
    assert main(["lint"]) == 2


def test_explain_every_code(capsys: pytest.CaptureFixture[str]) -> None:
    for code in CODES:
        assert main(["lint", "--explain", code]) == 0
        assert capsys.readouterr().out.startswith(code)
    assert main(["lint", "--explain", "CG999"]) == 2


def test_output_file_and_format(tmp_path: Path) -> None:
    out = tmp_path / "report.sarif"
    assert main(["lint", str(CASES / "cel_errors.yaml"), "--format", "sarif", "-o", str(out)]) == 1
    assert json.loads(out.read_text())["version"] == "2.1.0"


def test_cli_subprocess_github_format() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "celgate", "lint", "--format", "github", str(CASES / "approval_errors.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    assert f"::error file={CASES / 'approval_errors.yaml'},line=7,col=7,title=CG308::" in proc.stdout


def test_schema_lists_kinds_and_prints_each(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert capsys.readouterr().out.split() == list(ALL_KINDS)
    for kind in ALL_KINDS:
        assert main(["schema", kind.lower()]) == 0
        schema = json.loads(capsys.readouterr().out)
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["properties"]["kind"] == {"const": kind}
    assert main(["schema", "Nope"]) == 2


def test_schema_out_writes_every_kind(tmp_path: Path) -> None:
    assert main(["schema", "--out", str(tmp_path / "s")]) == 0
    assert sorted(p.stem for p in (tmp_path / "s").iterdir()) == sorted(ALL_KINDS)


def test_shipped_schemas_are_up_to_date_and_closed() -> None:
    for kind in ALL_KINDS:
        shipped = (Path(build.__file__).parent / f"{kind}.json").read_text(encoding="utf-8")
        assert shipped == build.render(kind), "run: python -m celgate.policies.schemas.build"

        def walk(node: object, where: str) -> None:
            if isinstance(node, dict):
                if "properties" in node:
                    assert node.get("additionalProperties") is False, where
                for key, value in node.items():
                    walk(value, f"{where}/{key}")
            elif isinstance(node, list):
                for i, value in enumerate(node):
                    walk(value, f"{where}/{i}")

        walk(json.loads(shipped), kind)


def test_lint_codes_doc_is_generated_from_the_code_table() -> None:
    from celgate.policies.codes import markdown

    doc = Path(__file__).parents[2] / "docs" / "lint-codes.md"
    assert doc.read_text(encoding="utf-8") == markdown(), (
        "run: python -m celgate.policies.codes > docs/lint-codes.md"
    )
