"""Score MolCA IUPAC-naming predictions made elsewhere (a GPU run) on the CPU, beside ``nispo``.

Each ``VARIANT=PATH`` names a predictions CSV with the columns ``id, smiles, target, beam_0,
..., beam_{k-1}`` (``beam_0`` the best beam of a beam search, ``target`` PubChem's IUPAC name,
empty cells allowed in the beams). The variants are scored on the same molecules: the ``id``\\s
all files share (in the first file's order; a row count that differs is reported), of which
``--limit`` keeps the first N. Per variant:

* ``beam0_text``: BLEU-2/4, METEOR, ROUGE of ``beam_0`` against ``target``
  (:func:`molfm.eval.text.caption_metrics`), and ``beam0_exact_string_match`` (case-insensitive);
* ``beam0_opsin``: the OPSIN round trip of ``beam_0`` (:func:`molfm.eval.text.opsin_name_check`:
  parse rate, exact structure = same standard InChIKey as ``smiles``);
* ``verified_rate``: the fraction of molecules for which ``molfm name --verify`` finds a verified
  name (:func:`molfm.eval.text.verify_names`: the first of the k beams whose OPSIN structure is
  the input's), and ``verified_rate_at_k``, the same over the first 1, 2, ..., k beams
  (its last entry is ``verified_rate``); ``verified_name_text`` scores the names ``--verify``
  returns (the verified beam, else ``beam_0``) against ``target``.

All beams of a variant go through OPSIN in one :func:`~molfm.eval.text.opsin_name_check` run,
as in ``verify_names`` (each name's verdict does not depend on the other names of the run, so
``beam_0``'s verdicts are those of a run on ``beam_0`` alone).

Unless ``--no-peer``, the rule-based namer ``nispo`` names the same molecules, scored as in
``benchmarks/naming_peer.py`` (whose functions this reuses): text metrics against ``target``,
OPSIN round trip, seconds per molecule (its rule engine built before the clock starts).

    python benchmarks/molca_score.py 1d2d-gine=/tmp/preds_1d2d.csv 2d-gine=/tmp/preds_2d.csv \\
        [--limit N] [--no-peer] [--output benchmarks/results/molca_naming.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from molfm.eval import text
from molfm.eval.text import first_verified

DEFAULT_OUTPUT = "benchmarks/results/molca_naming.json"
REQUIRED = ("id", "smiles", "target")
_BEAM = re.compile(r"beam_(\d+)")
_HERE = Path(__file__).resolve().parent


class ScoreError(Exception):
    """A problem with the inputs, reported in one line (no traceback)."""


# ----------------------------------------------------------------------------- inputs
def load_predictions(path: str | os.PathLike) -> tuple[Any, list[str]]:
    """The predictions CSV (all cells as strings, empty and NaN cells as ``""``) and its beam columns
    ``beam_0, ..., beam_{k-1}`` in order."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise ScoreError(f"{path}: no such file")
    try:
        frame = pd.read_csv(path, dtype=str).fillna("")  # empty or NaN cells -> ""
    except (ValueError, OSError, pd.errors.ParserError) as err:  # EmptyDataError is a ValueError
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ScoreError(f"{path}: not a readable CSV ({first})") from None
    beams = sorted((int(m.group(1)), c) for c in frame.columns if (m := _BEAM.fullmatch(str(c))))
    missing = [c for c in REQUIRED if c not in frame.columns]
    if not beams or beams[0][0] != 0:
        missing.append("beam_0")
    if missing:
        raise ScoreError(f"{path}: missing column(s) {', '.join(missing)}")
    if [i for i, _ in beams] != list(range(len(beams))):
        raise ScoreError(f"{path}: beam columns must be beam_0 ... beam_{{k-1}} without gaps")
    dup = frame["id"][frame["id"].duplicated()]
    if len(dup):
        raise ScoreError(f"{path}: id {dup.iloc[0]!r} appears more than once")
    empty = frame["id"][frame["smiles"].str.strip() == ""]
    if len(empty):
        raise ScoreError(f"{path}: empty smiles (id {empty.iloc[0]!r})")
    return frame, [c for _, c in beams]


def align(
    frames: dict[str, Any], limit: int | None = None
) -> tuple[list[str], list[str], list[str], dict[str, Any]]:
    """``(ids, smiles, targets, frames)``: the molecules every frame has (by ``id``, in the
    first frame's order, the first ``limit`` of them), and each frame reduced to those rows in
    that order. The same ``id`` with another ``smiles`` or ``target``, or a ``smiles`` RDKit
    cannot read, is an error."""
    names = list(frames)
    first = frames[names[0]]
    common = set(first["id"])
    for name in names[1:]:
        common &= set(frames[name]["id"])
    ids = [i for i in first["id"] if i in common]
    if limit is not None:
        ids = ids[:limit]
    if not ids:
        raise ScoreError("no molecules to score (the files share no id, or --limit 0)")
    out = {name: frames[name].set_index("id").loc[ids] for name in names}
    base = out[names[0]]
    for name in names[1:]:
        for column in ("smiles", "target"):
            differ = base[column].to_numpy() != out[name][column].to_numpy()
            if differ.any():
                at = ids[int(np.argmax(differ))]
                raise ScoreError(
                    f"variants {names[0]} and {name} disagree on the {column} of id {at!r}"
                )
    from rdkit import Chem, rdBase

    with rdBase.BlockLogs():
        bad = [i for i, smi in zip(ids, base["smiles"]) if Chem.MolFromSmiles(smi) is None]
    if bad:
        raise ScoreError(f"the smiles of id {bad[0]!r} is not valid ({len(bad)} such rows)")
    return ids, base["smiles"].tolist(), base["target"].tolist(), out


# ----------------------------------------------------------------------------- scoring
def verified_at_k(hits: list[int | None], k: int) -> list[float]:
    """Fraction of molecules with a verified beam among their first 1, 2, ..., ``k`` beams,
    from each molecule's :func:`molfm.eval.text.first_verified` index."""
    n = len(hits)
    return [sum(h is not None and h < j for h in hits) / n for j in range(1, k + 1)]


def _opsin_summary(checks: list, smiles: list[str]) -> dict[str, Any]:
    out = text.OpsinReport(checks).summary()
    single = ["." not in s for s in smiles]
    out["n_multi_component"] = len(smiles) - sum(single)
    if any(single):  # the column benchmarks/naming_peer.py reports for nispo
        out["opsin_exact_rate_single_component"] = float(
            np.mean([c.same_structure for c, one in zip(checks, single) if one])
        )
    return out


def check_beams(beams: list[list[str]], smiles: list[str]) -> list[list[Any]]:
    """:func:`molfm.eval.text.check_beams` (one OPSIN run over all beams, as ``molfm name
    --verify``), with an unreadable input SMILES as a one-line :class:`ScoreError`."""
    try:
        return text.check_beams(beams, smiles)
    except ValueError as err:
        raise ScoreError(str(err)) from None


def score_variant(
    beams: list[list[str]], smiles: list[str], targets: list[str], *, examples: int = 5
) -> dict[str, Any]:
    """The scores of one variant: ``beams[i]`` are molecule ``i``'s k beams, best first."""
    k = max(len(b) for b in beams)
    start = time.perf_counter()
    per_molecule = check_beams(beams, smiles)
    opsin_seconds = time.perf_counter() - start
    hits = [first_verified([c.same_structure for c in mine]) for mine in per_molecule]
    best = [b[0] for b in beams]
    chosen = [b[h] if h is not None else b[0] for b, h in zip(beams, hits)]  # verify_names
    counts = [sum(h == j for h in hits) for j in range(k)]
    return {
        "n": len(beams),
        "num_beams": k,
        "beam0_text": text.caption_metrics(best, targets),
        "beam0_exact_string_match": float(
            np.mean([a.strip().lower() == t.strip().lower() for a, t in zip(best, targets)])
        ),
        "beam0_opsin": _opsin_summary([mine[0] for mine in per_molecule], smiles),
        "verified_rate": verified_at_k(hits, k)[-1],
        "verified_rate_at_k": verified_at_k(hits, k),
        "verified_beam_counts": counts,
        "any_beam_parse_rate": float(np.mean([any(c.parses for c in m) for m in per_molecule])),
        "verified_name_text": text.caption_metrics(chosen, targets),
        "opsin_seconds_all_beams": round(opsin_seconds, 2),
        "examples": [
            {"smiles": s, "target": t, "beam_0": b0, "verified_beam": h}
            for s, t, b0, h in list(zip(smiles, targets, best, hits))[:examples]
        ],
    }


def _naming_peer():
    """``benchmarks/naming_peer.py`` as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location("naming_peer", _HERE / "naming_peer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def score_peer(smiles: list[str], targets: list[str], *, examples: int = 5) -> dict[str, Any]:
    """nispo on the same molecules, scored as ``benchmarks/naming_peer.py`` scores it."""
    from importlib.metadata import version

    import nispo

    peer = _naming_peer()
    start = time.perf_counter()
    nispo.smiles_to_iupac_batch(["CCO"])  # builds nispo's rule engine once, as naming_peer.py
    startup = time.perf_counter() - start
    names, seconds = peer._name(smiles)
    names = [n or "" for n in names]
    return {
        "n": len(smiles),
        "nispo_version": version("nispo"),
        "nispo_startup_seconds": round(startup, 2),
        "seconds": round(seconds, 3),
        "seconds_per_molecule": seconds / len(smiles),
        "named_fraction": float(np.mean([bool(x) for x in names])),
        "text": text.caption_metrics(names, targets),
        "exact_string_match": float(
            np.mean([a.strip().lower() == t.strip().lower() for a, t in zip(names, targets)])
        ),
        "opsin": peer._opsin(names, smiles),
        "examples": [
            {"smiles": s, "target": t, "nispo": x}
            for s, t, x in list(zip(smiles, targets, names))[:examples]
        ],
    }


# ----------------------------------------------------------------------------- report
def markdown_table(result: dict[str, Any]) -> str:
    """One row per variant and one for nispo; text metrics x100 (as MolT5 prints them)."""

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.1f}"

    head = (
        "| model | n | BLEU-2 | BLEU-4 | METEOR | ROUGE-L | OPSIN parse % | exact % "
        "| exact with verification % |"
    )
    rows = [head, "|" + "---|" * 9]

    def row(name, n, text, opsin, verified):
        cells = [name, str(n)] + [pct(text[k]) for k in ("bleu2", "bleu4", "meteor", "rougeL")]
        cells += [pct(opsin["opsin_parse_rate"]), pct(opsin["opsin_exact_rate"]), pct(verified)]
        rows.append("| " + " | ".join(cells) + " |")

    for name, v in result["variants"].items():
        k = v["num_beams"]
        row(f"{name} (k={k})", v["n"], v["beam0_text"], v["beam0_opsin"], v["verified_rate"])
    peer = result.get("nispo")
    if peer:
        row("nispo", peer["n"], peer["text"], peer["opsin"], None)
    return "\n".join(rows)


def _variant_spec(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected VARIANT=PATH, got {text!r}")
    return name, path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="molca_score.py", description=__doc__.split("\n")[0])
    parser.add_argument("variants", nargs="+", type=_variant_spec, metavar="VARIANT=PATH",
                        help="a predictions CSV (id, smiles, target, beam_0, ...) and its name")  # fmt: skip
    parser.add_argument("--limit", type=int, default=None, help="score the first N molecules")
    parser.add_argument("--no-peer", action="store_true", help="do not run nispo")
    parser.add_argument("-o", "--output", default=DEFAULT_OUTPUT, help="the JSON to write")
    args = parser.parse_args(argv)
    names = [n for n, _ in args.variants]
    if len(set(names)) != len(names):
        parser.error("each VARIANT name may appear once")
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")

    import torch

    torch.set_num_threads(1)
    from importlib.metadata import version

    try:
        frames, beam_columns, rows_in_file = {}, {}, {}
        for name, path in args.variants:
            frames[name], beam_columns[name] = load_predictions(path)
            rows_in_file[name] = len(frames[name])
        ids, smiles, targets, aligned = align(frames, args.limit)
        argv_used = sys.argv[1:] if argv is None else argv
        result: dict[str, Any] = {
            "command": "python benchmarks/molca_score.py " + shlex.join(argv_used),
            "n": len(ids),
            "molecules": "ids shared by all variant files, first file's order"
            + (f", first {args.limit}" if args.limit is not None else ""),
            "py2opsin_version": version("py2opsin"),
            "cpu": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"1 process (load average at start {os.getloadavg()[0]:.1f})",
            "metric_notes": "fractions in [0, 1]; BLEU/METEOR on bert-base-uncased WordPiece "
            "tokens (MolT5 uses SciBERT's), METEOR with exact+stem matching (no WordNet); OPSIN "
            "exact = same standard InChIKey (RDKit) as the input molecule; verified = some beam's "
            "OPSIN structure is the input's (molfm name --verify)",
            "variants": {},
            "nispo": None,
        }
        for name, path in args.variants:
            frame = aligned[name]
            beams = frame[beam_columns[name]].to_numpy().tolist()
            scores = score_variant(beams, smiles, targets)
            result["variants"][name] = {
                "path": str(path),
                "rows_in_file": rows_in_file[name],
                **scores,
            }
        if not args.no_peer:
            result["nispo"] = score_peer(smiles, targets)
    except (ScoreError, RuntimeError) as err:  # RuntimeError: Java/OPSIN failed as a whole
        print(f"molca_score.py: error: {err}", file=sys.stderr)
        return 1

    from molfm.atomic import atomic_write_text

    atomic_write_text(args.output, json.dumps(result, indent=2) + "\n")
    dropped = {n: r - len(ids) for n, r in rows_in_file.items() if r != len(ids)}
    if dropped and args.limit is None:
        print(f"note: rows not scored (not shared by all files): {dropped}", file=sys.stderr)
    print(markdown_table(result))
    if result["nispo"]:
        print(f"\nnispo: {1000 * result['nispo']['seconds_per_molecule']:.2f} ms per molecule")
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
