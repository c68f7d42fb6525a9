"""GP-MoLFormer (Ross et al., arXiv 2405.04912): a causal SMILES decoder with linear attention
and rotary positions, for de novo generation, scaffold decoration and pair-tuning.

The five names every system folder has:

* :mod:`.config` -- the run configs (:class:`~.config.LMTrainConfig`,
  :class:`~.config.AnalogTrainConfig`, :class:`~.config.GenerateConfig`,
  :class:`~.config.DecorateConfig`, :class:`~.config.PairTuningConfig`), one flag a field;
* :mod:`.model` -- the decoder (parallel and recurrent forms) and :func:`.model.load_smiles_model`;
* :mod:`.data` -- encoded SMILES datasets, analog/pair rows and their batching;
* :mod:`.task` -- :class:`~.task.CausalLMTask`, the next-token objective both pretraining stages
  train;
* :mod:`.run` -- the entry points: ``train_causal_lm``, ``train_analog_lm``, ``generate``,
  ``decorate``, ``optimize``.

What it needs beyond them:

* :mod:`.pretrain` and :mod:`.analogs` -- the two training objectives' own code: their checks,
  the data each trains on (a SMILES split and its vocabulary; mined analog pairs) and the run
  itself (``train_causal_lm`` / ``train_analog_lm``, through
  :func:`molfm.engine.run.fit_and_export`). The runs stay beside their objectives and
  :mod:`.run` imports them, so there is one definition, and ``molfm train`` calls them where
  they are defined (tests replace them there);
* :mod:`.tokenizer` -- the regex SMILES tokenizer; :mod:`.rotary`, :mod:`.linear_attention` --
  rotary positions and causal linear attention (parallel and recurrent forms of one function);
* :mod:`.sampling`, :mod:`.syntax`, :mod:`.decoration` -- sampling, the SMILES syntax mask,
  scaffold decoration;
* :mod:`.pair_tuning` -- pair mining, soft prompts and their Lightning task, prompt training,
  optimization, and the steps :func:`.run.optimize` strings together.

This ``__init__`` stays import-light (no torch) so the CLI can show defaults quickly.
"""

from molfm.systems.gp_molformer.config import DEFAULT_PAIR_TUNING_MODEL, DEFAULT_SMILES_MODEL

__all__ = ["DEFAULT_SMILES_MODEL", "DEFAULT_PAIR_TUNING_MODEL"]
