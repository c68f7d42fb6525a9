"""What a new user ran into: each mistake is one line naming the file or data set and the flag
to give, refused before any work, with nothing left behind."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem
from typer.testing import CliRunner

from molfm.chem.featurize import featurize
from molfm.cli.main import app

runner = CliRunner()
DATA = Path(__file__).parents[1] / "data"


def _one_line_error(result, *needles: str) -> str:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def _nothing_left(tmp_path: Path, before: set[Path]) -> None:
    assert set(tmp_path.iterdir()) == before, sorted(set(tmp_path.iterdir()) - before)


@pytest.fixture
def files(tmp_path):
    """A flat SDF (2D drawings with a target), a CSV of SMILES with a target, an empty CSV."""
    flat = tmp_path / "flat.sdf"
    with Chem.SDWriter(str(flat)) as writer:
        for i, smiles in enumerate(("CCO", "CC(=O)N", "c1ccncc1", "CCN")):
            mol = Chem.MolFromSmiles(smiles)
            AllChem.Compute2DCoords(mol)
            mol.SetProp("y", str(float(i)))
            writer.write(mol)
    csv = tmp_path / "mols.csv"
    csv.write_text("smiles,logS\nCCO,1.0\nCCN,2.0\nCCC,3.0\nCCCl,4.0\n")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    return flat, csv, empty


def test_3d_on_a_flat_sdf_is_refused_wherever_3d_is_read(files, tmp_path):
    flat, _, _ = files
    before = set(tmp_path.iterdir())
    cache = ["--cache-dir", str(tmp_path / "cache")]
    named = [f"{flat}: 4 of 4 SD records have 2D coordinates", "needs 3D coordinates"]
    predict = ["predict", "--data-path", str(flat), "--mode", "3d", "-o", str(tmp_path / "p.csv")]
    _one_line_error(runner.invoke(app, predict), *named, "--conformers", "--mode 2d")
    pretrain = ["pretrain", "3d-pgt", "--data-path", str(flat), "--output-dir", str(tmp_path / "r")]
    _one_line_error(runner.invoke(app, [*pretrain, *cache]), *named, "--conformers")
    train = [
        "train", "property", "--data-path", str(flat), "--target-columns", "y", "--mode", "3d",
        "--output-dir", str(tmp_path / "r"), *cache,
    ]  # fmt: skip
    _one_line_error(runner.invoke(app, train), *named, "--mode 2d")
    _nothing_left(tmp_path, before)
    # with --conformers the same file predicts in 3D
    ok = runner.invoke(app, [*predict, "--conformers"])
    assert ok.exit_code == 0, ok.output
    assert pd.read_csv(tmp_path / "p.csv")["used_3d"].all()


def test_pretraining_on_a_data_set_without_coordinates_fails_before_any_work(tmp_path):
    cache = tmp_path / "cache"
    args = ["pretrain", "3d-pgt", "--data", "moses", "--output-dir", str(tmp_path / "run")]
    line = _one_line_error(runner.invoke(app, [*args, "--cache-dir", str(cache)]), "'moses'")
    assert "qm9" in line and "SDF" in line and "--conformers" in line
    assert not cache.exists() or not any(cache.rglob("*"))  # no wheel fetched, nothing prepared
    assert not (tmp_path / "run").exists()


def test_training_without_target_columns_names_the_flag_and_the_columns(files, tmp_path):
    _, csv, _ = files
    before = set(tmp_path.iterdir())
    args = ["train", "property", "--data-path", str(csv), "--output-dir", str(tmp_path / "run")]
    _one_line_error(
        runner.invoke(app, [*args, "--cache-dir", str(tmp_path / "cache")]),
        str(csv), "--target-columns", "smiles, logS",
    )  # fmt: skip
    _nothing_left(tmp_path, before)


def test_unreadable_files_are_named(files, tmp_path):
    _, _, empty = files
    before = set(tmp_path.iterdir())
    out = ["-o", str(tmp_path / "p.csv")]
    _one_line_error(
        runner.invoke(app, ["predict", "--data-path", str(empty), *out]), f"{empty} is empty"
    )
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    before.add(binary)
    _one_line_error(
        runner.invoke(app, ["predict", "--data-path", str(binary), *out]),
        f"{binary} is not a UTF-8 text file",
    )
    train = ["train", "property", "--data-path", str(empty), "--target-columns", "y"]
    train += ["--output-dir", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache")]
    _one_line_error(runner.invoke(app, train), f"{empty} is empty")
    for command in (["name", "--data-path", str(empty)], ["evaluate", "generation", str(empty)]):
        _one_line_error(runner.invoke(app, [*command, *out]), f"{empty} is empty")
    _nothing_left(tmp_path, before)


def _rewritten(mol: Chem.Mol, rng: np.random.Generator) -> tuple[Chem.Mol, np.ndarray]:
    """``mol`` (3D) written from randomly renumbered atoms and read back, as another program
    would list it: atoms and bonds in another order. Atom ``j`` of it is ``perm[j]`` of ``mol``."""
    order = rng.permutation(mol.GetNumAtoms())
    renumbered = Chem.RenumberAtoms(mol, order.tolist())
    other = Chem.MolFromSmiles(Chem.MolToSmiles(renumbered, canonical=False))
    written = renumbered.GetProp("_smilesAtomOutputOrder").strip("[]").split(",")
    perm = order[[int(i) for i in written if i]]
    conf = Chem.Conformer(other.GetNumAtoms())
    conf.SetPositions(mol.GetConformer().GetPositions()[perm])
    other.AddConformer(conf, assignId=True)
    return other, perm


def test_the_same_molecule_from_two_atom_orders_gets_the_same_prediction(tmp_path):
    """Chiral drugs in 3D in two SDFs that list their atoms and bonds in other orders: read in
    file order some CW/CCW tags (the OGB chirality feature) differ; the predictions are the same."""
    frame = pd.read_csv(DATA / "b3db_classification_150.tsv", sep="\t")
    chiral = [m for m in map(Chem.MolFromSmiles, frame["SMILES"]) if Chem.FindMolChiralCenters(m)]
    rng = np.random.default_rng(0)
    paths, perms, flipped = [tmp_path / "a.sdf", tmp_path / "b.sdf"], [], 0
    with Chem.SDWriter(str(paths[0])) as a, Chem.SDWriter(str(paths[1])) as b:
        for mol in chiral[:12]:
            mol = Chem.AddHs(mol)
            AllChem.EmbedMolecule(mol, randomSeed=0)
            mol = Chem.RemoveHs(mol)
            other, perm = _rewritten(mol, rng)
            a.write(mol), b.write(other), perms.append(perm)
    for mol_a, mol_b, perm in zip(*map(Chem.SDMolSupplier, map(str, paths)), perms, strict=True):
        flipped += featurize(mol_b).x[:, 1].tolist() != featurize(mol_a).x[perm, 1].tolist()
    assert flipped >= 3, flipped  # in file order the tags do differ
    preds = []
    for path in paths:
        out = tmp_path / f"{path.stem}.csv"
        result = runner.invoke(app, ["predict", "--data-path", str(path), "-o", str(out)])
        assert result.exit_code == 0, result.output
        preds.append(pd.read_csv(out))
    assert preds[0]["used_3d"].all() and (preds[0]["smiles"] == preds[1]["smiles"]).all()
    for target in ("homo", "lumo", "gap"):
        np.testing.assert_allclose(preds[0][target], preds[1][target], rtol=1e-5, atol=1e-5)
