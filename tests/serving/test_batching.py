import asyncio
import threading
import time

import pytest

from audiograft.serving.batching import BatchQueue, BatchStats, QueueFull


class Recorder:
    """A run_batch that records each call and can be held back until released."""

    def __init__(self, seconds: float = 0.0, fail: bool = False):
        self.calls: list[tuple[list, object]] = []
        self.seconds = seconds
        self.fail = fail
        self.release = threading.Event()
        self.release.set()

    def __call__(self, items, key):
        self.release.wait()
        time.sleep(self.seconds)
        self.calls.append((list(items), key))
        if self.fail:
            raise RuntimeError("the device fell over")
        return [f"{key}:{item}" for item in items]


async def started(queue: BatchQueue) -> BatchQueue:
    queue.start()
    return queue


def test_items_arriving_together_run_as_one_call_per_key_in_order():
    async def scenario():
        run = Recorder()
        queue = await started(BatchQueue(run, max_batch_size=8, max_wait=0.05))
        submitted = [("a", 1), ("b", 2), ("a", 3), ("a", 4), ("b", 5)]
        results = await asyncio.gather(*(queue.submit(item, key) for key, item in submitted))
        await queue.stop()
        return run.calls, results, queue.stats

    calls, results, stats = asyncio.run(scenario())
    assert results == ["a:1", "b:2", "a:3", "a:4", "b:5"]
    assert calls == [([1, 3, 4], "a"), ([2, 5], "b")]
    assert stats == BatchStats(batches=2, items=5, largest=3)


def test_a_batch_never_exceeds_max_batch_size():
    async def scenario():
        run = Recorder()
        queue = await started(BatchQueue(run, max_batch_size=3, max_wait=0.05))
        await asyncio.gather(*(queue.submit(i, "k") for i in range(7)))
        await queue.stop()
        return [items for items, _ in run.calls]

    assert asyncio.run(scenario()) == [[0, 1, 2], [3, 4, 5], [6]]


def test_work_arriving_while_a_batch_runs_forms_the_next_batch():
    async def scenario():
        run = Recorder(seconds=0.2)
        queue = await started(BatchQueue(run, max_batch_size=16, max_wait=0.0))
        first = asyncio.ensure_future(queue.submit(0, "k"))
        await asyncio.sleep(0.05)  # the first call is running now
        rest = [asyncio.ensure_future(queue.submit(i, "k")) for i in range(1, 6)]
        await asyncio.gather(first, *rest)
        await queue.stop()
        return [items for items, _ in run.calls]

    assert asyncio.run(scenario()) == [[0], [1, 2, 3, 4, 5]]


def test_a_full_queue_refuses_by_depth_and_by_cost_and_counts_the_running_batch():
    async def scenario():
        run = Recorder()
        run.release.clear()
        queue = await started(BatchQueue(run, max_batch_size=1, max_wait=0.0, max_depth=2, max_cost=10.0))
        running = asyncio.ensure_future(queue.submit(0, "k", cost=4.0))
        await asyncio.sleep(0.05)
        with pytest.raises(QueueFull):
            await queue.submit(1, "k", cost=7.0)  # 4 + 7 > 10
        waiting = asyncio.ensure_future(queue.submit(2, "k", cost=1.0))
        await asyncio.sleep(0.01)
        assert (queue.depth, queue.cost) == (2, 5.0)
        with pytest.raises(QueueFull):
            await queue.submit(3, "k")
        run.release.set()
        results = await asyncio.gather(running, waiting)
        await queue.stop()
        return results, queue.depth

    assert asyncio.run(scenario()) == (["k:0", "k:2"], 0)


def test_an_abandoned_item_is_not_run_and_frees_its_place():
    async def scenario():
        run = Recorder()
        run.release.clear()
        queue = await started(BatchQueue(run, max_batch_size=1, max_wait=0.0, max_depth=3))
        blocker = asyncio.ensure_future(queue.submit("blocker", "k"))
        await asyncio.sleep(0.05)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(queue.submit("impatient", "k"), 0.05)
        assert queue.depth == 1
        run.release.set()
        kept = await queue.submit("kept", "k")
        await blocker
        await queue.stop()
        return [items for items, _ in run.calls], kept

    calls, kept = asyncio.run(scenario())
    assert calls == [["blocker"], ["kept"]] and kept == "k:kept"


def test_a_failing_batch_fails_each_of_its_items_and_the_queue_goes_on():
    async def scenario():
        run = Recorder(fail=True)
        queue = await started(BatchQueue(run, max_batch_size=4, max_wait=0.02))
        outcomes = await asyncio.gather(queue.submit(1, "k"), queue.submit(2, "k"), return_exceptions=True)
        run.fail = False
        after = await queue.submit(3, "k")
        await queue.stop()
        return outcomes, after

    outcomes, after = asyncio.run(scenario())
    assert [str(o) for o in outcomes] == ["the device fell over"] * 2 and after == "k:3"


def test_a_failing_batch_is_run_again_item_by_item_so_only_the_culprit_fails():
    async def scenario():
        calls = []

        def run(items, key):
            calls.append(list(items))
            if "poison" in items:
                raise ValueError("Input audio chunk is too short")
            return [f"{key}:{item}" for item in items]

        queue = await started(BatchQueue(run, max_batch_size=4, max_wait=0.05))
        outcomes = await asyncio.gather(*(queue.submit(item, "k") for item in ["a", "poison", "b"]),
                                        return_exceptions=True)
        await queue.stop()
        return calls, outcomes, queue.stats

    calls, outcomes, stats = asyncio.run(scenario())
    assert calls == [["a", "poison", "b"], ["a"], ["poison"], ["b"]]
    assert outcomes[0] == "k:a" and outcomes[2] == "k:b"
    assert isinstance(outcomes[1], ValueError) and str(outcomes[1]) == "Input audio chunk is too short"
    assert stats == BatchStats(batches=4, items=6, largest=3)


def test_submit_needs_a_started_queue_and_bounds_are_checked():
    with pytest.raises(RuntimeError, match="not started"):
        asyncio.run(BatchQueue(Recorder()).submit(1, "k"))
    with pytest.raises(ValueError):
        BatchQueue(Recorder(), max_batch_size=0)


def test_stats_as_dict_gives_the_mean_batch_size():
    assert BatchStats(batches=2, items=5, largest=3).as_dict() == {
        "batches": 2, "items": 5, "largest": 3, "mean_size": 2.5}
    assert BatchStats().as_dict()["mean_size"] == 0.0


def test_every_batch_runs_on_the_queues_one_thread():
    async def scenario():
        threads = []

        def run(items, key):
            threads.append(threading.current_thread().name)
            return items

        queue = await started(BatchQueue(run, max_batch_size=1, max_wait=0.0))
        await asyncio.gather(*(queue.submit(i, "k") for i in range(4)))
        await queue.stop()
        return threads

    threads = asyncio.run(scenario())
    assert len(threads) == 4 and len(set(threads)) == 1 and threads[0].startswith("batch-queue")
