"""The MolCA model and its stage-2 / fine-tuning task, on the tiny Llama, a 2-layer GINE and a
2-layer Q-Former from MiniLM: prompts per input mode, loss on targets only, overfitting and
generation, what trains in each mode, checkpoints (partial, round trip, LM identity), stage-1
initialization, Lightning resume; the hub's partial-checkpoint hooks."""

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch.testing import assert_close
from torch.utils.data import DataLoader

from molfm import hub
from molfm.chem.featurize import smiles_to_data
from molfm.data.dense import DenseGraphDataset, collate_dense
from molfm.nn.gine import GINEConfig, GINEEncoder
from molfm.systems.molca.lm import save_tiny_lm, tiny_llama
from molfm.systems.molca.lora import LMTuning, count_parameters
from molfm.systems.molca.model import LMMismatchError, MolCA, MolCAConfig
from molfm.systems.molca.prompt import IGNORE_INDEX
from molfm.systems.molca.qformer import QFormer, QFormerConfig
from molfm.systems.molca.task import MolCATask

PAIRS = [
    ("CCO", "ethanol"),
    ("CO", "methanol"),
    ("CC(=O)O", "acetic acid"),
    ("c1ccccc1", "benzene"),
]
GINE = {"type": "gine", "config": {"num_layers": 2, "dim": 32, "dropout": 0.0}}
QF = {"num_layers": 2, "num_query_tokens": 4, "dropout": 0.0, "attention_dropout": 0.0}


def _save_lm(directory, seed=0):
    # larger init: peaked logits
    return str(save_tiny_lm(directory, seed=seed, initializer_range=0.3))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # tiny matrices: a second thread only adds contention on a shared 2-core machine
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    return _save_lm(tmp_path_factory.mktemp("tiny-llama"))


def _config(lm_dir, mode="lora", input_mode="1d2d", **fields) -> MolCAConfig:
    tuning = {"mode": mode, "r": 8, "alpha": 16, "dropout": 0.0}
    return MolCAConfig(
        graph_encoder=GINE, qformer=QF, lm=lm_dir, lm_tuning=tuning, input_mode=input_mode, **fields
    )


def _graphs(smiles):
    data = DenseGraphDataset([smiles_to_data(s) for s in smiles])
    return collate_dense([data[i] for i in range(len(smiles))])


@dataclass
class Batch:
    graphs: Any
    smiles: list[str]
    texts: list[str]


def _batch(pairs=PAIRS) -> Batch:
    smiles = [s for s, _ in pairs]
    return Batch(_graphs(smiles), smiles, [t for _, t in pairs])


def _texts(tokenizer, ids) -> str:
    return tokenizer.decode(ids.tolist())


def _train(model, batch, steps, lr=3e-3):
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    model.train()
    losses = []
    for _ in range(steps):
        loss = model.loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("input_mode", ["1d", "2d", "1d2d"])
def test_input_modes_build_their_prompts(lm_dir, input_mode):
    model = MolCA.build(_config(lm_dir, input_mode=input_mode))
    batch = model.prompts(["CC(=O)Oc1ccccc1C(=O)O", "CCO"], "Name it.", ["aspirin", "ethanol"])
    nq = {"1d": 0, "2d": 4, "1d2d": 4}[input_mode]
    assert batch.graph_mask.sum(-1).tolist() == [nq, nq]
    shown = batch.attention_mask.bool() & ~batch.graph_mask
    text = _texts(model.tokenizer, batch.input_ids[0][shown[0]])
    assert ("CC(=O)Oc1ccccc1C(=O)O" in text) == (input_mode != "2d")
    assert "Name it." in text and text.endswith("aspirin<|im_end|>")
    if input_mode != "1d":  # the graph slots sit right after the SMILES (or "Molecule: ")
        before = "Molecule: " + ("" if input_mode == "2d" else "CC(=O)Oc1ccccc1C(=O)O")
        start = int(batch.graph_mask[0].float().argmax())
        assert _texts(model.tokenizer, batch.input_ids[0, :start]) == before
    assert (model.graph_encoder is None) == (input_mode == "1d")
    data = _batch(PAIRS[:2])
    out = model(data.graphs if input_mode != "1d" else None, data.smiles, "Name it.", data.texts)
    assert torch.isfinite(out.loss)


def test_loss_is_on_target_tokens_only(lm_dir):
    model = MolCA.build(_config(lm_dir)).eval()
    data = _batch(PAIRS[:2])
    inputs = model.lm_inputs(
        data.graphs, data.smiles, model.config.instruction("iupac"), data.texts
    )
    labels = inputs["labels"]
    for row, name in zip(labels, data.texts, strict=True):
        assert _texts(model.tokenizer, row[row != IGNORE_INDEX]) == name + "<|im_end|>"
    with torch.no_grad():
        logits = model.lm(**{k: v for k, v in inputs.items() if k != "labels"}).logits
        loss = model.loss(data)
    expected = F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten())
    assert_close(loss, expected)


def test_overfits_four_names_and_generates_them(lm_dir):
    model = MolCA.build(_config(lm_dir))
    batch = _batch()
    losses = _train(model, batch, 60)
    assert losses[0] > 3.0 and losses[-1] < 0.05, losses[::10]
    greedy = model.generate(batch.graphs, batch.smiles, num_beams=1, max_new_tokens=16)
    beams = model.generate(
        batch.graphs, batch.smiles, num_beams=3, num_return_sequences=2, max_new_tokens=16
    )
    assert [g[0] for g in greedy] == batch.texts
    assert [b[0] for b in beams] == batch.texts and all(len(b) == 2 for b in beams)
    assert model.training  # generate restores the mode


def test_lora_mode_trains_adapters_and_the_graph_side(lm_dir):
    model = MolCA.build(_config(lm_dir, mode="lora"))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    lm = {n for n in trainable if n.startswith("lm.")}
    assert lm and all(".lora_" in n for n in lm)
    assert count_parameters(model.lm).trainable == sum(
        p.numel() for n, p in model.named_parameters() if n in lm
    )
    for part in ("graph_encoder.", "projector."):
        assert all(n in trainable for n, _ in model.named_parameters() if n.startswith(part))
    frozen_qformer = {n for n, p in model.qformer.named_parameters() if not p.requires_grad}
    assert "word_embeddings.weight" in frozen_qformer  # the unused text path
    assert "bert.encoder.layer.0.intermediate.dense.weight" in frozen_qformer
    assert "bert.encoder.layer.0.intermediate_query.dense.weight" not in frozen_qformer
    assert "query_tokens" not in frozen_qformer
    counts = model.parameter_counts()
    assert counts["lm"].trainable == count_parameters(model.lm).trainable
    assert counts["projector"].trainable == 384 * 64 + 64


def _lm_state(model):
    return {n: p.detach().clone() for n, p in model.lm.named_parameters()}


def test_stage2_task_freezes_the_lm_and_trains_the_graph_side(lm_dir):
    task = MolCATask(asdict(_config(lm_dir)), stage="2", lr=1e-3, warmup_steps=1, max_steps=5)
    model = task.model
    assert model.config.lm_tuning.mode == "frozen"
    assert count_parameters(model.lm).trainable == 0
    before_lm, before_proj = _lm_state(model), model.projector.weight.detach().clone()
    optimizer = task.configure_optimizers()["optimizer"]
    assert {id(p) for g in optimizer.param_groups for p in g["params"]} == {
        id(p) for p in model.parameters() if p.requires_grad
    }
    model.train()
    model.loss(_batch()).backward()
    optimizer.step()
    assert not torch.equal(model.projector.weight, before_proj)
    for name, value in _lm_state(model).items():
        assert torch.equal(value, before_lm[name]), name


def _checkpoint_sizes(directory):
    state = load_file(str(directory / "model.safetensors"))
    return state, (directory / "model.safetensors").stat().st_size


def test_lora_checkpoint_round_trip_holds_no_frozen_lm_weights(lm_dir, tmp_path):
    model = MolCA.build(_config(lm_dir))
    batch = _batch()
    _train(model, batch, 3)  # LoRA B != 0, graph side moved
    model.eval()
    hub.save_pretrained(model, tmp_path / "ckpt")
    loaded = hub.from_pretrained(tmp_path / "ckpt")
    assert isinstance(loaded, MolCA) and loaded.config == model.config
    with torch.no_grad():
        expected = model(batch.graphs, batch.smiles, "Name it.").logits
        assert_close(loaded(batch.graphs, batch.smiles, "Name it.").logits, expected)
    kwargs = {"num_beams": 3, "max_new_tokens": 8}
    assert loaded.generate(batch.graphs, batch.smiles, **kwargs) == model.generate(
        batch.graphs, batch.smiles, **kwargs
    )
    state, size = _checkpoint_sizes(tmp_path / "ckpt")
    assert set(state) == set(model.checkpoint_state_dict())
    lm_keys = [k for k in state if k.startswith("lm.")]
    assert lm_keys and all(".lora_" in k for k in lm_keys)
    assert not any(k.startswith(("qformer.word_", "qformer.position_")) for k in state)
    stored = sum(t.numel() * t.element_size() for t in state.values())
    frozen_lm = sum(p.numel() * 4 for p in model.lm.parameters() if not p.requires_grad)
    full = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    assert size < stored + 64_000  # the file is the stored tensors plus a header
    assert full - stored >= frozen_lm  # the frozen LM (and the unused text path) stay out
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())["model_config"]
    assert config["lm"] == model.config.lm and len(config["lm_sha256"]) == 64


def test_full_mode_checkpoint_stores_the_lm(lm_dir, tmp_path):
    model = MolCA.build(_config(lm_dir, mode="full", input_mode="1d"))
    _train(model, _batch(PAIRS[:2]), 2)
    hub.save_pretrained(model, tmp_path / "full")
    state, _ = _checkpoint_sizes(tmp_path / "full")
    lm_params = dict(model.lm.named_parameters())  # tied weights once
    assert set(state) == {f"lm.{n}" for n in lm_params}
    loaded = hub.from_pretrained(tmp_path / "full")
    for name, param in loaded.lm.named_parameters():
        assert torch.equal(param, lm_params[name]), name
    assert loaded.lm.lm_head.weight is loaded.lm.model.embed_tokens.weight


def test_a_different_lm_is_refused_with_one_clear_error(tmp_path):
    lm = _save_lm(tmp_path / "lm")
    model = MolCA.build(_config(lm, mode="frozen", input_mode="1d"))
    hub.save_pretrained(model, tmp_path / "ckpt")
    other = tiny_llama(seed=1, pad_token_id=None, initializer_range=0.3)
    other.save_pretrained(tmp_path / "lm")  # same folder, other weights
    with pytest.raises(LMMismatchError, match="sha256") as error:
        hub.from_pretrained(tmp_path / "ckpt")
    assert "\n" not in str(error.value) and str(tmp_path / "lm") in str(error.value)


def test_partial_checkpoint_with_wrong_keys_is_refused(lm_dir, tmp_path):
    model = MolCA.build(_config(lm_dir, mode="frozen"))
    hub.save_pretrained(model, tmp_path / "ckpt")
    state = load_file(str(tmp_path / "ckpt" / "model.safetensors"))
    state.pop("projector.weight")
    save_file(state, str(tmp_path / "ckpt" / "model.safetensors"))
    with pytest.raises(ValueError, match="missing \\['projector.weight'\\]"):
        hub.from_pretrained(tmp_path / "ckpt")


@dataclass
class FakeStage1Config:
    graph_encoder: dict = field(default_factory=lambda: dict(GINE["config"]))
    qformer: dict = field(default_factory=lambda: dict(QF, graph_dim=32))


class _Partial(torch.nn.Module):
    config_class = FakeStage1Config  # any dataclass

    def __init__(self, config) -> None:
        super().__init__()
        self.config = config
        self.kept = torch.nn.Linear(2, 2)
        self.rebuilt = torch.nn.Linear(2, 2)
        self.loaded: list[str] = []

    def checkpoint_state_dict(self):
        return {k: v for k, v in self.state_dict().items() if k.startswith("kept.")}

    def load_checkpoint_state_dict(self, state):
        self.loaded = sorted(state)
        self.load_state_dict(state, strict=False)


hub.register_model("test-molca-partial")(_Partial)


@hub.register_model("test-molca-stage1")
class FakeStage1(torch.nn.Module):
    """Stands for the stage-1 model: any hub model with ``graph_encoder`` and ``qformer``."""

    config_class = FakeStage1Config

    def __init__(self, config: FakeStage1Config) -> None:
        super().__init__()
        self.config = config
        self.graph_encoder = GINEEncoder(GINEConfig(**config.graph_encoder))
        self.qformer = QFormer(QFormerConfig(**config.qformer))


def test_from_stage1_copies_the_graph_encoder_and_qformer(lm_dir, tmp_path):
    torch.manual_seed(3)
    stage1 = FakeStage1(FakeStage1Config())
    hub.save_pretrained(stage1, tmp_path / "stage1")
    model = MolCA.from_stage1(tmp_path / "stage1", lm=lm_dir)
    assert model.config.lm_tuning.mode == "frozen"
    assert model.config.graph_encoder["type"] == "gine"
    assert model.config.qformer == stage1.qformer.config
    for part in ("graph_encoder", "qformer"):
        ours, theirs = getattr(model, part).state_dict(), getattr(stage1, part).state_dict()
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours), part
    hub.save_pretrained(_Partial(FakeStage1Config()), tmp_path / "other")  # neither part
    with pytest.raises(ValueError, match="no graph_encoder or qformer"):
        MolCA.from_stage1(tmp_path / "other", lm=lm_dir)


def test_retune_a_stage2_model_for_finetuning(lm_dir, tmp_path):
    stage2 = MolCA.build(_config(lm_dir, mode="frozen"))
    hub.save_pretrained(stage2, tmp_path / "stage2")
    batch = _batch(PAIRS[:2])
    with torch.no_grad():
        expected = stage2.eval()(batch.graphs, batch.smiles, "x").logits
    model = MolCA.load(tmp_path / "stage2", lm_tuning=LMTuning(mode="lora", r=4, alpha=8))
    assert model.config.lm_tuning.mode == "lora" and count_parameters(model.lm).trainable > 0
    with torch.no_grad():  # LoRA starts at zero
        assert_close(model(batch.graphs, batch.smiles, "x").logits, expected)
    with pytest.raises(ValueError, match="only a frozen LM"):
        model.retune(LMTuning(mode="full"))
    config = {"lm_tuning": {"mode": "lora", "r": 4, "alpha": 8}}
    task = MolCATask(config, stage="finetune", init=str(tmp_path / "stage2"))
    assert task.model.config.lm_tuning.r == 4
    assert all(module.training for module in task.model.modules())  # dropout, batch statistics


def _loader(batch_pairs=PAIRS):
    def collate(items):
        return _batch(items)

    return DataLoader(list(batch_pairs), batch_size=2, shuffle=False, collate_fn=collate)


def _trainer(tmp_path, max_steps, callbacks=()):
    return L.Trainer(
        max_steps=max_steps,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=list(callbacks),
        default_root_dir=tmp_path,
        num_sanity_val_steps=0,
    )


def test_lightning_resume_from_a_small_checkpoint(lm_dir, tmp_path):
    config = asdict(_config(lm_dir, mode="lora"))
    config["qformer"] = dict(QF, dropout=0.1)  # dropout draws from the stored RNG state
    kwargs = {"stage": "finetune", "lr": 1e-3, "warmup_steps": 2, "max_steps": 3}
    torch.manual_seed(0)
    straight = MolCATask(config, **kwargs)
    _trainer(tmp_path / "a", 3).fit(straight, _loader())

    torch.manual_seed(0)
    first = MolCATask(config, **kwargs)
    checkpoint = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    _trainer(tmp_path / "b", 2, [checkpoint]).fit(first, _loader())
    stored = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=False)["state_dict"]
    assert set(stored) == {f"model.{k}" for k in first.model.checkpoint_state_dict()}
    assert not any(k.startswith("model.lm.") and ".lora_" not in k for k in stored)

    torch.manual_seed(1)  # a resumed run takes its RNG state from the checkpoint
    resumed = MolCATask(config, **kwargs)
    trainer = _trainer(tmp_path / "c", 3)
    trainer.fit(resumed, _loader(), ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))
    assert trainer.global_step == 3
    ours, reference = resumed.model.state_dict(), straight.model.state_dict()
    for key in straight.model.checkpoint_state_dict():
        assert_close(ours[key], reference[key], msg=key)

    resumed.hparams.val_generate = 2
    resumed.hparams.num_beams = 2
    resumed.hparams.max_new_tokens = 4
    trainer.validate(resumed, _loader())
    assert [s[:2] for s in resumed.val_samples] == PAIRS[:2]


def test_hub_uses_the_partial_checkpoint_hooks(tmp_path):
    model = _Partial(FakeStage1Config())
    hub.save_pretrained(model, tmp_path / "p")
    assert sorted(load_file(str(tmp_path / "p" / "model.safetensors"))) == [
        "kept.bias",
        "kept.weight",
    ]
    loaded = hub.from_pretrained(tmp_path / "p")
    assert loaded.loaded == ["kept.bias", "kept.weight"]
    assert torch.equal(loaded.kept.weight, model.kept.weight)


def test_smollm2_smoke():
    from molfm.systems.molca.lm import smollm2_in_cache

    if not smollm2_in_cache():
        pytest.skip("SmolLM2 is not in the molfm cache")
    config = MolCAConfig(graph_encoder=GINE, qformer=QF, lm_tuning={"r": 4, "alpha": 8})
    model = MolCA.build(config)
    assert model.config.lm == "smollm2" and model.projector.out_features == 576
    batch = _batch(PAIRS[:1])
    names = model.generate(batch.graphs, batch.smiles, num_beams=2, max_new_tokens=3)
    assert len(names) == 1 and isinstance(names[0][0], str)
    assert all(k.startswith("lm.") is False or ".lora_" in k for k in model.checkpoint_state_dict())


def test_unknown_task_and_mode_are_refused(lm_dir):
    with pytest.raises(ValueError, match="input_mode"):
        _config(lm_dir, input_mode="3d")
    model = MolCA.build(_config(lm_dir, input_mode="1d"))
    with pytest.raises(ValueError, match="unknown task 'smell'.*caption, iupac"):
        model.generate(None, ["CCO"], "smell")
