"""A studio test plugin: its scheduled task calls every HostService method and reports, per
method, the gRPC status it got ("OK", "PERMISSION_DENIED", ...), plus its own config."""

from __future__ import annotations

import json
from typing import Any

import grpc

from celgate.sdk import ConfigProvider, Plugin, ScheduledTasks, serve
from celgate.sdk.types import ScheduledTask
from celgate.v1 import common_pb2, host_pb2

LIMIT = host_pb2.CounterLimit(key="k", algorithm=host_pb2.FIXED_WINDOW, limit=5, window_ms=1000, cost=1)

# the smallest valid request per method (Subscribe's empty topic list is refused as invalid
# once the scope check passed, so the call never blocks); "Name[x]" probes Name another way
REQUESTS: dict[str, Any] = {
    "KvGet": host_pb2.KvGetRequest(key="k"),
    "KvSet": host_pb2.KvSetRequest(key="k", value=b"v"),
    "KvDelete": host_pb2.KvDeleteRequest(key="k"),
    "KvList": host_pb2.KvListRequest(),
    "Log": host_pb2.LogRecord(level="info", message="probe"),
    "Publish": common_pb2.Event(topic="probe.ping", payload=b"{}"),
    "Subscribe": host_pb2.SubscribeRequest(),
    "CounterAcquire": host_pb2.CounterAcquireRequest(limits=[LIMIT]),
    "CounterAdjust": host_pb2.CounterAdjustRequest(limits=[LIMIT]),
    "ObjectGet": host_pb2.ObjectGetRequest(object_type="llm", object_id="nope"),
    "ObjectGet[app]": host_pb2.ObjectGetRequest(object_type="app", object_id="nope"),
    "ObjectList": host_pb2.ObjectListRequest(object_type="llm"),
    "ObjectWrite": host_pb2.ObjectWriteRequest(
        operation="create", object_type="app", object_json=json.dumps({"name": "made by prober"})
    ),
    "ObjectWrite[llm]": host_pb2.ObjectWriteRequest(
        operation="create", object_type="llm", object_json=json.dumps({"name": "x", "vendor": "openai"})
    ),
    "ScheduleList": common_pb2.Empty(),
    "ScheduleTrigger": host_pb2.ScheduleTriggerRequest(schedule_id="noop"),
    "ApprovalList": host_pb2.ApprovalListRequest(),
    "ApprovalGet": host_pb2.ApprovalGetRequest(approval_id="nope"),
    "ApprovalVote": host_pb2.ApprovalVoteRequest(approval_id="nope", decision="approve"),
}


class Prober(Plugin, ConfigProvider, ScheduledTasks):
    def __init__(self) -> None:
        self.config: dict[str, Any] = {}

    def configure(self, ctx: Any, config: dict[str, Any]) -> None:
        self.config = config

    def config_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"greeting": {"type": "string"}, "level": {"type": "integer", "minimum": 0}},
            "additionalProperties": False,
        }

    async def run_task(self, ctx: Any, task: ScheduledTask) -> str:
        if task.schedule_id == "noop":
            return "nothing to do"
        stub, md = ctx.services.conn.stub()
        service = host_pb2.DESCRIPTOR.services_by_name["HostService"]
        results: dict[str, str] = {}
        streaming = {m.name for m in service.methods if m.server_streaming}
        for method in service.methods:
            results.setdefault(method.name, "NO_PROBE")
        for label, request in REQUESTS.items():
            name = label.split("[")[0]
            try:
                call = getattr(stub, name)(request, metadata=md, timeout=10)
                if name in streaming:
                    async for _ in call:
                        break
                else:
                    await call
                results[label] = "OK"
            except grpc.aio.AioRpcError as exc:
                results[label] = exc.code().name
        return json.dumps({"results": results, "config": self.config})


if __name__ == "__main__":
    serve(Prober())
