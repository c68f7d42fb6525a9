"""Transformer-M (Luo et al., ICLR 2023): one transformer over 2D graphs, 3D geometry or both.

* :mod:`.model` -- the encoder (2D and 3D channels, per-molecule mode sampling);
* :mod:`.paths` -- shortest paths and the bonds along them (the 2D channel's pair inputs);
* :mod:`.graph_attention` -- attention with a per-head pair bias; :mod:`.gaussian` -- the
  Gaussian basis of interatomic distances (the 3D channel);
* :mod:`.denoise` -- the equivariant 3D position-denoising head (auxiliary loss).

Shipped: ``transformer-m-small-qm9``, a property model (QM9 HOMO, LUMO, gap in eV) on the
small encoder, trained jointly on 2D and 3D (``benchmarks/train_transformer_m_qm9.sh``).

This ``__init__`` stays import-light (no torch): it only names the shipped checkpoint.
"""

DEFAULT_PROPERTY_MODEL = "transformer-m-small-qm9"
