"""The step planning of benchmarks/molca_gpu.py (the GPU runs themselves are not run here)."""

import pytest


@pytest.fixture(scope="module")
def gpu(benchmark_script):
    return benchmark_script("molca_gpu")


def test_naming_runs_get_the_same_steps_the_slowest_fits(gpu):
    probe = {"1d2d-gine": 0.6, "1d": 0.45, "2d-gine": 0.5, "stage1-gine": 0.4}
    steps = gpu.plan_steps(probe, seconds=185, cap=20_000)
    assert steps["1d2d-gine"] == steps["1d"] == steps["2d-gine"] == 300  # 185 / 0.6 -> 308 -> 300
    assert steps["stage1-gine"] == 460  # its own step time
    assert gpu.plan_steps(probe, seconds=1e6, cap=1000)["1d"] == 1000
    assert gpu.plan_steps({"1d": 5.0}, seconds=1, cap=1000) == {"1d": 10}  # at least 10


def test_median_step_skips_the_warm_up_steps(gpu):
    assert gpu.median_step({"step_seconds": [9.0, 8.0, 7.0, 0.5, 0.6, 0.4]}) == 0.5
    assert gpu.median_step({"step_seconds": [2.0]}) == 2.0
    assert gpu.median_step(None) is None
