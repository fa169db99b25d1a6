"""Extra stage-2 data kinds for the tiny zoo: VQA instructions, and mixtures with the described pairs.

"Finetune Vicuna" (paper Table 6) tunes the LLM with LoRA on the stage-2 data PLUS VQA data (VQAv2, OK-VQA,
A-OKVQA). On the world that is its A-OKVQA and GQA *train* files: each question becomes a stage-2 sample
whose prompt is the conversation template with the question (`###Human: <Img><ImageHere></Img> {question}
###Assistant: `) and whose target is the short answer + `###`.

`harness.train.data` knows three kinds (pairs_jsonl, cc_sbu_align, locna) and writes every stage-2 prompt
itself, so a sample here carries its own prompt (`PromptedSample`) and `prepare` uses it. `extra_kinds()`
makes `harness.train.loop` read the kind `vqa_mix` for the duration of one `train` call, and restores it
after; once `harness.train.data` has these two hooks (see `load_samples`/`prepare` below) it is not needed.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from harness.train import data as train_data
from harness.train.batches import STAGE2_TEMPLATE
from model_zoo.minigpt4 import IMAGE_PLACEHOLDER

VQA_MIX = "vqa_mix"


@dataclass(frozen=True)
class PromptedSample(train_data.Sample):
    prompt: str = ""  # the whole stage-2 prompt, with <ImageHere>


def vqa_prompt(question: str) -> str:
    return STAGE2_TEMPLATE.format(f"<Img>{IMAGE_PLACEHOLDER}</Img> {question.strip()}")


def vqa_samples(world: Path) -> list[PromptedSample]:
    """Every A-OKVQA and GQA train question of the world as (image, prompt, answer)."""
    from tasks.readers.aokvqa import read_aokvqa
    from tasks.readers.gqa import read_gqa

    world = Path(world)
    out = [PromptedSample(q.image_path, q.choices[q.correct_choice_idx], vqa_prompt(q.question))
           for q in read_aokvqa(world / "aokvqa/aokvqa_v1p0_train.json", world / "coco")
           if q.correct_choice_idx is not None]
    out += [PromptedSample(q.image_path, q.answer, vqa_prompt(q.question))
            for q in read_gqa(world / "gqa/train_balanced_questions.json", world / "gqa/images") if q.answer]
    return out


def write_vqa_mix(world: Path, out: Path, vqa_share: float, seed: int = 0, described_dir: Path | None = None) -> Path:
    """A mixture file (JSONL of {image, text, prompt}): all described pairs (the cc_sbu_align folder
    `described_dir`, default the world's) + VQA questions making up `vqa_share` of the whole (drawn with `seed`).
    Prompt "" means: the usual stage-2 instruction."""
    from tasks.readers.ccsbu import read_cc_sbu_align

    folder = Path(described_dir) if described_dir else Path(world) / "cc_sbu_align"
    described = [PromptedSample(p.image_path, p.caption) for p in read_cc_sbu_align(folder)]
    vqa = vqa_samples(world)
    n_vqa = min(len(vqa), round(len(described) * vqa_share / max(1e-9, 1 - vqa_share)))
    chosen = random.Random(f"{seed}:vqa-mix").sample(vqa, n_vqa)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        for s in described + chosen:
            f.write(json.dumps({"image": str(s.image_path), "text": s.text, "prompt": s.prompt}) + "\n")
    return out


def load_samples(kind: str, path: Path, images: Path | None = None) -> list[train_data.Sample]:
    if kind == VQA_MIX:
        with Path(path).open(encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        return [PromptedSample(Path(r["image"]), r["text"], r["prompt"]) for r in rows]
    return _ORIGINAL["load_samples"](kind, path, images)


def prepare(sample: train_data.Sample, stage: int, seed: int, step: int, index: int,
            crop_min_scale: float = 0.5) -> tuple[Image.Image, str, str]:
    if isinstance(sample, PromptedSample) and sample.prompt and stage == 2:
        with Image.open(sample.image_path) as raw:
            img = raw.convert("RGB")
        return img, sample.prompt, sample.text.strip() + "###"
    return _ORIGINAL["prepare"](sample, stage, seed, step, index, crop_min_scale)


_ORIGINAL = {"load_samples": train_data.load_samples, "prepare": train_data.prepare}


@contextmanager
def extra_kinds() -> Iterator[None]:
    """Let `harness.train.loop.train` read `vqa_mix` data while the block runs."""
    from harness.train import loop

    saved = loop.load_samples, loop.prepare
    loop.load_samples, loop.prepare = load_samples, prepare
    try:
        yield
    finally:
        loop.load_samples, loop.prepare = saved
