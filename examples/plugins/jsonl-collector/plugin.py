"""jsonl-collector: appends one JSON line per proxied request to a file.

Config:

    path: /var/log/celgate/requests.jsonl   # relative paths resolve against this plugin's folder
    path_env: CELGATE_RECORDS_PATH          # optional: this environment variable, when set, wins
    include_bodies: false                   # request/response bodies (as text) in each line
    fsync: false                            # fsync after every batch

Custom endpoints (under /plugins/jsonl-collector/, authenticated like the gateway):
`GET /stats` -> {"records": N, "batches": M}; `GET /records?n=10` streams the last N lines
(newline-delimited JSON, one chunk per record).
"""

from __future__ import annotations

import collections
import json
import os
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from celgate.sdk import (
    ConfigProvider,
    Context,
    CustomEndpoints,
    DataCollector,
    DataRecord,
    EndpointRequest,
    HttpResponse,
    Plugin,
    Route,
    StreamResponse,
    serve,
)

CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["path"],
    "additionalProperties": False,
    "properties": {
        "path": {"type": "string", "minLength": 1},
        "path_env": {"type": "string", "minLength": 1},
        "include_bodies": {"type": "boolean"},
        "fsync": {"type": "boolean"},
    },
}


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def record_json(r: DataRecord, include_bodies: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "request_id": r.request_id,
        "started_unix_ms": r.started_unix_ms,
        "duration_ms": r.duration_ms,
        "method": r.method,
        "path": r.path,
        "status": r.status,
        "streaming": r.streaming,
        "client_ip": r.client_ip,
        "identity": {"app_id": r.identity.app_id, "user_id": r.identity.user_id, "groups": r.identity.groups},
        "llm": {"id": r.llm.id, "model": r.llm.model},
        "usage": {
            "prompt_tokens": r.usage.prompt_tokens,
            "completion_tokens": r.usage.completion_tokens,
            "total_tokens": r.usage.total_tokens,
        },
        "decisions": [
            {"policy": d.policy, "rule": d.rule, "decision": d.decision, "mode": d.mode, "reason": d.reason}
            for d in r.decisions
        ],
    }
    if include_bodies:
        out["request_body"] = _text(r.request_body)
        out["response_body"] = _text(r.response_body)
    return out


class JsonlCollector(Plugin, DataCollector, CustomEndpoints, ConfigProvider):
    def __init__(self) -> None:
        self.path = Path("celgate-records.jsonl")
        self.include_bodies = False
        self.fsync = False
        self.records = 0
        self.batches = 0
        self.recent: collections.deque[str] = collections.deque(maxlen=1000)
        self.lock = threading.Lock()

    def config_schema(self) -> dict[str, Any]:
        return CONFIG_SCHEMA

    def configure(self, ctx: Context, config: dict[str, Any]) -> None:
        path = os.environ.get(str(config["path_env"]), "") if config.get("path_env") else ""
        path = path or str(config.get("path") or "")
        if not path:
            raise ValueError("config.path (the JSONL file to append to) is required")
        self.path = Path(path).expanduser().resolve()
        self.include_bodies = bool(config.get("include_bodies", False))
        self.fsync = bool(config.get("fsync", False))
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def collect(self, ctx: Context, records: list[DataRecord]) -> int:
        lines = [json.dumps(record_json(r, self.include_bodies), separators=(",", ":")) for r in records]
        with self.lock, self.path.open("a", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in lines))
            f.flush()
            if self.fsync:
                os.fsync(f.fileno())
            self.records += len(lines)
            self.batches += 1
            self.recent.extend(lines)
        return len(lines)

    def routes(self) -> list[Route]:
        return [
            Route("/stats", ["GET"], description="records and batches written so far"),
            Route("/records", ["GET"], stream=True, description="the last N records as JSON lines (?n=10)"),
        ]

    def handle_endpoint(self, ctx: Context, request: EndpointRequest) -> HttpResponse | StreamResponse:
        if request.path == "/stats":
            return HttpResponse.json(
                {"records": self.records, "batches": self.batches, "path": str(self.path)}
            )
        try:
            n = int(parse_qs(request.query_string).get("n", ["10"])[0])
        except ValueError:
            return HttpResponse.json({"error": {"message": "n must be an integer"}}, status=400)
        with self.lock:
            lines = list(self.recent)[-max(n, 0) :] if n > 0 else []
        return StreamResponse(
            chunks=(line.encode() + b"\n" for line in lines),
            headers=[("content-type", "application/x-ndjson")],
        )


if __name__ == "__main__":
    serve(JsonlCollector())
