"""Decoding that ends: the locant-run, repeat and length limits and the overlength penalty (unit
and in beam search on a tiny model), LoRA merged for inference, and ``molfm name`` with the
decoding options and a progress bar."""

import re

import pandas as pd
import pytest
import torch
from torch.testing import assert_close

from molfm.chem.featurize import smiles_to_data
from molfm.data.dense import DenseGraphDataset, collate_dense
from molfm.systems.molca.decoding import (
    LocantRunLimit,
    MoleculeLengthLimit,
    OverlengthPenalty,
    RepeatLimit,
    beam_endings,
    locant_token_ids,
    molecule_caps,
    soft_caps,
)
from molfm.systems.molca.lm import save_tiny_lm, tiny_tokenizer
from molfm.systems.molca.model import MolCA, MolCAConfig

SMILES = ["CCO", "c1ccccc1", "CC(=O)O"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from molfm.hub import save_pretrained

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("molca-decoding")
    save_tiny_lm(root / "lm", initializer_range=0.3)
    config = MolCAConfig(
        graph_encoder={"type": "gine", "config": {"num_layers": 2, "dim": 32, "dropout": 0.0}},
        qformer={"num_layers": 2, "num_query_tokens": 4, "dropout": 0.0},
        lm=str(root / "lm"),
        lm_tuning={"mode": "lora", "r": 4, "alpha": 8},
    )
    model = MolCA.build(config)
    with torch.no_grad():  # non-zero adapters, so merging them changes the LM's weights
        for name, param in model.lm.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.05, generator=torch.Generator().manual_seed(1))
    save_pretrained(model.eval(), root / "namer")
    return root


def _graphs(smiles):
    data = DenseGraphDataset([smiles_to_data(s) for s in smiles])
    return collate_dense([data[i] for i in range(len(smiles))])


def test_locant_tokens_are_digits_commas_and_hyphens():
    tok = tiny_tokenizer()
    ids = locant_token_ids(tok)
    assert sorted(tok.convert_tokens_to_string([t]) for t in tok.convert_ids_to_tokens(ids)) == (
        sorted([",", "-", *"0123456789"])
    )


def test_the_repeat_limit_ends_a_unit_repeated_too_often():
    limit = RepeatLimit(max_repeats=2, eos_token_id=2, max_unit=3)
    scores = torch.zeros(4, 10)
    ids = torch.tensor(
        [
            [9, 4, 5, 4, 5, 4, 5],  # "4 5" three times: ends
            [9, 9, 7, 7, 7, 7, 7],  # "7" five times: ends
            [4, 5, 6, 4, 5, 6, 1],  # twice, then another token: goes on
            [3, 4, 5, 3, 4, 5, 3],  # the unit's third copy is not complete: goes on
        ]
    )
    out = limit(ids, scores)
    for row in (0, 1):
        assert torch.isinf(out[row]).sum() == 9 and out[row, 2] == 0
    assert torch.equal(out[2:], scores[2:])
    assert torch.equal(limit(ids[:, :1], scores), scores)  # too short for any repeat
    with pytest.raises(ValueError, match="max_repeats"):
        RepeatLimit(max_repeats=0, eos_token_id=2)


def test_the_repeat_limit_lets_deeply_nested_real_names_end_by_themselves():
    """Polyethylene-glycol names nest ``2-[`` 18 deep in the training names (the deepest). In
    one-character tokens such a name repeats ``ethoxy]`` 19 times: ``max_repeats`` 19 lets
    every prefix of it go on and stops a loop of 20 ``2-[``; 18 would cut the real name."""
    tok = tiny_tokenizer()  # one token per character
    name = "2-[" * 18 + "2-(2-hexadecoxyethoxy)ethoxy" + "]ethoxy" * 18 + "]ethanol"
    ids = torch.tensor([tok(name, add_special_tokens=False)["input_ids"]])
    scores = torch.zeros(1, len(tok))

    def cut(limit: RepeatLimit) -> int | None:
        """The first prefix length at which ``limit`` allows only the end of sequence."""
        for end in range(1, ids.shape[1] + 1):
            if not torch.equal(limit(ids[:, :end], scores), scores):
                return end
        return None

    assert cut(RepeatLimit(max_repeats=19, eos_token_id=0)) is None
    assert name[: cut(RepeatLimit(max_repeats=18, eos_token_id=0))].endswith("ethoxy]" * 19)
    loop = torch.tensor([tok("2-[" * 20, add_special_tokens=False)["input_ids"]])
    ended = RepeatLimit(max_repeats=19, eos_token_id=0)(loop, scores)
    assert torch.isinf(ended).sum() == len(tok) - 1


def test_the_limit_leaves_only_eos_after_a_run():
    limit = LocantRunLimit([5, 6], max_run=3, eos_token_id=2)
    scores = torch.zeros(3, 10)
    ids = torch.tensor([[9, 5, 6, 5], [5, 6, 9, 5], [9, 9, 9, 9]])
    out = limit(ids, scores)
    assert torch.isinf(out[0]).sum() == 9 and out[0, 2] == 0  # 3 locants in a row: must end
    assert torch.equal(out[1:], scores[1:])
    assert torch.equal(limit(ids[:, :2], scores), scores)  # shorter than the run
    with pytest.raises(ValueError, match="max_run"):
        LocantRunLimit([5], max_run=0, eos_token_id=2)


def test_molecule_caps_grow_with_heavy_atoms_and_stop_at_the_global_cap():
    caps = molecule_caps(["CCO", "c1ccccc1", "C" * 60], tokens_per_atom=2.5, max_new_tokens=64)
    assert caps.tolist() == [3 * 2.5 + 16.5, 6 * 2.5 + 16, 64]  # ceil(7.5) + 16 = 24


def test_the_length_limit_ends_each_molecules_beams_at_its_own_cap():
    limit = MoleculeLengthLimit(torch.tensor([3, 5]), num_beams=2, eos_token_id=1)
    scores = torch.zeros(4, 6)
    out = limit(torch.zeros(4, 2, dtype=torch.long), scores)  # 2 tokens so far
    for row in (0, 1):  # molecule 0 (cap 3): its eos must come now
        assert torch.isinf(out[row]).sum() == 5 and out[row, 1] == 0
    assert torch.equal(out[2:], scores[2:])  # molecule 1 (cap 5) goes on
    assert torch.isinf(limit(torch.zeros(4, 4, dtype=torch.long), scores)).all(dim=1).sum() == 0


def test_the_overlength_penalty_grows_past_each_molecules_soft_cap_and_spares_eos():
    penalty = OverlengthPenalty(torch.tensor([3, 5]), num_beams=2, rate=0.5, eos_token_id=1)
    scores = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    for done, past in ((2, 0), (3, 1), (5, 3)):  # tokens so far; molecule 0's next is done + 1
        out = penalty(torch.zeros(4, done, dtype=torch.long), scores)
        expected = scores.clone()
        for row, cap in enumerate([3, 3, 5, 5]):
            k = max(0, done + 1 - cap)
            expected[row] -= 0.5 * k
            expected[row, 1] = scores[row, 1]  # ending costs what the model says
        assert_close(out, expected)
        assert_close(out[0, [0, 2, 3, 4, 5]], scores[0, [0, 2, 3, 4, 5]] - 0.5 * past)
    with pytest.raises(ValueError, match="rate"):
        OverlengthPenalty(torch.tensor([3]), num_beams=1, rate=0.0, eos_token_id=1)


def test_soft_caps_start_before_the_global_cap_for_large_molecules():
    # 3 * 40 + 16 = 136 fits under 256 - 256 // 4 = 192; 3 * 84 + 16 = 268 does not
    assert soft_caps(["C" * 40, "C" * 84, "CCO"], 3.0, 256).tolist() == [136, 192, 25]


def test_beam_endings_count_hard_caps_and_soft_caps_per_molecule():
    lengths = [[64, 10], [17, 18], [2, 40]]  # CCO (3 atoms), benzene (6), acetic acid (4)
    plain = beam_endings(lengths, SMILES, max_new_tokens=64)
    assert plain == {
        "beam0_at_cap": 1,
        "beams_at_cap": 1,
        "beam0_past_soft_cap": None,
        "beams_past_soft_cap": None,
    }
    # caps ceil(atoms * 0.5) + 16 - 1 (eos last): 17, 18, 17; soft caps atoms * 0.1 + 16: 17, 17, 17
    both = beam_endings(
        lengths, SMILES, max_new_tokens=64, max_tokens_per_atom=0.5, soft_cap_per_atom=0.1
    )
    assert both == {
        "beam0_at_cap": 1,  # CCO's 64
        "beams_at_cap": 3,  # CCO's 64, benzene's 18, acetic acid's 40
        "beam0_past_soft_cap": 2,  # 64 and 17 tokens + eos > 17
        "beams_past_soft_cap": 4,
    }


def test_beams_end_after_the_locant_run_limit(model_dir):
    from molfm.hub import from_pretrained

    model = from_pretrained(model_dir / "namer")
    free = model.generate(_graphs(SMILES), SMILES, num_beams=3, max_new_tokens=24)
    guarded = model.generate(
        _graphs(SMILES), SMILES, num_beams=3, max_new_tokens=24, max_locant_run=1
    )
    assert len(guarded) == len(SMILES)
    for (text,) in guarded:  # after its first locant token, a hypothesis can only end
        assert re.fullmatch(r"[^0-9,\-]*[0-9,\-]?", text), text
    assert any(re.search(r"[0-9,\-][^\n]", t) for (t,) in free) or free != guarded


def test_beams_stay_within_their_molecules_caps(model_dir):
    from molfm.hub import from_pretrained

    model = from_pretrained(model_dir / "namer")
    out = model.generate(
        _graphs(SMILES), SMILES, num_beams=3, max_new_tokens=40, max_tokens_per_atom=0.5
    )  # caps: CCO 18, benzene 19, acetic acid 18 tokens, eos included
    free = model.generate(_graphs(SMILES), SMILES, num_beams=3, max_new_tokens=40)
    for (text,), cap in zip(out, [18, 19, 18], strict=True):
        # one byte per token, and a byte decodes to at most one character
        assert len(text) <= cap - 1, text
    assert max(len(t) for (t,) in free) > 18  # the tiny model runs on without the cap


def test_the_overlength_penalty_ends_beams_soon_after_their_soft_caps(model_dir):
    from molfm.hub import from_pretrained

    model = from_pretrained(model_dir / "namer")
    free = model.generate(_graphs(SMILES), SMILES, num_beams=3, max_new_tokens=40)
    soft = model.generate(
        _graphs(SMILES),
        SMILES,
        num_beams=3,
        max_new_tokens=40,
        soft_cap_per_atom=0.5,  # soft caps: CCO 18, benzene 19, acetic acid 18 tokens
        soft_cap_rate=4.0,
    )
    lengths = [[len(t) for (t,) in out] for out in (free, soft)]  # one byte per token
    assert max(lengths[0]) >= 39  # the tiny model runs to the cap without the penalty
    for n, cap in zip(lengths[1], [18, 19, 18], strict=True):
        assert n + 1 <= cap + 3, (n, cap)  # a few tokens past, eos included, and it ends


def test_merged_lora_gives_the_same_logits_and_refuses_to_save(model_dir):
    from molfm.hub import from_pretrained

    model = from_pretrained(model_dir / "namer").eval()
    graphs = _graphs(SMILES)
    instruction = model.config.instruction("iupac")
    with torch.no_grad():
        before = model(graphs, SMILES, instruction).logits
        merged = model.merge_lora()
        after = merged(graphs, SMILES, instruction).logits
    assert not hasattr(merged.lm, "merge_and_unload")  # a plain LM now
    assert_close(after, before, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="merged"):
        merged.checkpoint_state_dict()


def test_molfm_name_with_decoding_options_and_progress(model_dir, tmp_path, capsys):
    from molfm.systems.molca.config import NameConfig
    from molfm.systems.molca.run import name_molecules

    pd.DataFrame({"smiles": SMILES}).to_csv(tmp_path / "m.csv", index=False)
    common = {
        "data_path": str(tmp_path / "m.csv"),
        "model": str(model_dir / "namer"),
        "accelerator": "cpu",
        "num_beams": 2,
        "max_new_tokens": 16,
    }
    plain = name_molecules(NameConfig(**common, output=str(tmp_path / "a.csv"), progress=False))
    guarded = name_molecules(
        NameConfig(
            **common,
            output=str(tmp_path / "b.csv"),
            max_locant_run=1,
            max_repeats=2,
            soft_cap_per_atom=1.0,
            soft_cap_rate=2.0,
            length_penalty=0.5,
            no_repeat_ngram_size=3,
            merge_lora=True,
            progress=True,
        )
    )
    assert len(plain.frame) == len(guarded.frame) == len(SMILES)
    for text in guarded.frame["name"].fillna(""):
        assert re.fullmatch(r"[^0-9,\-]*[0-9,\-]?", text), text
