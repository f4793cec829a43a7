"""Broken on purpose: sends replies a well-behaved SDK never would, steered by x-test-action.

wrong-kind: an auth verdict to a pre_auth call; bad-status: a reply with HTTP status 42;
malformed: bytes that are not a HookReply; oversized: a 20 MiB reply (the SDK's own size guard
is lifted); empty: a HookReply with no verdict; ok: Continue.
"""

from __future__ import annotations

from typing import Any

import grpc

import celgate.sdk.serve as serve_module
from celgate.sdk import Continue, Plugin, PreAuth, RequestContext, Respond, Response, fasthooks, serve
from celgate.sdk import server as server_module
from celgate.v1 import common_pb2, plugin_pb2

MALFORMED = "__malformed__"

# Lift the SDK's guards so that the host's own guards are what gets tested.
serve_module.MAX_MESSAGE_BYTES = 64 * 1024 * 1024
server_module.MAX_MESSAGE_BYTES = 1 << 40
_original_handler = grpc.stream_stream_rpc_method_handler


def _patched_handler(behavior: Any, request_deserializer: Any = None, response_serializer: Any = None) -> Any:
    def serialize(message: Any) -> bytes:
        if isinstance(message, plugin_pb2.HookReply) and message.error == MALFORMED:
            return b"\xff\xff\xff\xff\x0f garbage"
        return response_serializer(message)  # type: ignore[no-any-return]

    return _original_handler(
        behavior, request_deserializer=request_deserializer, response_serializer=serialize
    )


grpc.stream_stream_rpc_method_handler = _patched_handler
_original_write = fasthooks.FrameProtocol.write


def _patched_write(self: fasthooks.FrameProtocol, data: bytes) -> None:
    """The same sabotage on the framed-socket fast path."""
    if len(data) < 4096:
        reply = plugin_pb2.HookReply.FromString(data)
        if reply.error == MALFORMED:
            # A valid call_id first (so the host can tell which call it was), then an invalid tag.
            data = b"\x08" + _varint(reply.call_id) + b"\x07garbage"
    _original_write(self, data)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


fasthooks.FrameProtocol.write = _patched_write  # type: ignore[method-assign]
_original_hook = server_module.PluginServicer._hook


async def _hook(self: Any, call: plugin_pb2.HookCall) -> plugin_pb2.HookReply:
    action = ""
    if call.WhichOneof("hook") == "pre_auth":
        action = next((h.value for h in call.pre_auth.request.headers if h.name == "x-test-action"), "")
    if action == "wrong-kind":
        return plugin_pb2.HookReply(
            call_id=call.call_id, auth=plugin_pb2.AuthVerdict(identity=common_pb2.Identity())
        )
    if action == "empty":
        return plugin_pb2.HookReply(call_id=call.call_id)
    if action == "malformed":
        return plugin_pb2.HookReply(call_id=call.call_id, error=MALFORMED)
    return await _original_hook(self, call)  # type: ignore[no-any-return]


server_module.PluginServicer._hook = _hook  # type: ignore[method-assign]


class Broken(Plugin, PreAuth, Response):
    def on_pre_auth(self, ctx: RequestContext) -> Any:
        action = ctx.request.headers.get("x-test-action", "")
        if action == "bad-status":
            return Respond(status=42)
        if action == "oversized":
            return Respond(status=200, body=b"x" * (20 * 1024 * 1024))
        return Continue()


if __name__ == "__main__":
    serve(Broken())
