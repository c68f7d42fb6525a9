"""3D-PGT (Wang et al., KDD 2023, "Automated 3D Pre-Training for Molecular Property Prediction"):
pretrain a 2D graph encoder to predict 3D geometry, then fine-tune it on 2D graphs alone.

* :mod:`molfm.chem.geometry` -- the targets (bond lengths, per-atom angle sums, per-bond
  dihedral sums), linear in molecule size and tested against brute-force enumeration;
* :mod:`.config` -- the run config (the flags of ``molfm pretrain 3d-pgt``);
* :mod:`.data` -- targets computed once per dataset and cached; batches that carry them; the
  training split's target statistics and energy reference;
* :mod:`.model` -- the pretext heads: bond / atom regressors and the total-energy probe;
* :mod:`.weighting` -- the automatic task weights (one-step hypergradient on the simplex);
* :mod:`.task` -- the LightningModule (encoder + heads + task weights);
* :mod:`.run` -- a whole run (``molfm pretrain 3d-pgt``): fit, export the best encoder;
* :mod:`.protocol` -- the QM9 protocol's disjoint pretraining / fine-tuning splits.

The encoder is any molfm graph encoder; the default is GPS (:mod:`molfm.nn.gps`). Fine-tuning
is the shared property task: ``molfm train property --model gps --init DIR``.

Shipped: ``gps-3dpgt-small-qm9`` (the small GPS encoder pretrained on QM9 with searched weights).

Import-light: this ``__init__`` only names the shipped checkpoint.
"""

PRETRAINED_ENCODER = "gps-3dpgt-small-qm9"
