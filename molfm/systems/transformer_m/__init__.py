"""Transformer-M (Luo et al., ICLR 2023): one transformer over 2D graphs, 3D geometry or both.

* :mod:`.model` -- the encoder (2D and 3D channels, per-molecule mode sampling).

This ``__init__`` stays import-light (no torch): it only registers the model type.
"""

from molfm.hub import register_model_module

register_model_module("transformer-m", "molfm.systems.transformer_m.model")
