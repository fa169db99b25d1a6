"""Tiny BLIP-2's pre-training (the zoo's `blip2` phase): Blip2ForConditionalGeneration with a small OPT on top of
the pre-trained tiny ViT, the ViT frozen as in BLIP-2 (Q-Former, queries, projection and OPT train), with the
captioning LM loss on fresh captioned scenes: input `[<image> x 32][BOS] prompt caption [EOS]`, loss on
`caption [EOS]`, plus BLIP-2's image-text contrastive loss (`QueryTextContrast`). Most samples have an empty
prompt (BLIP-2 captions with none); the rest a generic "Question: ... Answer:" prompt, so the model answers a
question-style prompt with a caption, as the released BLIP-2 does. With `freeze_lm` the OPT is first pre-trained
on text (`pretrain_opt_text`) and then kept frozen, as BLIP-2 keeps its LLM.

The tokenizer, the optimisation loop (`fit`) and the fresh-scene stream are shared with the other parts
(`harness.train.pretrain`).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy
import torch
from torch import nn
from transformers import (
    Blip2Config,
    Blip2ForConditionalGeneration,
    Blip2VisionConfig,
    Blip2VisionModel,
    OPTConfig,
    PreTrainedTokenizerFast,
)

from harness.train.pretrain import (
    BLIP2_PROMPTS,
    IGNORE,
    IMAGE_TOKEN,
    Schedule,
    epoch_batches,
    fit,
    length_grouped_lm_loss,
    pad_right,
    scene_stream,
    shifted_ce,
    train_captions,
)
from harness.train.vicuna_corpus import caption_page, scene_caption
from model_zoo.checkpoints import set_special_ids
from model_zoo.minigpt4 import image_processor


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
    # Share of pre-training captions that place every object ("a red dog in the top left corner and a blue cup at
    # the bottom", `placed_caption`) instead of one of the scene's COCO-style captions: web text that says where
    # things are, which makes the Q-Former keep which object is where (0, the default: none; enters the zoo's
    # content hash only when on)
    place_share: float = 0.0
    # std of the Q-Former's cross-attention query and key weights at initialisation (0: transformers' 0.02). At
    # 0.02 a from-scratch tiny Q-Former's queries stay near-uniform over the patches (entropy 3.8 of 4.2 after
    # training) and pool the picture into a bag; the real Q-Former starts from BERT (enters the key only when on)
    cross_attention_init: float = 0.0
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


def fresh_scenes(seed: int, step: int, n: int, place_share: float = 0.0) -> tuple[list, list[tuple[str, ...]]]:
    """`n` new world scenes for one BLIP-2 step: (RGB images, their five COCO-style captions); with `place_share`,
    that share of the scenes is captioned by one `placed_caption` instead."""
    from tasks.world.captions import coco_captions, placed_caption

    scenes, images, rng = scene_stream(seed, "blip2-scenes", step, n)
    captions = [(placed_caption(rng, scene),) if place_share and rng.random() < place_share
                else tuple(coco_captions(rng, scene)) for scene in scenes]
    return images, captions


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


@torch.no_grad()
def init_qformer(model: Blip2ForConditionalGeneration, cfg: Blip2PretrainConfig) -> None:
    """Start the queries apart (transformers starts them at zero: all 32 alike, and they would stay alike) and,
    with `cfg.cross_attention_init`, draw the cross-attention query and key weights with that std."""
    model.query_tokens.normal_(std=0.02)
    if cfg.cross_attention_init:
        for layer in model.qformer.encoder.layer:
            if layer.has_cross_attention:
                layer.crossattention.attention.query.weight.normal_(std=cfg.cross_attention_init)
                layer.crossattention.attention.key.weight.normal_(std=cfg.cross_attention_init)


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
    init_qformer(model, cfg)
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
            images, captions = fresh_scenes(s.seed, step, s.batch_size, cfg.place_share)
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
