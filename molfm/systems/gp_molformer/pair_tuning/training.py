"""Pair-tuning (GP-MoLFormer, arXiv 2405.04912): a soft prompt trained on ordered pairs.

Pair-tuning is prompt-tuning (Lester et al. 2021) on property-ordered molecule pairs
(:mod:`molfm.systems.gp_molformer.pair_tuning.pairs`): the base :class:`~molfm.systems.gp_molformer.model.GPMoLFormer` is frozen
and only ``P`` prompt vectors of width ``C`` are learned, so one small file per property
steers the same base model. A training sequence is::

    [p_0 ... p_{P-1}]  <bos> source <eos>  target <eos>
     prompt vectors    context (no loss)   loss on every target token and the final <eos>

The prompt occupies positions ``0..P-1`` and the context tokens follow (``P, P+1, ...``);
the target restarts its rotary numbering at 1 (:func:`pair_positions`), the position the first
atom of every pretraining molecule had, so targets stay inside the positions the base model
knows (a target after a 20-vector prompt and a 40-token source would otherwise sit at ~60-120). The source is framed
as the base model saw molecules in pretraining (``<bos> ... <eos>``); the prompt learns to
make the model continue after that ``<eos>`` with an improved, similar molecule. At inference
(:func:`molfm.systems.gp_molformer.pair_tuning.optimize.optimize`) the same layout is run in the recurrent form.

The base model is frozen in both senses: ``requires_grad=False`` on every base parameter
(AdamW only ever sees the prompt) and eval mode for the whole run (no dropout noise in the
frozen network; :meth:`PairTuningTask.train` keeps it in eval mode whatever Lightning asks).

The prompt itself and its file format live in :mod:`molfm.systems.gp_molformer.pair_tuning.soft_prompt` (re-exported
here).
"""

from __future__ import annotations

import functools
import os
import time
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from molfm.engine.optim import adamw_warmup_cosine
from molfm.systems.gp_molformer.data import PairBatch, PairDataset, collate_pairs, pair_positions
from molfm.systems.gp_molformer.model import GPMoLFormer
from molfm.systems.gp_molformer.pair_tuning.soft_prompt import (
    LAYOUT,
    SoftPrompt,
    load_prompt,
    save_prompt,
)
from molfm.systems.gp_molformer.tokenizer import SmilesTokenizer

__all__ = [
    "SoftPrompt",
    "PairDataset",
    "collate_pairs",
    "pair_positions",
    "pair_loss",
    "evaluate_pair_loss",
    "PairTuningTask",
    "train_prompt",
    "save_prompt",
    "load_prompt",
    "LAYOUT",
]


def _loss_sum(
    model: GPMoLFormer, prompt: torch.Tensor, batch: PairBatch
) -> tuple[torch.Tensor, int]:
    ids, mask, target_mask = batch
    positions = pair_positions(mask, target_mask, n_prompt=prompt.shape[-2])
    logits = model(ids, mask, prefix_embeds=prompt, positions=positions)  # [B, T, V]
    targets = ids[:, 1:].masked_fill(~target_mask[:, 1:], -100)
    total = F.cross_entropy(
        logits[:, :-1].float().reshape(-1, logits.shape[-1]),
        targets.reshape(-1),
        ignore_index=-100,
        reduction="sum",
    )
    return total, int(target_mask[:, 1:].sum())


def pair_loss(model: GPMoLFormer, prompt: torch.Tensor, batch: PairBatch) -> torch.Tensor:
    """Mean cross-entropy over the target tokens of a batch.

    Parameters
    ----------
    model
        The (frozen) base model.
    prompt
        ``[P, C]`` prompt vectors.
    batch
        ``(ids [B, T], attention_mask [B, T], target_mask [B, T])`` from :func:`collate_pairs`.
    """
    total, count = _loss_sum(model, prompt, batch)
    return total / max(count, 1)


@torch.no_grad()
def evaluate_pair_loss(
    model: GPMoLFormer,
    prompt: torch.Tensor,
    dataset: PairDataset,
    *,
    pad_id: int,
    batch_size: int = 64,
) -> float:
    """Mean target-token cross-entropy (nats/token) of ``dataset`` in eval mode."""
    was_training = model.training
    model.eval()
    device = prompt.device
    total, count = 0.0, 0
    try:
        for start in range(0, len(dataset), batch_size):
            items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
            batch = tuple(t.to(device) for t in collate_pairs(items, pad_id))
            loss_sum, n = _loss_sum(model, prompt, batch)  # type: ignore[arg-type]
            total += float(loss_sum)
            count += n
    finally:
        model.train(was_training)
    return total / max(count, 1)


class PairTuningTask(L.LightningModule):
    """Train only a :class:`SoftPrompt` in front of a frozen :class:`GPMoLFormer`.

    Parameters
    ----------
    model
        The base model; its parameters get ``requires_grad=False`` and it stays in eval mode.
    prompt
        The soft prompt (the only trained parameters).
    lr, weight_decay
        AdamW settings for the prompt (prompt-tuning wants a larger rate than full tuning).
    warmup_steps, max_steps
        Linear warm-up, then cosine decay to ``0.1 lr`` at ``max_steps``.
    """

    def __init__(
        self,
        model: GPMoLFormer,
        prompt: SoftPrompt,
        *,
        lr: float = 3e-2,
        weight_decay: float = 0.0,
        warmup_steps: int = 20,
        max_steps: int = 1000,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model", "prompt"])
        self.model = model
        self.prompt = prompt
        for param in self.model.parameters():
            param.requires_grad_(False)
        self.model.eval()

    def train(self, mode: bool = True) -> PairTuningTask:
        """Lightning switches modules to train mode; the frozen base stays in eval mode."""
        super().train(mode)
        self.model.eval()
        return self

    def training_step(self, batch: PairBatch, batch_idx: int) -> torch.Tensor:
        loss = pair_loss(self.model, self.prompt(), batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch[0].shape[0])
        return loss

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        return adamw_warmup_cosine(
            self.prompt.named_parameters(),
            lr=hp.lr,
            weight_decay=hp.weight_decay,
            warmup_steps=hp.warmup_steps,
            max_steps=hp.max_steps,
            min_lr_ratio=0.1,
        )


def train_prompt(
    model: GPMoLFormer,
    tokenizer: SmilesTokenizer,
    sources: Sequence[str],
    targets: Sequence[str],
    *,
    n_prompt: int = 20,
    init: Literal["vocab", "normal"] = "vocab",
    max_steps: int = 1000,
    batch_size: int = 32,
    lr: float = 3e-2,
    weight_decay: float = 0.0,
    warmup_steps: int = 20,
    seed: int = 0,
    accelerator: str = "auto",
    devices: Any = 1,
    precision: str = "32-true",
    log_dir: str | os.PathLike | None = None,
    progress: bool = False,
    n_eval: int = 256,
) -> tuple[SoftPrompt, dict[str, Any]]:
    """Pair-tune a new soft prompt on ``(sources[i], targets[i])`` pairs with Lightning.

    Returns
    -------
    prompt
        The trained :class:`SoftPrompt` (on the CPU).
    stats
        ``n_pairs``, ``steps``, ``loss_before`` / ``loss_after`` (mean target-token
        cross-entropy of the first ``n_eval`` pairs, eval mode), ``seconds`` and the
        hyper-parameters.
    """
    L.seed_everything(seed, workers=True, verbose=False)
    dataset = PairDataset(sources, targets, tokenizer)
    prompt = SoftPrompt.from_model(model, n_prompt, init=init, seed=seed)
    task = PairTuningTask(
        model,
        prompt,
        lr=lr,
        weight_decay=weight_decay,
        warmup_steps=warmup_steps,
        max_steps=max_steps,
    )
    probe = PairDataset(list(sources)[:n_eval], list(targets)[:n_eval], tokenizer)
    device = next(model.parameters()).device
    before = evaluate_pair_loss(model, prompt().to(device), probe, pad_id=tokenizer.pad_id)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        collate_fn=functools.partial(collate_pairs, pad_id=tokenizer.pad_id),
        generator=torch.Generator().manual_seed(seed),
    )
    logger: Any = False
    if log_dir is not None:
        logger = L.pytorch.loggers.CSVLogger(log_dir, name="logs", version=0)
    trainer = L.Trainer(
        max_steps=max_steps,
        accelerator=accelerator,
        devices=devices,
        precision=precision,
        logger=logger,
        enable_checkpointing=False,
        enable_progress_bar=progress,
        enable_model_summary=False,
        gradient_clip_val=1.0,
        limit_val_batches=0,
        log_every_n_steps=max(1, min(50, max_steps // 10)),
    )
    start = time.perf_counter()
    with warnings.catch_warnings():  # the frozen base is in eval mode on purpose
        warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")
        trainer.fit(task, train_dataloaders=loader)
    seconds = time.perf_counter() - start
    model.to(device)
    prompt = prompt.cpu()
    after = evaluate_pair_loss(model, prompt().to(device), probe, pad_id=tokenizer.pad_id)
    stats = {
        "n_pairs": len(dataset),
        "steps": int(trainer.global_step),
        "loss_before": before,
        "loss_after": after,
        "seconds": seconds,
        "n_prompt": n_prompt,
        "init": init,
        "batch_size": batch_size,
        "lr": lr,
        "weight_decay": weight_decay,
        "warmup_steps": warmup_steps,
        "seed": seed,
    }
    return prompt, stats
