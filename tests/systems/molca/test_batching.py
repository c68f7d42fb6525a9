"""Training batches tokenized once and grouped by length; a step that never waits on the
device: the loader's prompt equals the model's own, the loss is the same with either, the
grouped order is a seeded permutation with less padding, and the forward launches no operation
that reads a value back from the device (on the tiny Llama, a 2-layer GINE and Q-Former)."""

import os

import numpy as np
import pytest
import torch
from torch.testing import assert_close
from torch.utils._python_dispatch import TorchDispatchMode

from molfm.chem.featurize import smiles_to_data
from molfm.systems.molca.batching import LengthGroupedSampler, PromptCollate, tokenize_pairs
from molfm.systems.molca.data import MolTextDataset
from molfm.systems.molca.lm import save_tiny_lm
from molfm.systems.molca.model import MolCA, MolCAConfig

PAIRS = [
    ("CCO", "ethanol"),
    ("CC(=O)Nc1ccc(O)cc1", "N-(4-hydroxyphenyl)acetamide"),
    ("CC(=O)O", "acetic acid"),
    ("c1ccccc1", "benzene"),
    ("CC(C)Cc1ccc(C(C)C(=O)O)cc1", "2-[4-(2-methylpropyl)phenyl]propanoic acid"),
]
# operations whose result the host must read: each one waits for the device
SYNCING = {"_local_scalar_dense", "nonzero", "masked_select", "item", "is_nonzero"}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("tiny-llama")
    save_tiny_lm(path)
    config = MolCAConfig(
        graph_encoder={"type": "gine", "config": {"num_layers": 2, "dim": 32, "dropout": 0.0}},
        qformer={"num_layers": 2, "num_query_tokens": 4, "dropout": 0.0},
        lm=str(path),
        lm_tuning={"mode": "lora", "r": 4, "alpha": 8},
    )
    return MolCA.build(config)


def _pairs() -> MolTextDataset:
    return MolTextDataset(
        [smiles_to_data(s) for s, _ in PAIRS], [s for s, _ in PAIRS], [t for _, t in PAIRS]
    )


@pytest.mark.parametrize("input_mode", ["1d2d", "2d"])
def test_loader_prompts_equal_the_models_and_give_the_same_loss(model, input_mode):
    model.config.input_mode = input_mode
    try:
        pairs = _pairs()
        tokenized = tokenize_pairs(model, pairs, "iupac")
        batch = PromptCollate(model.tokenizer.pad_token_id, model.num_graph_tokens)(
            [tokenized[i] for i in range(len(tokenized))]
        )
        expected = model.prompts(pairs.smiles, model.config.instruction("iupac"), pairs.texts)
        for name in vars(expected):
            assert torch.equal(getattr(batch.prompt, name), getattr(expected, name)), name
        assert tokenized.lengths.tolist() == expected.attention_mask.sum(-1).tolist()
        model.eval()
        with torch.no_grad():
            with_prompt = model.loss(batch)
            batch.prompt = None
            assert_close(with_prompt, model.loss(batch))
    finally:
        model.config.input_mode = "1d2d"


def test_the_loss_equals_the_lms_own_on_the_target_positions(model):
    """The gathered positions give the cross-entropy transformers computes from ``labels``."""
    pairs = _pairs()
    model.eval()
    with torch.no_grad():
        batch = PromptCollate(model.tokenizer.pad_token_id, model.num_graph_tokens)(
            [tokenize_pairs(model, pairs, "iupac")[i] for i in range(len(pairs))]
        )
        loss = model.loss(batch)
        inputs = model.lm_inputs(
            batch.graphs, pairs.smiles, model.config.instruction("iupac"), pairs.texts
        )
        reference = model.lm(**inputs).loss  # transformers' shifted loss over labels != -100
    assert_close(loss, reference, rtol=1e-5, atol=1e-5)


class _Ops(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.names: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


def test_a_training_step_never_reads_back_from_the_device(model):
    pairs = _pairs()
    batch = PromptCollate(model.tokenizer.pad_token_id, model.num_graph_tokens)(
        [tokenize_pairs(model, pairs, "iupac")[i] for i in range(len(pairs))]
    )
    model.train()
    with _Ops() as ops:
        model.loss(batch).backward()
    assert ops.names, "no operation recorded"
    assert not SYNCING & set(ops.names), sorted(SYNCING & set(ops.names))


def test_length_grouped_order_is_a_seeded_permutation_with_less_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(20, 200, size=1003)
    sampler = LengthGroupedSampler(lengths, batch_size=16, seed=3, pool=8)
    order = sampler.order()
    assert sorted(order.tolist()) == list(range(1003))
    assert np.array_equal(order, LengthGroupedSampler(lengths, 16, seed=3, pool=8).order())
    sampler.set_epoch(1)
    assert not np.array_equal(order, sampler.order())

    def padding(order):
        batches = [order[i : i + 16] for i in range(0, 1003 // 16 * 16, 16)]
        return sum(lengths[b].max() * 16 - lengths[b].sum() for b in batches)

    random = np.random.default_rng(3).permutation(1003)
    assert padding(order) < 0.2 * padding(random)
    # the one partial batch (1003 = 62 x 16 + 11) comes from the last pool (items 896..1002
    # of the seeded shuffle) and is last, so the loader's drop_last drops it
    assert set(order[-11:].tolist()) <= set(random[896:].tolist())
    with pytest.raises(ValueError, match="must be >= 1"):
        LengthGroupedSampler(lengths, batch_size=0)


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("MOLFM_TEST_COMPILE"),
    reason="inductor compiles C++ for about a minute on a CPU; set MOLFM_TEST_COMPILE=1",
)
def test_compiled_layers_give_the_same_loss_and_keys(model):
    """``--compile``: LM layers, Q-Former layers and the graph encoder compiled in place; the
    loss, its gradients and the checkpoint keys stay."""
    from molfm.systems.molca.task import compile_layers, compiled_parts

    pairs = _pairs()
    batch = PromptCollate(model.tokenizer.pad_token_id, model.num_graph_tokens)(
        [tokenize_pairs(model, pairs, "iupac")[i] for i in range(len(pairs))]
    )
    model.eval()
    keys = list(model.checkpoint_state_dict())
    trained = [p for p in model.parameters() if p.requires_grad]
    eager = model.loss(batch)
    eager_grads = torch.autograd.grad(eager, trained)
    parts = compiled_parts(model)
    # LM layers + final norm + rotary embedding, Q-Former layers, graph encoder
    assert len(parts) == model.lm.config.num_hidden_layers + 2 + model.config.qformer.num_layers + 1
    compile_layers(model)
    try:
        compiled = model.loss(batch)
        compiled_grads = torch.autograd.grad(compiled, trained)
        assert_close(compiled.detach(), eager.detach(), rtol=1e-4, atol=1e-4)
        for ours, reference in zip(compiled_grads, eager_grads, strict=True):
            assert_close(ours, reference, rtol=1e-3, atol=1e-5)
        assert list(model.checkpoint_state_dict()) == keys
    finally:
        for part in parts:
            part._compiled_call_impl = None  # back to eager for the other tests
