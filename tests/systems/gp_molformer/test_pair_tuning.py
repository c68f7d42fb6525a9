"""Pair-tuning: frozen base, prompt training, recurrent optimization, report, prompt files."""

import copy
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch
from rdkit import Chem, DataStructs
from rdkit.Chem import QED, rdFingerprintGenerator

from molfm.systems.gp_molformer.data import pad_batch
from molfm.systems.gp_molformer.model import GPMoLFormer, GPMoLFormerConfig
from molfm.systems.gp_molformer.pair_tuning.optimize import (
    CANDIDATE_COLUMNS,
    optimization_report,
    optimize,
    score_candidates,
)
from molfm.systems.gp_molformer.pair_tuning.pairs import compute_property, make_pairs
from molfm.systems.gp_molformer.pair_tuning.training import (
    PairDataset,
    PairTuningTask,
    SoftPrompt,
    collate_pairs,
    evaluate_pair_loss,
    load_prompt,
    pair_loss,
    save_prompt,
    train_prompt,
)
from molfm.systems.gp_molformer.tokenizer import SmilesTokenizer

DATA = Path(__file__).parents[2] / "data"
SMILES = pd.read_csv(DATA / "moses_train_500.csv")["SMILES"].tolist()
TEST_SMILES = pd.read_csv(DATA / "moses_test_200.csv")["SMILES"].tolist()
GEN = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)


@pytest.fixture(scope="module")
def lm() -> tuple[GPMoLFormer, SmilesTokenizer]:
    """A 2-layer, 64-wide GP-MoLFormer trained 100 steps on the 500 fixture SMILES."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    tokenizer = SmilesTokenizer.build(SMILES + TEST_SMILES)
    config = GPMoLFormerConfig(
        vocab_size=tokenizer.vocab_size, n_layer=2, n_head=2, n_embd=64, ffn_dim=128,
        dropout=0.1, max_length=100,
    )  # fmt: skip
    model = GPMoLFormer(config)
    encoded = [torch.tensor(tokenizer.encode(s)) for s in SMILES]
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(100):
        index = torch.randint(len(encoded), (32,), generator=generator)
        ids, mask = pad_batch([encoded[i] for i in index], tokenizer.pad_id)
        loss = model.lm_loss(model(ids, mask), ids, mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for param in model.parameters():
        param.requires_grad_(False)
    return model.eval(), tokenizer


@pytest.fixture(scope="module")
def pairs() -> pd.DataFrame:
    values = compute_property(SMILES[:200], "qed")
    return make_pairs(SMILES[:200], values, min_similarity=0.3, max_pairs_per_source=1)


def test_soft_prompt_initialization(lm):
    model, _ = lm
    prompt = SoftPrompt.from_model(model, 8, seed=0)
    table = model.tok_emb.weight
    for vector in prompt():  # each vector is a copy of a non-special token embedding
        matches = (table == vector).all(dim=1).nonzero().flatten().tolist()
        assert len(matches) == 1 and matches[0] >= 4
    assert torch.equal(prompt(), SoftPrompt.from_model(model, 8, seed=0)())
    normal = SoftPrompt(2000, 64, seed=1)().detach()
    assert normal.std().item() == pytest.approx(0.02, rel=0.02)
    with pytest.raises(ValueError, match="n_prompt"):
        SoftPrompt(0, 64)


def test_pair_batch_layout(lm):
    _, tok = lm
    data = PairDataset(["CCO", "c1ccccc1N"], ["CCN", "C"], tok)
    ids, mask, target = collate_pairs([data[0], data[1]], tok.pad_id)
    first = tok.encode("CCO") + tok.encode("CCN", add_special=False) + [tok.eos_id]
    assert ids[0, : len(first)].tolist() == first
    assert mask[0].tolist() == [True] * 9 + [False] * 4  # row 2 is the longer one: 13 tokens
    assert target[0].tolist() == [False] * 5 + [True] * 4 + [False] * 4  # C C N <eos>
    assert target[1].tolist() == [False] * 11 + [True] * 2  # C <eos>
    with pytest.raises(ValueError, match="pair 0"):
        PairDataset(["CC[Xe]"], ["CCO"], tok)


def test_recurrent_form_scores_what_training_scores(lm, pairs):
    """optimize() runs the training layout: the recurrent log-likelihood of each target
    given prompt + source equals the parallel pair loss."""
    model, tok = lm
    prompt = SoftPrompt.from_model(model, 5, seed=2)().detach()
    data = PairDataset(pairs["source"][:3].tolist(), pairs["target"][:3].tolist(), tok)
    for i in range(3):
        parallel = pair_loss(model, prompt, collate_pairs([data[i]], tok.pad_id))
        ids, n_context = data[i]
        state = model.init_state(1)
        for p in range(5):
            _, state = model.embed_step(prompt[p : p + 1], p, state)
        nll = []
        for t in range(len(ids) - 1):
            # context after the 5 prompt vectors; the target restarts at position 1
            position = 5 + t if t < n_context else t - n_context + 1
            logits, state = model.step(ids[t : t + 1], position, state)
            if t + 1 >= n_context:
                nll.append(-torch.log_softmax(logits[0].double(), -1)[ids[t + 1]])
        assert float(parallel) == pytest.approx(float(torch.stack(nll).mean()), abs=1e-5)


class _FrozenCheck(L.Callback):
    def __init__(self) -> None:
        self.seen = 0

    def on_train_batch_start(self, trainer, task, batch, batch_idx) -> None:
        assert not any(m.training for m in task.model.modules())  # dropout off in the base
        assert task.prompt.training
        self.seen += 1


def test_base_frozen_bitwise_and_in_eval_mode(lm, pairs):
    model = copy.deepcopy(lm[0])
    tok = lm[1]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    prompt = SoftPrompt.from_model(model, 4, seed=0)
    start = prompt().detach().clone()
    task = PairTuningTask(model, prompt, lr=0.05, warmup_steps=1, max_steps=5)
    data = PairDataset(pairs["source"][:16].tolist(), pairs["target"][:16].tolist(), tok)
    loader = torch.utils.data.DataLoader(
        data, batch_size=8, collate_fn=lambda items: collate_pairs(items, tok.pad_id)
    )
    check = _FrozenCheck()
    trainer = L.Trainer(
        max_steps=5, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[check],
    )  # fmt: skip
    trainer.fit(task, train_dataloaders=loader)
    assert check.seen == 5
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, before[name]), name
    assert not any(p.requires_grad for p in model.parameters())
    assert (prompt().detach() - start).abs().max() > 1e-3


def test_prompt_overfits_a_handful_of_pairs(lm, pairs):
    model, tok = lm
    few = pairs.head(8)
    prompt, stats = train_prompt(
        model, tok, few["source"].tolist(), few["target"].tolist(),
        n_prompt=16, max_steps=100, batch_size=8, lr=0.1, warmup_steps=5, accelerator="cpu",
    )  # fmt: skip
    assert stats["n_pairs"] == 8 and stats["steps"] == 100
    data = PairDataset(few["source"].tolist(), few["target"].tolist(), tok)
    untrained = SoftPrompt.from_model(model, 16, seed=0)().detach()
    loss_before = evaluate_pair_loss(model, untrained, data, pad_id=tok.pad_id)
    loss_after = evaluate_pair_loss(model, prompt().detach(), data, pad_id=tok.pad_id)
    assert loss_before == pytest.approx(stats["loss_before"], rel=1e-6)
    assert loss_after == pytest.approx(stats["loss_after"], rel=1e-6)
    assert loss_after < 0.75 * loss_before, (loss_before, loss_after)


@pytest.fixture(scope="module")
def tuned(lm, pairs) -> SoftPrompt:
    model, tok = lm
    prompt, _ = train_prompt(
        model, tok, pairs["source"].tolist(), pairs["target"].tolist(),
        n_prompt=8, max_steps=15, batch_size=16, lr=0.05, accelerator="cpu",
    )  # fmt: skip
    return prompt


def test_score_candidates_recomputed_independently():
    source = TEST_SMILES[0]
    src = Chem.MolFromSmiles(source)
    same = Chem.MolToSmiles(src, rootedAtAtom=2)  # another spelling of the source
    candidates = [*TEST_SMILES[1:4], same, "C1CC", ""]
    frame = score_candidates(source, candidates, source_index=4)
    assert list(frame.columns) == CANDIDATE_COLUMNS
    assert frame["valid"].tolist() == [True] * 4 + [False] * 2
    assert (frame["source_index"] == 4).all() and (frame["source"] == source).all()
    for row in frame[frame["valid"]].itertuples():
        mol = Chem.MolFromSmiles(row.candidate)
        assert row.canonical == Chem.MolToSmiles(mol)
        sim = DataStructs.TanimotoSimilarity(GEN.GetFingerprint(src), GEN.GetFingerprint(mol))
        assert row.similarity == pytest.approx(sim, abs=1e-12)
        assert row.candidate_value == pytest.approx(QED.qed(mol), abs=1e-12)
        assert row.source_value == pytest.approx(QED.qed(src), abs=1e-12)
        assert row.improvement == pytest.approx(QED.qed(mol) - QED.qed(src), abs=1e-12)
    assert frame["similarity"][3] == 1.0 and frame["improvement"][3] == 0.0
    invalid = frame[~frame["valid"]]
    assert invalid["similarity"].isna().all() and invalid["improvement"].isna().all()
    no_oracle = score_candidates(source, candidates[:2], property=None, source_value=1.5)
    assert no_oracle["source_value"].tolist() == [1.5, 1.5]
    assert no_oracle["candidate_value"].isna().all() and no_oracle["similarity"].notna().all()


def _greedy_parallel(model, tok, prompt, source, max_length):
    """Greedy decoding with the parallel form: re-run forward() on the growing sequence."""
    ids, generated = tok.encode(source), []
    banned = [tok.pad_id, tok.bos_id, tok.unk_id]
    for _ in range(max_length):
        positions = [len(prompt) + i for i in range(len(ids))] + list(range(1, len(generated) + 1))
        logits = model(
            torch.tensor([ids + generated]),
            prefix_embeds=prompt,
            positions=torch.tensor([positions]),
        )[0, -1]
        logits[banned] = float("-inf")
        token = int(logits.argmax())
        if token == tok.eos_id:
            return tok.decode(generated), False
        generated.append(token)
    return tok.decode(generated), True


def test_optimize_greedy_matches_parallel_decoding(lm, tuned):
    """The recurrent optimize() decodes exactly what the training layout predicts."""
    model, tok = lm
    sources = TEST_SMILES[:3]
    frame = optimize(model, tok, tuned, sources, n_candidates=2, temperature=0, max_length=40)
    assert list(frame.columns) == CANDIDATE_COLUMNS
    assert frame["source"].tolist() == [s for s in sources for _ in range(2)]
    with torch.no_grad():
        for i, source in enumerate(sources):
            expected, truncated = _greedy_parallel(model, tok, tuned().detach(), source, 40)
            rows = frame[frame["source_index"] == i]
            assert rows["candidate"].tolist() == [expected, expected]
            assert rows["truncated"].tolist() == [truncated, truncated]
            rescored = score_candidates(
                source, [expected] * 2, source_index=i, truncated=[truncated] * 2
            )
            pd.testing.assert_frame_equal(rows.reset_index(drop=True), rescored)


def test_optimize_sampling_shapes(lm, tuned):
    model, tok = lm
    frame = optimize(model, tok, tuned, TEST_SMILES[:3], n_candidates=12, seed=0, max_length=60)
    assert len(frame) == 36 and frame["source_index"].tolist() == [
        i for i in range(3) for _ in range(12)
    ]
    assert frame["candidate"].nunique() > 12  # sampling, not one string repeated
    for text in frame["candidate"]:
        if text:  # every candidate is made of vocabulary tokens
            tok.encode(text)
    assert (
        frame["truncated"]
        == (frame["candidate"].map(lambda c: len(tok.tokenize(c)) if c else 0) == 60)
    ).all()


def test_optimize_syntax_mask_gives_complete_syntax(lm, tuned):
    """With the mask every finished candidate has closed branches and rings of its own."""
    model, tok = lm
    frame = optimize(
        model, tok, tuned, TEST_SMILES[:2], n_candidates=10, seed=0, max_length=60, syntax_mask=True
    )
    finished = frame.loc[~frame["truncated"], "candidate"]
    assert len(finished) >= 10, frame["truncated"].sum()  # of 20: the check below is not empty
    for text in finished:
        tokens = tok.tokenize(text)
        labels = [t for t in tokens if t.isdigit()]
        assert tokens.count("(") == tokens.count(")")
        assert all(labels.count(label) % 2 == 0 for label in set(labels)), text


def test_optimize_is_seeded_per_source(lm, tuned):
    model, tok = lm
    both = optimize(model, tok, tuned, TEST_SMILES[:2], n_candidates=5, seed=7, max_length=40)
    again = optimize(model, tok, tuned, TEST_SMILES[:2], n_candidates=5, seed=7, max_length=40)
    pd.testing.assert_frame_equal(both, again)
    other = optimize(model, tok, tuned, TEST_SMILES[:2], n_candidates=5, seed=8, max_length=40)
    assert other["candidate"].tolist() != both["candidate"].tolist()
    # candidates of source i depend on (seed, i, source), not on the other sources
    replaced = optimize(
        model, tok, tuned, [TEST_SMILES[5], TEST_SMILES[1]], n_candidates=5, seed=7, max_length=40
    )
    assert replaced["candidate"][5:].tolist() == both["candidate"][5:].tolist()
    assert replaced["candidate"][:5].tolist() != both["candidate"][:5].tolist()


def test_prompt_round_trip_gives_identical_candidates(lm, tuned, tmp_path):
    model, tok = lm
    save_prompt(
        tmp_path / "p", tuned, model=model, base_model="tiny", property_name="qed",
        tokenizer=tok, training={"steps": 40},
    )  # fmt: skip
    loaded, config = load_prompt(tmp_path / "p", model, tok)
    assert torch.equal(loaded(), tuned())
    assert config["property"] == "qed" and config["n_prompt"] == 8
    assert config["training"] == {"steps": 40} and config["base_model"] == "tiny"
    a = optimize(model, tok, tuned, TEST_SMILES[:2], n_candidates=6, seed=3, max_length=40)
    b = optimize(model, tok, loaded, TEST_SMILES[:2], n_candidates=6, seed=3, max_length=40)
    pd.testing.assert_frame_equal(a, b)
    other = copy.deepcopy(model)
    with torch.no_grad():
        other.lm_head.bias.add_(1e-3)
    with pytest.raises(ValueError, match="another base model"):
        load_prompt(tmp_path / "p", other)
    with pytest.raises(ValueError, match="another vocabulary"):
        load_prompt(tmp_path / "p", tokenizer=SmilesTokenizer.build(["CCO"]))


def _frame(rows: list[tuple]) -> pd.DataFrame:
    columns = ["source_index", "source", "valid", "canonical", "similarity", "improvement"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["source_value"] = 0.5
    frame["candidate_value"] = np.where(frame["valid"], 0.5 + frame["improvement"], np.nan)
    return frame


def test_report_matches_hand_computation():
    frame = _frame(
        [
            # source 0: best eligible gains 0.3 (delta 0, 0.4) and 0.1 (delta 0.6)
            (0, "CCO", True, "CCN", 0.45, 0.3),
            (0, "CCO", True, "CCCO", 0.7, 0.1),
            (0, "CCO", True, "CCO", 1.0, 0.0),  # the source itself: never eligible
            (0, "CCO", False, None, np.nan, np.nan),
            # source 1: only a worse candidate (floored at 0) and one at delta 0 only
            (1, "c1ccccc1", True, "c1ccncc1", 0.65, -0.2),
            (1, "c1ccccc1", True, "Cc1ccccc1", 0.2, 0.4),
            # source 2: nothing valid
            (2, "CC(=O)O", False, None, np.nan, np.nan),
            (2, "CC(=O)O", False, None, np.nan, np.nan),
        ]
    )
    report = optimization_report(frame)
    assert report["n_sources"] == 3 and report["n_candidates"] == 8
    assert report["validity"] == pytest.approx(5 / 8)
    assert report["uniqueness"] == pytest.approx(5 / 5)
    assert report["mean_similarity"] == pytest.approx((0.45 + 0.7 + 1.0 + 0.65 + 0.2) / 5)
    assert report["identical_to_source"] == pytest.approx(1 / 5)
    d0, d4, d6 = (report["delta"][k] for k in ("0.0", "0.4", "0.6"))
    assert d0["success_rate"] == pytest.approx(2 / 3) and d0["n_success"] == 2
    assert d0["improvement_mean"] == pytest.approx((0.3 + 0.4 + 0.0) / 3)
    assert d0["improvement_std"] == pytest.approx(np.std([0.3, 0.4, 0.0]))
    assert d0["improvement_median"] == pytest.approx(0.3)
    assert d0["improvement_mean_success"] == pytest.approx(0.35)
    assert d4["success_rate"] == pytest.approx(1 / 3)
    assert d4["improvement_mean"] == pytest.approx(0.1)  # (0.3 + max(0, -0.2) + 0) / 3
    assert d6["improvement_mean"] == pytest.approx(0.1 / 3)
    assert d6["improvement_median"] == 0.0 and d6["improvement_mean_success"] == pytest.approx(0.1)


def test_report_without_oracle_has_no_improvements():
    frame = _frame([(0, "CCO", True, "CCN", 0.5, np.nan)])
    frame["candidate_value"] = np.nan
    report = optimization_report(frame)
    assert report["validity"] == 1.0
    assert report["delta"]["0.4"]["improvement_mean"] is None
    assert report["delta"]["0.4"]["success_rate"] is None
