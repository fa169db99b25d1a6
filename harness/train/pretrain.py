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
- `pretrain_blip2`: Blip2ForConditionalGeneration with a small OPT on top of that ViT, frozen as in BLIP-2
  (Q-Former, queries, projection and OPT train) with the captioning LM loss on fresh captioned scenes: input
  `[<image> x 32][BOS] prompt caption [EOS]`, loss on `caption [EOS]`. Most samples have an empty prompt
  (BLIP-2 captions with none); the rest a generic "Question: ... Answer:" prompt, so the model answers a
  question-style prompt with a caption, as the released BLIP-2 does.

Everything is seeded; `fit` is the one optimisation loop (AdamW without decay on 1-d tensors, linear
warmup, cosine decay, gradient clipping).
"""

from __future__ import annotations

import copy
import io
import json
import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy
import torch
from tokenizers import AddedToken, processors
from torch import nn
from tqdm import tqdm
from transformers import (
    Blip2Config,
    Blip2ForConditionalGeneration,
    Blip2VisionConfig,
    Blip2VisionModel,
    LlamaConfig,
    LlamaForCausalLM,
    OPTConfig,
    PreTrainedTokenizerFast,
)

from harness.train.batches import STAGE2_INSTRUCTIONS
from harness.train.vicuna_corpus import caption_page, context_reading, context_record, scene_caption
from model_zoo.checkpoints import set_special_ids
from model_zoo.minigpt4 import SYSTEM_V0, image_processor
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
    from PIL import Image

    from tasks.world.scenes import draw_jpeg, sample_scene

    rng = random.Random(f"mgbench-zoo:{seed}:{stream}:{step}")
    scenes = [sample_scene(rng, 0) for _ in range(n)]
    return scenes, [Image.open(io.BytesIO(draw_jpeg(scene))).convert("RGB") for scene in scenes], rng


# ----- tiny BLIP-2 -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Blip2PretrainConfig:
    """BLIP-2 on top of the pre-trained tiny ViT (its size comes from the vision artefact)."""

    freeze_vision: bool = True  # as BLIP-2 keeps its image encoder frozen
    qformer_hidden: int = 128
    qformer_layers: int = 2
    cross_attention_frequency: int = 1
    num_query_tokens: int = 32
    opt_hidden: int = 128
    opt_layers: int = 2
    heads: int = 4
    prompt_prob: float = 0.3  # share of captions asked for with a question-style prompt
    fresh_scenes: bool = True  # new generated scenes every step (else the world's train images)
    max_txt_len: int = 40
    # BLIP-2's image-text contrastive loss (ITC), added to the captioning loss with this weight (0: off)
    itc_weight: float = 1.0
    itc_dim: int = 64
    # BLIP-2 keeps its LLM frozen: with `freeze_lm` the OPT is first pre-trained as a text model (`lm_steps` steps
    # of caption pages and prompted captions of undrawn scenes, at `lm_lr`), then frozen while the Q-Former learns to
    # prompt it. Off (the default, as zoos were built before the knob): the OPT trains with the Q-Former from random
    # weights. The three fields enter the zoo's content hash only when `freeze_lm` is on.
    freeze_lm: bool = False
    lm_steps: int = 400
    lm_lr: float = 3e-3
    schedule: Schedule = Schedule(steps=1300, batch_size=32, lr=1e-3, min_lr=5e-5, warmup=100)


def blip2_config(tokenizer: PreTrainedTokenizerFast, cfg: Blip2PretrainConfig,
                 vision: Blip2VisionConfig) -> Blip2Config:
    special = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
               "pad_token_id": tokenizer.pad_token_id}
    qformer = {"hidden_size": cfg.qformer_hidden, "num_hidden_layers": cfg.qformer_layers,
               "num_attention_heads": cfg.heads, "intermediate_size": 2 * cfg.qformer_hidden,
               "cross_attention_frequency": cfg.cross_attention_frequency, "vocab_size": 64,
               "max_position_embeddings": 64, "encoder_hidden_size": vision.hidden_size}
    text = OPTConfig(vocab_size=len(tokenizer), hidden_size=cfg.opt_hidden, word_embed_proj_dim=cfg.opt_hidden,
                     ffn_dim=2 * cfg.opt_hidden, num_hidden_layers=cfg.opt_layers, num_attention_heads=cfg.heads,
                     max_position_embeddings=512, tie_word_embeddings=False, **special)
    return Blip2Config(vision_config=vision.to_dict(), qformer_config=qformer, text_config=text.to_dict(),
                       num_query_tokens=cfg.num_query_tokens,
                       image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN))


def load_pixels(paths: Iterable[Path], image_size: int, chunk: int = 256) -> torch.Tensor:
    """Every image through the evaluation transform once: (N, 3, S, S) float32."""
    from PIL import Image

    processor = image_processor(image_size)
    paths, out = list(paths), []
    for start in range(0, len(paths), chunk):
        images = []
        for p in paths[start: start + chunk]:
            with Image.open(p) as raw:
                images.append(raw.convert("RGB"))
        out.append(processor(images, return_tensors="pt")["pixel_values"])
    return torch.cat(out)


def blip2_rows(tokenizer: PreTrainedTokenizerFast, n_query: int, prompt: str, target: str,
               max_txt_len: int) -> tuple[list[int], list[int]]:
    """[<image> x n][BOS] prompt target [EOS], and its labels (target and EOS only)."""
    image_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    head = [image_id] * n_query + tokenizer(prompt).input_ids  # the template puts BOS in front
    text = (" " if prompt else "") + target.strip()
    tail = tokenizer(text, add_special_tokens=False).input_ids[:max_txt_len] + [tokenizer.eos_token_id]
    return head + tail, [IGNORE] * len(head) + tail


def blip2_loss(model: Blip2ForConditionalGeneration, pixels: torch.Tensor, ids: torch.Tensor,
               labels: torch.Tensor, mask: torch.Tensor, itc: QueryTextContrast | None = None,
               texts: list[list[int]] | None = None, itc_weight: float = 0.0) -> torch.Tensor:
    """The captioning LM loss; with `itc`, plus `itc_weight` times the contrastive loss of the query outputs
    against `texts` (each image's caption tokens)."""
    out = model.get_image_features(pixels)
    features = out.pooler_output  # (B, n_query, hidden): the query outputs through `language_projection`
    embeds = model.get_input_embeddings()(ids)
    slots = ids == model.config.image_token_index
    embeds = embeds.masked_scatter(slots.unsqueeze(-1), features.to(embeds.dtype))
    logits = model.language_model(inputs_embeds=embeds, attention_mask=mask).logits
    loss = shifted_ce(logits, labels)
    if itc is not None and itc_weight:
        loss = loss + itc_weight * itc(out.qformer_outputs.last_hidden_state, texts)
    return loss


class QueryTextContrast(nn.Module):
    """BLIP-2's image-text contrastive objective (ITC) in miniature, trained with the captioning loss and dropped
    afterwards. As in BLIP-2, each query output is projected on its own and an image's similarity to a text is the
    highest over its queries, so every query learns to carry text content in one shared space, the property a
    single linear `llama_proj` relies on. The text side is a bag of the caption's token embeddings (the real one
    is the Q-Former's text transformer); positives are an image and its caption, negatives the rest of the batch.
    """

    def __init__(self, query_hidden: int, vocab_size: int, dim: int):
        super().__init__()
        self.vision_proj = nn.Linear(query_hidden, dim)
        self.text = nn.EmbeddingBag(vocab_size, dim, mode="mean")
        self.text_proj = nn.Linear(dim, dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def forward(self, queries: torch.Tensor, texts: list[list[int]]) -> torch.Tensor:
        q = nn.functional.normalize(self.vision_proj(queries), dim=-1)  # (B, Q, D)
        offsets = torch.tensor([0, *numpy.cumsum([len(t) for t in texts[:-1]])], dtype=torch.long)
        bag = self.text(torch.tensor([i for t in texts for i in t], dtype=torch.long), offsets)
        t = nn.functional.normalize(self.text_proj(bag), dim=-1)  # (B, D)
        sim = torch.einsum("iqd,jd->ijq", q, t).max(-1).values * self.logit_scale.exp().clamp(max=100)
        target = torch.arange(len(texts))
        return (nn.functional.cross_entropy(sim, target) + nn.functional.cross_entropy(sim.T, target)) / 2


def fresh_scenes(seed: int, step: int, n: int) -> tuple[list, list[tuple[str, ...]]]:
    """`n` new world scenes for one BLIP-2 step: (RGB images, their five COCO-style captions)."""
    from tasks.world.captions import coco_captions

    scenes, images, rng = scene_stream(seed, "blip2-scenes", step, n)
    return images, [tuple(coco_captions(rng, scene)) for scene in scenes]


def opt_text(rng: random.Random) -> str:
    """One row of the tiny OPT's text pre-training: web text about a fresh (undrawn) scene, either a caption page
    (several captions of it in a row) or a question-style prompt and one caption, the two ways BLIP-2 prompts it."""
    from tasks.world.scenes import sample_scene

    if rng.random() < 0.6:
        return caption_page(rng)
    return f"{rng.choice(BLIP2_PROMPTS)} {scene_caption(rng, sample_scene(rng, 0))}"


def pretrain_opt_text(model: Blip2ForConditionalGeneration, tokenizer: PreTrainedTokenizerFast,
                      cfg: Blip2PretrainConfig, progress: bool = True) -> list[float]:
    """Pre-train BLIP-2's language model alone, as a causal LM on text (`opt_text` rows, BOS ... EOS)."""
    s = cfg.schedule
    lm = model.language_model
    schedule = Schedule(steps=cfg.lm_steps, batch_size=s.batch_size, lr=cfg.lm_lr, min_lr=cfg.lm_lr / 30,
                        warmup=min(30, cfg.lm_steps), seed=s.seed)

    def batch_loss(step: int) -> torch.Tensor:
        rng = random.Random(f"{s.seed}:blip2-lm:{step}")
        rows = [[tokenizer.bos_token_id, *tokenizer(opt_text(rng), add_special_tokens=False).input_ids[:62],
                 tokenizer.eos_token_id] for _ in range(s.batch_size)]
        return length_grouped_lm_loss(lm, rows, tokenizer.pad_token_id, 8)

    return fit(lm, batch_loss, schedule, "tiny BLIP-2 LLM (text)", progress)


def pretrain_blip2(world: Path, tokenizer: PreTrainedTokenizerFast, cfg: Blip2PretrainConfig, vision_dir: Path,
                   out: Path, progress: bool = True) -> dict:
    """Train tiny BLIP-2 on captioned world scenes, its ViT the pre-trained one in `vision_dir` (frozen unless
    `cfg.freeze_vision` is off); writes a `Blip2Adapter(checkpoint=...)` folder.

    `cfg.fresh_scenes`: every step draws new scenes with the world's generator (BLIP-2's web-scale pre-training
    in miniature; with only the world's 2,200 train images a from-scratch ViT memorises them and recognises
    nothing new). Otherwise the world's Karpathy train images and their captions.
    """
    s = cfg.schedule
    torch.manual_seed(s.seed)
    vision = Blip2VisionModel.from_pretrained(vision_dir, local_files_only=True)
    model = Blip2ForConditionalGeneration(blip2_config(tokenizer, cfg, vision.config))
    model.vision_model.load_state_dict(vision.state_dict())
    model.vision_model.requires_grad_(not cfg.freeze_vision)
    lm_losses = []
    if cfg.freeze_lm:
        lm_losses = pretrain_opt_text(model, tokenizer, cfg, progress)
        model.language_model.requires_grad_(False)
    image_size = vision.config.image_size
    with torch.no_grad():  # transformers starts the queries at zero (all 32 alike, and they would stay alike)
        model.query_tokens.normal_(std=0.02)
    processor = image_processor(image_size)
    itc = QueryTextContrast(cfg.qformer_hidden, len(tokenizer), cfg.itc_dim) if cfg.itc_weight else None
    trained = nn.ModuleDict({"blip2": model, **({"itc": itc} if itc is not None else {})})
    if not cfg.fresh_scenes:
        data = train_captions(world)
        pixels = load_pixels([p for p, _ in data], image_size)
        order = epoch_batches(len(data), s.batch_size, s.seed)

    def batch_loss(step: int) -> torch.Tensor:
        rng = random.Random(f"{s.seed}:blip2:{step}")
        if cfg.fresh_scenes:
            images, captions = fresh_scenes(s.seed, step, s.batch_size)
            batch_pixels = processor(images, return_tensors="pt")["pixel_values"]
        else:
            idx = order(step)
            batch_pixels, captions = pixels[idx], [data[i][1] for i in idx]
        rows, labels, texts = [], [], []
        for caps in captions:
            prompt = rng.choice(BLIP2_PROMPTS) if rng.random() < cfg.prompt_prob else ""
            caption = rng.choice(caps)
            row, lab = blip2_rows(tokenizer, cfg.num_query_tokens, prompt, caption, cfg.max_txt_len)
            rows.append(row)
            labels.append(lab)
            texts.append(tokenizer(caption.lower(), add_special_tokens=False).input_ids[: cfg.max_txt_len] or
                         [tokenizer.eos_token_id])
        ids, lab, mask = pad_right(rows, labels, tokenizer.pad_token_id)
        return blip2_loss(model, batch_pixels, ids, lab, mask, itc, texts, cfg.itc_weight)

    started = time.perf_counter()
    losses = fit(trained, batch_loss, s, "tiny BLIP-2", progress)
    model.requires_grad_(True)
    save_blip2(model, tokenizer, image_size, out)
    return {"losses": losses[-20:], "lm_losses": lm_losses[-20:], "seconds": time.perf_counter() - started}


def save_blip2(model: Blip2ForConditionalGeneration, tokenizer: PreTrainedTokenizerFast, image_size: int,
               out: Path) -> None:
    """The folder `Blip2Adapter.save` writes: model, tokenizer and image processor."""
    set_special_ids(model.language_model, tokenizer)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    image_processor(image_size).save_pretrained(out)
