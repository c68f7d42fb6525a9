"""One inference worker per model: a thread that owns the model, fed by a bounded queue.

Requests never touch a model themselves. They put their molecules on the model's queue as
items (:meth:`Worker.submit`, all of a request's items at once, so they stay together and in
order) or a whole job (:meth:`Worker.submit_job`: a generation or a retrieval, which must not
be split), and wait on one :class:`Work` future per item. The worker takes the oldest item and
the queued items of the same kind (the same ``key``: a property model's mode, a naming model's
``verify``), up to ``max_batch``, and runs them as one batch (``run_batch(key, payloads)``: one
forward pass). Under concurrent load (work arrived while the worker was busy) it first waits
up to ``max_wait_s`` for the batch to fill; a lone client sending one request after another is
not kept waiting. Items that arrive while a batch runs go into the next one, so
concurrent requests are answered by shared forward passes, and a lone request of at most
``max_batch`` molecules is batched exactly as the CLI batches it.

The queue holds at most ``queue_depth`` items (a job counts one): a request that does not fit
is refused whole (:class:`QueueFull`, with a retry delay from the measured throughput). A
request that gives up (its timeout) abandons its futures: items not started are dropped, a
running job sees ``should_stop()`` turn true. When a batch fails, its items run one by one, so
only the molecule that breaks the model gets the error.
"""

from __future__ import annotations

import asyncio
import logging
import math
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Work",
    "QueueFull",
    "TooMany",
    "Stopped",
    "WorkerClosed",
    "RequestTimeout",
    "Deadline",
    "Worker",
]

log = logging.getLogger("molfm.serve")

RunBatch = Callable[[Hashable, list[Any]], Sequence[Any]]
Job = Callable[[Callable[[], bool]], Any]


class Work(Future):
    """A future for one item or job; :meth:`abandon` when its request stops waiting."""

    def __init__(self) -> None:
        super().__init__()
        self.abandoned = threading.Event()

    def abandon(self) -> None:
        """Drop the work if it has not started; a running job sees ``should_stop()``."""
        self.abandoned.set()
        self.cancel()


class QueueFull(Exception):
    """The model's queue cannot take the request; retry after ``retry_after`` seconds."""

    def __init__(self, model: str, pending: int, depth: int, retry_after: int) -> None:
        super().__init__(
            f"model {model!r} has {pending} items queued (at most {depth}); retry in "
            f"{retry_after} s"
        )
        self.retry_after = retry_after


class TooMany(ValueError):
    """A request with more items than the whole queue holds (it could never fit)."""


class Stopped(Exception):
    """Raised inside a job whose request gave up (``should_stop()`` is true)."""


class WorkerClosed(RuntimeError):
    """The worker was closed (server shutting down) before the work ran."""


class RequestTimeout(Exception):
    """The request ran out of time (its work was abandoned)."""


def restore_sigint() -> None:
    """Put Python's own SIGINT handler back at the C level (from the main thread only).

    RDKit's substructure search installs a Ctrl+C handler of its own for the duration of a call
    and restores the one it saved in a single static variable; two threads featurizing at once
    can leave RDKit's in place, and the server would then ignore Ctrl+C. Re-setting the handler
    Python knows after each thread's work keeps Ctrl+C stopping the server.
    """
    handler = signal.getsignal(signal.SIGINT)
    if handler is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, handler)


class Deadline:
    """A request's time limit, shared by everything it waits for (on the event loop)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def _expired(self) -> RequestTimeout:
        return RequestTimeout(f"the request took longer than {self.seconds:g} s")

    async def thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in a thread (featurization, drawing), within the time left."""
        try:
            return await asyncio.wait_for(asyncio.to_thread(fn, *args), self.left())
        except TimeoutError:
            raise self._expired() from None
        finally:
            restore_sigint()

    async def gather(self, work: Sequence[Work]) -> list[Any]:
        """Each future's result, or its exception as the value, in order; on timeout (or the
        client leaving) every future is abandoned."""
        waiting = asyncio.gather(*(asyncio.wrap_future(w) for w in work), return_exceptions=True)
        waiting.add_done_callback(_retrieve)  # a cancelled wait leaves nothing unretrieved
        try:
            return await asyncio.wait_for(waiting, max(0.0, self.left()))
        except TimeoutError:
            raise self._expired() from None
        finally:
            for w in work:
                if not w.done():
                    w.abandon()


def _retrieve(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()


@dataclass
class _Item:
    future: Work
    key: Hashable = None
    payload: Any = None
    job: Job | None = None


@dataclass
class WorkerStats:
    """What a worker did: batches run (``calls``), items and jobs done, recent batch sizes."""

    calls: int = 0
    items: int = 0
    jobs: int = 0
    batch_sizes: deque = field(default_factory=lambda: deque(maxlen=1000))
    seconds_per_item: float = 0.0  # moving average, for Retry-After


class Worker:
    """A thread owning one model: runs its queued items in batches and its jobs one by one.

    Parameters
    ----------
    name
        The model id (thread name, messages).
    run_batch
        ``run_batch(key, payloads) -> results``: one result per payload, in order; called on
        the worker thread only.
    max_batch
        Items per batch.
    max_wait_s
        How long the oldest item waits for others to fill its batch (under load).
    queue_depth
        Items (a job counts one) the queue holds.
    """

    def __init__(
        self,
        name: str,
        run_batch: RunBatch | None = None,
        *,
        max_batch: int = 64,
        max_wait_s: float = 0.005,
        queue_depth: int = 1024,
    ) -> None:
        self.name = name
        self.run_batch = run_batch
        self.max_batch = max(1, int(max_batch))
        self.max_wait_s = max(0.0, float(max_wait_s))
        self.queue_depth = max(1, int(queue_depth))
        self.stats = WorkerStats()
        self._queue: deque[_Item] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._running = False  # a batch or job is running
        self._contended = False  # work arrived while the worker was busy, since the last take
        self._thread = threading.Thread(target=self._loop, name=f"molfm-{name}", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        """Items (and jobs) waiting in the queue."""
        return len(self._queue)

    def submit(self, payloads: Sequence[Any], key: Hashable = None) -> list[Work]:
        """Queue ``payloads`` (all or none) to be batched with items of the same ``key``.

        Raises
        ------
        QueueFull
            They do not fit in the queue.
        """
        if self.run_batch is None:
            raise TypeError(f"worker {self.name!r} runs whole jobs only")
        items = [_Item(Work(), key, p) for p in payloads]
        self._put(items)
        return [i.future for i in items]

    def submit_job(self, job: Job) -> Work:
        """Queue a whole job, ``job(should_stop) -> result``, run alone on the worker thread."""
        item = _Item(Work(), job=job)
        self._put([item])
        return item.future

    def close(self, timeout: float = 5.0) -> None:
        """Stop taking work, fail what is still queued, and let the thread finish."""
        with self._cond:
            self._closed = True
            left = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        for item in left:
            if item.future.set_running_or_notify_cancel():
                item.future.set_exception(WorkerClosed(f"model {self.name!r} is shutting down"))
        self._thread.join(timeout)

    # --- the worker thread --------------------------------------------------------------------
    def _put(self, items: list[_Item]) -> None:
        with self._cond:
            if self._closed:
                raise WorkerClosed(f"model {self.name!r} is shutting down")
            pending = len(self._queue)
            if len(items) > self.queue_depth:
                raise TooMany(
                    f"{len(items)} items; model {self.name!r} queues at most {self.queue_depth}"
                )
            if pending + len(items) > self.queue_depth:
                raise QueueFull(self.name, pending, self.queue_depth, self._retry_after(pending))
            # arriving while the model works or others wait: requests come concurrently
            self._contended = self._contended or self._running or bool(self._queue)
            self._queue.extend(items)
            self._cond.notify_all()

    def _retry_after(self, pending: int) -> int:
        """Seconds until the queue has drained, from the measured time per item (1 to 60)."""
        seconds = pending * self.stats.seconds_per_item
        return int(min(60, max(1, math.ceil(seconds))))

    def _take(self) -> list[_Item] | None:
        """The next job alone, or a batch of items sharing the oldest item's key; None once
        closed."""
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            first = self._queue[0]
            if first.job is not None:
                return [self._queue.popleft()]
            # wait for company only under concurrent load: a lone client sending one request
            # after another would only lose max_wait_s on each
            wait, self._contended = (self.max_wait_s if self._contended else 0.0), False
            deadline = time.monotonic() + wait
            while self._count(first.key) < self.max_batch and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            batch, rest = [], deque()
            for item in self._queue:
                if len(batch) < self.max_batch and item.job is None and item.key == first.key:
                    batch.append(item)
                else:
                    rest.append(item)
            self._queue = rest
            return batch

    def _count(self, key: Hashable) -> int:
        return sum(1 for i in self._queue if i.job is None and i.key == key)

    def _loop(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            live = [i for i in batch if i.future.set_running_or_notify_cancel()]
            if not live:
                continue
            start = time.perf_counter()
            self._running = True
            try:
                if live[0].job is not None:
                    self._run_job(live[0])
                else:
                    self._run_items(live)
            finally:
                self._running = False
            per_item = (time.perf_counter() - start) / len(live)
            avg = self.stats.seconds_per_item
            self.stats.seconds_per_item = per_item if avg == 0 else 0.8 * avg + 0.2 * per_item

    def _run_job(self, item: _Item) -> None:
        work = item.future
        try:
            result = item.job(work.abandoned.is_set)
        except Exception as err:  # the request sees it; the worker goes on
            work.set_exception(err)
        else:
            work.set_result(result)
        self.stats.jobs += 1

    def _run_items(self, items: list[_Item]) -> None:
        try:
            results = self._call(items[0].key, [i.payload for i in items])
        except Exception as err:
            if len(items) == 1:
                items[0].future.set_exception(err)
                return
            log.warning(
                "model %s: a batch of %d failed (%s); one by one", self.name, len(items), err
            )
            for item in items:  # isolate the item that breaks the model
                try:
                    (result,) = self._call(item.key, [item.payload])
                except Exception as one:
                    item.future.set_exception(one)
                else:
                    item.future.set_result(result)
            return
        for item, result in zip(items, results, strict=True):
            item.future.set_result(result)

    def _call(self, key: Hashable, payloads: list[Any]) -> Sequence[Any]:
        self.stats.calls += 1
        self.stats.items += len(payloads)
        self.stats.batch_sizes.append(len(payloads))
        results = self.run_batch(key, payloads)
        if len(results) != len(payloads):
            raise RuntimeError(f"{len(results)} results for {len(payloads)} items")
        return results
