"""Accelerator, devices and precision flags: parsed once, checked against this machine."""

import random

import numpy as np
import pytest
import torch

from molfm.engine.hardware import (
    HardwareError,
    check_hardware,
    inference_autocast,
    inference_device,
    lightning_kwargs,
    parse_devices,
    seed_everything,
)

HAS_CUDA = torch.cuda.is_available()
needs_no_cuda = pytest.mark.skipif(HAS_CUDA, reason="checks the no-CUDA path")
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")


@pytest.mark.parametrize(
    "value, parsed",
    [
        ("1", 1),
        (" 2 ", 2),
        ("-1", -1),
        ("auto", "auto"),
        ("0,2", [0, 2]),
        ("3,", [3]),
        (4, 4),
        ([1, 0], [1, 0]),
    ],
)
def test_parse_devices(value, parsed):
    assert parse_devices(value) == parsed


@pytest.mark.parametrize(
    "value, message",
    [
        ("0", "a count must be >= 1"),
        ("-2", "a count must be >= 1"),
        ("two", "expected a count"),
        ("1.5", "expected a count"),
        ("0,x", "expected a count"),
        ("", "expected a count"),
    ],
)
def test_parse_devices_errors_name_the_value(value, message):
    with pytest.raises(HardwareError, match=message) as err:
        parse_devices(value)
    assert f"--devices {value!r}" in str(err.value)
    assert isinstance(err.value, ValueError)  # the CLI reports ValueErrors as one line


@needs_no_cuda
@pytest.mark.parametrize("accelerator", ["gpu", "cuda"])
def test_gpu_refused_without_cuda(accelerator):
    with pytest.raises(HardwareError, match=f"--accelerator {accelerator}: no CUDA device.*cpu"):
        check_hardware(accelerator)
    with pytest.raises(HardwareError, match="no CUDA device"):
        lightning_kwargs(accelerator, "1")
    with pytest.raises(HardwareError, match="no CUDA device"):
        inference_device(accelerator)


def test_cuda_device_counts_are_checked(monkeypatch):
    """The branch a CUDA machine takes, with torch told there are two devices."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    check_hardware("gpu", 2)
    check_hardware("cuda", [0, 1], "16-mixed")
    with pytest.raises(HardwareError, match="--devices 3: this machine has 2 CUDA devices"):
        check_hardware("gpu", 3)
    with pytest.raises(HardwareError, match=r"--devices 2: CUDA device indices here are 0\.\.1"):
        check_hardware("gpu", [0, 2])
    assert lightning_kwargs("cuda", "0,1") == {
        "accelerator": "gpu",
        "devices": [0, 1],
        "precision": "32-true",
    }
    assert inference_device("auto", "1,0") == torch.device("cuda", 1)


@needs_cuda
def test_real_cuda_device():
    assert inference_device("auto") == torch.device("cuda", 0)
    with inference_autocast(torch.device("cuda", 0), "bf16-mixed"):
        out = torch.nn.Linear(4, 4).cuda()(torch.ones(2, 4, device="cuda"))
    assert out.dtype == torch.bfloat16


def test_unknown_accelerator_and_precision():
    with pytest.raises(HardwareError, match="--accelerator 'tpu': expected one of auto, cpu"):
        check_hardware("tpu")
    with pytest.raises(HardwareError, match="--precision '8-bit': expected one of 32-true"):
        check_hardware("cpu", 1, "8-bit")
    with pytest.raises(HardwareError, match="--precision 16-mixed needs a GPU.*bf16-mixed"):
        check_hardware("cpu", 1, "16-mixed")
    check_hardware("cpu", 1, "bf16-mixed")
    check_hardware("cpu", 1, "32")


def test_lightning_kwargs_on_cpu():
    assert lightning_kwargs("cpu", "2", "bf16-mixed") == {
        "accelerator": "cpu",
        "devices": 2,
        "precision": "bf16-mixed",
    }
    with pytest.raises(HardwareError, match="--devices '0'"):
        lightning_kwargs("cpu", "0")


@needs_no_cuda
def test_inference_device_here_is_the_cpu():
    assert inference_device("auto") == torch.device("cpu")
    assert inference_device("cpu", "0,1") == torch.device("cpu")
    with pytest.raises(HardwareError, match="--devices 2: inference runs on one device"):
        inference_device("auto", "2")


def test_inference_autocast_precisions():
    torch.manual_seed(0)
    layer = torch.nn.Linear(16, 8)
    x = torch.randn(4, 16)
    plain = layer(x)
    cpu = torch.device("cpu")
    for precision in ("32-true", "32"):
        with inference_autocast(cpu, precision):
            full = layer(x)
        assert full.dtype == torch.float32
        torch.testing.assert_close(full, plain, rtol=0, atol=0)
    with inference_autocast(cpu, "bf16-mixed"):
        low = layer(x)
    assert low.dtype == torch.bfloat16
    assert not torch.equal(low.float(), plain)  # really computed in bfloat16
    torch.testing.assert_close(low.float(), plain, rtol=2e-2, atol=2e-2)
    assert layer(x).dtype == torch.float32  # autocast ends with the block
    with pytest.raises(HardwareError, match="16-mixed needs a GPU"):
        with inference_autocast(cpu, "16-mixed"):
            pass


def test_seed_everything_seeds_python_numpy_and_torch():
    def draw():
        # the legacy global numpy RNG is the one seed_everything seeds
        return random.random(), float(np.random.rand()), torch.rand(3).tolist()  # noqa: NPY002

    seed_everything(11)
    first = draw()
    seed_everything(11)
    assert draw() == first
    seed_everything(12)
    assert draw() != first
