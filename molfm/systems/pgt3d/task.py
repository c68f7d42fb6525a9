"""The 3D-PGT pretraining objective as one LightningModule.

:class:`PGTPretrainTask` trains a graph encoder (GPS by default; any registered molfm encoder)
to regress three geometry targets from the 2D graph alone (bond lengths, per-atom bond-angle
sums, per-bond dihedral sums; :mod:`molfm.chem.geometry`), with task weights that are fixed or
searched against a total-energy surrogate (:mod:`.weighting`). An energy probe (a sum of per-atom
contributions) is trained on detached embeddings, so it measures the representation without
shaping it; its held-out error is the surrogate the search follows and the score a run reports.
The heads are :mod:`.model`; the task holds the encoder next to them, so the encoder is what
:mod:`.run` exports.

Targets are standardized with the training split's mean/std. The energy is first reduced by a
least-squares per-element reference (``E - sum_atoms e[Z]``), which removes the part any atom
count predicts and leaves what the structure has to explain.

``weighting="official"`` trains the official code's loss instead: the three geometry losses 1:1:1
plus a fourth, the raw total energy in Hartree (neither reduced nor standardized), regressed with
MSE from the mean-pooled node embeddings through the angle head. Its scale (QM9: ~400 Ha) makes it
the dominant term. The detached probe still runs, so the held-out scores stay comparable.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch_geometric.nn import global_mean_pool

from molfm.data.sources.qm9 import HARTREE_TO_EV  # energy columns are eV, the official loss Ha
from molfm.engine.fit import RngStateMixin
from molfm.engine.optim import adamw_warmup_cosine
from molfm.hub import get_model_class
from molfm.systems.pgt3d.data import NUM_HS, TARGETS, PretrainBatch
from molfm.systems.pgt3d.model import PretextHeads
from molfm.systems.pgt3d.weighting import TaskWeights, gradient_alignment

__all__ = ["PGTPretrainTask"]


def _nodes(encoded) -> torch.Tensor:
    """``[N, C]`` sparse node embeddings from an EncoderOutput."""
    extras = encoded.extras or {}
    if "nodes" in extras:
        return extras["nodes"]
    return encoded.node_embeddings[encoded.node_mask]


class PGTPretrainTask(RngStateMixin, L.LightningModule):
    """Encoder + pretext heads + task weights.

    Parameters
    ----------
    encoder_type, encoder_config
        A registered encoder type (``"gps"``) and its config as a dict.
    target_stats
        ``{target: (mean, std)}`` of the three geometry targets on the training split.
    energy_reference
        Reference energies per element (indexed by the atomic-number feature id), then one per
        hydrogen; None when there is no energy (then the weights cannot be searched).
    energy_stats
        ``(mean, std)`` of the reference-reduced energy on the training split.
    weighting
        ``auto`` (searched), ``equal``, ``fixed`` (``initial_weights``) or ``official`` (1:1:1 plus
        the raw energy through the angle head, as the official code trains).
    heads
        ``symmetric`` or ``official`` (:class:`~.model.PretextHeads`); ``official`` needs
        ``target_stats["bond_length_squared"]`` and an encoder that keeps edge states.
    """

    def __init__(
        self,
        encoder_type: str,
        encoder_config: dict[str, Any],
        target_stats: dict[str, tuple[float, float]],
        *,
        energy_reference: list[float] | None = None,
        energy_stats: tuple[float, float] = (0.0, 1.0),
        weighting: str = "auto",
        initial_weights: list[float] | None = None,
        search_every: int = 10,
        search_step: float = 0.05,
        head_hidden: int = 128,
        heads: str = "symmetric",
        lr: float = 5e-4,
        weight_decay: float = 0.0,
        warmup_steps: int = 100,
        max_steps: int = 1000,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if weighting not in ("auto", "equal", "fixed", "official"):
            raise ValueError(f"weighting must be auto, equal, fixed or official, got {weighting!r}")
        if weighting in ("auto", "official") and energy_reference is None:
            raise ValueError(f"--weighting {weighting} needs a total energy (--energy-column)")
        encoder_cls = get_model_class(encoder_type)
        self.encoder = encoder_cls(encoder_cls.config_class(**encoder_config))
        self.heads = PretextHeads(self.encoder.embedding_dim, head_hidden, heads)
        if heads == "official" and "bond_length_squared" not in target_stats:
            raise ValueError("the official heads need target_stats['bond_length_squared']")
        squared = target_stats.get("bond_length_squared", (0.0, 1.0))
        self.register_buffer("squared_stats", torch.tensor(squared), persistent=False)
        self.task_weights = TaskWeights(
            TARGETS,
            None if weighting != "fixed" else initial_weights,
            search=weighting == "auto",
            step_size=search_step,
        )
        stats = torch.tensor([target_stats[t] for t in TARGETS], dtype=torch.float32)
        self.register_buffer("target_mean", stats[:, 0], persistent=False)
        self.register_buffer("target_std", stats[:, 1], persistent=False)
        reference = torch.tensor(energy_reference or [0.0, 0.0], dtype=torch.float64)
        self.register_buffer("energy_reference", reference, persistent=False)
        self.search_batches: list[PretrainBatch] = []  # held-out batches for the weight search
        self.trajectory: list[dict[str, float]] = []

    # -- targets and losses ------------------------------------------------------------------
    def _standardized(self, batch: PretrainBatch) -> dict[str, torch.Tensor]:
        """Standardized targets in the shapes the heads predict (official heads: the squared
        bond length, and both bond targets once per direction)."""
        graph = batch.graph
        out = {
            t: (getattr(graph, t) - self.target_mean[k]) / self.target_std[k]
            for k, t in enumerate(TARGETS)
        }
        if self.heads.form == "official":
            mean, std = self.squared_stats
            out["bond_length"] = ((graph.bond_length.square() - mean) / std).repeat_interleave(2)
            out["dihedral_sum"] = out["dihedral_sum"].repeat_interleave(2)
        return out

    def _mae(self, k: int, predicted: torch.Tensor, batch: PretrainBatch) -> torch.Tensor:
        """Held-out MAE of target ``k`` in its own units (bond lengths in Angstrom, also when
        the official head predicts their squares)."""
        t = TARGETS[k]
        if t == "bond_length" and self.heads.form == "official":
            mean, std = self.squared_stats
            length = (predicted * std + mean).clamp(min=0).sqrt()
            return (length - batch.graph.bond_length.repeat_interleave(2)).abs().mean()
        return (predicted - self._standardized(batch)[t]).abs().mean() * self.target_std[k]

    def energy_target(self, batch: PretrainBatch) -> torch.Tensor:
        """``[B]`` standardized, reference-reduced total energy (NaN where missing)."""
        graph = batch.graph
        per_element, per_hydrogen = self.energy_reference[:-1], self.energy_reference[-1]
        element = graph.x[:, 0].clamp(max=len(per_element) - 1)
        per_atom = per_element[element] + per_hydrogen * graph.x[:, NUM_HS].float()
        reference = torch.zeros(
            graph.num_graphs, dtype=per_atom.dtype, device=per_atom.device
        ).index_add_(0, graph.batch, per_atom)
        mean, std = self.hparams.energy_stats
        # float64: U0 is ~1e4 eV and the residual ~0.1 eV, below float32's resolution there
        return ((graph.energy.double() - reference - mean) / std).float()

    def official_energy_loss(self, h: torch.Tensor, batch: PretrainBatch) -> torch.Tensor:
        """The official code's fourth task: MSE of the raw energy (Hartree) predicted by the angle
        head from the mean-pooled ``[B, C]`` embedding, trained into the encoder."""
        graph = batch.graph
        pooled = global_mean_pool(h, graph.batch, size=len(batch))
        predicted = self.heads.angle(pooled).squeeze(-1)
        target = (graph.energy.double() / HARTREE_TO_EV).float()
        known = ~torch.isnan(target)
        return F.mse_loss(predicted[known], target[known]) if known.any() else h.sum() * 0

    def losses(self, batch: PretrainBatch, *, detach_probe: bool = True):
        """Per-task MSE on standardized targets (plus ``"energy"``, the official fourth task,
        with ``weighting="official"``), the energy-probe MSE, predictions and probe output."""
        encoded = self.encoder(batch)
        h = _nodes(encoded)
        edges = (encoded.extras or {}).get("edges")
        predicted = self.heads(h, batch.bonds, edges, batch.graph.edge_index)
        targets = self._standardized(batch)
        losses = {t: F.mse_loss(predicted[t], targets[t]) for t in TARGETS}
        if self.hparams.weighting == "official":
            losses["energy"] = self.official_energy_loss(h, batch)
        energy = self.energy_target(batch)
        known = ~torch.isnan(energy)
        probe_input = h.detach() if detach_probe else h
        probe = self.heads.predict_energy(probe_input, batch.graph.batch, len(batch))
        probe_loss = F.mse_loss(probe[known], energy[known]) if known.any() else h.sum() * 0
        return losses, probe_loss, predicted, probe

    # -- the weight search -------------------------------------------------------------------
    def _search_step(self, losses: dict[str, torch.Tensor]) -> None:
        index = (self.global_step // self.hparams.search_every) % len(self.search_batches)
        heldout = self.search_batches[index].to(self.device)
        params = [p for p in self.encoder.parameters() if p.requires_grad]
        was_training = self.encoder.training
        self.encoder.eval()  # held-out data must not move BatchNorm statistics
        _, probe_loss, _, _ = self.losses(heldout, detach_probe=False)
        self.encoder.train(was_training)
        surrogate = torch.autograd.grad(probe_loss, params, allow_unused=True)
        alignment = gradient_alignment(losses, TARGETS, surrogate, params)
        self.task_weights.update(alignment)
        row = {"step": int(self.global_step), "heldout_energy_mse": float(probe_loss.detach())}
        row.update(self.task_weights.as_dict())
        self.trajectory.append(row)

    # -- Lightning hooks ---------------------------------------------------------------------
    def training_step(self, batch: PretrainBatch, batch_idx: int) -> torch.Tensor:
        losses, probe_loss, _, _ = self.losses(batch)
        searching = self.task_weights.search and self.search_batches
        if searching and self.global_step % self.hparams.search_every == 0:
            self._search_step(losses)
        total = self.task_weights.combine(losses) + probe_loss
        if "energy" in losses:  # the official fourth task, weight 1
            total = total + losses["energy"]
            self.log("train/energy_hartree", losses["energy"], batch_size=len(batch))
        size = len(batch)
        for t in TARGETS:
            self.log(f"train/{t}", losses[t], batch_size=size)
            self.log(f"weight/{t}", self.task_weights.weights[TARGETS.index(t)], batch_size=size)
        self.log("train/energy_probe", probe_loss, batch_size=size)
        self.log("train/loss", total, prog_bar=True, batch_size=size)
        return total

    def validation_step(self, batch: PretrainBatch, batch_idx: int) -> None:
        losses, probe_loss, predicted, probe = self.losses(batch)
        size = len(batch)
        for k, t in enumerate(TARGETS):
            self.log(f"val/{t}", losses[t], batch_size=size)
            self.log(f"val/{t}_mae", self._mae(k, predicted[t], batch), batch_size=size)
        energy = self.energy_target(batch)
        known = ~torch.isnan(energy)
        if known.any():
            mae = (probe[known] - energy[known]).abs().mean() * self.hparams.energy_stats[1]
            self.log("val/energy_mae", mae, prog_bar=True, batch_size=size)
        self.log("val/energy_probe", probe_loss, batch_size=size)
        if "energy" in losses:
            self.log("val/energy_hartree", losses["energy"], batch_size=size)
        # the geometry losses alone, so checkpoints are chosen alike under every weighting
        geometry = sum(losses[t] for t in TARGETS) / len(TARGETS)
        self.log("val/loss", geometry, prog_bar=True, batch_size=size)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["molfm_weight_trajectory"] = list(self.trajectory)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        self.trajectory = list(checkpoint.get("molfm_weight_trajectory", []))

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        return adamw_warmup_cosine(
            self.named_parameters(),
            lr=hp.lr,
            weight_decay=hp.weight_decay,
            warmup_steps=hp.warmup_steps,
            max_steps=hp.max_steps,
            min_lr_ratio=0.01,
        )
