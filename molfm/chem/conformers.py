"""3D conformers from RDKit (ETKDGv3 + optional force-field relaxation), with hard timeouts.

:func:`generate_conformer` embeds one molecule. :func:`generate_conformers` runs many SMILES in
worker processes and never hangs: RDKit's embedding cannot be interrupted from Python (its
own ``EmbedParameters.timeout`` is whole seconds and only checked between attempts; a 60-atom
macrocycle can overrun it by several seconds), so a worker that passes a molecule's wall-clock
limit is killed and replaced, and that molecule is reported as ``"timeout after X s"``.

Workers start through ``forkserver`` where available (else ``spawn``), so scripts that call
:func:`generate_conformers` need the usual ``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing as mp
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

import numpy as np
from rdkit import Chem, rdBase
from rdkit.Chem import rdDistGeom, rdForceFieldHelpers

from molfm.chem.parse import InvalidMoleculeError, parse_smiles, rdkit_messages

__all__ = [
    "ConformerOptions",
    "ConformerError",
    "ConformerResult",
    "generate_conformer",
    "generate_conformers",
]

_OPTIMIZERS = ("mmff", "uff")
_MIN_SEPARATION_A = 1e-3  # two atoms closer than this are a broken embedding


@dataclass(frozen=True)
class ConformerOptions:
    """How conformers are generated (stored with prepared data for reproducibility).

    Attributes
    ----------
    seed
        Random seed for ETKDG; attempt ``k`` uses ``seed + k``.
    optimize
        ``"mmff"`` (MMFF94), ``"uff"`` or ``None`` (raw ETKDG geometry).
    max_optimize_iters
        Force-field minimization steps.
    timeout_s
        Wall-clock limit per molecule. Hard (the worker is killed) in
        :func:`generate_conformers`; in :func:`generate_conformer` it is only passed to RDKit's
        embedding timeout, rounded up to whole seconds.
    max_attempts
        Embedding attempts: the first from ETKDG's distance-geometry eigenvectors, the others
        from random coordinates (which rescues many strained or large ring systems).
    """

    seed: int = 0
    optimize: str | None = "mmff"
    max_optimize_iters: int = 200
    timeout_s: float = 10.0
    max_attempts: int = 3

    def __post_init__(self) -> None:
        if self.optimize is not None and self.optimize not in _OPTIMIZERS:
            raise ValueError(
                f"optimize must be one of {_OPTIMIZERS} or None, not {self.optimize!r}"
            )
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class ConformerError(InvalidMoleculeError):
    """No usable 3D coordinates for a molecule (embedding, force field or timeout)."""


@dataclass(frozen=True)
class ConformerResult:
    """Outcome for one input of :func:`generate_conformers`.

    Attributes
    ----------
    index
        Position in the input sequence.
    smiles
        The input SMILES.
    positions
        float32 ``[N, 3]`` heavy-atom coordinates in Angstrom (atom order of the parsed
        SMILES), or ``None`` on failure.
    reason
        Why it failed (``None`` on success).
    seconds
        Wall-clock time spent on the molecule.
    """

    index: int
    smiles: str
    positions: np.ndarray | None
    reason: str | None
    seconds: float

    @property
    def ok(self) -> bool:
        return self.positions is not None


def _embed(mol_h: Chem.Mol, options: ConformerOptions, value: str) -> int:
    """Embed ``mol_h`` in place; return the conformer id or raise :class:`ConformerError`."""
    start = time.perf_counter()
    messages: list[str] = []
    for attempt in range(options.max_attempts):
        params = rdDistGeom.ETKDGv3()
        params.randomSeed = options.seed + attempt
        params.useRandomCoords = attempt > 0
        remaining = options.timeout_s - (time.perf_counter() - start)
        params.timeout = max(1, math.ceil(remaining))  # RDKit takes whole seconds
        with rdBase.CaptureErrorLog() as log:
            conf_id = rdDistGeom.EmbedMolecule(mol_h, params)
        if conf_id >= 0:
            return conf_id
        if log.messages:
            messages.append(rdkit_messages(log.messages))
        elapsed = time.perf_counter() - start
        if elapsed >= options.timeout_s:
            raise ConformerError(value, f"timeout after {options.timeout_s:g} s (embedding)")
    detail = f": {'; '.join(messages)}" if messages else ""
    raise ConformerError(value, f"embedding failed after {options.max_attempts} attempts{detail}")


def _optimize(mol_h: Chem.Mol, conf_id: int, options: ConformerOptions, value: str) -> None:
    with rdBase.CaptureErrorLog() as log:
        if options.optimize == "mmff":
            props = rdForceFieldHelpers.MMFFGetMoleculeProperties(mol_h)
            ff = None
            if props is not None:
                ff = rdForceFieldHelpers.MMFFGetMoleculeForceField(mol_h, props, confId=conf_id)
        else:
            ff = None
            if rdForceFieldHelpers.UFFHasAllMoleculeParams(mol_h):
                ff = rdForceFieldHelpers.UFFGetMoleculeForceField(mol_h, confId=conf_id)
    if ff is None:
        detail = rdkit_messages(log.messages) or "missing atom types or parameters"
        raise ConformerError(value, f"{options.optimize.upper()} setup failed: {detail}")
    # Not converging within the step budget still leaves a better geometry than ETKDG's.
    ff.Minimize(maxIts=options.max_optimize_iters)


def _check_coordinates(pos: np.ndarray, value: str) -> None:
    """Reject NaN/inf and collapsed geometries (e.g. all-zero coordinates)."""
    if not np.all(np.isfinite(pos)):
        raise ConformerError(value, "embedding produced non-finite coordinates")
    if len(pos) < 2:
        return
    diff = pos[:, None, :] - pos[None, :, :]
    dist = np.sqrt((diff**2).sum(-1))
    np.fill_diagonal(dist, np.inf)
    if dist.min() < _MIN_SEPARATION_A:
        raise ConformerError(value, "embedding produced overlapping atoms (zero coordinates)")


def generate_conformer(mol: Chem.Mol, options: ConformerOptions = ConformerOptions()) -> np.ndarray:
    """One 3D conformer for ``mol``: ETKDGv3 on the hydrogen-added molecule, then relaxation.

    Parameters
    ----------
    mol
        A sanitized molecule (normally from :func:`~molfm.chem.parse.parse_smiles`); it is not
        modified.
    options
        Seed, force field, attempts and timeout.

    Returns
    -------
    np.ndarray
        float32 ``[N, 3]`` coordinates in Angstrom for the ``N = mol.GetNumAtoms()`` atoms of
        ``mol``, in its atom order (heavy atoms for an H-free molecule, aligned with
        :func:`~molfm.chem.featurize.featurize`).

    Raises
    ------
    ConformerError
        If embedding fails on every attempt, the force field cannot be set up, RDKit's
        embedding timeout fires, or the coordinates are degenerate.
    """
    value = Chem.MolToSmiles(mol)
    n = mol.GetNumAtoms()
    if n == 0:
        raise ConformerError(value, "molecule has no atoms")
    mol_h = Chem.AddHs(mol)  # new atoms are appended, so atoms [0, n) keep mol's order
    conf_id = _embed(mol_h, options, value)
    if options.optimize is not None:
        _optimize(mol_h, conf_id, options, value)
    pos = mol_h.GetConformer(conf_id).GetPositions()
    _check_coordinates(pos, value)
    return pos[:n].astype(np.float32)


# ----------------------------------------------------------------------------------------------
# process pool with a hard per-molecule deadline


def _conformer_task(smiles: str, options: ConformerOptions) -> tuple[np.ndarray | None, str | None]:
    try:
        return generate_conformer(parse_smiles(smiles), options), None
    except InvalidMoleculeError as err:
        return None, err.reason
    except Exception as err:  # a worker must answer for every molecule, whatever RDKit raises
        return None, f"{type(err).__name__}: {err}"


def _worker_main(conn: Connection) -> None:
    conn.send("ready")
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        index, smiles, options = task
        start = time.perf_counter()
        positions, reason = _conformer_task(smiles, options)
        conn.send((index, positions, reason, time.perf_counter() - start))


class _Worker:
    def __init__(self, ctx: Any) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=_worker_main, args=(child,), daemon=True)
        self.process.start()
        child.close()
        self.ready = False
        self.task: tuple[int, str] | None = None
        self.started = 0.0

    def send(self, index: int, smiles: str, options: ConformerOptions) -> None:
        self.task = (index, smiles)
        self.started = time.perf_counter()
        self.conn.send((index, smiles, options))

    def stop(self, *, kill: bool) -> None:
        if not kill:
            try:
                self.conn.send(None)
                self.process.join(timeout=1.0)
            except (OSError, ValueError):
                pass
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.conn.close()


def _context() -> Any:
    methods = mp.get_all_start_methods()
    if "forkserver" in methods:
        ctx = mp.get_context("forkserver")
        # Import RDKit once in the server, so replacing a killed worker is a cheap fork.
        ctx.set_forkserver_preload(["molfm.chem.conformers"])
        return ctx
    return mp.get_context("spawn")


def _as_text(value: object) -> str:
    return value if isinstance(value, str) else repr(value)


def generate_conformers(
    smiles: Sequence[str],
    options: ConformerOptions = ConformerOptions(),
    *,
    processes: int = 1,
    progress: bool = False,
) -> list[ConformerResult]:
    """Conformers for many SMILES in worker processes, each molecule under a hard deadline.

    Parameters
    ----------
    smiles
        Input SMILES; invalid ones come back with their parse error as ``reason``.
    options
        Conformer options; ``options.timeout_s`` is the wall-clock limit per molecule, counted
        from when a ready worker receives it.
    processes
        Number of worker processes (at least 1; a killed worker is replaced).
    progress
        Show a progress bar (rich).

    Returns
    -------
    list[ConformerResult]
        One result per input, in input order.
    """
    if processes < 1:
        raise ValueError("processes must be at least 1")
    results: list[ConformerResult | None] = [None] * len(smiles)
    if not results:
        return []
    pending = deque(enumerate(smiles))
    ctx = _context()
    workers = [_Worker(ctx) for _ in range(min(processes, len(smiles)))]
    bar = _ProgressBar(len(smiles)) if progress else None
    failed_starts = 0

    def record(index: int, positions: np.ndarray | None, reason: str | None, sec: float) -> None:
        results[index] = ConformerResult(index, _as_text(smiles[index]), positions, reason, sec)
        if bar is not None:
            bar.advance()

    def replace(worker: _Worker) -> None:
        worker.stop(kill=True)
        workers[workers.index(worker)] = _Worker(ctx)

    try:
        remaining = len(smiles)
        while remaining:
            for worker in workers:
                if worker.ready and worker.task is None and pending:
                    index, value = pending.popleft()
                    worker.send(index, value, options)
            busy = [w for w in workers if w.task is not None]
            now = time.perf_counter()
            deadline = min((w.started + options.timeout_s for w in busy), default=now + 1.0)
            by_conn = {w.conn: w for w in workers}
            for conn in wait(list(by_conn), timeout=max(0.0, deadline - now)):
                worker = by_conn[conn]
                try:
                    message = conn.recv()
                except (EOFError, OSError):
                    code = worker.process.exitcode
                    if worker.task is None:
                        failed_starts += 1
                        if failed_starts > 3:
                            raise RuntimeError(
                                f"conformer workers fail to start (exit code {code})"
                            ) from None
                    else:
                        index = worker.task[0]
                        took = time.perf_counter() - worker.started
                        record(index, None, f"worker died (exit code {code})", took)
                        remaining -= 1
                    replace(worker)
                    continue
                if message == "ready":
                    worker.ready = True
                    continue
                index, positions, reason, took = message
                worker.task = None
                record(index, positions, reason, took)
                remaining -= 1
            now = time.perf_counter()
            for worker in [w for w in workers if w.task is not None]:
                if now - worker.started >= options.timeout_s:
                    index = worker.task[0]
                    reason = f"timeout after {options.timeout_s:g} s (worker killed)"
                    record(index, None, reason, now - worker.started)
                    remaining -= 1
                    replace(worker)
    finally:
        for worker in workers:
            worker.stop(kill=worker.task is not None)
        if bar is not None:
            bar.close()
    return [r for r in results if r is not None]


class _ProgressBar:
    def __init__(self, total: int) -> None:
        from rich.progress import Progress

        self._progress = Progress(transient=False)
        self._progress.start()
        self._task = self._progress.add_task("conformers", total=total)

    def advance(self) -> None:
        self._progress.advance(self._task)

    def close(self) -> None:
        self._progress.stop()
