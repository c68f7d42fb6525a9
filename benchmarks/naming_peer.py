"""The rule-based peer namer ``nispo`` (PyPI) on the same molecules as molfm's namer.

Two sets of molecules, each named by ``nispo.smiles_to_iupac_batch`` in one timed call:

* ``pubchem-names``: ``--n`` molecules drawn with ``--seed`` from the test split of
  :func:`molfm.systems.molca.data.pubchem_names_splits` (task ``iupac``, scaffold split, seed
  0), where PubChem's IUPAC names are the references: BLEU-2/4, METEOR, ROUGE
  (:func:`molfm.eval.text.caption_metrics`) and exact string matches, plus the OPSIN round trip
  (:func:`molfm.eval.text.opsin_name_check`) of nispo's names and, for comparison, of the
  PubChem names themselves;
* ``moses``: the first ``--n`` molecules of the MOSES test set, which have no reference names:
  time and OPSIN round trip only.

nispo writes IUPAC-style names in its own style (no ``;`` salt separators, ``N`` locants in
upper case, ``chloro`` rather than PubChem's ``chloranyl``), so its BLEU against PubChem's
names measures style as much as correctness; the OPSIN columns measure correctness.

    python benchmarks/naming_peer.py --n 200 -o benchmarks/results/naming_nispo.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np


def _name(smiles: list[str]) -> tuple[list[str], float]:
    """nispo's names and the seconds they took (its rule engine is built before the clock
    starts: see ``nispo_startup_seconds``)."""
    import nispo

    start = time.perf_counter()
    names = nispo.smiles_to_iupac_batch(smiles)
    return names, time.perf_counter() - start


def _opsin(names: list[str], smiles: list[str]) -> dict:
    from molfm.eval.text import opsin_name_check

    start = time.perf_counter()
    report = opsin_name_check(names, smiles)
    out = report.summary()
    out["seconds"] = round(time.perf_counter() - start, 2)
    single = ["." not in s for s in smiles]
    out["n_multi_component"] = len(smiles) - sum(single)
    out["opsin_exact_rate_single_component"] = float(
        np.mean([c.same_structure for c, one in zip(report.checks, single) if one])
    )
    return out


def run_pubchem(n: int, seed: int) -> dict:
    from molfm.eval.text import caption_metrics
    from molfm.systems.molca.data import pubchem_names_splits

    splits = pubchem_names_splits("iupac", seed=0)
    test = splits.test
    pick = np.sort(
        np.random.default_rng(seed).choice(len(test), size=min(n, len(test)), replace=False)
    )
    smiles = [test.smiles[i] for i in pick]
    refs = [test.texts[i] for i in pick]
    names, seconds = _name(smiles)
    named = [bool(x) for x in names]
    return {
        "molecules": f"pubchem-names test split (iupac task, scaffold seed 0), {len(pick)} drawn "
        f"with numpy default_rng({seed}).choice",
        "source_rows": [int(test.ids[i]) for i in pick],
        "n": len(pick),
        "nispo_seconds": round(seconds, 3),
        "nispo_ms_per_molecule": round(1000 * seconds / len(pick), 2),
        "nispo_named_fraction": float(np.mean(named)),
        "nispo_vs_pubchem_text": caption_metrics(names, refs),
        "nispo_exact_string_match": float(
            np.mean([a.lower() == b.lower() for a, b in zip(names, refs)])
        ),
        "nispo_opsin": _opsin(names, smiles),
        "pubchem_names_opsin": _opsin(refs, smiles),
        "examples": [
            {"smiles": s, "pubchem": r, "nispo": x}
            for s, r, x in list(zip(smiles, refs, names))[:8]
        ],
    }


def run_moses(n: int) -> dict:
    from molfm.data.sources import get_source

    smiles = get_source("moses").load("test")["smiles"].iloc[:n].tolist()
    names, seconds = _name(smiles)
    return {
        "molecules": f"first {len(smiles)} SMILES of the MOSES test set (molsets==0.3.1)",
        "n": len(smiles),
        "nispo_seconds": round(seconds, 3),
        "nispo_ms_per_molecule": round(1000 * seconds / len(smiles), 2),
        "nispo_named_fraction": float(np.mean([bool(x) for x in names])),
        "nispo_opsin": _opsin(names, smiles),
        "examples": [{"smiles": s, "nispo": x} for s, x in list(zip(smiles, names))[:8]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200, help="molecules per set")
    parser.add_argument("--seed", type=int, default=0, help="draw of the pubchem-names molecules")
    parser.add_argument("--sets", nargs="+", default=["pubchem-names", "moses"],
                        choices=["pubchem-names", "moses"])  # fmt: skip
    parser.add_argument("-o", "--output", default="benchmarks/results/naming_nispo.json")
    args = parser.parse_args()

    from importlib.metadata import version

    import torch

    torch.set_num_threads(1)
    import nispo

    start = time.perf_counter()
    nispo.smiles_to_iupac_batch(["CCO"])  # builds nispo's rule engine once
    startup = time.perf_counter() - start
    result = {
        "command": f"python benchmarks/naming_peer.py --n {args.n} --seed {args.seed} "
        f"--sets {' '.join(args.sets)} -o {args.output}",
        "nispo_version": version("nispo"),
        "nispo_startup_seconds": round(startup, 2),
        "py2opsin_version": version("py2opsin"),
        "cpu": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"1 process (load average at start {os.getloadavg()[0]:.1f})",
        "metric_notes": "fractions in [0, 1]; BLEU/METEOR on bert-base-uncased WordPiece tokens "
        "(MolT5 uses SciBERT's), METEOR with exact+stem matching (no WordNet); OPSIN exact = "
        "same standard InChIKey (RDKit) as the input molecule",
    }
    if "pubchem-names" in args.sets:
        result["pubchem_names"] = run_pubchem(args.n, args.seed)
    if "moses" in args.sets:
        result["moses"] = run_moses(args.n)
    path = Path(args.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for part in ("pubchem_names", "moses"):
        if part in result:
            shown = {k: v for k, v in result[part].items() if k not in ("source_rows", "examples")}
            print(part, json.dumps(shown, indent=1))


if __name__ == "__main__":
    main()
