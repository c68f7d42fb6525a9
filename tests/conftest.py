"""Fixtures shared across the test packages."""

import lightning as L
import pytest


class SimulatedKill(RuntimeError):
    pass


class StopAt(L.Callback):
    """Interrupt training (as a kill would) before the given step starts."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            raise SimulatedKill(f"stopped before step {self.step}")


@pytest.fixture
def kill_before_step():
    """``(make_callback, exception)``: ``make_callback(n)`` raises ``exception`` before step n."""
    return StopAt, SimulatedKill


@pytest.fixture(scope="session")
def benchmark_script():
    """``load(name)``: ``benchmarks/<name>.py`` as a module (the scripts are not a package)."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "benchmarks"

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, root / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
