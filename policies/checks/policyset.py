"""Checks across the documents of one run: policy names and PolicyTest references.

A policy set is every document given to one lint run. Policy names are unique per kind.
A PolicyTest names policies "found next to the test file or below it": names in the set
from that folder count, and when a name is missing the folder is also read (quietly) so that
linting a test file alone does not report the policies beside it as unknown.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from celgate.policies.codes import diag
from celgate.policies.diagnostics import Diagnostic
from celgate.policies.load import load_paths
from celgate.policies.model import Document, Policy, PolicyTestDoc, Span

MAX_FOLDER_FILES = 500
_SKIP = {"node_modules", "build", "dist", "__pycache__"}


@lru_cache(maxsize=4096)
def _folder(path: str) -> Path:
    return Path(path).resolve().parent


def check_policy_set(documents: list[Document]) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    seen: dict[tuple[str, str], Span] = {}
    policies = [d for d in documents if isinstance(d, Policy)]
    for p in policies:
        key = (p.kind, p.metadata.name)
        if key in seen:
            first = seen[key]
            out.append(
                diag(
                    "CG301",
                    f"{p.kind} {p.metadata.name!r} is already defined at "
                    f"{first.path}:{first.line}:{first.column}",
                    p.metadata.span,
                    policy=p.metadata.name,
                )
            )
        else:
            seen[key] = p.metadata.span
    folder_names: dict[Path, set[str]] = {}
    by_folder: dict[Path, set[str]] = {}  # each policy file's folder -> names defined there
    for p in policies:
        by_folder.setdefault(_folder(p.span.path), set()).add(p.metadata.name)
    for test in (d for d in documents if isinstance(d, PolicyTestDoc)):
        folder = _folder(test.span.path)
        known = set().union(*(names for f, names in by_folder.items() if f == folder or folder in f.parents))
        missing = [n for n in test.policies if n not in known]
        if missing:
            if folder not in folder_names:
                folder_names[folder] = _names_in_folder(folder)
            missing = [n for n in missing if n not in folder_names[folder]]
        for name in missing:
            out.append(
                diag(
                    "CG310",
                    f"PolicyTest names unknown policy {name!r} (no policy of that name next "
                    "to the test file or below it)",
                    _policy_ref_span(test, name),
                    policy=test.metadata.name,
                )
            )
    return out


def _policy_ref_span(test: PolicyTestDoc, name: str) -> Span:
    for n, span in zip(test.policies, test.policy_spans, strict=False):
        if n == name:
            return span
    return test.metadata.span


def _names_in_folder(folder: Path) -> set[str]:
    files: list[Path] = []
    try:
        for f in sorted(folder.rglob("*")):
            if len(files) >= MAX_FOLDER_FILES:
                break
            parts = f.relative_to(folder).parts
            if f.suffix in (".yaml", ".yml") and not any(p.startswith(".") or p in _SKIP for p in parts):
                files.append(f)
    except OSError:
        return set()
    result = load_paths(files)
    return {d.metadata.name for d in result.documents if isinstance(d, Policy)}
