"""The framed-socket fast path's framing, as a property: any split of the byte stream gives the
same frames; oversized frames are skipped without being buffered and without losing sync."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from celgate.engine.handle import _leading_call_id
from celgate.sdk.fasthooks import FrameProtocol, frame
from celgate.v1 import plugin_pb2

LIMIT = 64


def _feed(stream: bytes, cuts: list[int]) -> tuple[list[bytes], list[tuple[int, bytes]]]:
    frames: list[bytes] = []
    oversized: list[tuple[int, bytes]] = []
    proto = FrameProtocol(
        frames.append, lambda size, head: oversized.append((size, head)), lambda exc: None, LIMIT
    )
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    for start, end in itertools.pairwise(points):
        proto.data_received(stream[start:end])
    return frames, oversized


@settings(max_examples=200, deadline=None)
@given(
    payloads=st.lists(st.binary(max_size=LIMIT * 2), max_size=12),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=20),
)
def test_any_split_gives_the_same_frames(payloads: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(frame(p) for p in payloads)
    frames, oversized = _feed(stream, cuts)
    assert frames == [p for p in payloads if len(p) <= LIMIT]
    assert [size for size, _ in oversized] == [len(p) for p in payloads if len(p) > LIMIT]


@given(call_id=st.integers(min_value=0, max_value=2**64 - 1))
def test_the_call_id_is_readable_from_a_message_prefix(call_id: int) -> None:
    reply = plugin_pb2.HookReply(call_id=call_id, error="x" * 100)
    data = reply.SerializeToString()
    assert _leading_call_id(data[:16]) == (call_id if call_id else None)
