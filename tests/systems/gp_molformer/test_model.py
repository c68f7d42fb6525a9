"""Tests for the GP-MoLFormer model, its checkpoints and sampling."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch

from molfm.hub import from_pretrained, save_pretrained
from molfm.systems.gp_molformer import sampling
from molfm.systems.gp_molformer.model import (
    PAPER_VOCAB_SIZE,
    GPMoLFormer,
    GPMoLFormerConfig,
    load_tokenizer,
)
from molfm.systems.gp_molformer.sampling import (
    sample,
    sample_ids,
    sample_next_token,
    top_k_filter,
    top_p_filter,
)
from molfm.systems.gp_molformer.tokenizer import SmilesTokenizer

DATA = Path(__file__).parents[2] / "data" / "moses_train_500.csv"
TINY = Path(__file__).parents[2] / "data" / "tiny-gp-molformer"
PUBLISHED = dict(feature_map="favor_relu", norm_position="post", lm_head_bias=False)
"""The published variant: ReLU random features, post-LN blocks, bias-free output layer."""


@pytest.fixture(scope="module")
def moses() -> list[str]:
    with DATA.open() as fh:
        return [row["SMILES"] for row in csv.DictReader(fh)]


@pytest.fixture(scope="module")
def tok(moses: list[str]) -> SmilesTokenizer:
    return SmilesTokenizer.build(moses)


def tiny_config(vocab_size: int, **overrides) -> GPMoLFormerConfig:
    base = dict(n_layer=2, n_head=2, n_embd=32, ffn_dim=48, dropout=0.0, attn_chunk_size=4)
    return GPMoLFormerConfig(vocab_size=vocab_size, **{**base, **overrides})


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread (and do not fight over the shared cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_model(vocab_size: int, seed: int = 0, **overrides) -> GPMoLFormer:
    torch.manual_seed(seed)
    model = GPMoLFormer(tiny_config(vocab_size, **overrides))
    with torch.no_grad():  # larger weights than the 0.02 init so that outputs vary a lot
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return model.eval()


# ------------------------------------------------------------------------------ model core
@pytest.mark.parametrize(
    "head",
    [
        dict(lm_head="mlp"),
        dict(lm_head="linear", tie_embeddings=True),
        dict(feature_map="favor_relu", n_random_features=12),
        PUBLISHED,
    ],
)
def test_parallel_equals_recurrent_every_position(
    moses: list[str], tok: SmilesTokenizer, head: dict
) -> None:
    model = random_model(tok.vocab_size, **head).double()
    ids, lengths = tok.encode_batch(moses[:3])
    mask = torch.arange(ids.shape[1]) < lengths[:, None]
    logits = model(ids, mask)
    assert logits.shape == (3, ids.shape[1], tok.vocab_size)
    state = model.init_state(3)
    assert len(state) == 2 and state[0][0].dtype == torch.float64
    for t in range(ids.shape[1]):
        step_logits, state = model.step(ids[:, t], t, state)
        valid = mask[:, t]
        torch.testing.assert_close(step_logits[valid], logits[valid, t], rtol=1e-9, atol=1e-9)


def test_bf16_model_parallel_close_to_recurrent(moses: list[str], tok: SmilesTokenizer) -> None:
    model = random_model(tok.vocab_size)
    ids, _ = tok.encode_batch(moses[:2])
    ids = ids[:, :12]
    reference = model(ids)
    model = model.to(torch.bfloat16)
    logits = model(ids)
    state = model.init_state(2)
    for t in range(12):
        step_logits, state = model.step(ids[:, t], t, state)
    assert state[0][0].dtype == torch.float32  # running sums stay float32 in a bf16 model
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits).all()
    scale = reference.abs().max().item()
    torch.testing.assert_close(logits.float(), reference, rtol=0, atol=0.05 * scale)
    torch.testing.assert_close(step_logits.float(), reference[:, -1], rtol=0, atol=0.05 * scale)


def test_step_with_per_sequence_positions(tok: SmilesTokenizer) -> None:
    model = random_model(tok.vocab_size).double()
    seqs = torch.tensor([[1, 5, 6, 7, 8], [1, 9, 5, 5, 6]])
    state = model.init_state(2)
    for t in range(3):  # both sequences at position 3 after this
        _, state = model.step(seqs[:, t], t, state)
    # Row 0 continues at position 3, row 1 is also fed at position 3 via a tensor.
    batched, _ = model.step(seqs[:, 3], torch.tensor([3, 3]), state)
    per_row, _ = model.step(seqs[:, 3], 3, state)
    torch.testing.assert_close(batched, per_row, rtol=0, atol=0)
    shifted, _ = model.step(seqs[:, 3], torch.tensor([3, 4]), state)
    torch.testing.assert_close(shifted[0], per_row[0], rtol=0, atol=0)
    assert not torch.allclose(shifted[1], per_row[1])


def test_inplace_step_matches_functional_step(tok: SmilesTokenizer) -> None:
    """``inplace=True`` gives the same logits and state; the default leaves the input alone."""
    model = random_model(tok.vocab_size)
    seqs = torch.tensor([[1, 5, 6, 7, 8, 9], [1, 9, 5, 5, 6, 7]])
    functional, owned = model.init_state(2), model.init_state(2)
    for t in range(seqs.shape[1]):
        before = [(s.clone(), z.clone()) for s, z in functional]
        expected, functional_next = model.step(seqs[:, t], t, functional)
        for (s0, z0), (s1, z1) in zip(before, functional, strict=True):
            assert torch.equal(s0, s1) and torch.equal(z0, z1)  # not modified
        functional = functional_next
        got, owned = model.step(seqs[:, t], t, owned, inplace=True)
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
    for (s0, z0), (s1, z1) in zip(functional, owned, strict=True):
        torch.testing.assert_close(s1, s0, rtol=0, atol=0)
        torch.testing.assert_close(z1, z0, rtol=0, atol=0)


def test_right_padding_matches_unpadded(moses: list[str], tok: SmilesTokenizer) -> None:
    model = random_model(tok.vocab_size).double()
    ids, lengths = tok.encode_batch(moses[:4])
    mask = torch.arange(ids.shape[1]) < lengths[:, None]
    batched = model(ids, mask)
    for row in range(4):
        n = int(lengths[row])
        alone = model(ids[row : row + 1, :n])
        torch.testing.assert_close(batched[row, :n], alone[0], rtol=1e-10, atol=1e-10)


def test_lm_loss_ignores_padding(moses: list[str], tok: SmilesTokenizer) -> None:
    model = random_model(tok.vocab_size)
    ids, lengths = tok.encode_batch(moses[:4])
    mask = torch.arange(ids.shape[1]) < lengths[:, None]
    logits = model(ids, mask)
    loss = GPMoLFormer.lm_loss(logits, ids, mask)
    # Manual: mean over the real targets ids[b, t+1], t + 1 < length.
    terms = []
    for b in range(4):
        log_probs = logits[b].log_softmax(-1)
        for t in range(int(lengths[b]) - 1):
            terms.append(-log_probs[t, ids[b, t + 1]])
    torch.testing.assert_close(loss, torch.stack(terms).mean())
    # Logits at positions whose target is padding do not matter.
    noisy = torch.where(mask[:, 1:, None], logits[:, :-1], torch.randn_like(logits[:, :-1]) * 9)
    noisy = torch.cat([noisy, logits[:, -1:]], dim=1)
    torch.testing.assert_close(GPMoLFormer.lm_loss(noisy, ids, mask), loss)
    uniform = torch.zeros(2, 5, tok.vocab_size)
    expected = torch.tensor(math.log(tok.vocab_size))
    torch.testing.assert_close(GPMoLFormer.lm_loss(uniform, ids[:2, :5]), expected)


def test_paper_parameter_count() -> None:
    """12 layers x 12 heads x 768, FFN 768, MoLFormer vocab (2,362), MLP head: 46.8M."""
    with torch.device("meta"):
        model = GPMoLFormer(GPMoLFormerConfig.paper())
    n = model.num_parameters()
    print(f"GP-MoLFormer paper config: {n:,} parameters (vocab {PAPER_VOCAB_SIZE})")
    assert n == 46_783_546
    assert round(n / 1e6, 1) == 46.8
    with torch.device("meta"):  # no output bias; the random projections are buffers
        published = GPMoLFormer(GPMoLFormerConfig.paper(published=True))
    assert published.num_parameters() == n - PAPER_VOCAB_SIZE
    assert published.blocks[0].attn.feature_projection.shape == (64, 32)


def test_small_parameter_count(tok: SmilesTokenizer) -> None:
    model = GPMoLFormer(GPMoLFormerConfig.small(tok.vocab_size))
    n = model.num_parameters()
    print(f"GP-MoLFormer small config: {n:,} parameters (vocab {tok.vocab_size})")
    assert n == 3_225_856 + 513 * tok.vocab_size
    assert 3e6 < n < 5e6


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="even size"):
        GPMoLFormerConfig(vocab_size=10, n_embd=30, n_head=2)
    with pytest.raises(ValueError, match="lm_head"):
        GPMoLFormerConfig(vocab_size=10, lm_head="conv")
    with pytest.raises(ValueError, match="eos_id"):
        GPMoLFormerConfig(vocab_size=2)
    with pytest.raises(ValueError, match="feature_map"):
        GPMoLFormerConfig(vocab_size=10, feature_map="softmax")
    with pytest.raises(ValueError, match="n_random_features"):
        GPMoLFormerConfig(vocab_size=10, feature_map="favor_relu", n_random_features=0)
    with pytest.raises(ValueError, match="norm_position"):
        GPMoLFormerConfig(vocab_size=10, norm_position="sandwich")


def test_checkpoint_round_trip(tmp_path: Path, moses: list[str], tok: SmilesTokenizer) -> None:
    model = random_model(tok.vocab_size, tie_embeddings=True)
    save_pretrained(model, tmp_path / "ckpt", extra={"tokenizer": tok.to_dict()})
    loaded = from_pretrained(tmp_path / "ckpt")
    assert isinstance(loaded, GPMoLFormer) and loaded.config == model.config
    assert loaded.lm_head.weight is loaded.tok_emb.weight  # tying survives loading
    assert load_tokenizer(tmp_path / "ckpt") == tok
    ids, lengths = tok.encode_batch(moses[:3])
    mask = torch.arange(ids.shape[1]) < lengths[:, None]
    with torch.no_grad():
        assert torch.equal(loaded(ids, mask), model(ids, mask))


def test_favor_checkpoint_round_trip(
    tmp_path: Path, moses: list[str], tok: SmilesTokenizer
) -> None:
    """The random projections travel in the state dict: logits survive save/load exactly."""
    model = random_model(tok.vocab_size, **PUBLISHED)
    with torch.no_grad():  # not what a fresh draw with the same seed would give
        model.blocks[0].attn.feature_projection.mul_(-1)
    save_pretrained(model, tmp_path / "ckpt", extra={"tokenizer": tok.to_dict()})
    loaded = from_pretrained(tmp_path / "ckpt")
    assert loaded.config == model.config and loaded.lm_head.bias is None
    for a, b in zip(loaded.blocks, model.blocks, strict=True):
        assert torch.equal(a.attn.feature_projection, b.attn.feature_projection)
    ids, lengths = tok.encode_batch(moses[:3])
    mask = torch.arange(ids.shape[1]) < lengths[:, None]
    with torch.no_grad():
        assert torch.equal(loaded(ids, mask), model(ids, mask))


def test_favor_projections_seeded_per_layer_and_global_rng_untouched(tok: SmilesTokenizer) -> None:
    torch.manual_seed(0)
    elu = GPMoLFormer(tiny_config(tok.vocab_size))
    torch.manual_seed(0)
    favor = GPMoLFormer(tiny_config(tok.vocab_size, feature_map="favor_relu"))
    # A private generator draws the projections: the parameters match the elu model's.
    for (name, p), (_, q) in zip(elu.named_parameters(), favor.named_parameters(), strict=True):
        assert torch.equal(p, q), name
    w0, w1 = (blk.attn.feature_projection for blk in favor.blocks)
    assert w0.shape == (16, 32) and not torch.allclose(w0, w1)  # one draw per layer
    again = GPMoLFormer(tiny_config(tok.vocab_size, feature_map="favor_relu"))
    assert torch.equal(again.blocks[1].attn.feature_projection, w1)
    reseeded = GPMoLFormer(
        tiny_config(tok.vocab_size, feature_map="favor_relu", random_features_seed=1)
    )
    assert not torch.equal(reseeded.blocks[0].attn.feature_projection, w0)


def test_config_without_new_keys_loads_as_elu(tmp_path: Path) -> None:
    """Checkpoints written before the feature-map options load unchanged (strict)."""
    config = json.loads((TINY / "config.json").read_text())
    new_keys = {"feature_map", "n_random_features", "random_features_seed"}
    new_keys |= {"norm_position", "lm_head_bias"}
    assert not new_keys & set(config["model_config"])
    model = from_pretrained(TINY)
    assert model.config.feature_map == "elu" and model.config.norm_position == "pre"
    assert not any("feature_projection" in key for key in model.state_dict())
    assert model.lm_head.bias is not None


# -------------------------------------------------------------------------------- sampling
def test_sampling_reproducible_per_seed(tok: SmilesTokenizer) -> None:
    model = random_model(tok.vocab_size)
    kwargs = dict(batch_size=7, max_length=24)
    a = sample(model, tok, 20, seed=3, **kwargs)
    b = sample(model, tok, 20, seed=3, **kwargs)
    c = sample(model, tok, 20, seed=4, **kwargs)
    assert len(a) == 20 and list(a) == list(b) and a.truncated == b.truncated
    assert list(a) != list(c)


def test_sampling_top_k_and_compaction(tok: SmilesTokenizer) -> None:
    """Each sampled token is in the top-k of *its own* sequence's logits (re-scored with the
    parallel form), so rows dropped on <eos> never mix up the states of the others."""
    model = random_model(tok.vocab_size)
    with torch.no_grad():
        model.lm_head.bias[tok.eos_id] += 0.5  # so that some (not all) sequences finish early
    k = 3
    ids, truncated = sample_ids(model, 24, batch_size=10, top_k=k, max_length=20, seed=1)
    assert 0 < sum(truncated) < 20  # both paths exercised
    assert len({len(r) for r in ids}) > 3  # rows finish at many different steps
    for row, trunc in zip(ids, truncated, strict=True):
        assert row[0] == tok.bos_id and (row[-1] == tok.eos_id) != trunc
        assert len(row) == 20 if trunc else len(row) <= 20
        with torch.no_grad():
            logits = model(torch.tensor([row]))[0]
        logits[:, [tok.pad_id, tok.bos_id]] = float("-inf")
        top = logits.topk(k, dim=-1).indices
        for p in range(1, len(row)):
            assert row[p] in top[p - 1].tolist()


@pytest.mark.parametrize("syntax_mask", [False, True])
def test_dropping_finished_rows_early_or_late_gives_the_same_molecules(
    tok: SmilesTokenizer, monkeypatch: pytest.MonkeyPatch, syntax_mask: bool
) -> None:
    """Finished rows leave the recurrent state lazily (COMPACT_FRACTION); when they leave must
    not change what the other rows sample: every finish, a quarter, or never."""
    model = random_model(tok.vocab_size)
    with torch.no_grad():
        model.lm_head.bias[tok.eos_id] += 0.5  # sequences finish at many different steps
    results = []
    for fraction in (1e-9, sampling.COMPACT_FRACTION, 2.0):
        monkeypatch.setattr(sampling, "COMPACT_FRACTION", fraction)
        got = sample(model, tok, 30, batch_size=16, max_length=20, seed=5, syntax_mask=syntax_mask)
        results.append((list(got), got.truncated))
    assert 0 < sum(results[0][1]) < 30
    assert len({len(s) for s in results[0][0]}) > 3
    assert results[0] == results[1] == results[2]


def test_greedy_and_temperature(tok: SmilesTokenizer) -> None:
    model = random_model(tok.vocab_size)
    greedy, _ = sample_ids(model, 5, temperature=0.0, max_length=15)
    assert all(g == greedy[0] for g in greedy)
    # Greedy rollout with the parallel form gives the same sequence.
    seq = [tok.bos_id]
    with torch.no_grad():
        while len(seq) < 15 and seq[-1] != tok.eos_id:
            logits = model(torch.tensor([seq]))[0, -1]
            logits[[tok.pad_id, tok.bos_id]] = float("-inf")
            seq.append(int(logits.argmax()))
    assert greedy[0] == seq
    top1, _ = sample_ids(model, 5, top_k=1, max_length=15, seed=9)
    cold, _ = sample_ids(model, 5, temperature=1e-3, max_length=15, seed=9)
    assert top1 == greedy and cold == greedy
    # Lower temperature concentrates the samples on the greedy choice.
    first = greedy[0][1]
    hot, _ = sample_ids(model, 200, temperature=2.0, max_length=2, seed=0)
    cold, _ = sample_ids(model, 200, temperature=0.3, max_length=2, seed=0)
    n_hot = sum(r[1] == first for r in hot)
    n_cold = sum(r[1] == first for r in cold)
    assert n_cold > n_hot + 40, (n_cold, n_hot)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        (dict(temperature=1.0), [0.1, 0.2, 0.3, 0.4]),
        (dict(temperature=0.5), [1 / 30, 4 / 30, 9 / 30, 16 / 30]),  # p^(1/T), renormalized
        (dict(top_k=2), [0.0, 0.0, 3 / 7, 4 / 7]),
        (dict(top_p=0.65), [0.0, 0.0, 3 / 7, 4 / 7]),  # 0.4 < 0.65 <= 0.7
        (dict(top_p=0.75), [0.0, 2 / 9, 3 / 9, 4 / 9]),
    ],
)
def test_sample_next_token_distribution(kwargs: dict, expected: list[float]) -> None:
    logits = torch.tensor([0.1, 0.2, 0.3, 0.4]).log().expand(20000, 4)
    g = torch.Generator().manual_seed(0)
    draws = sample_next_token(logits, generator=g, **kwargs)
    freq = torch.bincount(draws, minlength=4).double() / 20000
    torch.testing.assert_close(
        freq, torch.tensor(expected, dtype=torch.float64), atol=0.015, rtol=0
    )


def test_sampling_prefix_truncation_callback(tok: SmilesTokenizer) -> None:
    model = random_model(tok.vocab_size).train()
    prefix = tok.encode("c1ccccc1", add_special=False)
    seen: list[tuple[int, int]] = []
    out = sample(
        model,
        tok,
        9,
        batch_size=4,
        max_length=12,
        prefix_ids=prefix,
        callback=lambda batch, done: seen.append((len(batch), done)),
    )
    assert model.training  # training flag restored
    assert seen == [(4, 4), (4, 8), (1, 9)]
    assert all(s.startswith("c1ccccc1") for s in out)
    assert len(out.truncated) == 9 and out.n_truncated == sum(out.truncated)
    ids, trunc = sample_ids(model, 9, batch_size=4, max_length=12, prefix_ids=prefix)
    assert all(len(r) == 12 for r, t in zip(ids, trunc, strict=True) if t)
    assert trunc == out.truncated
    with pytest.raises(ValueError, match="max_length"):
        sample(model, tok, 1, max_length=len(prefix) + 1, prefix_ids=prefix)
    with pytest.raises(ValueError, match="prefix_ids"):
        sample(model, tok, 1, prefix_ids=[*prefix, tok.eos_id])


def test_top_k_top_p_filters() -> None:
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.0], [0.0, 0.0, 5.0, 5.0]])
    inf = float("-inf")
    assert top_k_filter(logits, 2).tolist() == [[inf, 3.0, 2.0, inf], [inf, inf, 5.0, 5.0]]
    assert top_k_filter(logits, 1)[0].tolist() == [inf, 3.0, inf, inf]
    assert torch.equal(top_k_filter(logits, 4), logits)
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    nucleus = top_p_filter(probs.log(), 0.8)  # 0.5 + 0.3 reaches 0.8: keep 2 tokens
    assert torch.isinf(nucleus).tolist() == [[False, False, True, True]]
    nucleus = top_p_filter(probs.log(), 0.81)
    assert torch.isinf(nucleus).tolist() == [[False, False, False, True]]
    assert not torch.isinf(top_p_filter(probs.log(), 0.01)[0, 0])  # best token always kept
    assert torch.equal(top_p_filter(logits, 1.0), logits)
    shuffled = probs[:, [2, 0, 3, 1]].log()  # order of the vocabulary does not matter
    assert torch.isinf(top_p_filter(shuffled, 0.8)).tolist() == [[True, False, True, False]]
    for bad in (lambda: top_k_filter(logits, 0), lambda: top_p_filter(logits, 0.0)):
        with pytest.raises(ValueError):
            bad()


# -------------------------------------------------------------------------------- overfit
@pytest.mark.parametrize("variant", [{}, PUBLISHED], ids=["molfm", "published"])
def test_overfit_eight_smiles(moses: list[str], tok: SmilesTokenizer, variant: dict) -> None:
    """A tiny model memorizes 8 real SMILES; sampling then reproduces them."""
    train = moses[:8]
    torch.manual_seed(0)
    config = tiny_config(
        tok.vocab_size, n_embd=64, n_head=4, ffn_dim=128, attn_chunk_size=64, **variant
    )
    model = GPMoLFormer(config)
    ids, lengths = tok.encode_batch(train)
    mask = torch.arange(ids.shape[1]) < lengths[:, None]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    model.train()
    for _ in range(300):
        loss = GPMoLFormer.lm_loss(model(ids, mask), ids, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
    # The lowest reachable loss is not 0: a perfect memorizer still has to pick which of the
    # 8 molecules to write, log(8) nats per molecule spread over all target tokens.
    n_targets = int(mask[:, 1:].sum())
    floor = len(train) * math.log(len(train)) / n_targets
    assert loss.item() < floor + 0.01, (loss.item(), floor)

    samples = sample(model, tok, 32, temperature=0.5, seed=0, max_length=64)
    assert set(samples) <= set(train), set(samples) - set(train)
    assert len(set(samples)) >= 3
    # Greedy completion of a prompt unique to each training SMILES reproduces it.
    prompts = [tok.encode(s, add_special=False)[:8] for s in train]
    assert len({tuple(p) for p in prompts}) == len(train)
    for s, p in zip(train, prompts, strict=True):
        assert sample(model, tok, 1, temperature=0.0, prefix_ids=p, max_length=64)[0] == s


def test_explicit_positions_match_recurrent_steps():
    """forward(positions=...) (repeated positions allowed) equals stepping at those positions."""
    torch.manual_seed(0)
    model = GPMoLFormer(GPMoLFormerConfig.small(30, n_layer=2, n_embd=64, n_head=4)).double().eval()
    ids = torch.randint(3, 30, (2, 7))
    prompt = torch.randn(4, 64, dtype=torch.float64)
    positions = torch.tensor([[4, 5, 6, 1, 2, 3, 4]] * 2)  # a segment restarting at 1
    parallel = model(ids, prefix_embeds=prompt, positions=positions)
    state = model.init_state(2)
    for p in range(4):
        _, state = model.embed_step(prompt[p].expand(2, -1), p, state)
    for t in range(7):
        logits, state = model.step(ids[:, t], int(positions[0, t]), state)
        torch.testing.assert_close(logits, parallel[:, t], rtol=1e-9, atol=1e-9)
    default = model(ids)
    torch.testing.assert_close(model(ids, positions=torch.arange(7).expand(2, -1)), default)
