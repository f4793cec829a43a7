"""header-rewrite: rewrites response headers and the completion text, chunk by chunk.

Config:

    set_headers: {x-served-by: celgate}      # replace (or add) these response headers
    remove_headers: [x-upstream-debug]       # drop these
    replace:                                 # string replacements inside completion content
      - {from: "secret", to: "[redacted]"}

Streams are rewritten event by event (the host hands this plugin one SSE event per call); the
replacement applies to `choices[].delta.content` (chat) and `choices[].text` (completions), and
to `choices[].message.content` in whole (non-streamed) bodies. Anything that is not a JSON
completion passes through untouched. A replacement that spans two chunks is not seen: the
host never buffers a stream to make that possible.
"""

from __future__ import annotations

import json
from typing import Any

from celgate.sdk import (
    ConfigProvider,
    Context,
    Plugin,
    RequestContext,
    Response,
    ResponseChunk,
    ResponseHead,
    serve,
)

CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "set_headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "remove_headers": {"type": "array", "items": {"type": "string"}},
        "replace": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["from", "to"],
                "properties": {"from": {"type": "string", "minLength": 1}, "to": {"type": "string"}},
            },
        },
    },
}


class HeaderRewrite(Plugin, Response, ConfigProvider):
    response_chunks = True
    inline_sync = True  # string work only

    def __init__(self) -> None:
        self.set_headers: dict[str, str] = {}
        self.remove_headers: list[str] = []
        self.replacements: list[tuple[str, str]] = []

    def config_schema(self) -> dict[str, Any]:
        return CONFIG_SCHEMA

    def configure(self, ctx: Context, config: dict[str, Any]) -> None:
        self.set_headers = {str(k): str(v) for k, v in (config.get("set_headers") or {}).items()}
        self.remove_headers = [str(h) for h in config.get("remove_headers") or []]
        self.replacements = [(str(r["from"]), str(r.get("to", ""))) for r in config.get("replace") or []]

    def on_response_headers(self, ctx: RequestContext, head: ResponseHead) -> ResponseHead | None:
        if not self.set_headers and not self.remove_headers:
            return None
        headers = head.headers.copy()
        for name in self.remove_headers:
            headers.remove(name)
        for name, value in self.set_headers.items():
            headers.set(name, value)
        return ResponseHead(status=head.status, headers=headers, streaming=head.streaming)

    def _rewrite(self, text: str) -> str:
        for old, new in self.replacements:
            text = text.replace(old, new)
        return text

    def _rewrite_doc(self, doc: Any) -> bool:
        changed = False
        if not isinstance(doc, dict):
            return False
        for choice in doc.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            for holder, key in (
                (choice.get("delta"), "content"),
                (choice.get("message"), "content"),
                (choice, "text"),
            ):
                if isinstance(holder, dict) and isinstance(holder.get(key), str):
                    new = self._rewrite(holder[key])
                    if new != holder[key]:
                        holder[key] = new
                        changed = True
        return changed

    def on_response_chunk(self, ctx: RequestContext, chunk: ResponseChunk) -> bytes | None:
        if not self.replacements:
            return None
        if not chunk.streaming:
            try:
                doc = json.loads(chunk.data)
            except ValueError:
                return None
            return json.dumps(doc).encode() if self._rewrite_doc(doc) else None
        # One SSE event: "data: {...}\n\n" (other fields and [DONE] pass through).
        out: list[bytes] = []
        changed = False
        for line in chunk.data.split(b"\n"):
            if line.startswith(b"data:") and line[5:].strip() not in (b"", b"[DONE]"):
                try:
                    doc = json.loads(line[5:])
                except ValueError:
                    out.append(line)
                    continue
                if self._rewrite_doc(doc):
                    line = b"data: " + json.dumps(doc).encode()
                    changed = True
            out.append(line)
        return b"\n".join(out) if changed else None


if __name__ == "__main__":
    serve(HeaderRewrite())
