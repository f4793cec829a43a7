"""The echo plugin under a second id (for per-plugin namespacing tests)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from celgate.sdk import serve

_spec = importlib.util.spec_from_file_location(
    "echo_plugin", Path(__file__).parent.parent / "echo" / "plugin.py"
)
assert _spec and _spec.loader
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)

if __name__ == "__main__":
    serve(_module.Echo())
