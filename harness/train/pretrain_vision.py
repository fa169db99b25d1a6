"""The tiny ViT (transformers' Blip2VisionModel) pre-trained alone, before tiny BLIP-2: fresh scenes drawn by the
world's generator (`pretrain.scene_stream`), each patch token labelled with the categories and colours under it (the
world's own masks). This stands in for the pre-trained EVA-CLIP ViT the real BLIP-2 starts from.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy
import torch
from torch import nn
from transformers import Blip2VisionConfig, Blip2VisionModel

from harness.train.pretrain import Schedule, fit, scene_stream
from model_zoo.minigpt4 import image_processor


@dataclass(frozen=True)
class VisionPretrainConfig:
    """The tiny ViT, pre-trained alone before BLIP-2 (the real BLIP-2 starts from a pre-trained EVA-CLIP ViT).

    Objective: dense labelling of fresh world scenes. Every patch token predicts, through linear heads that are
    dropped afterwards, the share of its pixels that belongs to each of the 24 categories and to the background,
    and (`colour_weight`) the same for each object colour. Captioning alone teaches a from-scratch ViT colours and
    counts in CPU minutes but hardly the glyph categories (tag recall 0.08); an image-level tag loss reaches 0.15
    in 1,000 steps; per-patch labels 0.40. Category labels alone leave colour out of the last layer, and BLIP-2
    keeps this ViT frozen: every model then read colours at chance (A-OKVQA colour questions 0.22-0.28).
    """

    image_size: int = 64
    patch_size: int = 8
    hidden: int = 128
    layers: int = 4
    heads: int = 4
    eval_scenes: int = 256  # held-out scenes for the tag recall/precision recorded with the artefact
    colour_weight: float = 1.0  # weight of the dense colour labels (0: category labels only)
    # weight of each patch token naming its own place (its row-major patch index, through a dropped linear head).
    # The dense labels never need it, and the tokens of a ViT trained on them alone lose their places (an
    # attention probe reads an object's category from its place no better than without it); the Q-Former's
    # cross-attention reads tokens by content, so it can only pass on places the tokens hold. Real ViTs keep
    # them. 0: off (enters the zoo's content hash only when on)
    position_weight: float = 0.0
    # 2,500 steps: tag recall 0.67 at 2,100; the stage-2 model's object recall 0.28 at 2,100, 0.32 at 2,500
    schedule: Schedule = Schedule(steps=2500, batch_size=32, lr=2e-3, min_lr=1e-4, warmup=100)


def vision_config(cfg: VisionPretrainConfig) -> Blip2VisionConfig:
    return Blip2VisionConfig(hidden_size=cfg.hidden, intermediate_size=2 * cfg.hidden, num_hidden_layers=cfg.layers,
                             num_attention_heads=cfg.heads, patch_size=cfg.patch_size, image_size=cfg.image_size,
                             initializer_range=0.02)


def category_index() -> dict[str, int]:
    """Category name -> class id for the dense labels (0 is the background)."""
    from tasks.world.vocab import CATEGORIES

    return {c.name: i + 1 for i, c in enumerate(CATEGORIES)}


def colour_index() -> dict[str, int]:
    """Colour name -> class id for the dense colour labels (0 is the background)."""
    from tasks.world.vocab import COLOURS

    return {name: i + 1 for i, name in enumerate(COLOURS)}


def patch_targets(scenes: list, image_size: int, patch_size: int, index: dict[str, int],
                  attribute: str = "name") -> torch.Tensor:
    """(B, patches, 1 + classes): each patch's pixel shares per class (objects' `attribute`: category name or
    colour), the label map resized as the image is (to image_size x image_size; nearest, so every pixel keeps one
    class), patches in the ViT's row-major order."""
    from PIL import Image

    from tasks.world.scenes import label_map

    grid, k = image_size // patch_size, len(index) + 1
    labels = torch.from_numpy(numpy.stack([
        numpy.array(label_map(scene, index, attribute).resize((image_size, image_size), Image.NEAREST),
                    dtype=numpy.int64) for scene in scenes]))  # (B, H, W) class ids
    rows = torch.arange(image_size) // patch_size
    patch = (rows[:, None] * grid + rows[None, :])  # (H, W) the patch each pixel falls in, row-major
    cell = (torch.arange(len(scenes))[:, None, None] * grid * grid + patch) * k + labels
    # pixel counts per (scene, patch, class) / pixels per patch: exactly the mean of one-hot pixels (integer
    # sums, and a power-of-two patch area divides exactly), without building the one-hot tensor
    counts = torch.bincount(cell.reshape(-1), minlength=len(scenes) * grid * grid * k)
    return counts.reshape(len(scenes), grid * grid, k).float() / (patch_size * patch_size)


def tag_scores(predicted: torch.Tensor, present: torch.Tensor) -> tuple[float, float]:
    """Recall and precision of predicted category sets (B, K) against present ones (B, K); column 0 ignored."""
    predicted, present = predicted[:, 1:].float(), present[:, 1:].float()
    hit = float((predicted * present).sum())
    return hit / max(float(present.sum()), 1.0), hit / max(float(predicted.sum()), 1.0)


def pretrain_vision(cfg: VisionPretrainConfig, out: Path, seed: int = 0, progress: bool = True) -> dict:
    """Train the tiny ViT on dense category (and colour) labels; writes a Blip2VisionModel folder to `out`."""
    s = cfg.schedule
    torch.manual_seed(s.seed)
    index, colours = category_index(), colour_index()
    vit = Blip2VisionModel(vision_config(cfg))
    net = nn.ModuleDict({"vit": vit, "head": nn.Linear(cfg.hidden, len(index) + 1)})
    if cfg.colour_weight:
        net["colour_head"] = nn.Linear(cfg.hidden, len(colours) + 1)
    grid = cfg.image_size // cfg.patch_size
    if cfg.position_weight:
        net["position_head"] = nn.Linear(cfg.hidden, grid * grid)
    processor = image_processor(cfg.image_size)

    def batch_loss(step: int) -> torch.Tensor:
        scenes, images, _ = scene_stream(seed, "vision", step, s.batch_size)
        pixels = processor(images, return_tensors="pt")["pixel_values"]
        tokens = vit(pixel_values=pixels).last_hidden_state[:, 1:]
        loss = -(patch_targets(scenes, cfg.image_size, cfg.patch_size, index)
                 * net["head"](tokens).log_softmax(-1)).sum(-1).mean()
        if cfg.colour_weight:
            target = patch_targets(scenes, cfg.image_size, cfg.patch_size, colours, "colour")
            loss = loss + cfg.colour_weight * -(target * net["colour_head"](tokens).log_softmax(-1)).sum(-1).mean()
        if cfg.position_weight:
            logits = net["position_head"](tokens)  # (B, patches, patches): which patch each token is
            places = torch.arange(grid * grid).expand(len(scenes), -1)
            loss = loss + cfg.position_weight * nn.functional.cross_entropy(logits.flatten(0, 1), places.flatten())
        return loss

    started = time.perf_counter()
    losses = fit(net, batch_loss, s, "tiny ViT", progress)
    seconds = time.perf_counter() - started
    scenes, images, _ = scene_stream(seed, "vision-eval", 0, cfg.eval_scenes)
    with torch.no_grad():
        tokens = vit(pixel_values=processor(images, return_tensors="pt")["pixel_values"]).last_hidden_state[:, 1:]
    scores = {}
    for name, head, classes_of, attribute in (("tag", "head", index, "name"), ("colour", "colour_head", colours,
                                                                                 "colour")):
        if head not in net:
            continue
        with torch.no_grad():
            classes = net[head](tokens).argmax(-1)
        predicted = nn.functional.one_hot(classes, len(classes_of) + 1).amax(1)
        present = torch.zeros_like(predicted)
        for i, scene in enumerate(scenes):
            present[i, [classes_of[getattr(o, attribute)] for o in scene.objects]] = 1
        recall, precision = tag_scores(predicted, present)
        scores.update({f"{name}_recall": round(recall, 4), f"{name}_precision": round(precision, 4)})
    if cfg.position_weight:  # how often a token names its own patch
        with torch.no_grad():
            named = net["position_head"](tokens).argmax(-1)
        scores["position_accuracy"] = round(float((named == torch.arange(grid * grid)).float().mean()), 4)
    vit.save_pretrained(out)
    image_processor(cfg.image_size).save_pretrained(out)
    return {"losses": losses[-20:], "seconds": seconds, **scores, "eval_scenes": cfg.eval_scenes}
