"""The naming training set of pubchem-names, cleaned and extended (molca.naming_data): how many
IUPAC names OPSIN drops, what the "pubchem small" table and verified synonyms add. Fills the
OPSIN verdict cache beside the prepared data set, which the GPU bundle then carries (the GPU
machine has no Java).

    nice -n 5 python benchmarks/molca_naming_data.py --synonyms 1 \\
        -o benchmarks/results/molca_naming_data.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from molfm.systems.molca.data import pubchem_names_splits
from molfm.systems.molca.naming_data import naming_training_set


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--synonyms", type=int, default=1, help="synonyms per training molecule")
    p.add_argument("--limit", type=int, default=None, help="only the first N training pairs")
    p.add_argument("--no-small-table", action="store_true")
    p.add_argument("-o", "--output", required=True)
    args = p.parse_args()
    splits = pubchem_names_splits("iupac")
    if args.limit is not None:
        from molfm.systems.molca.splits import head

        splits.train = head(splits.train, args.limit)
    _, info = naming_training_set(
        splits, add_small_table=not args.no_small_table, synonyms_per_molecule=args.synonyms
    )
    info["split"] = splits.info["split"]
    Path(args.output).write_text(json.dumps(info, indent=1))
    print(json.dumps(info, indent=1))


if __name__ == "__main__":
    main()
