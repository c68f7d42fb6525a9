"""LM tuning modes on the tiny Llama: LoRA equals the plain LM at init; what trains."""

import pytest
import torch
from torch.testing import assert_close

from molfm.systems.molca.lm import tiny_llama, tiny_tokenizer
from molfm.systems.molca.lora import LLAMA_TARGETS, LMTuning, count_parameters, tune_lm


def _ids():
    tok = tiny_tokenizer()
    return torch.tensor([tok("CC(=O)O is acetic acid", add_special_tokens=False)["input_ids"]])


def test_lora_equals_the_plain_lm_at_init_and_trains_only_adapters():
    ids = _ids()
    plain = tiny_llama()
    with torch.no_grad():
        expected = plain(ids).logits
    total = count_parameters(plain).total
    wrapped = tune_lm(tiny_llama(), LMTuning(mode="lora", r=4, alpha=8))
    with torch.no_grad():
        assert_close(wrapped.eval()(ids).logits, expected)
        assert_close(wrapped.train()(ids).logits, expected)  # B = 0: dropout changes nothing
    count = count_parameters(wrapped)
    # per layer: r x (in + out) for each of q, k, v, o (64->64, 64->32, 64->32, 64->64) and
    # gate, up (64->128), down (128->64)
    per_layer = 4 * (128 + 96 + 96 + 128 + 192 + 192 + 192)
    assert count.trainable == 2 * per_layer
    assert count.total == total + count.trainable
    assert "trainable of" in str(count)
    names = {n for n, p in wrapped.named_parameters() if p.requires_grad}
    assert all("lora_" in n for n in names)
    assert {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in names} == set(LLAMA_TARGETS)


def test_lora_targets_are_configurable():
    wrapped = tune_lm(tiny_llama(), LMTuning(r=2, target_modules=["q_proj", "v_proj"]))
    assert count_parameters(wrapped).trainable == 2 * 2 * ((64 + 64) + (64 + 32))


def test_full_and_frozen_modes():
    full = tune_lm(tiny_llama(), LMTuning(mode="full"))
    assert count_parameters(full).trainable == count_parameters(full).total
    frozen = tune_lm(tiny_llama(), LMTuning(mode="frozen"))
    assert count_parameters(frozen).trainable == 0
    embeds = frozen.get_input_embeddings()(_ids()).detach().requires_grad_(True)
    frozen(inputs_embeds=embeds).logits.sum().backward()
    assert embeds.grad is not None and embeds.grad.abs().sum() > 0  # gradients reach inputs
    assert all(p.grad is None for p in frozen.parameters())
    with pytest.raises(ValueError, match="unknown LM tuning mode"):
        tune_lm(tiny_llama(), LMTuning(mode="half"))  # type: ignore[arg-type]
