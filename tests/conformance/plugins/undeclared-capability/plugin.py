"""Broken on purpose: written against the wire protocol without the SDK (which would refuse
to start), it declares only pre_auth but also acknowledges CollectData batches (caught by
capabilities.undeclared-unimplemented).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from celgate.v1 import common_pb2, plugin_pb2, plugin_pb2_grpc

MANIFEST = json.loads((Path(__file__).resolve().parent / "manifest.json").read_text())


class Servicer(plugin_pb2_grpc.PluginServiceServicer):
    def __init__(self, stop: asyncio.Event) -> None:
        self.stop = stop

    async def GetManifest(self, request: Any, context: Any) -> plugin_pb2.ManifestReply:
        return plugin_pb2.ManifestReply(manifest_json=json.dumps(MANIFEST), capabilities=["pre_auth"])

    async def GetConfigSchema(self, request: Any, context: Any) -> plugin_pb2.ConfigSchemaReply:
        return plugin_pb2.ConfigSchemaReply()

    async def Configure(self, request: Any, context: Any) -> plugin_pb2.ConfigureReply:
        return plugin_pb2.ConfigureReply(ok=True)

    async def Shutdown(self, request: Any, context: Any) -> common_pb2.Empty:
        asyncio.get_running_loop().call_later(0.05, self.stop.set)
        return common_pb2.Empty()

    async def Hooks(self, request_iterator: Any, context: Any) -> AsyncIterator[plugin_pb2.HookReply]:
        async for call in request_iterator:
            if call.WhichOneof("hook") == "pre_auth":
                yield plugin_pb2.HookReply(
                    call_id=call.call_id, request=plugin_pb2.RequestVerdict(proceed={})
                )
            else:
                yield plugin_pb2.HookReply(call_id=call.call_id, error="not implemented")

    async def CollectData(self, request: Any, context: Any) -> plugin_pb2.DataAck:
        return plugin_pb2.DataAck(accepted=len(request.records))  # the undeclared capability


async def main() -> int:
    if os.environ.get("CELGATE_PLUGIN_COOKIE") != "3b0d1f8e-celgate-plugin-v1":
        print("this is a celgate plugin: it is started by the celgate host", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    limit = 16 * 1024 * 1024  # the protocol's message limit (gRPC's default is 4 MiB)
    server = grpc.aio.server(
        options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)]
    )
    plugin_pb2_grpc.add_PluginServiceServicer_to_server(Servicer(stop), server)  # type: ignore[no-untyped-call]
    checker = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    await checker.set("", health_pb2.HealthCheckResponse.SERVING)
    await checker.set("plugin", health_pb2.HealthCheckResponse.SERVING)
    sock = os.path.join(tempfile.mkdtemp(prefix="celgate-plugin-"), "plugin.sock")
    server.add_insecure_port(f"unix:{sock}")
    await server.start()
    print(f"1|1|unix|{sock}|grpc", flush=True)
    loop = asyncio.get_running_loop()
    loop.add_reader(0, lambda: os.read(0, 4096) or stop.set())
    await stop.wait()
    await server.stop(0.5)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
