"""`build_world`: write the synthetic world, every dataset format the paper's evaluations and training read.

Layout under `out/` (image paths inside a JSONL file are relative to that file's folder):

    coco/annotations/{captions,instances}_{train,val}2014.json   COCO 2014 (world train -> train2014,
    coco/{train,val}2014/COCO_{train,val}2014_{id:012d}.jpg      world val and test -> val2014)
    coco/dataset_coco.json                                        Karpathy split (train/val/test = world's)
    coco/{train,val,test}2017/{id:012d}.jpg                       COCO 2017 names for A-OKVQA: train -> train2017,
                                                                  val and test -> val2017, test also -> test2017
    aokvqa/aokvqa_v1p0_{train,val,test}.json                      A-OKVQA (test file without answers)
    gqa/{train,val,testdev}_balanced_questions.json, gqa/images/{imageId}.jpg
    stage1/shards/pairs-{00000..}.tar, stage1/pairs.jsonl         stage-1 image-caption pairs (train images;
    stage1/images/COCO_train2014_{id:012d}.jpg                    pairs.jsonl names images/...)
    cc_sbu_align/filter_cap.json, cc_sbu_align/image/{id}.jpg     stage-2 detailed descriptions (train images)
    locna/narratives.jsonl                                        Localized-Narratives-style text (train images)
    advanced/manifest.jsonl, advanced/images/*.jpg                25 test images per meme/recipe/ad/poem task
    text/corpus.jsonl                                             text-only instruction corpus for the tiny LLM
    world.json                                                    manifest, written last: the "done" marker

Each image is written once (its COCO 2014 file) and hard-linked everywhere else (copied where links fail).
The same seed and size give byte-identical files; every random choice comes from a `random.Random` stream
named after its purpose, so the streams do not disturb each other.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from tasks.world import formats
from tasks.world.captions import coco_captions
from tasks.world.formats import Item
from tasks.world.scenes import JPEG_QUALITY, draw_jpeg, sample_scene
from tasks.world.vocab import COLOURS, RELATIONS, SIZES, glyph_table
from tasks.world.writers import link_or_copy, write_bytes, write_json

GENERATOR_VERSION = "1"
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class WorldSize:
    train: int  # images per split
    val: int
    test: int
    stage1_per_image: int  # stage-1 pairs per train image (each with its own web caption)
    shard_size: int  # stage-1 pairs per tar shard
    aokvqa_per_image: int
    gqa_per_image: int
    corpus_records: int


WORLD_SIZES: dict[str, WorldSize] = {
    "small": WorldSize(train=70, val=20, test=30, stage1_per_image=2, shard_size=64, aokvqa_per_image=1,
                       gqa_per_image=2, corpus_records=300),
    "default": WorldSize(train=2200, val=400, test=400, stage1_per_image=2, shard_size=1000, aokvqa_per_image=2,
                         gqa_per_image=3, corpus_records=6000),
}


def stream(seed: int, purpose: str) -> random.Random:
    """The random stream for one purpose (a str seed is hashed with SHA-512: the same in every process)."""
    return random.Random(f"mgbench-world:{seed}:{purpose}")


def build_world(out: Path, seed: int = 0, size: str = "default", progress: bool = True) -> Path:
    """Write the world for (`seed`, `size`) under `out` and return `out`.

    A folder that already holds this world (its world.json names the same generator version, seed and size)
    is returned as it is; a folder holding a different world is an error rather than a mixture.
    """
    out = Path(out)
    if size not in WORLD_SIZES:
        raise ValueError(f"unknown world size {size!r}; choose one of {sorted(WORLD_SIZES)}")
    spec = WORLD_SIZES[size]
    identity = {"generator_version": GENERATOR_VERSION, "seed": seed, "size": size}
    manifest_path = out / "world.json"
    if manifest_path.exists():
        existing = json.loads(manifest_path.read_text(encoding="utf-8"))
        if all(existing.get(k) == v for k, v in identity.items()):
            return out
        found = {k: existing.get(k) for k in identity}
        raise FileExistsError(f"{out} already holds another world ({found}); build {identity} into a new folder")

    items = _sample_items(seed, spec)
    counts: dict[str, int] = {}
    jpegs = _write_images(out, items, progress, counts)
    object_ids = formats.write_coco(out, items, counts)
    formats.write_aokvqa(out, items, spec.aokvqa_per_image, stream(seed, "aokvqa"), counts)
    formats.write_gqa(out, items, spec.gqa_per_image, object_ids, stream(seed, "gqa"), counts)
    formats.write_stage1(out, items, jpegs, spec.stage1_per_image, spec.shard_size, stream(seed, "stage1"), counts)
    formats.write_stage2(out, items, stream(seed, "stage2"), counts)
    formats.write_locna(out, items, stream(seed, "locna"), counts)
    formats.write_advanced(out, items, stream(seed, "advanced"), counts)
    formats.write_corpus(out, spec.corpus_records, stream(seed, "corpus"), counts)
    write_json(manifest_path, {
        **identity,
        "world_size": asdict(spec),
        "splits": {split: sum(item.split == split for item in items) for split in SPLITS},
        "counts": dict(sorted(counts.items())),
        "categories": glyph_table(),
        "colours": {name: list(rgb) for name, rgb in COLOURS.items()},
        "sizes": list(SIZES),
        "relations": list(RELATIONS),
        "jpeg_quality": JPEG_QUALITY,
        "paths": "image paths inside a JSONL file are relative to that file's folder",
    }, indent=1)
    return out


def _sample_items(seed: int, spec: WorldSize) -> list[Item]:
    """All images of the world, in image-id order, with their split and five captions."""
    total = spec.train + spec.val + spec.test
    rng = stream(seed, "scenes")
    ids = sorted(rng.sample(range(1, 600_000), total))
    splits = ["train"] * spec.train + ["val"] * spec.val + ["test"] * spec.test
    rng.shuffle(splits)
    items = [Item(sample_scene(rng, image_id), split) for image_id, split in zip(ids, splits, strict=True)]
    caption_rng = stream(seed, "captions")
    for item in items:
        item.captions = coco_captions(caption_rng, item.scene)
    return items


def _write_images(out: Path, items: list[Item], progress: bool, counts: dict[str, int]) -> dict[int, bytes]:
    """Draw every image once, link it into each layout; returns the JPEG bytes of the train images."""
    jpegs: dict[int, bytes] = {}
    for item in tqdm(items, desc="world images", unit="img", disable=not progress):
        data = draw_jpeg(item.scene)
        primary = out / item.coco2014
        write_bytes(primary, data)
        name = f"{item.image_id:012d}.jpg"
        targets = [f"coco/{'train' if item.split == 'train' else 'val'}2017/{name}", f"gqa/images/{item.image_id}.jpg"]
        if item.split == "test":
            targets.append(f"coco/test2017/{name}")
        for target in targets:
            link_or_copy(primary, out / target)
        if item.split == "train":
            jpegs[item.image_id] = data
    for folder, splits in (("coco/train2014", ("train",)), ("coco/val2014", ("val", "test")),
                           ("coco/train2017", ("train",)), ("coco/val2017", ("val", "test")),
                           ("coco/test2017", ("test",)), ("gqa/images", SPLITS)):
        counts[folder] = sum(item.split in splits for item in items)
    return jpegs
