"""Memorization curve: hand-computed values and the plot file."""

import pytest

from molfm.eval.memorization import default_checkpoints, memorization_curve, plot_memorization


def test_hand_computed_curve():
    train = {"CCO", "c1ccccc1"}
    generated = ["CCO", None, "CCN", "CCO", "c1ccccc1", "CCC"]
    curve = memorization_curve(generated, train, checkpoints=[1, 3, 4, 6])
    row = curve.set_index("n")
    assert row.loc[1, "memorized"] == 1.0 and row.loc[1, "copies"] == 1.0
    assert row.loc[3, "n_valid"] == 2 and row.loc[3, "n_unique"] == 2
    assert row.loc[3, "memorized"] == 0.5 and row.loc[3, "novel_unique"] == 1
    assert row.loc[4, "copies"] == pytest.approx(2 / 4)
    assert row.loc[6, "n_unique"] == 4 and row.loc[6, "n_memorized_unique"] == 2
    assert row.loc[6, "novelty"] == 0.5 and row.loc[6, "copies"] == pytest.approx(3 / 6)


def test_checkpoints_and_bounds():
    points = default_checkpoints(30000)
    assert points[0] == 10 and points[-1] == 30000 and points == sorted(set(points))
    with pytest.raises(ValueError, match="checkpoints"):
        memorization_curve(["C"], set(), checkpoints=[2])


def test_plot_writes_png(tmp_path):
    curve = memorization_curve(["C", "CC", "C", "CCC"] * 5, {"C"})
    path = plot_memorization(curve, tmp_path / "mem.png", title="test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert curve["n"].tolist() == default_checkpoints(20) == list(range(10, 21))
    assert (curve["copies"].iloc[[0, -1]] == 0.5).all() and (curve["n_unique"] == 3).all()
