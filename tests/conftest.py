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
