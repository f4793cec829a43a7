"""Grouping checked policies into plugins: one per policy, or all in one named bundle.

A `Bundle` is what one generated plugin holds: its id, its policies' plans (lowered with
`celgate.policies.runtime.lower`, in a stable order) and its source files with the content
hash that becomes the plugin's version. Paths are shown relative to the sources' common
folder (its name included), so the output does not depend on the working directory.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celgate.policies.model import Policy
from celgate.policies.runtime import PlanError, build, lower

PLUGIN_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")  # what the host accepts (engine/handle.py)
HASH_DOMAIN = b"celgate-compile/1\0"  # bump when the meaning of the hashed input changes


class BundleError(ValueError):
    """Policies that cannot become plugins as asked (bad bundle name, clashing ids, bad plan)."""


@dataclass(frozen=True, slots=True)
class Source:
    path: str  # as given (absolute or relative to the working directory)
    display: str  # relative to the sources' common folder, that folder's name first
    data: bytes


@dataclass(slots=True)
class PolicyEntry:
    policy: Policy
    plan: dict[str, Any]
    source: Source


@dataclass(slots=True)
class Bundle:
    id: str
    entries: list[PolicyEntry] = field(default_factory=list)

    @property
    def plans(self) -> list[dict[str, Any]]:
        return [e.plan for e in self.entries]

    @property
    def sources(self) -> list[Source]:
        seen: dict[str, Source] = {}
        for e in self.entries:
            seen.setdefault(e.source.display, e.source)
        return [seen[k] for k in sorted(seen)]

    @property
    def content_hash(self) -> str:
        """sha256 over the source files (names and bytes), in name order."""
        digest = hashlib.sha256(HASH_DOMAIN)
        for src in self.sources:
            name = src.display.encode("utf-8", "surrogateescape")
            digest.update(len(name).to_bytes(8, "big") + name)
            digest.update(len(src.data).to_bytes(8, "big") + src.data)
        return "sha256:" + digest.hexdigest()


def read_sources(policies: Sequence[Policy]) -> dict[str, Source]:
    """The files the policies came from, keyed by their path; raises OSError."""
    paths = sorted({p.span.path for p in policies})
    if not paths:
        return {}
    absolute = [os.path.abspath(p) for p in paths]
    common = os.path.commonpath([os.path.dirname(a) for a in absolute])
    base = os.path.dirname(common) or common
    out = {}
    for path, full in zip(paths, absolute, strict=True):
        display = Path(os.path.relpath(full, base)).as_posix()
        out[path] = Source(path, display, Path(path).read_bytes())
    return out


def _order(policy: Policy) -> tuple[str, int, int]:
    return (policy.span.path, policy.span.line, policy.span.column)


def plan_bundles(policies: Sequence[Policy], bundle: str | None = None) -> list[Bundle]:
    """The plugins to emit: one per policy, or one named `bundle`; raises BundleError/OSError."""
    if bundle is not None and not PLUGIN_ID.match(bundle):
        raise BundleError(
            f"bundle name {bundle!r} is not a valid plugin id "
            "(lowercase letters, digits, '.', '_' and '-', at most 64, starting with a letter or digit)"
        )
    ordered = sorted(policies, key=_order)
    sources = read_sources(ordered)
    entries: list[PolicyEntry] = []
    for policy in ordered:
        plan = lower(policy)
        try:
            build(plan)  # compiles every expression and table once: what the plugin will do at load
        except PlanError as exc:
            where = f"{policy.span.path}:{policy.span.line}:{policy.span.column}"
            raise BundleError(f"{where}: {policy.kind} {policy.metadata.name}: {exc}") from exc
        entries.append(PolicyEntry(policy, plan, sources[policy.span.path]))
    if bundle is not None:
        return [Bundle(bundle, entries)]
    names: dict[str, int] = {}
    for e in entries:
        names[e.policy.metadata.name] = names.get(e.policy.metadata.name, 0) + 1
    bundles: list[Bundle] = []
    seen: set[str] = set()
    for e in entries:
        name = e.policy.metadata.name
        pid = name if names[name] == 1 else f"{name}-{e.policy.kind.lower()}"
        if not PLUGIN_ID.match(pid):
            raise BundleError(f"policy {name!r} does not make a valid plugin id {pid!r}; use --bundle NAME")
        if pid in seen:
            raise BundleError(f"two policies compile to the same plugin id {pid!r}; use --bundle NAME")
        seen.add(pid)
        bundles.append(Bundle(pid, [e]))
    return bundles
