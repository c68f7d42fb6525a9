"""The inference worker on its own (no model, no HTTP): micro-batching, order, keys, the bounded
queue, abandoned work, failure isolation, shutdown. Every wait is bounded."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from molfm.serve.workers import (
    Deadline,
    QueueFull,
    RequestTimeout,
    Stopped,
    TooMany,
    Worker,
    WorkerClosed,
)

WAIT = 10.0  # the longest any test waits for the worker


class Recorder:
    """A run_batch that records its batches (and can fail on a payload)."""

    def __init__(self, fail_on=None) -> None:
        self.batches: list[tuple] = []
        self.fail_on = fail_on

    def __call__(self, key, payloads):
        self.batches.append((key, list(payloads)))
        if self.fail_on is not None and self.fail_on in payloads:
            raise ValueError(f"cannot do {self.fail_on}")
        return [(key, p * 10) for p in payloads]


def _block(worker: Worker) -> threading.Event:
    """Occupy the worker with a job until the returned event is set."""
    release = threading.Event()
    started = threading.Event()

    def job(should_stop):
        started.set()
        release.wait(WAIT)

    worker.submit_job(job)
    assert started.wait(WAIT)
    return release


def _wait_pending(worker: Worker, n: int) -> None:
    deadline = time.monotonic() + WAIT
    while worker.pending < n:
        assert time.monotonic() < deadline, f"{worker.pending} pending, waited for {n}"
        time.sleep(0.005)


@pytest.fixture
def worker():
    made = []

    def make(run_batch=None, **kw):
        made.append(Worker("test", run_batch, **kw))
        return made[-1]

    yield make
    for w in made:
        w.close()


def test_concurrent_requests_share_one_batch_and_keep_their_order(worker):
    run = Recorder()
    w = worker(run, max_batch=64, max_wait_s=0.001)
    release = _block(w)
    requests = [w.submit([i * 10 + j for j in range(3)]) for i in range(5)]
    release.set()
    results = [[f.result(WAIT) for f in futures] for futures in requests]
    assert results == [[(None, (i * 10 + j) * 10) for j in range(3)] for i in range(5)]
    assert len(run.batches) == 1 and len(run.batches[0][1]) == 15
    assert w.stats.calls == 1 and list(w.stats.batch_sizes) == [15]


def test_batches_hold_at_most_max_batch_items_of_one_key(worker):
    run = Recorder()
    w = worker(run, max_batch=4, max_wait_s=0.001)
    release = _block(w)
    a = w.submit(list(range(6)), key="2d")
    b = w.submit([100, 101], key="3d")
    c = w.submit([7], key="2d")
    release.set()
    assert [f.result(WAIT) for f in a + c] == [("2d", p * 10) for p in [0, 1, 2, 3, 4, 5, 7]]
    assert [f.result(WAIT) for f in b] == [("3d", 1000), ("3d", 1010)]
    # the oldest item's key first, then in queue order; a key never mixes into another's batch
    assert run.batches == [("2d", [0, 1, 2, 3]), ("2d", [4, 5, 7]), ("3d", [100, 101])]


def test_one_request_after_another_is_not_kept_waiting(worker):
    w = worker(Recorder(), max_batch=64, max_wait_s=WAIT)  # a wait would show
    start = time.monotonic()
    for i in range(5):  # each request waits for its answer: never two at once
        assert w.submit([i])[0].result(WAIT) == (None, 10 * i)
    assert time.monotonic() - start < WAIT / 2


def test_under_load_the_worker_waits_for_its_batch_to_fill(worker):
    run = Recorder()
    w = worker(run, max_batch=2, max_wait_s=WAIT)
    release = _block(w)
    first = w.submit([1])  # arrives while the worker is busy: load
    release.set()
    time.sleep(0.05)
    second = w.submit([2])
    assert first[0].result(WAIT) == (None, 10) and second[0].result(WAIT) == (None, 20)
    assert run.batches == [(None, [1, 2])]


def test_a_failing_batch_runs_one_by_one_so_only_the_culprit_fails(worker):
    run = Recorder(fail_on=2)
    w = worker(run, max_batch=8, max_wait_s=0.001)
    release = _block(w)
    futures = w.submit([1, 2, 3])
    release.set()
    assert futures[0].result(WAIT) == (None, 10) and futures[2].result(WAIT) == (None, 30)
    with pytest.raises(ValueError, match="cannot do 2"):
        futures[1].result(WAIT)
    assert [len(p) for _, p in run.batches] == [3, 1, 1, 1]


def test_a_full_queue_refuses_the_whole_request_with_a_retry_delay(worker):
    w = worker(Recorder(), max_batch=2, queue_depth=4)
    release = _block(w)
    first = w.submit([1, 2, 3])
    with pytest.raises(QueueFull) as err:
        w.submit([4, 5])  # 3 + 2 > 4: nothing of it is queued
    assert 1 <= err.value.retry_after <= 60 and w.pending == 3
    with pytest.raises(TooMany):
        w.submit(list(range(5)))  # more than the queue holds: it could never fit
    w.submit([4])  # still fits
    release.set()
    assert [f.result(WAIT) for f in first] == [(None, 10), (None, 20), (None, 30)]


def test_abandoned_items_are_dropped_and_a_running_job_is_told_to_stop(worker):
    run = Recorder()
    w = worker(run, max_batch=8, max_wait_s=0.001)
    started, stopped = threading.Event(), threading.Event()

    def job(should_stop):
        started.set()
        deadline = time.monotonic() + WAIT
        while not should_stop():
            assert time.monotonic() < deadline
            time.sleep(0.001)
        stopped.set()
        raise Stopped("asked to stop")

    running = w.submit_job(job)
    queued = w.submit([1, 2])
    assert started.wait(WAIT)
    for f in queued:
        f.abandon()
    running.abandon()
    assert stopped.wait(WAIT)
    with pytest.raises(Stopped):
        running.result(WAIT)
    assert w.submit([3])[0].result(WAIT) == (None, 30)
    assert all(1 not in p and 2 not in p for _, p in run.batches)


def test_deadline_abandons_the_futures_of_a_request_that_timed_out(worker):
    w = worker(Recorder(), max_batch=8)
    release = _block(w)
    futures = w.submit([1, 2])

    async def wait():
        await Deadline(0.05).gather(futures)

    with pytest.raises(RequestTimeout, match="longer than 0.05 s"):
        asyncio.run(wait())
    assert all(f.cancelled() for f in futures)
    release.set()


def test_deadline_gives_exceptions_as_values(worker):
    w = worker(Recorder(fail_on=2), max_batch=1)

    async def wait():
        return await Deadline(WAIT).gather(w.submit([1, 2]))

    first, second = asyncio.run(wait())
    assert first == (None, 10) and isinstance(second, ValueError)


def test_close_fails_what_is_queued_and_refuses_more(worker):
    w = worker(Recorder(), max_batch=8)
    release = _block(w)
    futures = w.submit([1])
    threading.Timer(0.05, release.set).start()
    w.close()
    with pytest.raises(WorkerClosed):
        futures[0].result(WAIT)
    with pytest.raises(WorkerClosed):
        w.submit([2])


def test_a_jobs_only_worker_takes_no_items(worker):
    w = worker(None)
    assert w.submit_job(lambda should_stop: 42).result(WAIT) == 42
    with pytest.raises(TypeError):
        w.submit([1])


def test_ctrl_c_still_stops_the_server_after_a_thread_replaced_its_handler():
    """A thread's C code (RDKit's substructure search, under concurrent featurization) can leave
    its own SIGINT handler installed; after the thread's work the server's comes back."""
    import asyncio
    import ctypes
    import os
    import signal

    from molfm.serve.workers import Deadline

    libc = ctypes.CDLL(None)
    libc.signal.restype = ctypes.c_void_p
    libc.signal.argtypes = [ctypes.c_int, ctypes.c_void_p]

    def like_rdkit() -> None:  # replace the handler at the C level, as RDKit's race leaves it
        libc.signal(signal.SIGINT, ctypes.c_void_p(1))  # SIG_IGN

    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        loop = asyncio.new_event_loop()  # not asyncio.run: it re-sets SIGINT on its way out
        try:
            loop.run_until_complete(Deadline(5).thread(like_rdkit))
        finally:
            loop.close()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # the handler runs between bytecodes; without it nothing happens
    finally:
        signal.signal(signal.SIGINT, previous)
