"""GP-MoLFormer (Ross et al., arXiv 2405.04912): a causal SMILES decoder with linear attention
and rotary positions, for de novo generation, scaffold decoration and pair-tuning.

Read top to bottom:

* :mod:`.tokenizer` -- the regex SMILES tokenizer; :mod:`.data` -- encoded SMILES datasets;
* :mod:`.rotary`, :mod:`.linear_attention` -- rotary positions and causal linear attention
  (parallel and recurrent forms of the same function);
* :mod:`.model` -- the decoder (parallel and recurrent forms) and :func:`.model.load_smiles_model`;
* :mod:`.sampling`, :mod:`.syntax`, :mod:`.decoration` -- sampling, the SMILES syntax mask,
  scaffold decoration; :mod:`.generation` -- the sample/decorate jobs behind the CLI;
* :mod:`.pretrain` -- causal-LM pretraining; :mod:`.analogs` -- analog pretraining;
* :mod:`.pair_tuning` -- pair mining, soft prompts, prompt training, optimization.

This ``__init__`` stays import-light (no torch) so the CLI can show defaults quickly.
"""

DEFAULT_SMILES_MODEL = "gp-molformer-small-moses"
# The default base for pair-tuning (molfm optimize): the default model after analog pretraining
# (molfm.systems.gp_molformer.analogs), which writes an analog after a molecule.
DEFAULT_PAIR_TUNING_MODEL = "gp-molformer-small-moses-analogs"
