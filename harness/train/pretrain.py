"""Pre-training of the tiny zoo's parts: the shared tokenizer, "tiny Vicuna" and "tiny BLIP-2".

The real MiniGPT-4 borrows two pre-trained models: BLIP-2 (its ViT, Q-Former and query tokens) and Vicuna.
The tiny zoo makes both from the synthetic world, in minutes on a CPU:

- `build_tokenizer`: a byte-level BPE over every text the zoo's models will read or write (the world's
  instruction corpus, captions, descriptions, narratives, the conversation template). Its `<image>`
  variant (`blip2_tokenizer`) is what a BLIP-2 OPT tokenizer is: BOS in front, an `<image>` token for the
  32 query slots.
- `pretrain_vicuna`: a LlamaForCausalLM trained as a plain causal LM on `text/corpus.jsonl`, every
  assistant answer ending in `###` (the corpus leaves it out; MiniGPT-4 stops generating at it), and every
  record ending in EOS. Light formatting noise (an optional system line, `###Assistant:` with or without a
  space before it) makes it read the conversation template the way the MiniGPT-4 demo writes it. A quarter of
  each batch is caption pages and 35% caption-then-instruction conversations (`vicuna_corpus`).
- `pretrain_vision` (in `pretrain_vision.py`): the tiny ViT alone, before BLIP-2.
- `pretrain_blip2` (in `pretrain_blip2.py`): tiny BLIP-2 on top of that ViT.

Everything is seeded; `fit` is the one optimisation loop (AdamW without decay on 1-d tensors, linear
warmup, cosine decay, gradient clipping).
"""

from __future__ import annotations

import copy
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import AddedToken, processors
from torch import nn
from tqdm import tqdm
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from harness.train.batches import STAGE2_INSTRUCTIONS
from harness.train.vicuna_corpus import caption_page, context_reading, context_record
from model_zoo.checkpoints import set_special_ids
from model_zoo.minigpt4 import SYSTEM_V0
from model_zoo.tokenizer import SPECIAL_TOKENS, train_tiny_tokenizer

IMAGE_TOKEN = "<image>"
IGNORE = -100
# A Vicuna v0-style system line; the tiny Vicuna sees one of these in front of some conversations.
SYSTEM_LINES = (SYSTEM_V0, "A chat between a curious human and an artificial intelligence assistant. The assistant "
                           "gives helpful, detailed, and polite answers to the human's questions.")
# Generic question-style prompts for BLIP-2's captioning (never an evaluation prompt).
BLIP2_PROMPTS = ("Question: What is in this picture? Answer:", "Question: What does this image show? Answer:",
                 "Question: What can you see? Answer:", "Question: Describe the picture. Answer:")


# ----- data --------------------------------------------------------------------------------------------
def read_corpus(world: Path) -> list[str]:
    with (Path(world) / "text/corpus.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f if line.strip()]


def train_captions(world: Path) -> list[tuple[Path, tuple[str, ...]]]:
    """(image path, its five captions) for every Karpathy train image of the world."""
    from tasks.readers.coco import read_karpathy

    world = Path(world)
    return [(img.path, img.captions) for img in read_karpathy(world / "coco/dataset_coco.json", world / "coco")
            if img.split == "train"]


def tokenizer_texts(world: Path) -> list[str]:
    world = Path(world)
    texts = [t + "###" for t in read_corpus(world)]
    texts += [c for _, caps in train_captions(world) for c in caps]
    described = json.loads((world / "cc_sbu_align/filter_cap.json").read_text(encoding="utf-8"))
    texts += [a["caption"] for a in described["annotations"]]
    with (world / "stage1/pairs.jsonl").open(encoding="utf-8") as f:
        texts += [json.loads(line)["caption"] for line in f if line.strip()]
    with (world / "locna/narratives.jsonl").open(encoding="utf-8") as f:
        texts += [json.loads(line)["caption"] for line in f if line.strip()]
    template = [*SYSTEM_LINES, *STAGE2_INSTRUCTIONS, *BLIP2_PROMPTS, "###Human: ###Assistant: Continue"]
    return texts + template * 20


def build_tokenizer(world: Path, vocab_size: int = 1200) -> PreTrainedTokenizerFast:
    return train_tiny_tokenizer(tokenizer_texts(world), vocab_size=vocab_size)


def blip2_tokenizer(base: PreTrainedTokenizerFast) -> PreTrainedTokenizerFast:
    """The OPT-style variant: BOS prepended by the template, `<image>` added as a special token."""
    backend = copy.deepcopy(base.backend_tokenizer)
    backend.post_processor = processors.TemplateProcessing(single=f"{base.bos_token} $A",
                                                           special_tokens=[(base.bos_token, base.bos_token_id)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, **SPECIAL_TOKENS)
    tokenizer.add_tokens([AddedToken(IMAGE_TOKEN, normalized=False, special=True)], special_tokens=True)
    return tokenizer


# ----- the optimisation loop ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Schedule:
    steps: int
    batch_size: int
    lr: float
    min_lr: float
    warmup: int
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    seed: int = 0


def lr_at(step: int, s: Schedule) -> float:
    if step < s.warmup:
        return s.lr * (step + 1) / s.warmup
    progress = (step - s.warmup) / max(s.steps - s.warmup, 1)
    return s.min_lr + (s.lr - s.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))


def fit(model: nn.Module, batch_loss: Callable[[int], torch.Tensor], s: Schedule, desc: str,
        progress: bool = True) -> list[float]:
    """`s.steps` AdamW steps on the parameters of `model` that require grad; `batch_loss(step)` -> mean loss."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or name.endswith(".bias") or "norm" in name.lower() else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": s.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=s.lr, betas=(0.9, 0.98))
    params = decay + no_decay
    losses: list[float] = []
    model.eval()  # no dropout: the tiny models train for minutes, and a run is a deterministic function
    bar = tqdm(range(s.steps), desc=desc, unit="step", disable=not progress, dynamic_ncols=True, mininterval=2)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, s)
        loss = batch_loss(step)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, s.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        if step % 10 == 0:
            bar.set_postfix(loss=f"{sum(losses[-10:]) / len(losses[-10:]):.3f}")
    bar.close()
    return losses


def epoch_batches(n: int, batch_size: int, seed: int) -> Callable[[int], list[int]]:
    """step -> sample indices: consecutive slices of seeded per-epoch permutations."""
    cache: dict[int, list[int]] = {}

    def indices(step: int) -> list[int]:
        out = []
        for k in range(step * batch_size, (step + 1) * batch_size):
            epoch, offset = divmod(k, n)
            if epoch not in cache:
                order = list(range(n))
                random.Random(f"{seed}:epoch:{epoch}").shuffle(order)
                cache.clear()
                cache[epoch] = order
            out.append(cache[epoch][offset])
        return out

    return indices


def pad_right(rows: list[list[int]], labels: list[list[int]], pad: int) -> tuple[torch.Tensor, ...]:
    length = max(len(r) for r in rows)
    ids = torch.full((len(rows), length), pad, dtype=torch.long)
    lab = torch.full((len(rows), length), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, (r, lb) in enumerate(zip(rows, labels, strict=True)):
        ids[i, : len(r)] = torch.tensor(r)
        lab[i, : len(lb)] = torch.tensor(lb)
        mask[i, : len(r)] = 1
    return ids, lab, mask


def shifted_ce(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy (mean, or sum) of each labelled token given the positions before it."""
    return nn.functional.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]),
                                       labels[:, 1:].reshape(-1), ignore_index=IGNORE, reduction=reduction)


def length_grouped_lm_loss(llm: nn.Module, rows: list[list[int]], pad: int, group_size: int) -> torch.Tensor:
    """The mean next-token loss of a batch of right-padded token rows, computed in micro-batches of `group_size`
    rows of similar length. Real tokens never attend to right padding, so this is the loss (and gradient) of
    the whole batch padded to its longest row, without the compute spent on padding: the tiny Vicuna's rows
    run from a 10-token caption page to 256-token conversations, and one padded batch is ~60% padding."""
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    labelled = sum(len(r) - 1 for r in rows)
    total = torch.zeros(())
    for start in range(0, len(order), group_size):
        chunk = [rows[i] for i in order[start:start + group_size]]
        ids, labels, mask = pad_right(chunk, chunk, pad)
        total = total + shifted_ce(llm(input_ids=ids, attention_mask=mask).logits, labels, reduction="sum")
    return total / labelled


# ----- tiny Vicuna -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VicunaConfig:
    hidden_size: int = 160
    intermediate_size: int = 448
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    max_len: int = 256
    system_prob: float = 0.3  # share of conversations with a system line in front
    nospace_prob: float = 0.5  # share written "...question###Assistant:" (the demo's spacing)
    # share of each batch that is web text about a fresh (undrawn) scene: several captions of it in a row
    caption_share: float = 0.25
    # share that is an instruction about content written before it in the same turn (a caption of a fresh scene)
    context_share: float = 0.35
    group_size: int = 8  # rows per length-sorted micro-batch; the loss is the whole batch's (length_grouped_lm_loss)
    # context records whose content names every object with its colour, in the order the answer names them
    context_complete: bool = False
    context_description: float | None = None  # share of context records asking for a detailed description
    schedule: Schedule = Schedule(steps=400, batch_size=32, lr=3e-3, min_lr=1e-4, warmup=30)


def vicuna_text(text: str, rng: random.Random, cfg: VicunaConfig) -> str:
    if not text.startswith("###Human:"):
        return text
    if rng.random() < cfg.nospace_prob:
        text = text.replace(" ###Assistant:", "###Assistant:")
    if rng.random() < cfg.system_prob:
        text = rng.choice(SYSTEM_LINES) + text
    return text + "###"


def pretrain_vicuna(world: Path, tokenizer: PreTrainedTokenizerFast, cfg: VicunaConfig, out: Path,
                    progress: bool = True) -> dict:
    """Train tiny Vicuna on the world's text corpus; writes a Hugging Face folder (model + tokenizer) to `out`."""
    s = cfg.schedule
    torch.manual_seed(s.seed)
    llm = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers, num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_attention_heads, max_position_embeddings=512, tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id))
    corpus = read_corpus(world)
    order = epoch_batches(len(corpus), s.batch_size, s.seed)

    def batch_loss(step: int) -> torch.Tensor:
        rng = random.Random(f"{s.seed}:vicuna:{step}")
        rows = []
        for i in order(step):
            draw = rng.random()
            if draw < cfg.caption_share:
                text = caption_page(rng)
            elif draw < cfg.caption_share + cfg.context_share:
                text = vicuna_text(context_record(rng, complete=cfg.context_complete,
                                                  description_share=cfg.context_description), rng, cfg)
            else:
                text = vicuna_text(corpus[i], rng, cfg)
            ids = tokenizer(text, add_special_tokens=False).input_ids
            rows.append([tokenizer.bos_token_id, *ids[: cfg.max_len - 2], tokenizer.eos_token_id])
        return length_grouped_lm_loss(llm, rows, tokenizer.pad_token_id, cfg.group_size)

    started = time.perf_counter()
    losses = fit(llm, batch_loss, s, "tiny Vicuna", progress)
    set_special_ids(llm, tokenizer)
    llm.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return {"losses": losses[-20:], "seconds": time.perf_counter() - started,
            "context_reading": context_reading(llm, tokenizer, seed=s.seed)}


# ----- fresh scenes (the vision and BLIP-2 pre-training draw from them) -------------------------------
def scene_stream(seed: int, stream: str, step: int, n: int) -> tuple[list, list, random.Random]:
    """`n` new world scenes drawn by the world's own generator from one of the zoo's streams (never the world's
    files, never the same scenes twice): (scenes, their RGB images, the stream's rng for what else is drawn)."""
    from tasks.world.scenes import sample_scene, scene_image

    rng = random.Random(f"mgbench-zoo:{seed}:{stream}:{step}")
    scenes = [sample_scene(rng, 0) for _ in range(n)]
    return scenes, [scene_image(scene) for scene in scenes], rng
