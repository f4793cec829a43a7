"""Broken on purpose: holds every even chunk and sends it after the next one, so pairs of
chunks come out swapped (caught by response.chunk-order)."""

from __future__ import annotations

from celgate.sdk import Plugin, RequestContext, Response, ResponseChunk, ResponseEnd, serve


class StreamOrder(Plugin, Response):
    response_chunks = True
    inline_sync = True

    def __init__(self) -> None:
        self.held: dict[str, bytes] = {}

    def on_response_chunk(self, ctx: RequestContext, chunk: ResponseChunk) -> bytes | None:
        if not chunk.streaming:
            return None
        if chunk.index % 2 == 0:
            self.held[ctx.request.id] = chunk.data
            return b""
        return chunk.data + self.held.pop(ctx.request.id, b"")

    def on_response_end(self, ctx: RequestContext, end: ResponseEnd) -> bytes | None:
        return self.held.pop(ctx.request.id, None)


if __name__ == "__main__":
    serve(StreamOrder())
