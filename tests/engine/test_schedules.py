"""warmup_cosine: the factors match the documented formula and are what AdamW trains with."""

import math

import pytest
import torch

from molfm.engine.schedules import warmup_cosine


def expected_factor(step: int, warmup: int, max_steps: int, floor: float) -> float:
    """The schedule written out independently: linear ramp, half cosine, then the floor."""
    if step < warmup:
        return (step + 1) / warmup
    if step >= max_steps:
        return floor
    done = (step - warmup) / (max_steps - warmup)
    return floor + (1 - floor) * (1 + math.cos(math.pi * done)) / 2


def _optimizer(lr: float) -> tuple[torch.nn.Parameter, torch.optim.AdamW]:
    param = torch.nn.Parameter(torch.zeros(3))
    return param, torch.optim.AdamW([param], lr=lr, weight_decay=0.0, eps=1e-12)


@pytest.mark.parametrize(
    "warmup, max_steps, floor", [(5, 40, 0.1), (1, 10, 0.0), (10, 11, 0.5), (4, 5, 0.25)]
)
def test_factors_follow_the_formula(warmup, max_steps, floor):
    _, optimizer = _optimizer(1.0)
    scheduler = warmup_cosine(
        optimizer, warmup_steps=warmup, max_steps=max_steps, min_lr_ratio=floor
    )
    for step in range(max_steps + 20):
        want = expected_factor(step, warmup, max_steps, floor)
        assert scheduler.lr_lambdas[0](step) == pytest.approx(want, abs=1e-12), step


def test_adamw_trains_at_the_scheduled_lr():
    """With a constant gradient every AdamW step moves each weight by exactly its LR
    (m_hat / sqrt(v_hat) = 1), so the movement per step is the LR the optimizer used."""
    peak, warmup, max_steps, floor = 3e-3, 4, 20, 0.1
    param, optimizer = _optimizer(peak)
    scheduler = warmup_cosine(
        optimizer, warmup_steps=warmup, max_steps=max_steps, min_lr_ratio=floor
    )
    moved, group_lr = [], []
    for _ in range(max_steps + 5):
        before = param.detach().clone()
        group_lr.append(optimizer.param_groups[0]["lr"])
        param.grad = torch.full_like(param, 0.7)
        optimizer.step()
        scheduler.step()
        moved.append(float((before - param.detach()).mean()))
    want = [peak * expected_factor(s, warmup, max_steps, floor) for s in range(max_steps + 5)]
    assert moved == pytest.approx(want, rel=1e-5)
    assert group_lr == pytest.approx(want, rel=1e-12)
    assert moved[0] == pytest.approx(peak / warmup, rel=1e-5)  # the first step already trains
    assert moved[warmup] == pytest.approx(peak, rel=1e-5)  # the peak right after warm-up
    assert all(a > b for a, b in zip(moved[warmup : max_steps - 1], moved[warmup + 1 : max_steps]))
    assert moved[max_steps:] == pytest.approx([floor * peak] * 5, rel=1e-5)  # held at the floor


def test_schedule_resumes_from_its_state_dict():
    _, optimizer = _optimizer(1.0)
    scheduler = warmup_cosine(optimizer, warmup_steps=3, max_steps=12)
    for _ in range(7):
        optimizer.step()
        scheduler.step()
    state = scheduler.state_dict()
    _, fresh_optimizer = _optimizer(1.0)
    fresh = warmup_cosine(fresh_optimizer, warmup_steps=3, max_steps=12)
    fresh.load_state_dict(state)
    fresh_optimizer.param_groups[0]["lr"] = optimizer.param_groups[0]["lr"]
    for _ in range(3):
        optimizer.step(), scheduler.step(), fresh_optimizer.step(), fresh.step()
        assert fresh.get_last_lr() == scheduler.get_last_lr()
    assert scheduler.get_last_lr()[0] == pytest.approx(expected_factor(10, 3, 12, 0.1))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(warmup_steps=0, max_steps=10), r"warmup_steps and max_steps must be >= 1, got 0, 10"),
        (dict(warmup_steps=2, max_steps=0), r"must be >= 1, got 2, 0"),
        (dict(warmup_steps=-1, max_steps=5), r"got -1, 5"),
        (dict(warmup_steps=2, max_steps=10, min_lr_ratio=-0.1), r"min_lr_ratio.*-0\.1"),
        (dict(warmup_steps=2, max_steps=10, min_lr_ratio=1.5), r"min_lr_ratio.*1\.5"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    _, optimizer = _optimizer(1.0)
    with pytest.raises(ValueError, match=message):
        warmup_cosine(optimizer, **kwargs)
