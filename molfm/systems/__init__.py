"""One folder per published system, each readable on its own.

Importing this package runs every system's ``__init__``, which registers (without importing
torch) the model types it defines and the checkpoints it ships, in :mod:`molfm.hub`. A
system never imports another system's internals; what two systems share lives a layer down
(``chem``, ``data``, ``nn``, ``engine``, ``tasks``).
"""

from molfm.systems import gp_molformer, molca, pgt3d, transformer_m  # noqa: F401  (register their models)
