"""Training data for the two stages, read through the dataset readers, in a seeded, resumable order.

The order of samples is a function of (seed, epoch) alone, and everything random about one sample (its
crop, its stage-2 instruction) is drawn from a generator seeded by (seed, step, index). So a run resumed
from a checkpoint, or split over more processes, sees exactly the samples an uninterrupted run sees.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from harness.train.batches import process_stage1_caption, stage2_prompt
from model_zoo.minigpt4 import IMAGE_PLACEHOLDER


@dataclass(frozen=True)
class Sample:
    image_path: Path
    text: str


def load_samples(kind: str, path: Path, images: Path | None = None) -> list[Sample]:
    """`kind`: pairs_jsonl (stage 1), cc_sbu_align (stage 2), locna (stage 2 on Localized Narratives)."""
    if kind == "pairs_jsonl":
        from tasks.readers.pairs import read_jsonl_pairs

        return [Sample(p.image_path, p.caption) for p in read_jsonl_pairs(path)]
    if kind == "cc_sbu_align":
        from tasks.readers.ccsbu import read_cc_sbu_align

        return [Sample(p.image_path, p.caption) for p in read_cc_sbu_align(path)]
    if kind == "locna":
        from tasks.readers.locna import read_localized_narratives

        if images is None:
            raise ValueError("locna data needs the images folder (e.g. coco/train2017)")
        return [Sample(n.image_path, n.caption) for n in read_localized_narratives(path, images)]
    raise ValueError(f"unknown training data kind {kind!r}; known: pairs_jsonl, cc_sbu_align, locna")


def step_indices(n_samples: int, seed: int, step: int, batch_size: int) -> list[int]:
    """The sample indices of global step `step`: consecutive slices of per-epoch seeded permutations."""
    out: list[int] = []
    start = step * batch_size
    while len(out) < batch_size:
        epoch, offset = divmod(start + len(out), n_samples)
        order = list(range(n_samples))
        random.Random(f"{seed}:epoch:{epoch}").shuffle(order)
        take = min(batch_size - len(out), n_samples - offset)
        out.extend(order[offset : offset + take])
    return out


def random_resized_crop(img: Image.Image, rng: random.Random, scale: tuple[float, float] = (0.5, 1.0)) -> Image.Image:
    """A crop of `scale` of the area with aspect ratio in [3/4, 4/3] (the paper's stage-1 augmentation)."""
    w, h = img.size
    for _ in range(10):
        area = w * h * rng.uniform(*scale)
        ratio = rng.uniform(3 / 4, 4 / 3)
        cw, ch = round((area * ratio) ** 0.5), round((area / ratio) ** 0.5)
        if 0 < cw <= w and 0 < ch <= h:
            x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
            return img.crop((x, y, x + cw, y + ch))
    return img


def prepare(sample: Sample, stage: int, seed: int, step: int, index: int,
            crop_min_scale: float = 0.5) -> tuple[Image.Image, str, str]:
    """(image, prompt, target) of one sample at one step. Stage 1 crops `crop_min_scale`-1 of the area (the paper's
    0.5); 1.0 keeps the whole image."""
    rng = random.Random(f"{seed}:step:{step}:{index}")
    with Image.open(sample.image_path) as raw:
        img = raw.convert("RGB")
    if stage == 1:
        if crop_min_scale < 1.0:
            img = random_resized_crop(img, rng, (crop_min_scale, 1.0))
        return img, IMAGE_PLACEHOLDER, process_stage1_caption(sample.text) + "\n"
    return img, stage2_prompt(rng), sample.text.strip() + "###"
