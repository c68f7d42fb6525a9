"""Tests for molfm.data.sources on real fixture slices (no downloads)."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import pickle
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rdkit import Chem
from rdkit.Chem import rdDetermineBonds

from molfm.chem.parse import InvalidMoleculeError
from molfm.data import fetch
from molfm.data.sources import (
    HARTREE_TO_EV,
    B3DBSource,
    CSVSource,
    MosesSource,
    PubChemNamesSource,
    QM9Source,
    SDFSource,
    SourceError,
    SourceInfo,
    get_source,
    list_sources,
    reference_stats,
)
from molfm.data.sources.b3db import normalize_cids
from molfm.data.sources.moses import _StatsUnpickler

DATA = Path(__file__).parent
QM9_FILES = {"parts": [DATA / "qm9_100.csv"], "polarizability": DATA / "qm9_polarizability_100.csv"}
B3DB_FILES = {
    "classification": DATA / "b3db_classification_150.tsv",
    "regression": DATA / "b3db_regression_100.tsv",
}
# Row 1 of qm9pack/data/qm9_part1.csv (QM9 index 1, methane), verbatim with the wheel's quoting.
METHANE = (
    "\"dsgdb9nsd_000001.xyz\",1,\"C\",\"InChI=1S/CH4/h1H4\",5,\"[4,1,0,0,0]\",\"['C','H','H','H','H']\","
    '"[[-0.0126981359,1.0858041578,0.0080009958],[0.002150416,-0.0060313176,0.0019761204],'
    "[1.0117308433,1.4637511618,0.0002765748],[-0.540815069,1.4475266138,-0.8766437152],"
    '[-0.5238136345,1.4379326443,0.9063972942]]","[-0.535689,0.133921,0.133922,0.133923,0.133923]",'
    '"[1341.307,1341.3284,1341.365,1562.6731,1562.7453,3038.3205,3151.6034,3151.6788,3151.7078]",'
    "157.7118,157.70997,157.70699,0.,13.21,-0.3877,0.1171,0.5048,35.3641,0.044749,-40.47893,"
    "-40.476062,-40.475117,-40.498597,6.469"
)


def _raw_rows(path: Path, delimiter: str = ",") -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh, delimiter=delimiter))


# ----------------------------------------------------------------------------- MOSES


@pytest.mark.parametrize(
    ("subset", "name"),
    [("train", "moses_train_500.csv"), ("test", "moses_test_200.csv"),
     ("test_scaffolds", "moses_test_scaffolds_200.csv")],
)  # fmt: skip
def test_moses_subsets_keep_every_row(subset: str, name: str) -> None:
    frame = MosesSource(files={subset: DATA / name}).load(subset)
    expected = [row["SMILES"] for row in _raw_rows(DATA / name)]
    assert list(frame.columns) == ["smiles"]
    assert frame["smiles"].tolist() == expected
    assert list(frame.index) == list(range(len(expected)))


def test_moses_reads_gzip_members_like_the_wheel(tmp_path: Path) -> None:
    gz = tmp_path / "test.csv.gz"
    gz.write_bytes(gzip.compress((DATA / "moses_test_200.csv").read_bytes()))
    plain = MosesSource(files={"test": DATA / "moses_test_200.csv"}).load("test")
    packed = MosesSource(files={"test": gz}).load("test")
    pd.testing.assert_frame_equal(plain, packed)


def test_local_files_never_fall_back_to_the_wheel() -> None:
    source = MosesSource(files={"train": DATA / "moses_train_500.csv"})
    with pytest.raises(ValueError, match="not for 'test'"):
        source.load("test")
    with pytest.raises(ValueError, match="no subset 'valid'"):
        source.load("valid")
    with pytest.raises(ValueError, match="unknown file keys"):
        MosesSource(files={"training": DATA / "moses_train_500.csv"})


def test_reference_stats_flattens_the_moses_layout(tmp_path: Path) -> None:
    smiles = MosesSource(files={"test": DATA / "moses_test_200.csv"}).load("test")["smiles"]
    stats = {
        "FCD": {"mu": np.arange(4, dtype=np.float32), "sigma": np.eye(4)},
        "SNN": {"fps": np.ones((3, 8), dtype=np.uint8)},
        "Frag": {"frag": Counter(smiles.str[:3].tolist())},
        "logP": {"values": [1.5, -0.25]},
    }
    path = tmp_path / "test_stats.npz"
    np.savez(path, stats=np.array(stats, dtype=object))
    flat = reference_stats("test", path=path)
    assert set(flat) == {
        "FCD/mu", "FCD/sigma", "SNN/fps", "Frag/frag/keys", "Frag/frag/counts", "logP/values",
    }  # fmt: skip
    assert flat["FCD/sigma"].shape == (4, 4) and flat["SNN/fps"].dtype == np.uint8
    assert flat["Frag/frag/counts"].sum() == len(smiles)
    assert dict(zip(flat["Frag/frag/keys"], flat["Frag/frag/counts"], strict=True)) == dict(
        stats["Frag"]["frag"]
    )
    np.testing.assert_array_equal(flat["logP/values"], [1.5, -0.25])
    with pytest.raises(ValueError, match="no MOSES reference stats"):
        reference_stats("train", path=path)


class _Exploit:
    def __reduce__(self):  # a stats file that would call a function when unpickled
        return (os.getcwd, ())


def test_reference_stats_refuses_unexpected_pickled_globals(tmp_path: Path) -> None:
    path = tmp_path / "evil.npz"
    np.savez(path, stats=np.array({"FCD": {"mu": _Exploit()}}, dtype=object))
    with pytest.raises(pickle.UnpicklingError, match="refusing to load global posix.getcwd"):
        reference_stats("test", path=path)


def test_stats_unpickler_only_builds_arrays_and_counters() -> None:
    stats = {"Frag": {"frag": Counter({"[1*]C": 3})}, "FCD": {"mu": np.arange(3.0)}}
    payload = pickle.dumps(np.array(stats, dtype=object), protocol=2)
    loaded = _StatsUnpickler(io.BytesIO(payload), encoding="latin1").load()[()]
    assert loaded["Frag"]["frag"] == Counter({"[1*]C": 3})
    np.testing.assert_array_equal(loaded["FCD"]["mu"], np.arange(3.0))
    evil = pickle.dumps(os.getcwd, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        _StatsUnpickler(io.BytesIO(evil)).load()


# ----------------------------------------------------------------------------- QM9


def test_qm9_columns_units_and_coordinates() -> None:
    frame = QM9Source(files=QM9_FILES).load()
    raw = _raw_rows(DATA / "qm9_100.csv")
    assert len(frame) == len(raw) == 100
    assert frame["qm9_index"].tolist() == [int(r["Index"]) for r in raw]
    assert frame["smiles"].tolist() == [r["SMILES"] for r in raw]
    for target in QM9Source.info.targets:
        assert frame[target].dtype == np.float64
    gap_au = np.array([float(r["HOMO_LUMO_gap_au"]) for r in raw])
    np.testing.assert_allclose(frame["gap"], gap_au * 27.2114, atol=1e-6 * 27.2114 + 2e-4)
    np.testing.assert_allclose(frame["gap"], gap_au * HARTREE_TO_EV, rtol=0, atol=1e-9)
    converted = {"homo": "HOMO_au", "zpve": "ZPVE_au", "u0": "InternalEnergy_0K_au",
                 "h": "Enthalphy_298K_au", "g": "GibbsFreeEnergy_298K_au"}  # fmt: skip
    kept = {"mu": "Dipole_debye", "alpha": "Polarizability_bohr3", "r2": "R2_bohr2",
            "cv": "Heatcapacity_Cv_cal_mol_K", "A": "RotA_GHz", "C": "RotC_GHz"}  # fmt: skip
    for name, column in converted.items():
        values = np.array([float(r[column]) for r in raw]) * HARTREE_TO_EV
        np.testing.assert_allclose(frame[name], values, rtol=1e-12)
        assert QM9Source.info.units[name] == "eV"
    for name, column in kept.items():
        np.testing.assert_array_equal(frame[name], [float(r[column]) for r in raw])
    for got, n_atoms, r in zip(frame["positions"], frame["n_atoms"], raw, strict=True):
        assert got.dtype == np.float32 and got.shape == (int(r["N_atoms"]), 3) == (n_atoms, 3)
        np.testing.assert_allclose(got, json.loads(r["XYZ_Ang"]), atol=1e-6)
    for got, r in zip(frame["elements"], raw, strict=True):
        assert got == json.loads(r["Elements"].replace("'", '"'))
    # isotropic polarizability = trace of the tensor / 3 (independent check of the join)
    trace = (frame["alpha_xx"] + frame["alpha_yy"] + frame["alpha_zz"]) / 3
    np.testing.assert_allclose(trace, frame["alpha"], atol=6e-3)


def test_qm9_methane_row_and_malformed_cell_kept(tmp_path: Path) -> None:
    header, first, *rest = (DATA / "qm9_100.csv").read_text().splitlines()
    broken = first.replace("[[", "[[oops,", 1)  # a malformed coordinate cell
    path = tmp_path / "part.csv"
    path.write_text("\n".join([header, METHANE, broken, *rest[:3]]) + "\n")
    source = QM9Source(files={"parts": [path]})
    frame = source.load()
    assert len(frame) == 5
    methane = frame.iloc[0]
    assert (methane["smiles"], methane["qm9_index"], methane["n_atoms"]) == ("C", 1, 5)
    assert methane["elements"] == ["C", "H", "H", "H", "H"]
    np.testing.assert_allclose(methane["positions"][0], [-0.0126981359, 1.0858041578, 0.0080009958])
    assert methane["gap"] == pytest.approx(0.5048 * 27.211386245988, abs=1e-9)  # 13.7363 eV
    assert methane["u0"] == pytest.approx(-40.47893 * 27.211386245988)
    assert (methane["mu"], methane["alpha"], methane["cv"]) == (0.0, 13.21, 6.469)
    assert np.isnan(methane["alpha_xx"])  # no polarizability file given
    assert frame.iloc[1]["positions"] is None and frame.iloc[2]["positions"].shape == (13, 3)
    with pytest.raises(InvalidMoleculeError, match="malformed xyz") as err:
        source.build_mol(frame.iloc[1], row=1)
    assert err.value.row == 1


def test_qm9_build_mol_uses_dft_heavy_atoms() -> None:
    source = QM9Source(files=QM9_FILES)
    frame = source.load()
    for row, record in frame.iterrows():  # every fixture molecule's xyz graph fits its SMILES
        mol, positions = source.build_mol(record, row=row)
        heavy = np.array([e != "H" for e in record["elements"]])
        assert positions.dtype == np.float32 and positions.shape == (heavy.sum(), 3)
        np.testing.assert_allclose(positions, record["positions"][heavy], atol=1e-5)
        expected = Chem.MolFromSmiles(record["smiles"])
        assert Chem.MolToSmiles(mol, isomericSmiles=False) == Chem.MolToSmiles(
            expected, isomericSmiles=False
        )


# ----------------------------------------------------------------------------- PubChem


def test_pubchem_names_every_line_and_missing_fields(tmp_path: Path) -> None:
    lines = (DATA / "pubchem_names_150.tsv").read_text(encoding="utf-8").split("\n")
    lines = [line for line in lines if line]
    frame = PubChemNamesSource(files={"all": DATA / "pubchem_names_150.tsv"}).load()
    assert len(frame) == len(lines) == 150
    assert PubChemNamesSource.info.task == "text"
    for (_, row), line in zip(frame.iterrows(), lines, strict=True):
        cells = line.split("\t")
        assert row["cid"] == int(cells[0]) and row["cas"] == cells[1]
        assert row["mw"] == float(cells[3]) and row["smiles"] == cells[4]
        assert row["inchi"] == "InChI=1S/" + cells[5] and row["inchikey"] == cells[6]
        assert row["text"] == row["iupac_name"] == (cells[7] or None)
        assert row["common_name"] == cells[8] and row["synonyms"] == [c for c in cells[9:] if c]
    assert frame["iupac_name"].isna().sum() == sum(not line.split("\t")[7] for line in lines) > 0
    assert str(frame["cid"].dtype) == "Int64" and frame["mw"].dtype == np.float64
    # a real line cut after the SMILES keeps its row, with the rest missing
    cut = tmp_path / "cut.tsv"
    cut.write_text("\t".join(lines[0].split("\t")[:5]) + "\n" + lines[1] + "\n")
    short = PubChemNamesSource(files={"all": cut}).load()
    assert len(short) == 2 and short.loc[0, "synonyms"] == []
    assert short.loc[0, "inchikey"] is None and short.loc[0, "text"] is None
    assert short.loc[0, "smiles"] == lines[0].split("\t")[4]


# ----------------------------------------------------------------------------- B3DB


def test_b3db_classification_and_regression() -> None:
    source = B3DBSource(files=B3DB_FILES)
    cls = source.load("classification")
    raw = _raw_rows(DATA / "b3db_classification_150.tsv", "\t")
    assert len(cls) == len(raw) == 150
    assert cls["bbb"].tolist() == [1.0 if r["BBB+/BBB-"] == "BBB+" else 0.0 for r in raw]
    assert set(cls["bbb"]) == {0.0, 1.0}
    assert cls["smiles"].tolist() == [r["SMILES"] for r in raw]
    assert cls["compound_name"].iloc[0] == "methotrexate" and cls["cid"].iloc[0] == "126941"
    assert cls["iupac_name"].isna().sum() == sum(not r["IUPAC_name"] for r in raw)
    reg = source.load("regression")
    raw = _raw_rows(DATA / "b3db_regression_100.tsv", "\t")
    assert len(reg) == len(raw) == 100
    np.testing.assert_array_equal(reg["logbb"], [float(r["logBB"]) for r in raw])
    assert reg["cid"].iloc[0] == "18595497" and "bbb" not in reg.columns
    assert source.targets_for("classification") == ("bbb",)
    assert (source.targets_for("regression"), source.task_for("regression")) == (
        ("logbb",), "regression",
    )  # fmt: skip
    assert "CC0" in B3DBSource.info.license


def test_normalize_cids() -> None:
    cells = pd.Series(["5339.0|5339.0|", "nan|nan|", "", "135484646.0|135398747.0|135398747.0|"])
    assert normalize_cids(cells) == ["5339", None, None, "135484646|135398747"]


# ----------------------------------------------------------------------------- fingerprints, registry


def test_fingerprint_tracks_subset_content_and_format_version(tmp_path: Path) -> None:
    files = {"train": DATA / "moses_train_500.csv", "test": DATA / "moses_test_200.csv"}
    source = MosesSource(files=files)
    assert source.fingerprint("train") == MosesSource(files=files).fingerprint("train")
    assert source.fingerprint("train") != source.fingerprint("test")
    assert source.fingerprint() == source.fingerprint("train")  # default subset
    assert MosesSource().content_hash("train") == fetch.WHEELS["molsets"].sha256  # no download
    assert MosesSource().fingerprint("train") != source.fingerprint("train")
    edited = tmp_path / "train.csv"
    edited.write_text((DATA / "moses_train_500.csv").read_text().replace("\n", "\nCCO\n", 1))
    assert MosesSource(files={"train": edited}).fingerprint("train") != source.fingerprint("train")

    class NextFormat(MosesSource):
        FORMAT_VERSION = MosesSource.FORMAT_VERSION + 1

    assert NextFormat(files=files).fingerprint("train") != source.fingerprint("train")


def test_registry_names_aliases_and_infos(tmp_path: Path) -> None:
    names = {info.name for info in list_sources()}
    assert {"moses", "qm9", "pubchem-names", "b3db", "csv", "sdf"} <= names
    for alias in ("pubchem-names", "pubchem_names", "PubChem_Names"):
        assert isinstance(get_source(alias), PubChemNamesSource)
    assert isinstance(get_source("qm9", files=QM9_FILES), QM9Source)
    csv_source = get_source("csv", path=DATA / "moses_test_200.csv", smiles_column="SMILES")
    assert isinstance(csv_source, CSVSource) and len(csv_source.load()) == 200
    with pytest.raises(KeyError, match="available"):
        get_source("zinc250k")
    for info in list_sources():
        assert info.license and info.provenance and info.default_subset in info.subsets
    with pytest.raises(ValueError, match="task"):
        SourceInfo("x", "", "", "", "", ("all",), "all", task="ranking")


# ----------------------------------------------------------------------------- user CSV


def test_csv_source_keeps_rows_and_reports_columns(tmp_path: Path) -> None:
    tsv = CSVSource(DATA / "b3db_regression_100.tsv", smiles_column="SMILES",
                    target_columns=["logBB"], text_column="IUPAC_name")  # fmt: skip
    frame = tsv.load()
    raw = _raw_rows(DATA / "b3db_regression_100.tsv", "\t")
    assert len(frame) == 100 and tsv.info.task == "regression"
    np.testing.assert_array_equal(frame["logBB"], [float(r["logBB"]) for r in raw])
    assert frame["text"].tolist() == [r["IUPAC_name"] for r in raw]
    assert "compound_name" in frame.columns  # other columns kept
    # empty SMILES and target cells are rows too
    path = tmp_path / "data.csv"
    path.write_text("smiles,logbb\n" + f"{raw[0]['SMILES']},-2.15\n,0.5\n{raw[1]['SMILES']},\n")
    source = CSVSource(path, target_columns=["logbb"])
    frame = source.load()
    assert frame["smiles"].tolist() == [raw[0]["SMILES"], "", raw[1]["SMILES"]]
    assert frame["logbb"].iloc[0] == -2.15 and np.isnan(frame["logbb"].iloc[2])
    with pytest.raises(InvalidMoleculeError) as err:
        source.build_mol(frame.iloc[1], row=1)
    assert err.value.row == 1
    mol, positions = source.build_mol(frame.iloc[0], row=0)
    assert positions is None
    assert Chem.MolToSmiles(mol) == Chem.MolToSmiles(Chem.MolFromSmiles(raw[0]["SMILES"]))
    with pytest.raises(
        SourceError, match=r"\['smiles'\] not found; available columns: \['SMILES'\].*did you mean"
    ):
        CSVSource(DATA / "moses_test_200.csv", smiles_column="smiles").load()
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(SourceError, match="is empty"):
        CSVSource(tmp_path / "empty.csv").load()
    (tmp_path / "header.csv").write_text("smiles,y\n")
    with pytest.raises(SourceError, match="no data rows"):
        CSVSource(tmp_path / "header.csv").load()
    (tmp_path / "text.csv").write_text("smiles,y\nCCO,high\n")
    with pytest.raises(SourceError, match="'y' must be numeric.*row 0: 'high'"):
        CSVSource(tmp_path / "text.csv", target_columns=["y"]).load()
    base = source.fingerprint()
    assert CSVSource(path, target_columns=[]).fingerprint() != base
    path.write_text(path.read_text() + "CCN,1.0\n")
    assert CSVSource(path, target_columns=["logbb"]).fingerprint() != base


# ----------------------------------------------------------------------------- user SDF


def _qm9_sdf(tmp_path: Path, n: int = 3) -> tuple[Path, pd.DataFrame]:
    """An SDF of ``n`` real QM9 molecules (DFT coordinates) followed by two broken records."""
    frame = QM9Source(files=QM9_FILES).load().head(n)
    path = tmp_path / "mols.sdf"
    with Chem.SDWriter(str(path)) as writer:
        for _, rec in frame.iterrows():
            xyz = "\n".join(f"{e} {x} {y} {z}" for e, (x, y, z) in
                            zip(rec["elements"], rec["positions"].tolist(), strict=True))  # fmt: skip
            mol = Chem.MolFromXYZBlock(f"{len(rec['elements'])}\n{rec['xyz_file']}\n{xyz}\n")
            rdDetermineBonds.DetermineBonds(mol, charge=0)
            mol.SetProp("_Name", rec["xyz_file"])
            mol.SetProp("gap", f"{rec['gap']:.6f}")
            writer.write(mol)
    lines = path.read_text().split("$$$$\n")[0].split("\n")
    assert lines[3].split()[0] == "9" and lines[4][31:33] == "O "  # furan, atom 0 is O
    lines[0] = "bad_valence"
    lines[4] = lines[4][:31] + "F " + lines[4][33:]  # F with two bonds: RDKit rejects it
    too_many_bonds = "\n".join(lines)
    garbage = "garbage\n  no counts line here\n\n  x  y\nM  END\n> <gap>\n1.0\n\n"
    with open(path, "a") as fh:
        fh.write(too_many_bonds + "$$$$\n" + garbage + "$$$$\n")
    return path, frame


def test_sdf_source_keeps_broken_records(tmp_path: Path) -> None:
    path, qm9 = _qm9_sdf(tmp_path)
    source = SDFSource(path, target_columns=["gap"])
    frame = source.load()
    assert len(frame) == 5 and frame["sdf_index"].tolist() == [0, 1, 2, 3, 4]
    assert frame["title"].tolist()[:4] == [*qm9["xyz_file"], "bad_valence"]
    np.testing.assert_allclose(frame["gap"], [*qm9["gap"], qm9["gap"].iloc[0], 1.0], atol=1e-6)
    assert frame["gap"].dtype == np.float64 and (frame["smiles"].iloc[3:] == "").all()
    for row in range(3):
        mol, positions = source.build_mol(frame.iloc[row], row=row)
        rec = qm9.iloc[row]
        heavy = np.array([e != "H" for e in rec["elements"]])
        assert mol.GetNumAtoms() == heavy.sum()
        # canonical atom order: each atom keeps its element and its DFT coordinates
        file_pos = rec["positions"][heavy]
        match = np.linalg.norm(positions[:, None] - file_pos[None], axis=-1).argmin(axis=1)
        assert sorted(match) == list(range(len(file_pos)))
        np.testing.assert_allclose(positions, file_pos[match], atol=1e-4)
        elements = [a.GetSymbol() for a in mol.GetAtoms()]
        assert elements == [np.array(rec["elements"])[heavy][m] for m in match]
        np.testing.assert_allclose(mol.GetConformer().GetPositions(), positions, atol=1e-6)
        canonical = Chem.MolToSmiles(Chem.MolFromSmiles(rec["smiles"]))
        assert Chem.MolToSmiles(mol) == canonical
        assert Chem.MolToSmiles(mol, canonical=False) == canonical  # atoms in canonical order
    with pytest.raises(InvalidMoleculeError, match="valence") as err:
        source.build_mol(frame.iloc[3], row=3)
    assert err.value.row == 3
    with pytest.raises(InvalidMoleculeError, match="could not parse") as err:
        source.build_mol(frame.iloc[4], row=4)
    assert err.value.row == 4
    with pytest.raises(SourceError, match="no SD data item 'homo'.*gap"):
        SDFSource(path, target_columns=["homo"]).load()
    (tmp_path / "empty.sdf").write_text("")
    with pytest.raises(SourceError, match="no SD records"):
        SDFSource(tmp_path / "empty.sdf").load()
    assert isinstance(get_source("sdf", path=path), SDFSource)
    assert SDFSource(path).fingerprint() != source.fingerprint()


# ----------------------------------------------------------------------------- fetch


def _tiny_wheel(directory: Path) -> Path:
    path = directory / "molfmtiny-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("molfmtiny/data.csv", (DATA / "moses_test_200.csv").read_text())
        archive.writestr("molfmtiny-1.0.dist-info/METADATA", "Name: molfmtiny\nVersion: 1.0\n")
    return path


def test_fetch_verifies_sha256_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = _tiny_wheel(tmp_path)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    pinned = fetch.PinnedWheel("molfmtiny", "1.0", wheel.name, digest)
    monkeypatch.setitem(fetch.WHEELS, "molfmtiny", pinned)
    assert fetch.fetch_wheel("molfmtiny", wheel_dir=tmp_path) == wheel
    with fetch.open_member("molfmtiny", "molfmtiny/data.csv", wheel_dir=tmp_path) as fh:
        assert fh.read() == (DATA / "moses_test_200.csv").read_bytes()
    with pytest.raises(fetch.FetchError, match="not in"):
        fetch.open_member("molfmtiny", "missing.csv", wheel_dir=tmp_path)
    # a file whose hash differs from the pin is deleted, and the re-download (no index) fails
    monkeypatch.setitem(
        fetch.WHEELS, "molfmtiny", fetch.PinnedWheel("molfmtiny", "1.0", wheel.name, "0" * 64)
    )
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    with pytest.raises(fetch.FetchError, match="could not download molfmtiny==1.0"):
        fetch.fetch_wheel("molfmtiny", wheel_dir=tmp_path)
    assert not wheel.exists()
    with pytest.raises(fetch.FetchError, match="no pinned wheel"):
        fetch.fetch_wheel("not-a-pinned-package", wheel_dir=tmp_path)


def test_data_or_file_source_takes_exactly_one(tmp_path):
    from molfm.data.sources import CSVSource, QM9Source, data_or_file_source

    path = tmp_path / "mine.csv"
    path.write_text("smi,y\nCCO,1.0\n")
    source = data_or_file_source(None, path, smiles_column="smi", target_columns=["y"])
    assert isinstance(source, CSVSource) and source.load()["y"].tolist() == [1.0]
    assert isinstance(data_or_file_source("qm9", None), QM9Source)
    for data, data_path in ((None, None), ("qm9", path)):
        with pytest.raises(ValueError, match="exactly one of --data NAME or --data-path FILE"):
            data_or_file_source(data, data_path)
