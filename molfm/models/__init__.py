"""Model systems composed from molfm.nn (one module per system)."""

# Kept here, import-light, so the CLI can show it without importing torch.
DEFAULT_SMILES_MODEL = "gp-molformer-small-moses"
# The default base for pair-tuning (molfm optimize): the default model after analog pretraining
# (molfm.tasks.analog_lm), which writes an analog after a molecule.
DEFAULT_PAIR_TUNING_MODEL = "gp-molformer-small-moses-analogs"
