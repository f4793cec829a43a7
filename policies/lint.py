"""The linter: load, schema, CEL and semantic checks over a policy set, as data.

`lint_paths(paths)` is what `celgate lint` and `celgate compile` call; `lint_text` lints one
YAML text (tests, editors). The result holds sorted diagnostics; formatting is `formats.py`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from celgate.policies.checks.expressions import check_expressions
from celgate.policies.checks.policyset import check_policy_set
from celgate.policies.checks.semantics import check_document
from celgate.policies.codes import diag
from celgate.policies.diagnostics import Diagnostic, sort_diagnostics
from celgate.policies.load import LoadResult, iter_policy_files, load_file, load_text
from celgate.policies.model import Document, Policy, Span


@dataclass(slots=True)
class LintResult:
    diagnostics: list[Diagnostic] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    documents: list[Document] = field(default_factory=list)

    def count(self, severity: str) -> int:
        return sum(1 for d in self.diagnostics if d.severity == severity)

    @property
    def errors(self) -> int:
        return self.count("error")

    @property
    def warnings(self) -> int:
        return self.count("warning")

    @property
    def io_error(self) -> bool:
        """A path could not be read (exit code 2)."""
        return any(d.code == "CG001" for d in self.diagnostics)

    @property
    def exit_code(self) -> int:
        if self.io_error:
            return 2
        return 1 if self.errors else 0


def _check_file(loaded: LoadResult, diagnostics: list[Diagnostic]) -> list[Document]:
    """Per-document checks; returns every well-shaped document for the policy-set checks."""
    diagnostics.extend(loaded.diagnostics)
    for document, raw in loaded.loaded:
        diagnostics.extend(check_document(document, raw))
        if isinstance(document, Policy):
            diagnostics.extend(check_expressions(document))
    return [document for document, _ in loaded.loaded]


def lint_loaded(loaded: LoadResult) -> LintResult:
    """Lint documents that `load_paths`/`load_text` produced (their diagnostics included)."""
    diagnostics: list[Diagnostic] = []
    shaped = _check_file(loaded, diagnostics)
    diagnostics.extend(check_policy_set(shaped))
    return LintResult(sort_diagnostics(diagnostics), list(loaded.files), list(loaded.documents))


def lint_paths(paths: Sequence[str | Path]) -> LintResult:
    """Lint every policy file under `paths`, one file at a time (raw YAML is not kept)."""
    diagnostics: list[Diagnostic] = []
    result = LintResult()
    shaped: list[Document] = []
    for path, exists in iter_policy_files(paths):
        if not exists:
            result.files.append(path)
            diagnostics.append(diag("CG001", f"cannot read {path}: no such file", Span(path, 1, 1)))
            continue
        loaded = load_file(path)
        shaped.extend(_check_file(loaded, diagnostics))
        result.files.extend(loaded.files)
        result.documents.extend(loaded.documents)
    diagnostics.extend(check_policy_set(shaped))
    result.diagnostics = sort_diagnostics(diagnostics)
    return result


def lint_text(text: str, path: str = "<text>") -> LintResult:
    return lint_loaded(load_text(text, path))
