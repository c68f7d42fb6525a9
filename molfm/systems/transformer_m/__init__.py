"""Transformer-M (Luo et al., ICLR 2023): one transformer over 2D graphs, 3D geometry or both.

* :mod:`.config` -- the encoder's sizes and options, and the settings of the shipped run;
* :mod:`.model` -- the encoder (2D and 3D channels, per-molecule mode sampling);
* :mod:`.paths` -- shortest paths and the bonds along them (the 2D channel's pair inputs);
* :mod:`.graph_attention` -- attention with a per-head pair bias; :mod:`.gaussian` -- the
  Gaussian basis of interatomic distances (the 3D channel);
* :mod:`.denoise` -- the equivariant 3D position-denoising head (auxiliary loss);
* :mod:`.run` -- the run that trains the shipped checkpoint.

Training and prediction are the shared property task (``molfm train property --model
transformer-m``, ``molfm predict``; :mod:`molfm.tasks`).

Shipped: ``transformer-m-small-qm9``, a property model (QM9 HOMO, LUMO, gap in eV) on the
small encoder, trained jointly on 2D and 3D (``benchmarks/train_transformer_m_qm9.sh``). It is
``molfm predict``'s default model, so the task's config names it.

This ``__init__`` stays import-light (no torch): it only names the shipped checkpoint.
"""

from molfm.tasks.config import DEFAULT_PROPERTY_MODEL

__all__ = ["DEFAULT_PROPERTY_MODEL"]
