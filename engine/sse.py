"""Server-sent events as the gateway sees them: whole events out of arbitrary reads, and
the `usage` of a response (a JSON body, or the last SSE event that carries one)."""

from __future__ import annotations

import functools
import json
from typing import Any

from celgate.v1 import plugin_pb2


class SSEFramer:
    """Splits a byte stream into whole server-sent events (each with its blank-line terminator)."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out: list[bytes] = []
        while True:
            i = self._buf.find(b"\n\n")
            j = self._buf.find(b"\r\n\r\n")
            if i < 0 and j < 0:
                return out
            end = j + 4 if j >= 0 and (i < 0 or j < i) else i + 2
            out.append(self._buf[:end])
            self._buf = self._buf[end:]

    def flush(self) -> bytes:
        rest, self._buf = self._buf, b""
        return rest


def _int_field(doc: dict[str, Any], key: str) -> int:
    v = doc.get(key, 0)
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def usage_from_body(body: bytes) -> plugin_pb2.Usage | None:
    """`usage` of a JSON response body, or of the last SSE event that carries one."""
    if not body or b'"usage"' not in body:
        return None
    candidates: list[bytes]
    stripped = body.lstrip()
    if stripped.startswith(b"{"):
        candidates = [stripped]
    else:
        candidates = [
            line[5:].strip()
            for line in reversed(body.splitlines())
            if line.startswith(b"data:") and b'"usage"' in line
        ]
    for raw in candidates:
        try:
            doc = json.loads(raw)
        except ValueError:
            continue
        usage = doc.get("usage") if isinstance(doc, dict) else None
        if isinstance(usage, dict):
            num = functools.partial(_int_field, usage)

            return plugin_pb2.Usage(
                prompt_tokens=num("prompt_tokens"),
                completion_tokens=num("completion_tokens"),
                total_tokens=num("total_tokens"),
            )
    return None
