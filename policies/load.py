"""Loading policy files: paths -> YAML with positions -> checked, typed documents.

`load_paths` and `load_text` are the entry points. Loading never raises for bad input: every
problem (missing, unreadable or huge file, invalid UTF-8, YAML syntax, duplicate keys, alias
bombs, unknown fields, wrong types, invalid CIDRs and durations) becomes a `Diagnostic` at its
line and column, and only documents without errors are returned as typed `model` documents.
CEL type checks and checks across rules and policies are the linter's (`lint.py`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from celgate.policies.codes import diag
from celgate.policies.diagnostics import Diagnostic
from celgate.policies.model import Document, Span
from celgate.policies.parse import parse_document
from celgate.policies.schema import validate_document, without_unknown_fields
from celgate.policies.source import LineTable, RawDocument, compose_text

MAX_FILE_BYTES = 1 << 20  # 1 MiB per file

__all__ = ["MAX_FILE_BYTES", "LoadResult", "load_bytes", "load_file", "load_paths", "load_text"]


@dataclass(slots=True)
class LoadResult:
    documents: list[Document] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    raw: list[RawDocument] = field(default_factory=list)  # every document that composed
    files: list[str] = field(default_factory=list)
    # every document that has the right shape, with the raw document it came from (for
    # positions); unlike `documents`, it includes documents with value-level errors (a bad
    # CIDR, a duplicate YAML key), so that the linter can still check the rest of them
    loaded: list[tuple[Document, RawDocument]] = field(default_factory=list)

    def extend(self, other: LoadResult) -> None:
        self.documents.extend(other.documents)
        self.diagnostics.extend(other.diagnostics)
        self.raw.extend(other.raw)
        self.files.extend(other.files)
        self.loaded.extend(other.loaded)


# -- entry points ------------------------------------------------------------------------


def iter_policy_files(paths: Sequence[str | Path]) -> Iterator[tuple[str, bool]]:
    """Each file to load, in order: (path, exists). Directories yield *.yaml/*.yml, sorted."""
    for p in paths:
        path = Path(p)
        if path.is_dir():
            found: list[str] = []
            # os.walk does not follow symlinked folders (no loops); unreadable folders are skipped
            for folder, _dirs, names in os.walk(path):
                found.extend(os.path.join(folder, n) for n in names if n.endswith((".yaml", ".yml")))
            yield from ((f, True) for f in sorted(found) if os.path.isfile(f))
        else:
            yield str(p), path.is_file()


def load_paths(paths: Sequence[str | Path]) -> LoadResult:
    """Load every policy file under `paths` (files or directories), in order."""
    result = LoadResult()
    for path, exists in iter_policy_files(paths):
        if not exists:
            result.files.append(path)
            result.diagnostics.append(diag("CG001", f"cannot read {path}: no such file", Span(path, 1, 1)))
            continue
        result.extend(load_file(path))
    return result


def load_file(path: str | Path) -> LoadResult:
    path = str(path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        result = LoadResult(files=[path])
        message = f"cannot read {path}: {exc.strerror or exc}"
        result.diagnostics.append(diag("CG001", message, Span(path, 1, 1)))
        return result
    return load_bytes(data, path)


def load_bytes(data: bytes, path: str) -> LoadResult:
    if len(data) > MAX_FILE_BYTES:
        result = LoadResult(files=[path])
        result.diagnostics.append(
            diag("CG002", f"file is larger than {MAX_FILE_BYTES} bytes", Span(path, 1, 1))
        )
        return result
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        result = LoadResult(files=[path])
        before = data[: exc.start].decode("utf-8", "replace")
        line, column = LineTable(before).position(len(before))
        result.diagnostics.append(
            diag("CG003", f"invalid UTF-8 byte 0x{data[exc.start]:02x}", Span(path, line, column))
        )
        return result
    return load_text(text, path)


def load_text(text: str, path: str | Path = "<text>") -> LoadResult:
    """Load policy documents from YAML text; `path` is used in positions."""
    result = LoadResult(files=[str(path)])
    raws, diagnostics = compose_text(text, str(path))
    result.diagnostics.extend(diagnostics)
    result.raw.extend(raws)
    for raw in raws:
        problems = validate_document(raw)
        result.diagnostics.extend(problems)
        if any(d.severity == "error" for d in problems):
            # Unknown fields alone do not hide the rest of the document from lint: check what
            # remains, but never hand the document on as loaded-clean (compile stops on it).
            pruned = None if any(d.code != "CG101" for d in problems) else without_unknown_fields(raw)
            if pruned is not None:
                document, more = parse_document(pruned)
                result.diagnostics.extend(more)
                if document is not None:
                    result.loaded.append((document, pruned))
            continue
        document, problems = parse_document(raw)
        result.diagnostics.extend(problems)
        if document is None:
            continue
        result.loaded.append((document, raw))
        if raw.ok and not any(d.severity == "error" for d in problems):
            result.documents.append(document)
    return result
