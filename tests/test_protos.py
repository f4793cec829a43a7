"""The committed protobuf modules must match protos/: regenerate and compare bytes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _load_generator():
    spec = importlib.util.spec_from_file_location("gen_protos", ROOT / "scripts" / "gen_protos.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_modules_are_fresh(tmp_path: Path) -> None:
    generated = _load_generator().generate(tmp_path)
    assert generated, "protoc produced nothing"
    committed_dir = ROOT / "celgate" / "v1"
    for path in generated:
        committed = committed_dir / path.name
        assert committed.exists(), f"{path.name} is generated but not committed"
        assert committed.read_bytes() == path.read_bytes(), (
            f"celgate/v1/{path.name} is stale: run python scripts/gen_protos.py"
        )
    names = {p.name for p in generated}
    extra = {p.name for p in committed_dir.glob("*_pb2*.py*")} - names
    assert not extra, f"committed modules with no .proto: {sorted(extra)}"
