"""Fused frozen projections: the same loss and adapter gradients as the plain projections (LoRA on
q/v and on every projection, the tiny Llama), fewer matrix products, unchanged checkpoint keys,
nothing fused where the LM trains, a clear error out of turn, merging LoRA after fusing, and the
same under ``--compile``."""

import os

import pytest
import torch
from torch.testing import assert_close
from torch.utils._python_dispatch import TorchDispatchMode

from molfm.chem.featurize import smiles_to_data
from molfm.systems.molca.batching import PromptCollate, tokenize_pairs
from molfm.systems.molca.data import MolTextDataset
from molfm.systems.molca.fused import fuse_frozen_projections, unfuse_projections
from molfm.systems.molca.lm import save_tiny_lm
from molfm.systems.molca.lora import LORA_TARGET_SETS
from molfm.systems.molca.model import MolCA, MolCAConfig

PAIRS = [
    ("CCO", "ethanol"),
    ("CC(=O)Nc1ccc(O)cc1", "N-(4-hydroxyphenyl)acetamide"),
    ("CC(=O)O", "acetic acid"),
]
MATMULS = {"mm", "addmm", "bmm"}


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("tiny-llama-fused")
    return save_tiny_lm(path)


def _model(lm_dir, mode: str = "lora", targets: str = "qv") -> MolCA:
    tuning = {"mode": mode, "r": 4, "alpha": 8}
    if mode == "lora":
        tuning["target_modules"] = list(LORA_TARGET_SETS[targets])
    config = MolCAConfig(
        graph_encoder={"type": "gine", "config": {"num_layers": 2, "dim": 32, "dropout": 0.0}},
        qformer={"num_layers": 2, "num_query_tokens": 4, "dropout": 0.0},
        lm=str(lm_dir),
        lm_tuning=tuning,
    )
    model = MolCA.build(config)
    with torch.no_grad():  # non-zero adapters, so they change what each projection gives
        for name, param in model.lm.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.05, generator=torch.Generator().manual_seed(1))
    return model.eval()


def _batch(model):
    pairs = MolTextDataset(
        [smiles_to_data(s) for s, _ in PAIRS], [s for s, _ in PAIRS], [t for _, t in PAIRS]
    )
    tokenized = tokenize_pairs(model, pairs, "iupac")
    collate = PromptCollate(model.tokenizer.pad_token_id, model.num_graph_tokens)
    return collate([tokenized[i] for i in range(len(tokenized))])


def _loss_and_grads(model, batch):
    trained = [p for p in model.parameters() if p.requires_grad]
    loss = model.loss(batch)
    return loss.detach(), torch.autograd.grad(loss, trained)


class _CountMatmuls(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.n += func.overloadpacket.__name__ in MATMULS
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("targets", ["qv", "all"])
def test_fused_projections_give_the_same_loss_and_gradients(lm_dir, targets):
    model = _model(lm_dir, targets=targets)
    batch = _batch(model)
    keys = list(model.checkpoint_state_dict())
    state = list(model.state_dict())
    plain_loss, plain_grads = _loss_and_grads(model, batch)
    layers = model.lm.config.num_hidden_layers
    assert fuse_frozen_projections(model.lm) == 2 * layers  # q/k/v and gate/up in each layer
    assert fuse_frozen_projections(model.lm) == 0  # once only
    fused_loss, fused_grads = _loss_and_grads(model, batch)
    assert_close(fused_loss, plain_loss, rtol=1e-5, atol=1e-6)
    for ours, reference in zip(fused_grads, plain_grads, strict=True):
        assert_close(ours, reference, rtol=1e-4, atol=1e-6)
    assert list(model.checkpoint_state_dict()) == keys  # the fused copies are not saved
    assert list(model.state_dict()) == state
    assert unfuse_projections(model.lm) == 2 * layers
    assert_close(_loss_and_grads(model, batch)[0], plain_loss)


def test_fusing_takes_three_products_off_each_layers_forward_and_backward(lm_dir):
    model = _model(lm_dir)
    batch = _batch(model)
    counts = []
    for fuse in (False, True):
        if fuse:
            fuse_frozen_projections(model.lm)
        with _CountMatmuls() as counter:
            loss = model.loss(batch)
            loss.backward()
        counts.append(counter.n)
    layers = model.lm.config.num_hidden_layers
    # forward: q/k/v 3 -> 1, gate/up 2 -> 1; backward (input gradients): the same
    assert counts[0] - counts[1] == 2 * 3 * layers, counts


def test_a_trainable_lm_is_not_fused(lm_dir):
    model = _model(lm_dir, mode="full")
    assert fuse_frozen_projections(model.lm) == 0


def test_a_projection_called_out_of_turn_says_so(lm_dir):
    model = _model(lm_dir)
    fuse_frozen_projections(model.lm)
    attention = model.lm.get_base_model().model.layers[0].self_attn
    x = torch.randn(1, 3, model.lm.config.hidden_size)
    with pytest.raises(RuntimeError, match="k_proj called before its group's first one"):
        attention.k_proj(x)
    attention.q_proj(x)
    with pytest.raises(RuntimeError, match="k_proj called before"):
        attention.k_proj(x.clone())  # another input than the one q_proj read


def test_merging_lora_after_fusing_gives_the_merged_models_logits(lm_dir):
    batch_model = _model(lm_dir)
    graphs, smiles = _batch(batch_model).graphs, [s for s, _ in PAIRS]
    instruction = batch_model.config.instruction("iupac")
    with torch.no_grad():
        reference = _model(lm_dir).merge_lora()(graphs, smiles, instruction).logits
        fused = _model(lm_dir)
        fuse_frozen_projections(fused.lm)
        merged = fused.merge_lora()(graphs, smiles, instruction).logits
    assert_close(merged, reference)


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("MOLFM_TEST_COMPILE"),
    reason="inductor compiles C++ for about a minute on a CPU; set MOLFM_TEST_COMPILE=1",
)
def test_fused_and_compiled_layers_give_the_plain_loss_and_gradients(lm_dir):
    from molfm.systems.molca.task import compile_layers

    model = _model(lm_dir)
    batch = _batch(model)
    plain_loss, plain_grads = _loss_and_grads(model, batch)
    fuse_frozen_projections(model.lm)
    compile_layers(model)
    for _ in range(2):  # the second call runs the compiled graph again
        loss, grads = _loss_and_grads(model, batch)
        assert_close(loss, plain_loss, rtol=1e-4, atol=1e-4)
        for ours, reference in zip(grads, plain_grads, strict=True):
            assert_close(ours, reference, rtol=1e-3, atol=1e-5)
