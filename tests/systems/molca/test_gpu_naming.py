"""The one-slot GPU command (benchmarks/molca_gpu_naming.py) end to end on a CPU at tiny sizes:
profile, train, name a sample with every beam, package; the packaged checkpoint loads and names."""

import json
import tarfile
from pathlib import Path

import pandas as pd
import torch

from molfm.data.sources.pubchem_names import parse_identifier_lines

DATA = Path(__file__).resolve().parents[2] / "data" / "pubchem_names_150.tsv"


def test_the_gpu_command_runs_end_to_end_on_tiny_sizes(benchmark_script, tmp_path):
    script = benchmark_script("molca_gpu_naming")
    torch.set_num_threads(1)
    data = tmp_path / "names.csv"  # 150 real PubChem molecules and their IUPAC names
    table = parse_identifier_lines(DATA.read_text(encoding="utf-8"))
    table = table[table["iupac_name"].notna()]
    table[["smiles", "iupac_name"]].set_axis(["smiles", "text"], axis=1).to_csv(data, index=False)
    out = tmp_path / "out"
    summary = script.main(
        ["--tiny", "--data-path", str(data), "--out", str(out), "--work", str(tmp_path / "w"),
         "--time-limit", "600", "--profile-steps", "6", "--max-steps", "4", "--eval-limit", "3", "--num-beams", "2",
         "--max-new-tokens", "6", "--decode-batch", "2"]
    )  # fmt: skip
    assert summary["profile"]["steps_done"] == 6 and summary["train"]["steps_done"] == 4
    assert (tmp_path / "w" / "profile.txt").read_text().count("Name") >= 1
    assert summary["naming"]["n_named"] == summary["naming"]["n_asked"] == 3
    assert summary["naming"]["beam0_tokens_max"] <= 6
    assert json.loads((out / "summary.json").read_text())["naming"]["n_named"] == 3
    with tarfile.open(out / "results.tgz") as tar:
        names = tar.getnames()
        predictions = pd.read_csv(tar.extractfile("predictions.csv"), keep_default_na=False)
    assert {"profile.txt", "run/metrics.json"} <= set(names)
    assert list(predictions.columns) == ["id", "smiles", "target", "beam_0", "beam_1"]
    assert len(predictions) == 3
    # the checkpoint as it comes back: config + weights (fp16), loadable and naming
    from molfm.hub import from_pretrained

    model_dir = tmp_path / "shipped"
    model_dir.mkdir()
    (model_dir / "config.json").write_text((out / "model-config.json").read_text())
    (model_dir / "model.safetensors").write_bytes((out / "model.safetensors").read_bytes())
    model = from_pretrained(model_dir)
    assert model.config.lm_tuning.target_modules == ["q_proj", "v_proj"]
    assert model.config.max_target_tokens == 256
