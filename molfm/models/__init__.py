"""Model systems composed from molfm.nn (one module per system)."""

# Kept here, import-light, so the CLI can show it without importing torch.
DEFAULT_SMILES_MODEL = "gp-molformer-small-moses"
