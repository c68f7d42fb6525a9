"""The one-slot GPU command (benchmarks/molca_gpu_naming.py) end to end on a CPU at tiny sizes:
profile, train, name a sample with every beam, package; the packaged checkpoint loads and names."""

import io
import json
import subprocess
import tarfile
from pathlib import Path

import pandas as pd
import pytest
import torch

from molfm.data.sources.pubchem_names import parse_identifier_lines

DATA = Path(__file__).resolve().parents[2] / "data" / "pubchem_names_150.tsv"


REPO = Path(__file__).resolve().parents[3]
BEFORE_COMMIT = "9336a23"  # the step before the step work, as in benchmarks/molca_step.sh


def before_code(folder: Path) -> Path | None:
    """The molfm package of BEFORE_COMMIT (``git archive``), or None outside a full clone."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", BEFORE_COMMIT, "--", "molfm",
         ":(exclude)molfm/assets", ":(exclude)molfm/serve/web"],
        capture_output=True,
    )  # fmt: skip
    if archive.returncode != 0:
        return None
    folder.mkdir()
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def test_the_gpu_command_runs_end_to_end_on_tiny_sizes(benchmark_script, tmp_path):
    script = benchmark_script("molca_gpu_naming")
    before = before_code(tmp_path / "before")
    torch.set_num_threads(1)
    data = tmp_path / "names.csv"  # 150 real PubChem molecules and their IUPAC names
    table = parse_identifier_lines(DATA.read_text(encoding="utf-8"))
    table = table[table["iupac_name"].notna()]
    table[["smiles", "iupac_name"]].set_axis(["smiles", "text"], axis=1).to_csv(data, index=False)
    out = tmp_path / "out"
    summary = script.main(
        ["--tiny", "--data-path", str(data), "--out", str(out), "--work", str(tmp_path / "w"),
         "--time-limit", "600", "--profile-steps", "6", "--max-steps", "4", "--eval-limit", "3", "--num-beams", "2",
         "--max-new-tokens", "6", "--decode-batch", "2", "--compile", "off",
         "--init", "molca-small-pubchem-retrieval",  # MolCA's order: stage 1 first
         *(["--before-code", str(before)] if before else [])]
    )  # fmt: skip
    # the step phase: each setting in its own process, the before one on the old code
    step = summary["step"]
    assert set(step) == {"before", "after", "after-compile"}
    for name in ("after", "after-compile") if before is None else step:
        assert "error" not in step[name], step[name]
        assert step[name]["molecules_per_s"] > 0 and step[name]["launches_total"] > 0
    # compiled, each LM layer's dozens of operations become a few fused kernels (the tiny LM
    # has 2 layers; the rest of the model stays eager)
    assert step["after-compile"]["launches_total"] < 0.9 * step["after"]["launches_total"]
    if before is not None:
        assert step["before"]["syncs"] and not step["after"]["syncs"]
        assert step["after"]["launch_ratio_vs_before"] < 1
    assert summary["compile"] is False  # --compile off
    assert summary["profile"]["steps_done"] == 6 and summary["train"]["steps_done"] == 4
    assert summary["profile"]["launches_per_step"] > 100  # the profiled steps' kernels
    assert (tmp_path / "w" / "profile.txt").read_text().count("Name") >= 1
    assert summary["naming"]["n_named"] == summary["naming"]["n_asked"] == 3
    assert summary["naming"]["beam0_tokens_max"] <= 6
    assert json.loads((out / "summary.json").read_text())["naming"]["n_named"] == 3
    with tarfile.open(out / "results.tgz") as tar:
        names = tar.getnames()
        predictions = pd.read_csv(tar.extractfile("predictions.csv"), keep_default_na=False)
    assert {"profile.txt", "run/metrics.json", "step_after.json", "step_after.log"} <= set(names)
    assert list(predictions.columns) == ["id", "smiles", "target", "beam_0", "beam_1"]
    assert len(predictions) == 3
    # the checkpoint as it comes back: config + weights (fp16), loadable and naming
    from molfm.hub import from_pretrained, resolve_checkpoint

    model_dir = tmp_path / "shipped"
    model_dir.mkdir()
    (model_dir / "config.json").write_text((out / "model-config.json").read_text())
    (model_dir / "model.safetensors").write_bytes((out / "model.safetensors").read_bytes())
    model = from_pretrained(model_dir)
    assert model.config.lm_tuning.target_modules == ["q_proj", "v_proj"]
    # the graph side came from the stage-1 model: 10 small steps away from it, not a fresh GINE
    stage1 = from_pretrained(resolve_checkpoint("molca-small-pubchem-retrieval"))
    stage1 = stage1.graph_encoder.state_dict()
    for name, trained in model.graph_encoder.state_dict().items():
        if trained.dtype.is_floating_point and trained.dim() == 2:
            assert (trained.float() - stage1[name].float()).abs().max() < 0.02, name
    assert model.config.max_target_tokens == 256


def test_the_working_tree_leaves_room_for_the_gpu_bundle():
    """The device tool sends at most 64 MiB a call, the working tree included, and the GPU
    bundle's parts (benchmarks/molca_gpu_bundle.sh) get what the tree leaves: a tree past
    56 MiB would split the 252 MiB bundle into more than 40 calls of a 15-minute slot."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
    )
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    files = [REPO / name for name in listed.stdout.decode().split("\0") if name]
    tree_mib = sum(path.stat().st_size for path in files if path.is_file()) / 2**20
    assert tree_mib < 56, f"the working tree is {tree_mib:.1f} MiB"
