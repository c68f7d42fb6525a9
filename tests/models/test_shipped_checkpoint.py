"""The GP-MoLFormer checkpoint shipped in the package loads and generates molecules."""

import torch
from rdkit import Chem, rdBase

from molfm.hub import load_config
from molfm.models import DEFAULT_SMILES_MODEL
from molfm.models.registry import load_smiles_model, resolve_checkpoint
from molfm.models.sampling import sample


def test_shipped_model_loads_and_generates_valid_molecules():
    path = resolve_checkpoint(DEFAULT_SMILES_MODEL)
    config = load_config(path)
    assert config["training"]["data"] == "moses" and config["training"]["steps"] > 0
    assert (path / "model.safetensors").stat().st_size < 20 * 2**20  # ships inside the package
    model, tokenizer = load_smiles_model(DEFAULT_SMILES_MODEL)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    torch.manual_seed(0)
    smiles = list(sample(model, tokenizer, 200, seed=0, batch_size=200))
    with rdBase.BlockLogs():
        valid = [s for s in smiles if s and Chem.MolFromSmiles(s) is not None]
    # measured on 30,000 samples: validity 0.9298 (benchmarks/RESULTS.md §6)
    assert len(valid) / len(smiles) > 0.8
    assert len(set(valid)) > 0.95 * len(valid)


def test_shipped_analog_model_writes_analogs_after_a_molecule():
    """The pair-tuning base: after '<bos> A <eos>' it writes a valid molecule like A."""
    import numpy as np

    from molfm.models import DEFAULT_PAIR_TUNING_MODEL
    from molfm.tasks.pair_optimize import _sample_targets
    from molfm.tasks.pairs import mol_or_none, tanimoto

    config = load_config(resolve_checkpoint(DEFAULT_PAIR_TUNING_MODEL))
    assert config["training"]["n_pairs"] > 0 and config["training"]["steps"] > 0
    model, tok = load_smiles_model(DEFAULT_PAIR_TUNING_MODEL)
    base, base_tok = load_smiles_model(DEFAULT_SMILES_MODEL)
    assert tok.to_dict() == base_tok.to_dict()
    sources = ["CC(C)Cc1ccc(C(C)C(=O)O)cc1", "COc1ccc2[nH]cc(CCN)c2c1", "O=C(Nc1ccccc1)c1ccncc1"]
    banned = torch.tensor([tok.pad_id, tok.bos_id, tok.unk_id])

    def analogs(m):
        sims, n = [], 0
        generator = torch.Generator().manual_seed(0)
        for source in sources:
            state, logits = m.init_state(1), None
            with torch.inference_mode():
                for pos, token in enumerate(tok.encode(source)):
                    logits, state = m.step(torch.tensor([token]), pos, state)
                outs, _ = _sample_targets(m, state, logits, 1, 20, 100, banned, generator, {}, None)
            with rdBase.BlockLogs():
                mols = [mol_or_none(tok.decode(o)) for o in outs]
            n += len(outs)
            sims += [tanimoto(source, mol) for mol in mols if mol is not None]
        return len(sims) / n, float(np.mean(sims)) if sims else 0.0

    valid, similarity = analogs(model)
    base_valid, base_similarity = analogs(base)
    # here: 77% valid against 27% for the single-molecule base (RESULTS.md §9a: 60% valid,
    # similarity 0.185 on 50 held-out low-QED sources x 20)
    assert valid > 0.5 and valid > 2 * base_valid
    assert similarity > 0.1 and similarity > base_similarity
