"""The cached canonical training set."""

import gzip

import pandas as pd

from molfm.eval.training_set import training_set


def test_csv_training_set_is_canonical_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("MOLFM_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "train.csv"
    pd.DataFrame({"smiles": ["OCC", "C(C)O", "c1ccccc1", "not smiles", ""]}).to_csv(
        path, index=False
    )
    first = training_set(str(path), n_jobs=1)
    assert first == {"CCO", "c1ccccc1"}
    cached = list((tmp_path / "cache" / "canonical").glob("*.txt.gz"))
    assert len(cached) == 1
    with gzip.open(cached[0], "rt", encoding="utf-8") as fh:
        assert fh.read() == "CCO\nc1ccccc1\n"  # sorted, one per line
    # The second call reads the file: a marker written into it comes back.
    with gzip.open(cached[0], "wt", encoding="utf-8") as fh:
        fh.write("CCO\nc1ccccc1\nMARKER\n")
    assert training_set(str(path), n_jobs=1) == first | {"MARKER"}
    path.write_text("smiles\nCCN\n")  # new content -> new key, never a stale answer
    assert training_set(str(path), n_jobs=1) == {"CCN"}
    assert len(list(cached[0].parent.glob("*.txt.gz"))) == 2
