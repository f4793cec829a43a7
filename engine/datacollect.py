"""Data collection off the request path: a bounded queue, batches by size or interval.

The gateway calls `submit(record)`, which never blocks: when the queue is full the record is
dropped, counted and logged (at most once per interval) so a slow collector can never slow
requests down. One background task drains the queue into `DataBatch`es of up to
`batch_size` records, or whatever arrived within `interval_ms`, and sends each batch to every
data_collection plugin concurrently, with the plugin's deadline. A plugin failure loses that
batch for that plugin only (counted); it never reaches a client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from celgate.engine.config import DataCollectionConfig
from celgate.engine.handle import HookError
from celgate.v1 import plugin_pb2

log = logging.getLogger("celgate.datacollect")


@dataclass
class CollectorStats:
    submitted: int = 0
    dropped: int = 0
    batches: int = 0
    delivered: int = 0  # records acknowledged, summed over plugins
    failed: int = 0  # records lost to plugin failures, summed over plugins


@dataclass(frozen=True)
class Sink:
    """One data_collection plugin: its id, a way to get its current handle, and its deadline."""

    plugin_id: str
    handle: Callable[[], Any]
    timeout: float


class DataCollector:
    def __init__(self, config: DataCollectionConfig, sinks: Sequence[Sink]) -> None:
        self.config = config
        self.sinks = list(sinks)
        self.stats = CollectorStats()
        self._queue: asyncio.Queue[plugin_pb2.DataRecord] = asyncio.Queue(maxsize=config.queue_size)
        self._task: asyncio.Task[None] | None = None
        self._last_drop_log = 0.0
        self._dropped_since_log = 0
        self._inflight: asyncio.Future[None] | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.sinks)

    def start(self) -> None:
        if self.sinks and self._task is None:
            self._task = asyncio.create_task(self._run(), name="celgate-datacollect")

    def submit(self, record: plugin_pb2.DataRecord) -> bool:
        """Queue a record; False (and counted) when it had to be dropped."""
        self.stats.submitted += 1
        try:
            self._queue.put_nowait(record)
            return True
        except asyncio.QueueFull:
            self.stats.dropped += 1
            self._dropped_since_log += 1
            now = time.monotonic()
            if now - self._last_drop_log >= max(self.config.interval_ms / 1000, 1.0):
                log.warning(
                    "data collection queue full (%d records): dropped %d record(s), %d in total",
                    self.config.queue_size,
                    self._dropped_since_log,
                    self.stats.dropped,
                )
                self._last_drop_log = now
                self._dropped_since_log = 0
            return False

    async def _next_batch(self) -> list[plugin_pb2.DataRecord]:
        batch = [await self._queue.get()]
        deadline = time.monotonic() + self.config.interval_ms / 1000
        while len(batch) < self.config.batch_size:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def _run(self) -> None:
        while True:
            batch = await self._next_batch()
            # Shielded: stop() waits for a batch in flight instead of cancelling it halfway.
            self._inflight = asyncio.ensure_future(self._deliver(batch))
            await asyncio.shield(self._inflight)
            self._inflight = None

    async def _deliver(self, records: list[plugin_pb2.DataRecord]) -> None:
        message = plugin_pb2.DataBatch(records=records)
        self.stats.batches += 1
        await asyncio.gather(*(self._send(sink, message, len(records)) for sink in self.sinks))

    async def _send(self, sink: Sink, batch: plugin_pb2.DataBatch, n: int) -> None:
        try:
            ack = await sink.handle().collect(batch, sink.timeout)
        except HookError as exc:
            self.stats.failed += n
            log.warning(
                "data collection: plugin %s failed (%s); %d record(s) lost for it",
                sink.plugin_id,
                exc.kind,
                n,
            )
            return
        except Exception:  # a broken handle must not kill the collector task
            self.stats.failed += n
            log.exception("data collection: plugin %s raised; %d record(s) lost for it", sink.plugin_id, n)
            return
        if ack.error:
            self.stats.failed += n
            log.warning("data collection: plugin %s reported: %s", sink.plugin_id, ack.error)
        else:
            self.stats.delivered += ack.accepted or n

    async def stop(self, drain_timeout: float = 5.0) -> None:
        """Deliver what is queued (bounded by drain_timeout), then stop."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        if self._inflight is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._inflight), drain_timeout)
            self._inflight = None
        pending: list[plugin_pb2.DataRecord] = []
        while not self._queue.empty():
            pending.append(self._queue.get_nowait())
        if pending:
            try:
                for i in range(0, len(pending), self.config.batch_size):
                    await asyncio.wait_for(
                        self._deliver(pending[i : i + self.config.batch_size]), drain_timeout
                    )
            except TimeoutError:
                log.warning("data collection: gave up delivering queued records at shutdown")
