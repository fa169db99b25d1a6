"""The training loop: one readable loop for both stages and every variant.

    for step in range(start, steps):
        lr = warmup-then-cosine(step)
        for each micro-batch of this rank's share of the step's global batch:
            loss = summed target-token cross-entropy / the step's global target-token count
            backward (DDP averages gradients over processes; we multiply by world size to undo the average)
        clip, AdamW step, zero grads
        every `checkpoint_every` steps: save trainable tensors + optimizer + step + full config

Only the parameters a variant trains have requires_grad (see `set_trainable`); everything else stays
bit-identical. AdamW decays weights but not biases or norm weights (1-d tensors). AMP (fp16 autocast with a
GradScaler) is used on GPU only.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from harness.dist import DistContext
from harness.train.batches import build_batch, lm_loss_sum, target_tokens
from harness.train.data import load_samples, prepare, step_indices
from model_zoo.minigpt4 import MiniGPT4Model, image_processor

FROZEN_DTYPES = ("float32", "float16", "bfloat16")


@dataclass(frozen=True)
class TrainConfig:
    stage: int  # 1 or 2
    data_kind: str  # pairs_jsonl | cc_sbu_align | locna
    data_path: str
    out_dir: str
    data_images: str | None = None  # the image folder, for kinds that need one (locna)
    steps: int = 100
    batch_size: int = 8  # global: over all processes and micro-batches
    grad_accum: int = 1
    lr: float = 1e-4
    warmup_start_lr: float = 1e-6
    warmup_steps: int = 10
    min_lr: float = 8e-5
    weight_decay: float = 0.05
    max_txt_len: int = 32
    crop_min_scale: float = 0.5  # stage 1's random resized crop keeps 0.5-1 of the area (paper); 1.0: no crop
    seed: int = 0
    checkpoint_every: int = 50
    keep_checkpoints: int = 2
    train_qformer: bool = False  # the "+ finetune Q-Former" variant
    train_lora: bool = False  # train the model's LoRA adapters (a model built with lora={...})
    # dtype of the frozen parameters (upstream keeps the ViT and the LLM in float16); trainable ones stay float32
    # under AMP. Anything but float32 needs a GPU: the loop autocasts on CUDA only.
    frozen_dtype: str = "float32"
    grad_clip: float | None = 1.0
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)  # recorded with checkpoints (e.g. variant name)

    def __post_init__(self) -> None:
        if self.stage not in (1, 2):
            raise ValueError(f"stage must be 1 or 2, got {self.stage}")
        if self.batch_size % self.grad_accum:
            raise ValueError(f"batch_size {self.batch_size} is not divisible by grad_accum {self.grad_accum}")
        if self.frozen_dtype not in FROZEN_DTYPES:
            raise ValueError(f"frozen_dtype must be one of {FROZEN_DTYPES}, got {self.frozen_dtype!r}")


def set_trainable(model: MiniGPT4Model, cfg: TrainConfig) -> list[str]:
    """Freeze everything, then unfreeze what the stage/variant trains; returns the trainable names."""
    for p in model.parameters():
        p.requires_grad_(False)
    for p in model.llama_proj.parameters():
        p.requires_grad_(True)
    if cfg.train_qformer:
        if model.qformer is None:
            raise ValueError("train_qformer: this model has no Q-Former (the no-Q-Former variant)")
        for p in model.qformer.parameters():
            p.requires_grad_(True)
        model.query_tokens.requires_grad_(True)
    if cfg.train_lora:
        lora = [p for name, p in model.llm.named_parameters() if "lora_" in name]
        if not lora:
            raise ValueError("train_lora: the model has no LoRA adapters (build it with lora={...})")
        for p in lora:
            p.requires_grad_(True)
    model.eval()  # no dropout anywhere: frozen parts are fixed functions, and training stays deterministic
    return [name for name, p in model.named_parameters() if p.requires_grad]


def cast_frozen(model: nn.Module, dtype: str, device: torch.device) -> None:
    """Store every frozen parameter in `dtype` (upstream: ViT and LLM in float16); trainable ones are untouched."""
    if dtype == "float32":
        return
    if device.type != "cuda":
        raise ValueError(f"frozen_dtype {dtype} needs a CUDA GPU: the loop autocasts on CUDA only, and on the CPU "
                         f"{dtype} weights would meet float32 activations")
    for p in model.parameters():
        if not p.requires_grad:
            p.data = p.data.to(getattr(torch, dtype))


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup from warmup_start_lr to lr, then cosine from lr down to min_lr at the last step."""
    if step < cfg.warmup_steps:
        return cfg.warmup_start_lr + (cfg.lr - cfg.warmup_start_lr) * step / max(cfg.warmup_steps, 1)
    progress = (step - cfg.warmup_steps) / max(cfg.steps - cfg.warmup_steps, 1)
    return cfg.min_lr + (cfg.lr - cfg.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or name.endswith(".bias") or "norm" in name.lower() else decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.999))


class _LossModule(nn.Module):
    """What DDP wraps: images + prompts + targets -> the summed target loss and its token count."""

    def __init__(self, model: MiniGPT4Model, tokenizer, max_txt_len: int):
        super().__init__()
        self.model, self.tokenizer, self.max_txt_len = model, tokenizer, max_txt_len

    def forward(self, pixel_values: torch.Tensor, prompts: list[str], targets: list[str]) -> tuple[torch.Tensor, int]:
        image_embeds = self.model.encode_images(pixel_values)
        batch = build_batch(self.model, self.tokenizer, image_embeds, prompts, targets, self.max_txt_len)
        return lm_loss_sum(self.model, batch), target_tokens(batch)


def train(model: MiniGPT4Model, tokenizer, cfg: TrainConfig) -> dict[str, Any]:
    """Train `model` in place; resumes from the newest checkpoint in `cfg.out_dir`. Returns a summary."""
    ctx = DistContext.from_env()
    try:
        return _train(model, tokenizer, cfg, ctx)
    finally:
        ctx.close()


def _train(model: MiniGPT4Model, tokenizer, cfg: TrainConfig, ctx: DistContext) -> dict[str, Any]:
    device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    model.to(device)
    trainable = set_trainable(model, cfg)
    cast_frozen(model, cfg.frozen_dtype, device)
    optimizer = make_optimizer(model, cfg)
    # fp16 autocast with loss scaling, as upstream; bfloat16 frozen weights autocast to bfloat16, which needs no scaler
    amp_dtype = torch.bfloat16 if cfg.frozen_dtype == "bfloat16" else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and amp_dtype == torch.float16)
    out = Path(cfg.out_dir)
    start = load_latest_checkpoint(out, model, optimizer, scaler, cfg)
    samples = load_samples(cfg.data_kind, Path(cfg.data_path), Path(cfg.data_images) if cfg.data_images else None)
    processor = image_processor(model.config.image_size)
    loss_module: nn.Module = _LossModule(model, tokenizer, cfg.max_txt_len)
    if ctx.world_size > 1:
        loss_module = nn.parallel.DistributedDataParallel(loss_module, device_ids=None if device.type == "cpu"
                                                          else [device.index])
    micro = cfg.batch_size // cfg.grad_accum
    losses: list[float] = []
    started = time.perf_counter()
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc=f"stage {cfg.stage}", unit="step",
               disable=not (cfg.progress and ctx.is_main), dynamic_ncols=True)
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        indices = step_indices(len(samples), cfg.seed, step, cfg.batch_size)
        prepared = [prepare(samples[i], cfg.stage, cfg.seed, step, i, cfg.crop_min_scale) for i in indices]
        total_tokens = _step_tokens(tokenizer, prepared, cfg.max_txt_len)
        step_loss = 0.0
        for m in range(cfg.grad_accum):
            chunk = prepared[m * micro:(m + 1) * micro][ctx.rank::ctx.world_size]
            pixels = processor([img for img, _, _ in chunk], return_tensors="pt")["pixel_values"].to(device)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=device.type == "cuda"):
                loss_sum, _ = loss_module(pixels, [p for _, p, _ in chunk], [t for _, _, t in chunk])
            # DDP averages gradients over processes; scaling by world size turns that into a sum, and the
            # division by the step's global token count makes the gradient the mean over all target tokens.
            scaler.scale(loss_sum * ctx.world_size / total_tokens).backward()
            step_loss += float(loss_sum.detach()) / total_tokens
        if cfg.grad_clip:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        losses.append(step_loss * ctx.world_size if ctx.world_size > 1 else step_loss)
        bar.set_postfix(loss=f"{losses[-1]:.4f}", lr=f"{lr_at(step, cfg):.2e}")
        done = step + 1
        if ctx.is_main and (done % cfg.checkpoint_every == 0 or done == cfg.steps):
            save_checkpoint(out, done, model, optimizer, scaler, cfg, trainable)
        ctx.barrier()
    bar.close()
    return {"steps": cfg.steps, "resumed_from": start, "trainable": trainable, "losses": losses,
            "seconds": time.perf_counter() - started}


def _step_tokens(tokenizer, prepared: list[tuple[Any, str, str]], max_txt_len: int) -> int:
    """The number of target tokens in the whole global batch (known before any forward pass)."""
    return max(1, sum(len(tokenizer(t, add_special_tokens=False).input_ids[:max_txt_len]) for _, _, t in prepared))


# ----- checkpoints -----------------------------------------------------------------------------------------
def save_checkpoint(out: Path, step: int, model: MiniGPT4Model, optimizer, scaler, cfg: TrainConfig,
                    trainable: list[str]) -> Path:
    folder = out / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    state = {n: p.detach().cpu().clone() for n, p in model.named_parameters() if n in set(trainable)}
    payload = {"step": step, "trainable": state, "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
               "train_config": dataclasses.asdict(cfg), "model_config": dataclasses.asdict(model.config)}
    path = folder / f"step-{step:07d}.pt"
    tmp = folder / f".{path.name}.tmp"
    torch.save(payload, tmp)
    os.replace(tmp, path)  # a crash mid-save never leaves a half checkpoint under the real name
    for old in sorted(folder.glob("step-*.pt"))[: -cfg.keep_checkpoints]:
        old.unlink()
    return path


def load_latest_checkpoint(out: Path, model: MiniGPT4Model, optimizer, scaler, cfg: TrainConfig) -> int:
    """Restore the newest checkpoint (if any); returns the step to continue from."""
    found = sorted((out / "checkpoints").glob("step-*.pt"))
    if not found:
        return 0
    payload = torch.load(found[-1], map_location="cpu", weights_only=True)
    saved = {"frozen_dtype": "float32",  # checkpoints written before the field existed
             **{k: v for k, v in payload["train_config"].items() if k not in ("steps", "progress", "checkpoint_every")}}
    mine = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("steps", "progress", "checkpoint_every")}
    if saved != mine:
        changed = sorted(k for k in mine if saved.get(k) != mine[k])
        raise ValueError(f"{found[-1]}: was written with a different training config (fields {changed}); "
                         f"use another --out, or the same settings")
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, tensor in payload["trainable"].items():
            params[name].copy_(tensor)
    optimizer.load_state_dict(payload["optimizer"])
    scaler.load_state_dict(payload["scaler"])
    return int(payload["step"])


def write_summary(out: Path, summary: dict[str, Any]) -> None:
    (out / "train_summary.json").write_text(json.dumps(summary, indent=1, default=str), encoding="utf-8")
