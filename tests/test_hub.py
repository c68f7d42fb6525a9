"""Checkpoint directories round-trip without pickle."""

import json
import subprocess
import sys
from dataclasses import dataclass

import pytest
import torch
from safetensors.torch import load_file

import molfm
from molfm import hub


@dataclass
class TinyConfig:
    n_in: int = 4
    n_hidden: int = 8


@hub.register_model("test-tiny-mlp")
class TinyMLP(torch.nn.Module):
    config_class = TinyConfig

    def __init__(self, config: TinyConfig):
        super().__init__()
        self.config = config
        self.net = torch.nn.Sequential(
            torch.nn.Linear(config.n_in, config.n_hidden),
            torch.nn.ReLU(),
            torch.nn.Linear(config.n_hidden, 1),
        )
        self.register_buffer("scale", torch.tensor([2.0]))

    def forward(self, x):
        return self.net(x) * self.scale


def test_round_trip_identical_outputs(tmp_path):
    torch.manual_seed(0)
    model = TinyMLP(TinyConfig(n_in=4, n_hidden=16)).eval()
    x = torch.randn(5, 4)
    hub.save_pretrained(model, tmp_path / "ckpt", extra={"feature_schema": {"name": "ogb"}})
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["model_type"] == "test-tiny-mlp"
    assert config["model_config"] == {"n_in": 4, "n_hidden": 16}
    assert config["feature_schema"] == {"name": "ogb"}
    assert config["molfm_version"] == molfm.__version__
    loaded = hub.from_pretrained(tmp_path / "ckpt")
    assert isinstance(loaded, TinyMLP) and not loaded.training
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_fp16_storage_loads_as_float32(tmp_path):
    model = TinyMLP(TinyConfig())
    hub.save_pretrained(model, tmp_path, dtype=torch.float16)
    stored = load_file(str(tmp_path / hub.WEIGHTS_NAME))
    assert all(t.dtype == torch.float16 for t in stored.values())
    loaded = hub.from_pretrained(tmp_path)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, atol=1e-2, rtol=1e-3)


def test_unregistered_model_and_missing_checkpoint(tmp_path):
    with pytest.raises(TypeError, match="not a registered molfm model"):
        hub.save_pretrained(torch.nn.Linear(2, 2), tmp_path)
    with pytest.raises(FileNotFoundError, match="not a molfm checkpoint"):
        hub.from_pretrained(tmp_path / "nothing")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "config.json").write_text(json.dumps({"model_type": "nope"}))
    with pytest.raises(KeyError, match="unknown model type 'nope'"):
        hub.from_pretrained(tmp_path / "x")


def test_weights_file_is_not_a_pickle(tmp_path):
    hub.save_pretrained(TinyMLP(TinyConfig()), tmp_path)
    head = (tmp_path / hub.WEIGHTS_NAME).read_bytes()[:2]
    assert head != b"\x80\x04" and head != b"PK"  # neither a pickle nor a torch zip


SHIPPED = {
    "gp-molformer-small-moses": "gp-molformer",
    "gp-molformer-small-moses-analogs": "gp-molformer",
    "transformer-m-small-qm9": "property",
    "gps-3dpgt-small-qm9": "gps",
    "molca-small-pubchem-names": "molca",
}


def test_shipped_models_are_registered_by_their_systems():
    shipped = hub.shipped_models()
    assert set(shipped) == set(SHIPPED)
    for name, path in shipped.items():
        assert path == hub.ASSETS / name
        assert hub.load_config(path)["model_type"] == SHIPPED[name]
        assert 100_000 < (path / hub.WEIGHTS_NAME).stat().st_size < 20 * 2**20
        assert hub.resolve_checkpoint(name) == path


def test_resolve_checkpoint_takes_a_directory_and_names_what_failed(tmp_path):
    hub.save_pretrained(TinyMLP(TinyConfig()), tmp_path / "mine")
    assert hub.resolve_checkpoint(tmp_path / "mine") == tmp_path / "mine"
    assert hub.resolve_checkpoint(str(tmp_path / "mine")) == tmp_path / "mine"
    hub.save_pretrained(TinyMLP(TinyConfig()), tmp_path / "run" / "model")
    assert hub.resolve_checkpoint(tmp_path / "run") == tmp_path / "run" / "model"  # a run dir
    names = ", ".join(sorted(SHIPPED))
    for value in ("gp-molformer-large", tmp_path / "empty"):
        (tmp_path / "empty").mkdir(exist_ok=True)  # a directory without config.json
        with pytest.raises(FileNotFoundError) as err:
            hub.resolve_checkpoint(value)
        message = str(err.value)
        assert message.startswith(f"{value} is neither a shipped model ({names})")
        assert "config.json" in message and "\n" not in message


REGISTRY_SCRIPT = """
import sys
import molfm
from molfm import hub
assert "molfm.systems" not in sys.modules and "torch" not in sys.modules
assert hub._MODELS == {} and hub._MODEL_MODULES == {}  # nothing registered by hub itself
print(sorted(hub.shipped_models()))
assert "torch" not in sys.modules  # naming models does not load torch
try:
    hub.get_model_class("graphormer")
except KeyError as err:  # declared model types are listed before their module is imported
    assert "'gp-molformer'" in str(err) and "torch" not in sys.modules, err
else:
    raise AssertionError("an unknown model type was found")
cls = hub.get_model_class("gp-molformer")
print(cls.__module__, cls.__name__, cls.model_type)
"""


def test_registry_is_filled_by_the_systems():
    """In a fresh interpreter importing only molfm.hub, 'gp-molformer' is found through
    molfm.systems.gp_molformer's registration (not through an import made by the tests)."""
    result = subprocess.run(
        [sys.executable, "-c", REGISTRY_SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines == [
        str(sorted(SHIPPED)),
        "molfm.systems.gp_molformer.model GPMoLFormer gp-molformer",
    ]


def test_unknown_model_type_lists_the_registered_ones():
    with pytest.raises(KeyError, match=r"unknown model type 'graphormer'.*'gp-molformer'"):
        hub.get_model_class("graphormer")
