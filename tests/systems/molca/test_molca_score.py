"""benchmarks/molca_score.py on a three-molecule predictions CSV: exact beam-0 and verified
rates, agreement of its per-k curve with ``molfm name --verify``'s ``verify_names``, and
one-line errors for bad inputs. Uses OPSIN (Java), as tests/eval/test_text.py does."""

from __future__ import annotations

import importlib.util
import json

import pandas as pd
import pytest

from molfm.eval.text import verify_names


@pytest.fixture(scope="module")
def score(benchmark_script):
    return benchmark_script("molca_score")


ROWS = [
    # beam_0 right
    {"id": "1", "smiles": "CCO", "target": "ethanol",
     "beam_0": "ethanol", "beam_1": "methanol", "beam_2": None},
    # beam_0 wrong (parses), beam_1 right
    {"id": "2", "smiles": "OC(=O)c1ccccc1", "target": "benzoic acid",
     "beam_0": "benzaldehyde", "beam_1": "benzoic acid", "beam_2": "phenol"},
    # beam_0 does not parse, no beam right
    {"id": "3", "smiles": "CC(C)O", "target": "propan-2-ol",
     "beam_0": "qwertyzane-9-ium soup", "beam_1": "propan-1-ol", "beam_2": ""},
]  # fmt: skip


def test_scores_and_table(score, tmp_path, capsys):
    path = tmp_path / "preds.csv"
    pd.DataFrame(ROWS).to_csv(path, index=False)  # None -> empty cell
    # a second variant: rows in another order, one extra id (not scored), all beam_0 right
    other = pd.DataFrame(ROWS[::-1] + [{**ROWS[0], "id": "9"}])
    other["beam_0"] = other["target"]
    other_path = tmp_path / "other.csv"
    other.to_csv(other_path, index=False)
    out = tmp_path / "results" / "score.json"
    peer = importlib.util.find_spec("nispo") is not None  # the peer is in the "bench" extra
    args = ["gine=" + str(path), "other=" + str(other_path), "-o", str(out)]
    rc = score.main(args + ([] if peer else ["--no-peer"]))
    assert rc == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["n"] == 3
    v = result["variants"]["gine"]
    assert v["num_beams"] == 3 and v["n"] == 3 and v["rows_in_file"] == 3
    assert v["beam0_opsin"]["opsin_parse_rate"] == pytest.approx(2 / 3)
    assert v["beam0_opsin"]["opsin_exact_rate"] == pytest.approx(1 / 3)
    assert v["beam0_exact_string_match"] == pytest.approx(1 / 3)
    assert v["verified_rate"] == pytest.approx(2 / 3)
    assert v["verified_rate_at_k"] == pytest.approx([1 / 3, 2 / 3, 2 / 3])
    assert v["verified_beam_counts"] == [1, 1, 0]
    assert v["beam0_text"]["n"] == 3 and 0 < v["beam0_text"]["bleu2"] < 1
    # the --verify names (ethanol, benzoic acid, beam_0) score higher than beam_0 alone
    assert v["verified_name_text"]["rougeL"] > v["beam0_text"]["rougeL"]
    w = result["variants"]["other"]
    assert w["rows_in_file"] == 4 and w["n"] == 3
    assert w["beam0_opsin"]["opsin_exact_rate"] == 1.0 and w["beam0_exact_string_match"] == 1.0
    assert w["beam0_text"]["rougeL"] == pytest.approx(1.0)
    table = capsys.readouterr().out
    assert "| gine (k=3) | 3 | " in table and "| 33.3 | 66.7 |" in table
    if not peer:
        assert result["nispo"] is None and "| nispo |" not in table
        return
    assert result["nispo"]["n"] == 3 and result["nispo"]["seconds_per_molecule"] > 0
    assert result["nispo"]["opsin"]["opsin_exact_rate"] == 1.0  # nispo names all three right
    assert "| nispo | 3 |" in table


def test_per_k_curve_agrees_with_verify_names(score):
    beams = [
        ["methanol", "ethanol", "ethanol"],
        ["benzoic acid", "benzaldehyde"],
        ["", "propan-1-ol", "propan-2-ol"],
        ["dimethylamine", "n,n-dimethylmethanamide"],  # verified in its PubChem-style form
        ["qwertyzane", ""],
    ]
    smiles = ["CCO", "OC(=O)c1ccccc1", "CC(C)O", "CN(C)C=O", "C"]
    names, verified = verify_names(beams, smiles)
    hits = [
        score.first_verified([c.same_structure for c in mine])
        for mine in score.check_beams(beams, smiles)
    ]
    assert hits == [1, 0, 2, 1, None]
    assert [h is not None for h in hits] == verified
    assert [b[h] if h is not None else b[0] for b, h in zip(beams, hits)] == names
    assert score.verified_at_k(hits, 3) == pytest.approx([1 / 5, 3 / 5, 4 / 5])


def test_bad_inputs_are_one_line_errors(score, tmp_path, capsys):
    assert score.main(["a=" + str(tmp_path / "missing.csv"), "--no-peer"]) == 1
    err = capsys.readouterr().err.strip()
    assert "missing.csv: no such file" in err and len(err.splitlines()) == 1

    no_beams = tmp_path / "no_beams.csv"
    pd.DataFrame({"id": [1], "smiles": ["CCO"], "target": ["ethanol"]}).to_csv(no_beams)
    assert score.main(["a=" + str(no_beams), "--no-peer"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.endswith("missing column(s) beam_0") and len(err.splitlines()) == 1

    gap = tmp_path / "gap.csv"
    pd.DataFrame({"id": [1], "smiles": ["CCO"], "target": ["x"], "beam_1": ["x"]}).to_csv(gap)
    assert score.main(["a=" + str(gap), "--no-peer"]) == 1
    assert "missing column(s) beam_0" in capsys.readouterr().err
    invalid = tmp_path / "invalid.csv"
    pd.DataFrame({"id": [7], "smiles": ["C1CC"], "target": ["x"], "beam_0": ["x"]}).to_csv(invalid)
    assert score.main(["a=" + str(invalid), "--no-peer"]) == 1
    assert "the smiles of id '7' is not valid" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()
