"""Transformer-M: one transformer over 2D graphs, 3D geometry, or both.

Luo et al., "One Transformer Can Understand Both 2D & 3D Molecular Data" (ICLR 2023). Reads
top to bottom::

    atoms [B, N, F] -> sum of feature embeddings            (+ degree embedding      if 2D)
                                                             (+ 3D centrality         if 3D)
    prepend a virtual graph token                        -> [B, 1 + N, C]
    per-head attention bias [B, H, 1 + N, 1 + N] = 2D bias (shortest-path + multi-hop edges)
                                                 + 3D bias (Gaussian kernels of distances -> MLP)
                                                   on atom pairs; the virtual token's learned
                                                   bias on its own row and column
    num_layers x pre-LN blocks -> LN    or    LN -> num_layers x post-LN blocks (``norm``)
    graph embedding = the virtual token's output; node embeddings = the atoms' outputs
    training on 3D inputs: coordinates + Gaussian noise; an equivariant head predicts the noise
    (:mod:`.denoise`, the auxiliary loss :meth:`TransformerM.auxiliary_loss`)

Each molecule runs in one *mode*: 2D (graph channel only), 3D (geometry only) or 2D+3D. In
training each molecule draws its mode (official probabilities: 2D+3D 0.2, 2D 0.2, 3D 0.6;
molecules without coordinates always run 2D); at inference a molecule uses every channel it
has data for. A channel that is off contributes exactly zero, so 2D outputs do not depend on
coordinates.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from molfm.data.dense import DenseBatch
from molfm.hub import register_model
from molfm.nn.encoder import EncoderOutput, FeatureEmbedding
from molfm.systems.transformer_m.config import MODES, Mode, TransformerMConfig
from molfm.systems.transformer_m.denoise import PositionDenoisingHead
from molfm.systems.transformer_m.gaussian import PairGaussianBasis
from molfm.systems.transformer_m.graph_attention import BiasedTransformerLayer
from molfm.systems.transformer_m.paths import GraphPaths

__all__ = ["TransformerM"]


@register_model("transformer-m")
class TransformerM(nn.Module):
    """The Transformer-M encoder (see the module docstring) with the shared encoder interface."""

    config_class = TransformerMConfig
    pair_structure = GraphPaths  # the 2D biases read shortest paths (DenseBatch.pairs)

    def __init__(self, config: TransformerMConfig) -> None:
        super().__init__()
        self.config = config
        c, h, k = config.dim, config.num_heads, config.num_kernels
        self.atom_embedding = FeatureEmbedding(config.atom_dims, c)
        self.degree_embedding = nn.Embedding(config.max_degree + 1, c)
        self.graph_token = nn.Parameter(torch.zeros(1, 1, c))
        self.graph_token_bias = nn.Parameter(torch.zeros(1, h, 1, 1))  # virtual "distance"
        # 2D channel
        self.spd_bias = nn.Embedding(config.max_distance + 2, h)
        self.edge_embedding = FeatureEmbedding(config.bond_dims, h, shift=1)
        self.hop_weights = nn.Parameter(torch.empty(config.max_hops, h, h))
        # 3D channel
        self.gaussian = PairGaussianBasis(k, config.atom_dims[0])
        self.bias_3d = nn.Sequential(nn.Linear(k, k), nn.GELU(), nn.Linear(k, h))
        self.centrality_3d = nn.Linear(k, c)
        self.layers = nn.ModuleList(
            BiasedTransformerLayer(
                c,
                h,
                config.ffn_dim,
                config.dropout,
                config.attn_dropout,
                norm=config.norm,
                activation_dropout=config.activation_dropout,
                drop_path=rate,
            )
            for rate in torch.linspace(0, config.drop_path, config.num_layers).tolist()
        )
        # post-LN blocks end normalized; the official encoder normalizes their input instead
        post = config.norm == "post"
        self.input_norm = nn.LayerNorm(c) if post else nn.Identity()
        self.final_norm = nn.Identity() if post else nn.LayerNorm(c)
        self.denoising_head = PositionDenoisingHead(c, h)
        nn.init.normal_(self.graph_token, std=0.02)
        nn.init.normal_(self.hop_weights, std=h**-0.5)
        if config.init == "normal":
            self._init_normal()

    def _init_normal(self) -> None:
        """The official initialization: N(0, 0.02) for linear and embedding weights and the
        free parameters, zero biases and padding rows. The Gaussian basis keeps its own init
        (mul 1, bias 0, kernels U(0, 3)); the official code overwrites that one too."""
        gaussian = set(self.gaussian.modules())
        for module in self.modules():
            if module in gaussian:
                continue
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
                if module.padding_idx is not None:
                    nn.init.zeros_(module.weight[module.padding_idx])
        for parameter in (self.graph_token, self.graph_token_bias, self.hop_weights):
            nn.init.normal_(parameter, std=0.02)

    @property
    def embedding_dim(self) -> int:
        return self.config.dim

    @property
    def default_auxiliary_weight(self) -> float:
        """The weight of :meth:`auxiliary_loss` when the task names none (``denoise_weight``)."""
        return self.config.denoise_weight

    def select_modes(self, batch: DenseBatch, mode: Mode | None = None) -> torch.Tensor:
        """Per-molecule channel switches ``[B, 2]`` (use 2D, use 3D) as floats.

        ``mode`` forces one mode for the batch (3D modes need coordinates). ``None`` draws
        from ``mode_probs`` in training and uses every available channel in eval.
        """
        b, device = batch.num_graphs, batch.x.device
        has_pos = batch.has_pos
        if mode is not None:
            if mode not in MODES:
                raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
            if "3d" in mode and not bool(has_pos.all()):
                raise ValueError(f"mode {mode!r} needs coordinates for every molecule")
            use_2d = torch.full((b,), "2d" in mode, device=device)
            use_3d = torch.full((b,), "3d" in mode, device=device)
        elif self.training:
            draw = torch.multinomial(
                torch.tensor(self.config.mode_probs, device=device), b, replacement=True
            )
            use_2d = (draw != 2) | ~has_pos
            use_3d = (draw != 1) & has_pos
        else:
            use_2d = torch.ones(b, dtype=torch.bool, device=device)
            use_3d = has_pos.clone()
        return torch.stack([use_2d, use_3d], dim=1).float()

    def _bias_2d(self, batch: DenseBatch) -> torch.Tensor:
        """Shortest-path embedding + multi-hop edge encoding -> ``[B, H, N, N]``."""
        if batch.pairs is None:
            raise ValueError(
                "Transformer-M reads shortest paths: build the DenseGraphDataset with "
                "pair_structure=TransformerM.pair_structure"
            )
        spd = self.spd_bias(batch.pairs["spd"])  # [B, N, N, H]
        edges = self.edge_embedding(batch.pairs["edge_path"])  # [B, N, N, hops, H]
        edges = torch.einsum("bijlh,lhg->bijg", edges, self.hop_weights)
        hops = batch.pairs["spd"].clamp(min=1, max=self.config.max_hops).unsqueeze(-1).float()
        return (spd + edges / hops).permute(0, 3, 1, 2)

    def _features_3d(
        self, batch: DenseBatch, pos: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Attention bias ``[B, H, N, N]`` and atom centrality ``[B, N, C]`` from distances."""
        pair_mask = batch.node_mask.unsqueeze(1) & batch.node_mask.unsqueeze(2)
        delta = pos.unsqueeze(2) - pos.unsqueeze(1)
        # sqrt of a clamped square: cdist's gradient is NaN at zero distance (the diagonal)
        distances = delta.square().sum(-1).clamp(min=1e-12).sqrt()
        kernels = self.gaussian(distances, batch.x[..., 0]) * pair_mask.unsqueeze(-1)
        bias = self.bias_3d(kernels).permute(0, 3, 1, 2)
        centrality = self.centrality_3d(kernels.sum(2))
        return bias, centrality

    def forward(self, batch: DenseBatch, mode: Mode | None = None) -> EncoderOutput:
        """Encode a :class:`~molfm.data.dense.DenseBatch`; see :meth:`select_modes` for ``mode``."""
        switches = self.select_modes(batch, mode)
        use_2d, use_3d = switches[:, 0], switches[:, 1]
        b = batch.node_mask.shape[0]
        atoms = self.atom_embedding(batch.x)
        degree = self.degree_embedding(batch.degree.clamp(max=self.config.max_degree))
        atoms = atoms + use_2d[:, None, None] * degree
        bias = use_2d[:, None, None, None] * self._bias_2d(batch)
        extras = None
        if bool(use_3d.any()):
            pos, noise = batch.pos, None
            if self.training and self.config.denoise_noise > 0:
                real = (use_3d[:, None] * batch.node_mask).unsqueeze(-1)
                noise = torch.randn_like(pos) * self.config.denoise_noise * real
                pos = pos + noise
            bias_3d, centrality = self._features_3d(batch, pos)
            if self.config.centrality_scale != 1:  # the official encoder scales it by 0.01
                centrality = centrality * self.config.centrality_scale
            atoms = atoms + use_3d[:, None, None] * centrality
            bias = bias + use_3d[:, None, None, None] * bias_3d
            if noise is not None:
                extras = {"noise": noise, "pos": pos, "bias_3d": bias_3d}
                extras |= {"use_2d": use_2d, "use_3d": use_3d}
        full_bias = self._with_graph_token(bias)
        tokens = torch.cat([self.graph_token.expand(b, 1, -1), atoms], dim=1)
        tokens = self.input_norm(tokens)
        key_mask = torch.cat([batch.node_mask.new_ones(b, 1), batch.node_mask], dim=1)
        for layer in self.layers:
            tokens = layer(tokens, full_bias, key_mask)
        tokens = self.final_norm(tokens)
        return EncoderOutput(tokens[:, 1:], batch.node_mask, tokens[:, 0], extras)

    def _with_graph_token(self, bias: torch.Tensor) -> torch.Tensor:
        """Atom-pair bias ``[B, H, N, N]`` -> ``[B, H, 1 + N, 1 + N]`` with the virtual token's
        bias (``graph_token_bias``; ``uniform`` adds it to every logit, where it cancels)."""
        b, h, n, _ = bias.shape
        if self.config.graph_token_bias == "uniform":
            full_bias = self.graph_token_bias.expand(b, h, n + 1, n + 1).clone()
            full_bias[:, :, 1:, 1:] = full_bias[:, :, 1:, 1:] + bias
            return full_bias
        token = self.graph_token_bias.view(1, h, 1).expand(b, h, n)
        full_bias = bias.new_zeros(b, h, n + 1, n + 1)
        full_bias[:, :, 1:, 1:] = bias
        full_bias[:, :, 0, 1:] = token  # the token attending to the atoms
        full_bias[:, :, 1:, 0] = token  # the atoms attending to the token
        return full_bias

    def auxiliary_loss(self, batch: DenseBatch, encoded: EncoderOutput) -> torch.Tensor | None:
        """3D denoising of the noisy training coordinates; None when no molecule it covers ran.

        ``cosine`` (the paper): ``1 - cos(predicted, true noise)`` per atom, averaged over each
        molecule that drew the 3D-only mode, summed and divided by the batch size. ``mse``:
        squared error in units of the noise scale over the atoms of every 3D molecule.
        """
        extras = encoded.extras
        if not extras:
            return None
        noise, mask = extras["noise"], batch.node_mask
        if self.config.denoise_loss == "cosine":
            molecules = extras["use_3d"].bool() & ~extras["use_2d"].bool()
        else:
            molecules = extras["use_3d"].bool()
        if not bool(molecules.any()):
            return None
        predicted = self.denoising_head(
            encoded.node_embeddings, extras["pos"], extras["bias_3d"], mask
        )
        if self.config.denoise_loss == "mse":
            atoms = molecules[:, None] & mask
            scale = self.config.denoise_noise
            return (predicted[atoms] / scale - noise[atoms] / scale).square().sum(-1).mean()
        atoms = (molecules[:, None] & mask).float()
        miss = 1 - F.cosine_similarity(predicted, noise, dim=-1)  # [B, N]
        per_molecule = (miss * atoms).sum(1) / atoms.sum(1).clamp(min=1)
        return per_molecule.sum() / len(molecules)
