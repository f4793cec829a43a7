"""Serve the studio API on a SQLite file in a process of its own (for crash/restart tests).

Usage: python serve_studio.py DB_PATH
Prints `PORT <n>` on stdout once serving. The hook plugin here is in-process: llm changes
with privacy_score > 50 need approval by the `security` group.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys

from starlette.applications import Starlette

from celgate.engine.eventbus import EventBus
from celgate.engine.httpserver import AsgiServer, bind
from celgate.engine.objecthooks import HookRegistration, StaticTargets
from celgate.engine.studio_api import studio_routes
from celgate.engine.studio_state import open_studio
from celgate.v1 import common_pb2, plugin_pb2


class Review:
    plugin_id = "review"
    registrations = (HookRegistration("llm", "before_create"), HookRegistration("llm", "before_update"))
    failure_policy = "fail-closed"
    timeout = 5.0

    async def call(self, request: plugin_pb2.ObjectHookRequest, timeout: float) -> plugin_pb2.ObjectVerdict:
        if json.loads(request.object_json).get("privacy_score", 0) > 50:
            return plugin_pb2.ObjectVerdict(pending_approval=plugin_pb2.Approvers(groups=["security"]))
        return plugin_pb2.ObjectVerdict(allow=common_pb2.Empty())


async def main(db: str) -> None:
    state = await open_studio(
        db,
        plugins=StaticTargets([Review()]),
        events=EventBus(),
        admin_token="cgt_crash-test-admin-token-0000",
    )
    server = AsgiServer(Starlette(routes=studio_routes(state)), bind("127.0.0.1", 0))
    await server.start()
    print(f"PORT {server.port}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop()
    await state.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
