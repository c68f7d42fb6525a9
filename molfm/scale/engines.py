"""The engines that run a job's parts: this machine (one process, or worker processes) and Ray.

Both build the job's batch function once per worker (a process, or a Ray actor: one model
each) and call :func:`~molfm.scale.stream.run_part` on the parts they are given; only how the
parts reach the workers differs. Parts are written by the workers themselves (to the parts
directory, which every worker must see: a local disk, or a shared file system on a cluster).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import nullcontext
from pathlib import Path

from molfm.scale.batches import Job
from molfm.scale.chunks import Chunk

__all__ = ["run_local", "run_ray", "ray_shard_engine"]

_worker: tuple | None = None  # (batch function, columns) of this worker process


def _init_worker(job: Job) -> None:
    global _worker
    import torch

    torch.set_num_threads(1)  # one core per worker process
    _worker = (job.build(), job.input_columns())


def _run_in_worker(chunk: Chunk, parts: str) -> int:
    from molfm.scale.parts import run_part

    fn, columns = _worker
    return run_part(fn, chunk, columns, Path(parts))


def _progress(enabled: bool, total: int, what: str):
    if not enabled:
        return nullcontext(None)
    from rich.progress import Progress

    bar = Progress(transient=True)
    bar.add_task(what, total=total)
    return bar


def run_local(
    job: Job,
    chunks: Sequence[Chunk],
    parts: Path,
    *,
    workers: int = 1,
    on_done: Callable[[int], None] = lambda index: None,
    progress: bool = False,
) -> None:
    """Run ``chunks`` here: in this process (``workers=1``) or in ``workers`` processes, each
    with its own model; at most two parts per worker are in flight (bounded memory)."""
    from molfm.scale.parts import run_part

    with _progress(progress, len(chunks), f"{len(chunks)} parts") as bar:
        advance = (lambda: bar.advance(bar.task_ids[0])) if bar is not None else (lambda: None)
        if workers <= 1:
            fn, columns = job.build(), job.input_columns()
            for chunk in chunks:
                on_done(run_part(fn, chunk, columns, parts))
                advance()
            return
        pending = list(reversed(chunks))
        with ProcessPoolExecutor(
            workers, initializer=_init_worker, initargs=(job,), mp_context=_context()
        ) as pool:
            running = set()
            try:
                while pending or running:
                    while pending and len(running) < 2 * workers:
                        running.add(pool.submit(_run_in_worker, pending.pop(), str(parts)))
                    done, running = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        on_done(future.result())
                        advance()
            except BaseException:
                for future in running:
                    future.cancel()
                raise


def _context():
    import multiprocessing

    # fork would copy a parent's torch threads and locks; spawn starts clean workers
    return multiprocessing.get_context("spawn")


class _PartActor:
    """A Ray actor: one batch function (one model), parts in, part indices out."""

    def __init__(self, job: Job, parts: str) -> None:
        self.fn, self.columns = job.build(), job.input_columns()
        self.parts = Path(parts)

    def __call__(self, batch: dict) -> dict:
        from molfm.scale.parts import run_part

        fields = Chunk.__dataclass_fields__
        done = []
        for i in range(len(batch["index"])):
            chunk = Chunk(**{name: _plain(batch[name][i]) for name in fields})
            done.append(run_part(self.fn, chunk, self.columns, self.parts))
        return {"index": done}


def _plain(value):
    return value.item() if hasattr(value, "item") else str(value)


def run_ray(
    job: Job,
    chunks: Sequence[Chunk],
    parts: Path,
    *,
    workers: int = 1,
    on_done: Callable[[int], None] = lambda index: None,
    progress: bool = False,
    address: str | None = None,
    gpus_per_worker: float | None = None,
) -> None:
    """Run ``chunks`` on Ray Data: ``map_batches`` over the part descriptions with a pool of
    ``workers`` actors (one model each, ``gpus_per_worker`` GPUs each: default 1 when the
    cluster has GPUs). Without ``address``, a local cluster of ``workers + 1`` CPUs (the
    extra one runs Ray Data's own tasks beside the actors, which would otherwise stall)."""
    with _ray_session(address, workers) as ray:
        if gpus_per_worker is None:
            gpus_per_worker = 1.0 if ray.cluster_resources().get("GPU", 0) else 0.0
        items = [{name: getattr(c, name) for name in Chunk.__dataclass_fields__} for c in chunks]
        dataset = ray.data.from_items(items).map_batches(
            _PartActor,
            fn_constructor_kwargs={"job": job, "parts": str(parts)},
            batch_size=1,
            concurrency=workers,
            num_cpus=1,
            num_gpus=gpus_per_worker,
        )
        with _progress(progress, len(chunks), f"{len(chunks)} parts on Ray") as bar:
            for batch in dataset.iter_batches(batch_size=1, batch_format="numpy"):
                for index in batch["index"]:
                    on_done(int(index))
                    if bar is not None:
                        bar.advance(bar.task_ids[0])


@contextlib.contextmanager
def _ray_session(address: str | None, workers: int):
    """Ray, joined at ``address`` or started here with ``workers + 1`` CPUs (the extra one
    runs Ray Data's own tasks beside the actors, which would otherwise stall); left as it
    was found. Failures inside come out as molfm's one-line errors where they are molfm's."""
    try:
        import ray
    except ImportError:
        raise ValueError("--engine ray needs Ray: pip install 'molfm[scale]'") from None
    import logging

    logging.getLogger("ray").setLevel(logging.ERROR)  # Ray's info lines are not molfm's output
    started = not ray.is_initialized()
    if started:
        options = {"address": address} if address else {"num_cpus": workers + 1}
        ray.init(
            **options,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}} if not address else None,
        )
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.execution_options.preserve_order = True
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        yield ray
    except Exception as err:
        raise _user_error(err) from None
    finally:
        if started:
            ray.shutdown()


class _ShardActor:
    """A Ray actor featurizing shards of a data set (``molfm data prepare --engine ray``)."""

    def __init__(self, source, frame_ref, shard_size: int, path: str, options: dict) -> None:
        import ray

        self.source, self.frame = source, ray.get(frame_ref[0])
        self.shard_size, self.path, self.options = shard_size, path, options

    def __call__(self, batch: dict) -> dict:
        from molfm.data.prepare import run_shard

        out = {"index": [], "n_ok": [], "n_bad": []}
        for index in batch["index"]:
            i = int(index)
            rows = self.frame.iloc[i * self.shard_size : (i + 1) * self.shard_size]
            _, n_ok, n_bad = run_shard(self.source, rows, i, self.path, self.options)
            out["index"].append(i), out["n_ok"].append(n_ok), out["n_bad"].append(n_bad)
        return out


def ray_shard_engine(address: str | None, workers: int):
    """A ``shard_engine`` for :func:`molfm.data.prepare.prepare_dataset` that featurizes the
    shards on Ray: ``map_batches`` over shard indices with ``workers`` actors, the rows put in
    Ray's object store once."""

    def engine(source, frame, todo, shard_size, path, options, on_done) -> None:
        with _ray_session(address, workers) as ray:
            frame_ref = [ray.put(frame)]  # in a list: Ray passes it on unresolved
            dataset = ray.data.from_items([{"index": i} for i in todo]).map_batches(
                _ShardActor,
                fn_constructor_kwargs={
                    "source": source,
                    "frame_ref": frame_ref,
                    "shard_size": shard_size,
                    "path": path,
                    "options": options,
                },
                batch_size=1,
                concurrency=workers,
                num_cpus=1,
            )
            for batch in dataset.iter_batches(batch_size=1, batch_format="numpy"):
                on_done((int(batch["index"][0]), int(batch["n_ok"][0]), int(batch["n_bad"][0])))

    return engine


def _user_error(err: Exception) -> Exception:
    """The molfm error a Ray failure carries (one line for the user), else the Ray error."""
    from molfm.chem.parse import InvalidMoleculeError

    seen = err
    while seen is not None:
        if isinstance(seen, InvalidMoleculeError | ValueError | FileNotFoundError) and not (
            type(seen).__module__.startswith("ray")
        ):
            return seen
        seen = seen.__cause__ or getattr(seen, "cause", None)
    return err
