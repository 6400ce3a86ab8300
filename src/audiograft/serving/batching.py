"""Micro-batching: work that arrives together runs as one call on the device, not item by item.

Items wait in one bounded queue, each with a key; only items with equal keys (the same decoding options)
share a call. A single worker takes the oldest item, gives it `max_wait` seconds from its arrival to gather
companions with its key (at most `max_batch_size` in all), and runs the group in one `run_batch` call on the
queue's own thread, so the event loop goes on accepting work meanwhile. One thread, always the same: the
device runs one batch at a time anyway, and the model's allocations stay in one thread's allocator arena
instead of being spread over a shared pool's (the server's peak memory in its load test: 3.7 GB on asyncio's
pool, 2.0 GB on one thread; benchmarks/RESULTS.md). While a call runs, new items pile up and
the next call starts at once with all of them: the wait costs latency only when the device was idle. A call
that fails is made again for each of its items alone, so one item's failure is never another's.

Admitted work is bounded twice, counting waiting and running items: at most `max_depth` items, and at most
`max_cost` of their summed costs (a server makes the cost an item's audio seconds, so that the memory its
waveforms hold is bounded too). Past either bound `submit` raises QueueFull at once instead of letting a backlog grow.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

logger = logging.getLogger(__name__)

Item = TypeVar("Item")
Key = TypeVar("Key", bound=Hashable)
Result = TypeVar("Result")


class QueueFull(RuntimeError):
    """The queue holds `max_depth` items already."""


@dataclass(eq=False)
class _Pending:
    item: Any
    key: Hashable
    cost: float
    arrived: float
    future: asyncio.Future


@dataclass
class BatchStats:
    batches: int = 0  # run_batch calls
    items: int = 0  # items they served
    largest: int = 0  # most items in one call

    def as_dict(self) -> dict[str, float]:
        mean = self.items / self.batches if self.batches else 0.0
        return {"batches": self.batches, "items": self.items, "largest": self.largest, "mean_size": round(mean, 2)}


class BatchQueue(Generic[Item, Key, Result]):
    """Runs `run_batch(items, key) -> results` (one result per item, in order) on groups of submitted items."""

    def __init__(
        self,
        run_batch: Callable[[list[Item], Key], Sequence[Result]],
        max_batch_size: int = 8,
        max_wait: float = 0.01,
        max_depth: int = 256,
        max_cost: float = math.inf,
    ):
        if max_batch_size < 1 or max_depth < 1 or max_wait < 0 or max_cost <= 0:
            raise ValueError("max_batch_size and max_depth must be at least 1, max_wait at least 0, max_cost above 0")
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait
        self.max_depth = max_depth
        self.max_cost = max_cost
        self.stats = BatchStats()
        self._waiting: list[_Pending] = []
        self._running: list[_Pending] = []
        self._arrival = asyncio.Event()
        self._worker: asyncio.Task | None = None
        self._device_thread: ThreadPoolExecutor | None = None

    @property
    def depth(self) -> int:
        """Items admitted and not yet answered: waiting, or in the running call."""
        return len(self._admitted())

    @property
    def cost(self) -> float:
        return sum(p.cost for p in self._admitted())

    def has_room(self, cost: float = 0.0) -> bool:
        """Whether an item of this cost would be admitted now."""
        return self.depth < self.max_depth and self.cost + cost <= self.max_cost

    def _admitted(self) -> list[_Pending]:
        # An abandoned item still running holds its memory until the call returns, so it still counts.
        return [p for p in self._waiting if not p.future.done()] + self._running

    def start(self) -> None:
        if self._worker is None:
            self._device_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-queue")
            self._worker = asyncio.get_running_loop().create_task(self._work(), name="batch-queue")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._device_thread.shutdown(wait=False, cancel_futures=True)
            self._worker = self._device_thread = None

    async def submit(self, item: Item, key: Key, cost: float = 0.0) -> Result:
        """The item's result once its batch has run; cancelling the caller abandons the item.

        An error raised by `run_batch` is raised here, for the item that causes it alone: a failed batch is run
        again item by item.
        """
        if self._worker is None:
            raise RuntimeError("the batch queue is not started")
        if not self.has_room(cost):
            raise QueueFull(
                f"the queue holds {self.depth} items of cost {self.cost:g} "
                f"(at most {self.max_depth} items and cost {self.max_cost:g})"
            )
        loop = asyncio.get_running_loop()
        pending = _Pending(item, key, cost, loop.time(), loop.create_future())
        self._waiting.append(pending)
        self._arrival.set()
        return await pending.future

    def _drop_abandoned(self) -> None:
        self._waiting = [p for p in self._waiting if not p.future.done()]

    def _companions(self, key: Hashable) -> list[_Pending]:
        self._drop_abandoned()
        return [p for p in self._waiting if p.key == key][: self.max_batch_size]

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._drop_abandoned()
            if not self._waiting:
                self._arrival.clear()
                await self._arrival.wait()
                continue
            head = self._waiting[0]
            while len(self._companions(head.key)) < self.max_batch_size:
                remaining = head.arrived + self.max_wait - loop.time()
                if remaining <= 0:
                    break
                self._arrival.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrival.wait(), remaining)
            batch = self._companions(head.key)
            if batch:
                self._waiting = [p for p in self._waiting if p not in batch]
                await self._run(batch, head.key)

    async def _run(self, batch: list[_Pending], key: Hashable) -> None:
        """Runs the batch in one call; if that fails, each of its items in a call of its own, so that a failure
        reaches only the item that causes it and no item can fail the others batched with it."""
        self._running = batch
        try:
            try:
                self._answer(batch, await self._call(batch, key))
            except Exception as error:
                if len(batch) == 1:
                    self._fail(batch[0], error)
                    return
                # The traceback is the failing item's to report, once, when it fails alone.
                logger.warning("a batch of %d failed (%s: %s); running its items one at a time",
                               len(batch), type(error).__name__, error)
                for pending in batch:
                    if pending.future.done():  # abandoned meanwhile
                        continue
                    try:
                        self._answer([pending], await self._call([pending], key))
                    except Exception as alone:
                        self._fail(pending, alone)
        finally:
            self._running = []

    async def _call(self, batch: list[_Pending], key: Hashable) -> Sequence[Any]:
        """One run_batch call on the queue's thread, counted in the stats."""
        try:
            loop = asyncio.get_running_loop()
            results = await loop.run_in_executor(self._device_thread, self.run_batch, [p.item for p in batch], key)
        finally:
            self.stats.batches += 1
            self.stats.items += len(batch)
            self.stats.largest = max(self.stats.largest, len(batch))
        if len(results) != len(batch):
            raise RuntimeError(f"run_batch gave {len(results)} results for {len(batch)} items")
        return results

    @staticmethod
    def _answer(batch: list[_Pending], results: Sequence[Any]) -> None:
        for pending, result in zip(batch, results):
            if not pending.future.done():
                pending.future.set_result(result)

    @staticmethod
    def _fail(pending: _Pending, error: Exception) -> None:
        if not pending.future.done():
            pending.future.set_exception(error)
