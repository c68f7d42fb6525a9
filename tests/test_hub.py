"""Checkpoint directories round-trip without pickle."""

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

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
    "molca-small-pubchem-retrieval": "molca-stage1",
}


def test_shipped_models_are_the_checkpoints_in_assets():
    shipped = hub.shipped_models()
    assert set(shipped) == set(SHIPPED)
    for name, path in shipped.items():
        assert path == hub.ASSETS / name
        assert hub.load_config(path)["model_type"] == SHIPPED[name]
        assert 100_000 < (path / hub.WEIGHTS_NAME).stat().st_size < 20 * 2**20
        assert hub.resolve_checkpoint(name) == path


def test_systems_name_shipped_checkpoints():
    from molfm.systems.gp_molformer import DEFAULT_PAIR_TUNING_MODEL, DEFAULT_SMILES_MODEL
    from molfm.systems.molca import NAMING_MODEL, RETRIEVAL_MODEL
    from molfm.systems.pgt3d import PRETRAINED_ENCODER
    from molfm.systems.transformer_m import DEFAULT_PROPERTY_MODEL

    named = {DEFAULT_SMILES_MODEL, DEFAULT_PAIR_TUNING_MODEL, NAMING_MODEL, PRETRAINED_ENCODER}
    named.add(RETRIEVAL_MODEL)
    assert named | {DEFAULT_PROPERTY_MODEL} == set(hub.shipped_models())


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
from molfm import hub
assert "torch" not in sys.modules
print(sorted(hub.shipped_models()))
try:
    hub.get_model_class("graphormer")
except KeyError as err:  # listed model types are named before their module is imported
    assert "'gp-molformer'" in str(err), err
else:
    raise AssertionError("an unknown model type was found")
assert "torch" not in sys.modules  # naming models does not load torch
cls = hub.get_model_class("gp-molformer")
print(cls.__module__, cls.__name__, cls.model_type)
loaded = sorted(m for m in sys.modules if m.startswith("molfm.systems."))
print([m for m in loaded if not m.startswith("molfm.systems.gp_molformer")])
"""


def test_a_model_type_loads_only_its_own_module():
    """In a fresh interpreter importing only molfm.hub, 'gp-molformer' is found through
    MODEL_MODULES (not through an import made by the tests), and no other system loads."""
    result = subprocess.run(
        [sys.executable, "-c", REGISTRY_SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines == [
        str(sorted(SHIPPED)),
        "molfm.systems.gp_molformer.model GPMoLFormer gp-molformer",
        "[]",
    ]


REGISTERED = re.compile(r"""^@register_model\(["']([^"']+)["']\)""", re.MULTILINE)


def test_model_modules_lists_every_registered_model_where_it_is_defined():
    """MODEL_MODULES is a hand-written table: it must name exactly the modules whose
    @register_model defines each type (a renamed or added model module fails here)."""
    package = Path(molfm.__file__).parent
    found = {}
    for path in package.rglob("*.py"):
        module = ".".join(path.relative_to(package.parent).with_suffix("").parts)
        for name in REGISTERED.findall(path.read_text(encoding="utf-8")):
            found[name] = module
    assert found == hub.MODEL_MODULES
    for name, module in hub.MODEL_MODULES.items():
        cls = hub.get_model_class(name)
        assert (cls.__module__, cls.model_type) == (module, name)


def test_unknown_model_type_lists_the_registered_ones():
    with pytest.raises(KeyError, match=r"unknown model type 'graphormer'.*'gp-molformer'"):
        hub.get_model_class("graphormer")
